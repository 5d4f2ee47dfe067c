#include "tests/conformance/onnx_test_case.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

namespace tunnx_conformance {

namespace fs = std::filesystem;

namespace {

// Ops whose outputs are random: their cases are checked by dtype, shape and distribution.
bool is_random_case(const CaseResult& r) {
  static const std::set<std::string> random_ops = {"Bernoulli", "RandomUniform", "RandomUniformLike",
                                                   "RandomNormal", "RandomNormalLike", "Multinomial"};
  for (const auto& op : r.op_types)
    if (random_ops.count(op)) return true;
  return r.name.find("training_dropout") != std::string::npos;
}

std::vector<double> doubles_of(const tunnx::Tensor& t) {
  std::vector<double> out(static_cast<size_t>(t.numel()));
  auto fill = [&](auto zero) {
    using T = decltype(zero);
    for (int64_t i = 0; i < t.numel(); ++i) out[static_cast<size_t>(i)] = static_cast<double>(t.data_as<T>()[i]);
  };
  switch (t.dtype()) {
    case tunnx::DataType::kFloat32: fill(float{}); break;
    case tunnx::DataType::kFloat64: fill(double{}); break;
    case tunnx::DataType::kBool: fill(bool{}); break;
    case tunnx::DataType::kInt32: fill(int32_t{}); break;
    case tunnx::DataType::kInt64: fill(int64_t{}); break;
    default: throw tunnx::Error(tunnx::ErrorCode::kUnsupported, std::string("no distribution check for ") + tunnx::to_string(t.dtype()));
  }
  return out;
}

// A random case passes when every output has the expected kind, dtype and shape on every run, and
// over kRuns runs: Bernoulli outputs are 0/1 with per-element means near the input probabilities;
// training Dropout outputs are 0 or x / (1 - ratio) with about `ratio` of them dropped.
std::string check_random_case(const CaseResult& r, const tunnx::Session& session, const tunnx::NamedValues& inputs,
                              const tunnx::NamedValues& expected) {
  constexpr int kRuns = 400;
  std::map<std::string, std::vector<double>> sums;
  for (int run = 0; run < kRuns; ++run) {
    tunnx::NamedValues out = session.run(inputs);
    for (const auto& [name, want] : expected) {
      const tunnx::Value& got = out.at(name);
      if (!got.is_tensor() || !want.is_tensor()) return "output '" + name + "' is not a tensor";
      if (got.tensor().dtype() != want.tensor().dtype() || got.tensor().dims() != want.tensor().dims())
        return "output '" + name + "': got " + got.describe() + ", expected " + want.describe();
      std::vector<double> v = doubles_of(got.tensor());
      auto& sum = sums[name];
      sum.resize(v.size(), 0.0);
      for (size_t i = 0; i < v.size(); ++i) sum[i] += v[i];
      if (r.name.find("bernoulli") != std::string::npos)
        for (double x : v)
          if (x != 0 && x != 1) return "Bernoulli output '" + name + "' holds " + std::to_string(x);
    }
  }
  if (r.name.find("bernoulli") != std::string::npos) {
    std::vector<double> p = doubles_of(inputs.begin()->second.tensor());
    // ONNX's function body for Bernoulli (the *_expanded cases) draws 1 when U(0,1) > p, so its mean
    // is 1 - p; the Bernoulli op itself has mean p.
    const bool expanded = std::find(r.op_types.begin(), r.op_types.end(), "Bernoulli") == r.op_types.end();
    for (auto& x : p) x = expanded ? 1 - x : x;
    // With a seed every run draws the same values: there is no spread across runs to measure.
    if (r.name.find("seed") != std::string::npos) {
      for (const auto& [name, sum] : sums)
        for (double total : sum)
          if (total != 0 && total != kRuns) return "seeded output '" + name + "' differs between runs";
      return "";
    }
    for (const auto& [name, sum] : sums)
      for (size_t i = 0; i < sum.size(); ++i)
        if (std::fabs(sum[i] / kRuns - p[i]) > 0.1)  // 400 draws: 4 sigma <= 0.1
          return "Bernoulli output '" + name + "' element " + std::to_string(i) + " has mean " +
                 std::to_string(sum[i] / kRuns) + " for p = " + std::to_string(p[i]);
  }
  return "";
}

}  // namespace

const char* to_string(Outcome outcome) {
  switch (outcome) {
    case Outcome::kPass: return "pass";
    case Outcome::kFail: return "fail";
    case Outcome::kUnsupported: return "unsupported";
    case Outcome::kError: return "error";
  }
  return "?";
}

CaseResult run_case(const fs::path& case_dir, const std::string& name, const Tolerance& tol,
                    int optimization_level) {
  CaseResult result;
  result.name = name;
  try {
    tunnx::Model model = tunnx::Model::load(case_dir / "model.onnx");
    std::set<std::string> ops;
    for (const auto& [op, count] : model.info().op_histogram) ops.insert(op);
    result.op_types.assign(ops.begin(), ops.end());
    std::unique_ptr<tunnx::Session> session;
    try {
      session = std::make_unique<tunnx::Session>(model, tunnx::SessionOptions{.optimization_level = optimization_level});
    } catch (const tunnx::Error& e) {
      result.outcome = e.code() == tunnx::ErrorCode::kUnsupported ? Outcome::kUnsupported : Outcome::kError;
      result.detail = e.what();
      return result;
    }
    std::vector<fs::path> sets;
    for (const auto& entry : fs::directory_iterator(case_dir))
      if (entry.is_directory() && entry.path().filename().string().rfind("test_data_set_", 0) == 0)
        sets.push_back(entry.path());
    std::sort(sets.begin(), sets.end());
    if (sets.empty()) throw tunnx::Error(tunnx::ErrorCode::kNotFound, "no test_data_set_* folder");

    for (const auto& set : sets) {
      tunnx::TestDataSet data = tunnx::load_test_data_set(model, set);
      tunnx::NamedValues outputs = session->run(data.inputs);
      tunnx::NamedValues expected_outputs;
      bool all_equal = true;
      for (const auto& [name, expected] : data.expected) {
        tunnx::Comparison c = tunnx::compare(expected, outputs.at(name), tol.rtol, tol.atol);
        if (is_random_case(result)) {
          expected_outputs[name] = expected;
          all_equal &= c.ok;
          continue;
        }
        if (!c.ok) {
          result.outcome = Outcome::kFail;
          result.detail = set.filename().string() + " output '" + name + "': " + c.detail;
          return result;
        }
      }
      if (is_random_case(result) && !all_equal) {
        if (std::string why = check_random_case(result, *session, data.inputs, expected_outputs); !why.empty()) {
          result.outcome = Outcome::kFail;
          result.detail = set.filename().string() + " (random op): " + why;
          return result;
        }
      }
    }
    result.outcome = Outcome::kPass;
    if (is_random_case(result)) result.detail = "random op: checked dtype, shape and distribution";
  } catch (const tunnx::Error& e) {
    result.outcome = e.code() == tunnx::ErrorCode::kUnsupported ? Outcome::kUnsupported : Outcome::kError;
    result.detail = e.what();
  } catch (const std::exception& e) {
    result.outcome = Outcome::kError;
    result.detail = e.what();
  }
  for (char& c : result.detail)
    if (c == '\n') c = ' ';
  return result;
}

}  // namespace tunnx_conformance
