// Runs ONNX's backend test cases (libonnx-testdata: node, pytorch-converted, pytorch-operator, simple)
// in-process and reports per case and per op. With --passing FILE it fails (exit 1) when a case listed
// there no longer passes, so a regression is a diff of that file.
//
// With --known FILE and --op-set FILE it also fails when a case whose ops are all in the set neither
// passes nor is listed (with its reason) as a known failure, or when a listed case starts passing.
//
//   tunnx_conformance [--data DIR] [--filter TEXT] [--report FILE] [--passing FILE] [--write-passing FILE]
//                     [--known FILE] [--op-set FILE] [--optimization 0|1|2] [-v]
#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>

#include "tests/conformance/onnx_test_case.h"

namespace fs = std::filesystem;
using namespace tunnx_conformance;

namespace {

struct Options {
  fs::path data = TUNNX_TESTDATA_DIR;
  std::string filter;
  fs::path report, passing, write_passing, known, op_set;
  bool verbose = false;
  int optimization_level = 1;
};

int usage() {
  std::cerr << "usage: tunnx_conformance [--data DIR] [--filter TEXT] [--report FILE] [--passing FILE] "
               "[--write-passing FILE] [--known FILE] [--op-set FILE] [--optimization 0|1|2] [-v]\n";
  return 2;
}

// Whitespace-separated words, '#' starting a comment line.
std::set<std::string> read_words(const fs::path& path) {
  std::set<std::string> words;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream s(line);
    for (std::string w; s >> w;) words.insert(w);
  }
  return words;
}

std::set<std::string> read_list(const fs::path& path) {
  std::set<std::string> names;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);)
    if (!line.empty() && line[0] != '#') names.insert(line.substr(0, line.find_first_of(" \t")));
  return names;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string { return i + 1 < argc ? argv[++i] : ""; };
    if (a == "--data") o.data = next();
    else if (a == "--filter") o.filter = next();
    else if (a == "--report") o.report = next();
    else if (a == "--passing") o.passing = next();
    else if (a == "--write-passing") o.write_passing = next();
    else if (a == "--known") o.known = next();
    else if (a == "--op-set") o.op_set = next();
    else if (a == "-v") o.verbose = true;
    else if (a == "--optimization") o.optimization_level = std::atoi(next().c_str());
    else return usage();
  }

  std::vector<CaseResult> results;
  for (const char* suite : {"node", "pytorch-converted", "pytorch-operator", "simple"}) {
    std::vector<fs::path> cases;
    if (!fs::is_directory(o.data / suite)) continue;  // newer ONNX data has only node/ and simple/
    for (const auto& entry : fs::directory_iterator(o.data / suite))
      if (fs::exists(entry.path() / "model.onnx")) cases.push_back(entry.path());
    std::sort(cases.begin(), cases.end());
    for (const auto& dir : cases) {
      std::string name = std::string(suite) + "/" + dir.filename().string();
      if (!o.filter.empty() && name.find(o.filter) == std::string::npos) continue;
      results.push_back(run_case(dir, name, {}, o.optimization_level));
      if (o.verbose || !o.filter.empty())
        std::cout << to_string(results.back().outcome) << "\t" << name << "\t" << results.back().detail << "\n";
    }
  }

  std::map<Outcome, int> counts;
  std::map<std::string, std::pair<int, int>> per_op;  // op -> (passed, total) over cases using it
  for (const auto& r : results) {
    ++counts[r.outcome];
    for (const auto& op : r.op_types) {
      ++per_op[op].second;
      if (r.outcome == Outcome::kPass) ++per_op[op].first;
    }
  }
  if (!o.report.empty()) {
    std::ofstream out(o.report);
    out << "# case\toutcome\tdetail\n";
    for (const auto& r : results) out << r.name << "\t" << to_string(r.outcome) << "\t" << r.detail << "\n";
    out << "\n# op\tcases passed\tcases using it\n";
    for (const auto& [op, pt] : per_op) out << op << "\t" << pt.first << "\t" << pt.second << "\n";
  }
  if (!o.write_passing.empty()) {
    std::ofstream out(o.write_passing);
    out << "# ONNX backend test cases (libonnx-testdata) that tunnx passes; tests/conformance checks each.\n";
    for (const auto& r : results)
      if (r.outcome == Outcome::kPass) out << r.name << "\n";
  }

  int regressions = 0;
  if (!o.passing.empty()) {
    std::map<std::string, const CaseResult*> by_name;
    for (const auto& r : results) by_name[r.name] = &r;
    for (const auto& name : read_list(o.passing)) {
      auto it = by_name.find(name);
      if (it == by_name.end()) {
        if (o.filter.empty()) {
          std::cout << "REGRESSION\t" << name << "\tcase not found\n";
          ++regressions;
        }
      } else if (it->second->outcome != Outcome::kPass) {
        std::cout << "REGRESSION\t" << name << "\t" << to_string(it->second->outcome) << ": " << it->second->detail << "\n";
        ++regressions;
      }
    }
  }
  int unexplained = 0;
  if (!o.known.empty() && !o.op_set.empty()) {
    std::set<std::string> known = read_list(o.known), ops = read_words(o.op_set);
    for (const auto& r : results) {
      bool listed = known.count(r.name) > 0;
      if (r.outcome == Outcome::kPass && listed) {
        std::cout << "NOW PASSING\t" << r.name << "\tremove it from " << o.known.filename().string() << "\n";
        ++unexplained;
      }
      if (r.outcome == Outcome::kPass || listed) continue;
      bool all_in_set = std::all_of(r.op_types.begin(), r.op_types.end(), [&ops](const std::string& op) { return ops.count(op) > 0; });
      if (all_in_set) {
        std::cout << "UNEXPLAINED\t" << r.name << "\t" << to_string(r.outcome) << ": " << r.detail << "\n";
        ++unexplained;
      }
    }
  }
  std::cout << "conformance: " << counts[Outcome::kPass] << " of " << results.size() << " cases pass ("
            << counts[Outcome::kFail] << " wrong results, " << counts[Outcome::kUnsupported] << " unsupported, "
            << counts[Outcome::kError] << " errors)";
  if (!o.passing.empty()) std::cout << "; " << regressions << " regressions against " << o.passing.filename().string();
  if (!o.known.empty()) std::cout << "; " << unexplained << " failures neither known nor outside the op set";
  std::cout << std::endl;
  return regressions || unexplained ? 1 : 0;
}
