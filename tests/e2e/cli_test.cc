// End-to-end tests of the `tunnx` command line: the real binary run as a child process, its stdout,
// stderr and exit status checked exactly. The hostile-file tests write broken models into a fresh
// temp folder and require, for every command, exit code 1 (never a signal), nothing on stdout, one
// "tunnx: error: " line on stderr that names the file and the offending node/tensor/field, and no
// new files left behind.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "onnx/onnx_pb.h"
#include "tests/e2e/cli_harness.h"

namespace tunnx::e2e {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

bool verbose() { return std::getenv("TUNNX_E2E_VERBOSE") != nullptr; }

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

std::vector<std::string> split_words(const std::string& line) {
  std::vector<std::string> words;
  std::istringstream in(line);
  for (std::string w; in >> w;) words.push_back(w);
  return words;
}

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(' '), e = s.find_last_not_of(' ');
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}


// The value of a "Key:   value" row of `tunnx check`'s summary, or "<missing>".
std::string summary_value(const std::string& out, const std::string& key) {
  for (const std::string& line : split_lines(out))
    if (line.rfind(key, 0) == 0) return trim(line.substr(key.size()));
  return "<missing>";
}

// Lines of the indented block after a "Heading (n):" line, up to the next unindented line.
std::vector<std::string> section(const std::string& out, const std::string& heading) {
  std::vector<std::string> rows;
  bool inside = false;
  for (const std::string& line : split_lines(out)) {
    if (inside) {
      if (line.rfind("  ", 0) != 0) break;
      rows.push_back(trim(line));
    } else if (line.rfind(heading, 0) == 0) {
      inside = true;
    }
  }
  return rows;
}

struct ParamsRow {
  std::string shape, dtype, kind, requires_grad;
};

// The rows of `tunnx params`'s table, by tensor name (names in these models have no spaces).
std::map<std::string, ParamsRow> params_rows(const std::string& out) {
  std::map<std::string, ParamsRow> rows;
  std::vector<std::string> lines = split_lines(out);
  // Header, rule, then rows until the blank line before the totals.
  for (size_t i = 2; i < lines.size() && !lines[i].empty(); ++i) {
    std::vector<std::string> w = split_words(lines[i]);
    if (w.size() != 7) {
      ADD_FAILURE() << "params row does not have 7 columns: '" << lines[i] << "'";
      continue;
    }
    rows[w[0]] = {w[1], w[2], w[3], w[4]};
  }
  return rows;
}

// ------------------------------------------------------------------------------------------------
// Command line basics

TEST(CliBasics, VersionExitsZeroAndNamesTheVersion) {
  ProcessResult r = run_cli({"--version"});
  ASSERT_TRUE(r.exited) << r.describe();
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out.rfind("tunnx 0.1.0", 0), 0u) << r.describe();
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.describe();
  EXPECT_EQ(r.err, "");
}

TEST(CliBasics, HelpExitsZeroAndListsTheCommands) {
  ProcessResult r = run_cli({"--help"});
  ASSERT_TRUE(r.exited) << r.describe();
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_TRUE(contains(r.out, "params")) << r.describe();
  EXPECT_TRUE(contains(r.out, "check")) << r.describe();
  EXPECT_EQ(r.err, "");
}

TEST(CliBasics, SubcommandHelpExitsZero) {
  for (const char* command : {"params", "check"}) {
    SCOPED_TRACE(command);
    ProcessResult r = run_cli({command, "--help"});
    ASSERT_TRUE(r.exited) << r.describe();
    EXPECT_EQ(r.exit_code, 0) << r.describe();
    EXPECT_TRUE(contains(r.out, "MODEL")) << r.describe();
    EXPECT_TRUE(contains(r.out, "--json")) << r.describe();
  }
}

// Usage errors exit 2, say something on stderr and nothing on stdout.
void expect_usage_error(const std::vector<std::string>& args) {
  ProcessResult r = run_cli(args);
  ASSERT_TRUE(r.exited) << r.describe();
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_EQ(r.out, "") << r.describe();
  EXPECT_FALSE(r.err.empty()) << r.describe();
}

TEST(CliBasics, NoArgumentsIsAUsageError) { expect_usage_error({}); }

TEST(CliBasics, UnknownCommandIsAUsageError) { expect_usage_error({"frobnicate"}); }

TEST(CliBasics, UnknownCommandIsNamedInTheError) {
  ProcessResult r = run_cli({"frobnicate"});
  ASSERT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_TRUE(contains(r.err, "unknown command 'frobnicate'")) << r.describe();
}

TEST(CliBasics, UnknownOptionIsAUsageError) {
  expect_usage_error({"--frobnicate"});
  expect_usage_error({"params", "--frobnicate", kExampleModel.string()});
}

TEST(CliBasics, MissingModelArgumentIsAUsageError) {
  expect_usage_error({"params"});
  expect_usage_error({"check"});
}

// ------------------------------------------------------------------------------------------------
// `tunnx params` and `tunnx check` on good models

TEST(CliParams, ExampleModelTable) {
  ProcessResult r = run_cli({"params", kExampleModel.string()});
  ASSERT_TRUE(r.exited) << r.describe();
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.err, "");

  std::map<std::string, ParamsRow> rows = params_rows(r.out);
  EXPECT_EQ(rows.size(), 11u) << r.out;
  for (const char* name : {"conv1.weight", "conv1.bias", "bn1.weight", "bn1.bias", "fc1.weight", "fc1.bias",
                           "fc2.weight", "fc2.bias"}) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(rows.count(name)) << r.out;
    EXPECT_EQ(rows[name].kind, "parameter");
    EXPECT_EQ(rows[name].requires_grad, "true");
  }
  for (const char* name : {"bn1.running_mean", "bn1.running_var", "onnx::Reshape_17"}) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(rows.count(name)) << r.out;
    EXPECT_EQ(rows[name].kind, "buffer");
    EXPECT_EQ(rows[name].requires_grad, "false");
  }
  EXPECT_EQ(rows["fc1.weight"].shape, "[64,512]");
  EXPECT_EQ(rows["fc1.weight"].dtype, "float32");
  EXPECT_EQ(rows["onnx::Reshape_17"].dtype, "int64");

  std::vector<std::string> lines = split_lines(r.out);
  auto has_line = [&lines](const std::string& want) {
    return std::find(lines.begin(), lines.end(), want) != lines.end();
  };
  EXPECT_TRUE(has_line("Trainable parameters: 8 tensors, 33,578 elements")) << r.out;
  EXPECT_TRUE(has_line("Buffers: 3 tensors, 18 elements")) << r.out;
  EXPECT_FALSE(contains(r.out, "Frozen parameters")) << "nothing is frozen\n" << r.out;
}

TEST(CliParams, ExampleModelJson) {
  ProcessResult r = run_cli({"params", kExampleModel.string(), "--json"});
  ASSERT_TRUE(r.exited) << r.describe();
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.err, "");
  json j;
  ASSERT_NO_THROW(j = json::parse(r.out)) << r.out;
  EXPECT_EQ(j.at("model"), kExampleModel.string());

  const json& totals = j.at("totals");
  EXPECT_EQ(totals.at("trainable_tensors"), 8);
  EXPECT_EQ(totals.at("trainable_elements"), 33578);
  EXPECT_EQ(totals.at("frozen_tensors"), 0);
  EXPECT_EQ(totals.at("frozen_elements"), 0);
  EXPECT_EQ(totals.at("buffer_tensors"), 3);
  EXPECT_EQ(totals.at("buffer_elements"), 18);

  const json& tensors = j.at("tensors");
  ASSERT_TRUE(tensors.is_array());
  ASSERT_EQ(tensors.size(), 11u);
  std::set<std::string> buffers = {"bn1.running_mean", "bn1.running_var", "onnx::Reshape_17"};
  int64_t trainable_elements = 0;
  std::vector<std::string> order;
  for (const json& t : tensors) {
    std::string name = t.at("name");
    order.push_back(name);
    SCOPED_TRACE(name);
    bool buffer = buffers.count(name) > 0;
    EXPECT_EQ(t.at("kind"), buffer ? "buffer" : "parameter");
    EXPECT_EQ(t.at("requires_grad"), !buffer);
    EXPECT_EQ(t.at("external"), false);
    EXPECT_FALSE(t.at("reason").get<std::string>().empty());
    int64_t elements = 1;
    for (int64_t d : t.at("shape")) elements *= d;
    if (!buffer) trainable_elements += elements;
  }
  EXPECT_EQ(trainable_elements, 33578);
  // The file's initializer order.
  std::vector<std::string> file_order = {"conv1.weight", "conv1.bias", "bn1.weight", "bn1.bias",
                                         "bn1.running_mean", "bn1.running_var", "onnx::Reshape_17",
                                         "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"};
  EXPECT_EQ(order, file_order);
  EXPECT_EQ(tensors[7].at("shape"), json({64, 512}));
  EXPECT_EQ(tensors[7].at("bytes"), 64 * 512 * 4);
  EXPECT_EQ(tensors[6].at("dtype"), "int64");
}

// A real torch.onnx export (ONNX's backend test data) whose initializers are named "1".."4":
// BatchNormalization(x, scale=1, B=2, mean=3, var=4).
TEST(CliParams, PytorchExportWithNumericInitializerNames) {
  fs::path model = kTestData / "pytorch-converted" / "test_BatchNorm2d_eval" / "model.onnx";
  if (!fs::exists(model)) GTEST_SKIP() << "ONNX test data not installed: " << model;
  ProcessResult r = run_cli({"params", model.string()});
  ASSERT_TRUE(r.exited) << r.describe();
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  std::map<std::string, ParamsRow> rows = params_rows(r.out);
  ASSERT_EQ(rows.size(), 4u) << r.out;
  EXPECT_EQ(rows["1"].kind, "parameter");
  EXPECT_EQ(rows["1"].requires_grad, "true");
  EXPECT_EQ(rows["2"].kind, "parameter");
  EXPECT_EQ(rows["2"].requires_grad, "true");
  EXPECT_EQ(rows["3"].kind, "buffer");
  EXPECT_EQ(rows["3"].requires_grad, "false");
  EXPECT_EQ(rows["4"].kind, "buffer");
  EXPECT_EQ(rows["4"].requires_grad, "false");

  ProcessResult rj = run_cli({"params", model.string(), "--json"});
  ASSERT_EQ(rj.exit_code, 0) << rj.describe();
  json j = json::parse(rj.out);
  std::map<std::string, std::string> kinds;
  for (const json& t : j.at("tensors")) kinds[t.at("name")] = t.at("kind");
  EXPECT_EQ(kinds, (std::map<std::string, std::string>{
                       {"1", "parameter"}, {"2", "parameter"}, {"3", "buffer"}, {"4", "buffer"}}));
}

TEST(CliCheck, ExampleModelText) {
  ProcessResult r = run_cli({"check", kExampleModel.string()});
  ASSERT_TRUE(r.exited) << r.describe();
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.err, "");
  EXPECT_EQ(summary_value(r.out, "Model:"), kExampleModel.string()) << r.out;
  EXPECT_EQ(summary_value(r.out, "IR version:"), "8") << r.out;
  EXPECT_EQ(summary_value(r.out, "Opsets:"), "ai.onnx 17") << r.out;
  EXPECT_EQ(summary_value(r.out, "ONNX checker:"), "passed") << r.out;
  EXPECT_EQ(summary_value(r.out, "Nodes:"), "7") << r.out;

  std::vector<std::string> inputs = section(r.out, "Inputs (1):");
  ASSERT_EQ(inputs.size(), 1u) << r.out;
  EXPECT_EQ(split_words(inputs[0]), (std::vector<std::string>{"input", "tensor(float32)", "[batch,1,8,8]"}));
  std::vector<std::string> outputs = section(r.out, "Outputs (1):");
  ASSERT_EQ(outputs.size(), 1u) << r.out;
  EXPECT_EQ(split_words(outputs[0]), (std::vector<std::string>{"logits", "tensor(float32)", "[batch,10]"}));

  std::map<std::string, std::string> histogram;
  for (const std::string& row : section(r.out, "Op types (5):")) {
    std::vector<std::string> w = split_words(row);
    ASSERT_EQ(w.size(), 2u) << row;
    histogram[w[0]] = w[1];
  }
  EXPECT_EQ(histogram, (std::map<std::string, std::string>{{"Gemm", "2"},
                                                           {"Relu", "2"},
                                                           {"BatchNormalization", "1"},
                                                           {"Conv", "1"},
                                                           {"Reshape", "1"}}))
      << r.out;
  // Most used first.
  std::vector<std::string> ops = section(r.out, "Op types (5):");
  ASSERT_FALSE(ops.empty());
  EXPECT_EQ(split_words(ops[0]), (std::vector<std::string>{"Gemm", "2"}));
  EXPECT_EQ(split_lines(r.out).back(), "OK: " + kExampleModel.string() + " is a valid ONNX model");
}

TEST(CliCheck, ExampleModelJson) {
  ProcessResult r = run_cli({"check", "--json", kExampleModel.string()});
  ASSERT_TRUE(r.exited) << r.describe();
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.err, "");
  json j;
  ASSERT_NO_THROW(j = json::parse(r.out)) << r.out;
  EXPECT_EQ(j.at("valid"), true);
  EXPECT_EQ(j.at("model"), kExampleModel.string());
  EXPECT_EQ(j.at("ir_version"), 8);
  EXPECT_EQ(j.at("opset_imports"), json::parse(R"([{"domain": "ai.onnx", "version": 17}])"));
  EXPECT_EQ(j.at("onnx_checker"), "passed");
  EXPECT_EQ(j.at("node_count"), 7);
  EXPECT_EQ(j.at("subgraph_count"), 0);
  ASSERT_EQ(j.at("inputs").size(), 1u);
  EXPECT_EQ(j.at("inputs")[0].at("name"), "input");
  EXPECT_EQ(j.at("inputs")[0].at("type"), "tensor(float32)");
  EXPECT_EQ(j.at("inputs")[0].at("shape"), json::parse(R"(["batch", 1, 8, 8])"));
  ASSERT_EQ(j.at("outputs").size(), 1u);
  EXPECT_EQ(j.at("outputs")[0].at("shape"), json::parse(R"(["batch", 10])"));
  EXPECT_EQ(j.at("op_histogram"),
            json::parse(R"({"Gemm": 2, "Relu": 2, "BatchNormalization": 1, "Conv": 1, "Reshape": 1})"));
}

// ------------------------------------------------------------------------------------------------
// Hostile files

// A fresh folder per test, removed afterwards. Models go into "<root>/models dir/" (a space in the
// path on purpose); files that must stay out of reach go into <root>.

void write_file(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

void write_model(const fs::path& path, const onnx::ModelProto& model) {
  std::string bytes;
  if (!model.SerializeToString(&bytes)) throw std::runtime_error("cannot serialize the test model");
  write_file(path, bytes);
}

void set_float_tensor_type(onnx::ValueInfoProto* v, const std::string& name, std::vector<int64_t> dims) {
  v->set_name(name);
  auto* tensor_type = v->mutable_type()->mutable_tensor_type();
  tensor_type->set_elem_type(onnx::TensorProto_DataType_FLOAT);
  for (int64_t d : dims) tensor_type->mutable_shape()->add_dim()->set_dim_value(d);
}

onnx::NodeProto* add_node(onnx::GraphProto* g, const std::string& name, const std::string& op,
                          std::vector<std::string> inputs, std::vector<std::string> outputs) {
  onnx::NodeProto* n = g->add_node();
  n->set_name(name);
  n->set_op_type(op);
  for (const auto& in : inputs) n->add_input(in);
  for (const auto& out : outputs) n->add_output(out);
  return n;
}

// A valid model: y = Add(x, w) in graph "g", x and y float [2], initializer w float [2] (raw_data).
onnx::ModelProto base_model() {
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.set_producer_name("tunnx-e2e");
  auto* opset = m.add_opset_import();
  opset->set_domain("");
  opset->set_version(17);
  onnx::GraphProto* g = m.mutable_graph();
  g->set_name("g");
  set_float_tensor_type(g->add_input(), "x", {2});
  set_float_tensor_type(g->add_output(), "y", {2});
  onnx::TensorProto* w = g->add_initializer();
  w->set_name("w");
  w->set_data_type(onnx::TensorProto_DataType_FLOAT);
  w->add_dims(2);
  w->set_raw_data(std::string(8, '\0'));
  add_node(g, "add", "Add", {"x", "w"}, {"y"});
  return m;
}

onnx::TensorProto* initializer_w(onnx::ModelProto& m) { return m.mutable_graph()->mutable_initializer(0); }

// Moves w's 8 bytes to external data at `location`.
onnx::ModelProto external_w_model(const std::string& location) {
  onnx::ModelProto m = base_model();
  onnx::TensorProto* w = initializer_w(m);
  w->clear_raw_data();
  w->set_data_location(onnx::TensorProto_DataLocation_EXTERNAL);
  auto add_entry = [w](const std::string& key, const std::string& value) {
    auto* kv = w->add_external_data();
    kv->set_key(key);
    kv->set_value(value);
  };
  add_entry("location", location);
  add_entry("offset", "0");
  add_entry("length", "8");
  return m;
}

const std::string kEightBytes = std::string("\x00\x00\x80\x3f\x00\x00\x00\x40", 8);  // {1.0f, 2.0f}

// Everything under `root` (symlinks not followed) with its type and size: a new or changed file shows.
std::map<std::string, std::string> snapshot(const fs::path& root) {
  std::map<std::string, std::string> entries;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(root, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    fs::file_status st = it->symlink_status();
    std::string what = std::to_string(static_cast<int>(st.type()));
    if (st.type() == fs::file_type::regular) what += " " + std::to_string(fs::file_size(it->path()));
    entries[fs::relative(it->path(), root).string()] = what;
  }
  return entries;
}

using Maker = std::function<fs::path(const TempFolder&)>;

struct HostileCase {
  HostileCase(std::string name_, Maker make_, std::vector<std::string> expected_)
      : name(std::move(name_)), make(std::move(make_)), expected(std::move(expected_)) {}

  std::string name;
  // Writes what the case needs under the temp folder; returns the path given to the CLI.
  Maker make;
  // Text the one stderr line must contain besides "tunnx: error: " and the model's path.
  std::vector<std::string> expected;
};

std::ostream& operator<<(std::ostream& os, const HostileCase& c) { return os << c.name; }

// Cuts the example model to its first `size` bytes.
Maker truncated_example(size_t size) {
  return [size](const TempFolder& t) {
    std::string bytes = read_file(kExampleModel);
    if (size >= bytes.size()) throw std::runtime_error("cut point past the end of the example model");
    fs::path p = t.model_dir() / "truncated.onnx";
    write_file(p, bytes.substr(0, size));
    return p;
  };
}

// Evaluated while tests register; a missing example fails the truncation cases, not the binary.
size_t example_size() {
  std::error_code ec;
  uintmax_t size = fs::file_size(kExampleModel, ec);
  return ec ? 1000 : static_cast<size_t>(size);
}

Maker random_bytes(size_t size, uint32_t seed) {
  return [size, seed](const TempFolder& t) {
    std::mt19937 rng(seed);
    std::string bytes(size, '\0');
    for (char& c : bytes) c = static_cast<char>(rng() & 0xff);
    fs::path p = t.model_dir() / "random.onnx";
    write_file(p, bytes);
    return p;
  };
}

Maker model_file(std::function<onnx::ModelProto()> build) {
  return [build](const TempFolder& t) {
    fs::path p = t.model_dir() / "model.onnx";
    write_model(p, build());
    return p;
  };
}

const std::string kParseFailed = "not an ONNX model: protobuf parsing failed (truncated or corrupt file)";

std::vector<HostileCase> hostile_cases() {
  std::vector<HostileCase> cases;
  const size_t n = example_size();

  // Truncations inside a field: protobuf itself rejects them.
  for (size_t cut : {size_t{1}, size_t{7}, size_t{100}, n / 4, n / 2, 3 * n / 4, n - 20, n - 1}) {
    cases.push_back({"TruncatedAt" + std::to_string(cut), truncated_example(cut), {kParseFailed}});
  }
  // Truncations that happen to end on a field boundary parse, and are caught by the checks after.
  cases.push_back({"TruncatedAfterIrVersion", truncated_example(2),
                   {"field 'graph'", "not an ONNX model: it has no graph"}});
  // The example ends with its opset_import (6 bytes); without it only ONNX's checker objects.
  cases.push_back({"TruncatedBeforeOpsetImport", truncated_example(n - 6),
                   {"ONNX checker: model with IR version >= 3 must specify opset_import"}});

  // Random bytes (std::mt19937, so the same bytes everywhere): protobuf rejects each of these.
  for (size_t size : {size_t{1}, size_t{3}, size_t{64}, size_t{1000}, size_t{65536}}) {
    cases.push_back({"RandomBytes" + std::to_string(size),
                     random_bytes(size, 20240611u + static_cast<uint32_t>(size)), {kParseFailed}});
  }

  cases.push_back({"EmptyFile",
                   [](const TempFolder& t) {
                     fs::path p = t.model_dir() / "empty.onnx";
                     write_file(p, "");
                     return p;
                   },
                   {"file is empty"}});
  cases.push_back({"MissingFile", [](const TempFolder& t) { return t.model_dir() / "missing.onnx"; },
                   {"no such file"}});
  cases.push_back({"Directory",
                   [](const TempFolder& t) {
                     fs::path p = t.model_dir() / "folder.onnx";
                     fs::create_directory(p);
                     return p;
                   },
                   {"is a directory, not a model file"}});
  cases.push_back({"Fifo",
                   [](const TempFolder& t) {
                     fs::path p = t.model_dir() / "pipe.onnx";
                     if (::mkfifo(p.c_str(), 0600) != 0) throw std::runtime_error("mkfifo failed");
                     return p;
                   },
                   {"is not a regular file"}});
  cases.push_back({"NoIrVersion", model_file([] {
                     onnx::ModelProto m = base_model();
                     m.clear_ir_version();
                     return m;
                   }),
                   {"field 'ir_version'", "ir_version is not set"}});

  // Graph structure.
  cases.push_back({"Cycle", model_file([] {
                     onnx::ModelProto m = base_model();
                     onnx::GraphProto* g = m.mutable_graph();
                     g->clear_node();
                     add_node(g, "first", "Relu", {"b"}, {"a"});
                     add_node(g, "second", "Relu", {"a"}, {"b"});
                     add_node(g, "add", "Add", {"b", "w"}, {"y"});
                     return m;
                   }),
                   {"node 'first' (Relu)", "graph has a cycle through input 'b'"}});
  cases.push_back({"SelfLoop", model_file([] {
                     onnx::ModelProto m = base_model();
                     onnx::GraphProto* g = m.mutable_graph();
                     g->clear_node();
                     add_node(g, "loop", "Add", {"x", "y"}, {"y"});
                     return m;
                   }),
                   {"node 'loop' (Add)", "node consumes its own output (a cycle)"}});
  cases.push_back({"UndefinedInput", model_file([] {
                     onnx::ModelProto m = base_model();
                     m.mutable_graph()->mutable_node(0)->set_input(1, "ghost");
                     return m;
                   }),
                   {"node 'add' (Add)", "input 'ghost' is not produced by any node, graph input or initializer"}});
  cases.push_back({"DuplicateNodeOutput", model_file([] {
                     onnx::ModelProto m = base_model();
                     onnx::GraphProto* g = m.mutable_graph();
                     g->clear_node();
                     add_node(g, "first", "Relu", {"x"}, {"y"});
                     add_node(g, "second", "Relu", {"w"}, {"y"});
                     return m;
                   }),
                   {"node 'second' (Relu)", "output 'y' is already produced by node 'first' (Relu)"}});
  cases.push_back({"DuplicateInitializer", model_file([] {
                     onnx::ModelProto m = base_model();
                     *m.mutable_graph()->add_initializer() = *initializer_w(m);
                     return m;
                   }),
                   {"tensor 'w'", "initializer is defined twice in graph 'g'"}});

  // Graphs tunnx accepts but ONNX's checker rejects. The checker's message names the node on its
  // second line ("==> Context: Bad node spec for node. Name: add OpType: NoSuchOp").
  cases.push_back({"UnknownOp", model_file([] {
                     onnx::ModelProto m = base_model();
                     m.mutable_graph()->mutable_node(0)->set_op_type("NoSuchOp");
                     return m;
                   }),
                   {"node 'add' (NoSuchOp)", "ONNX checker: No Op registered for NoSuchOp with domain_version of 17"}});
  cases.push_back({"UnknownAttribute", model_file([] {
                     onnx::ModelProto m = base_model();
                     onnx::AttributeProto* a = m.mutable_graph()->mutable_node(0)->add_attribute();
                     a->set_name("bogus");
                     a->set_type(onnx::AttributeProto_AttributeType_INT);
                     a->set_i(1);
                     return m;
                   }),
                   {"node 'add' (Add)", "ONNX checker: Unrecognized attribute: bogus for operator Add"}});

  // Tensor sizes.
  cases.push_back({"HugeDeclaredTensor", model_file([] {
                     onnx::ModelProto m = base_model();
                     onnx::TensorProto* w = initializer_w(m);
                     w->clear_raw_data();
                     w->clear_dims();
                     w->add_dims(1000000000);
                     w->add_dims(1000000000);
                     return m;
                   }),
                   {"tensor 'w'", "field 'dims'",
                    "declares 1000000000000000000 elements of float32, over the limit of 17179869184 bytes "
                    "per tensor"}});
  cases.push_back({"ElementCountOverflow", model_file([] {
                     onnx::ModelProto m = base_model();
                     onnx::TensorProto* w = initializer_w(m);
                     w->clear_raw_data();
                     w->clear_dims();
                     w->add_dims(int64_t{1} << 40);
                     w->add_dims(int64_t{1} << 40);
                     return m;
                   }),
                   {"tensor 'w'", "field 'dims'", "element count overflows int64"}});
  cases.push_back({"NegativeDim", model_file([] {
                     onnx::ModelProto m = base_model();
                     onnx::TensorProto* w = initializer_w(m);
                     w->clear_dims();
                     w->add_dims(-2);
                     return m;
                   }),
                   {"tensor 'w'", "field 'dims'", "negative dimension -2", "(shapes [-2])"}});
  cases.push_back({"RawDataShorterThanDeclared", model_file([] {
                     onnx::ModelProto m = base_model();
                     initializer_w(m)->set_dims(0, 4);  // 16 bytes declared, 8 present
                     return m;
                   }),
                   {"tensor 'w'", "field 'raw_data'", "raw_data has 8 bytes but shape [4] of float32 needs 16"}});
  cases.push_back({"FloatDataShorterThanDeclared", model_file([] {
                     onnx::ModelProto m = base_model();
                     onnx::TensorProto* w = initializer_w(m);
                     w->clear_raw_data();
                     w->add_float_data(1.0f);
                     return m;
                   }),
                   {"tensor 'w'", "field 'float_data'", "declares 2 values for shape [2] but holds 1"}});

  // External data that tries to leave the model's folder. The targets exist and have the right size,
  // so only the path rule stops them.
  cases.push_back({"ExternalDataParentFolder",
                   [](const TempFolder& t) {
                     write_file(t.root() / "secret.bin", kEightBytes);
                     fs::path p = t.model_dir() / "model.onnx";
                     write_model(p, external_w_model("../secret.bin"));
                     return p;
                   },
                   {"tensor 'w'", "field 'external_data.location'",
                    "external data location '../secret.bin' leaves the model's folder"}});
  cases.push_back({"ExternalDataParentFolderViaSubfolder",
                   [](const TempFolder& t) {
                     write_file(t.root() / "secret.bin", kEightBytes);
                     fs::create_directory(t.model_dir() / "sub");
                     fs::path p = t.model_dir() / "model.onnx";
                     write_model(p, external_w_model("sub/../../secret.bin"));
                     return p;
                   },
                   {"tensor 'w'", "field 'external_data.location'",
                    "external data location 'sub/../../secret.bin' leaves the model's folder"}});
  cases.push_back({"ExternalDataAbsolutePath", model_file([] { return external_w_model("/etc/passwd"); }),
                   {"tensor 'w'", "field 'external_data.location'",
                    "external data location '/etc/passwd' is an absolute path; it must be relative to the "
                    "model's folder"}});
  cases.push_back({"ExternalDataSymlinkedFile",
                   [](const TempFolder& t) {
                     write_file(t.root() / "outside.bin", kEightBytes);
                     fs::create_symlink(t.root() / "outside.bin", t.model_dir() / "weights.bin");
                     fs::path p = t.model_dir() / "model.onnx";
                     write_model(p, external_w_model("weights.bin"));
                     return p;
                   },
                   {"tensor 'w'", "field 'external_data.location'",
                    "external data location 'weights.bin' leaves the model's folder through a symlink"}});
  cases.push_back({"ExternalDataSymlinkedFolder",
                   [](const TempFolder& t) {
                     fs::create_directory(t.root() / "elsewhere");
                     write_file(t.root() / "elsewhere" / "weights.bin", kEightBytes);
                     fs::create_directory_symlink("../elsewhere", t.model_dir() / "data");
                     fs::path p = t.model_dir() / "model.onnx";
                     write_model(p, external_w_model("data/weights.bin"));
                     return p;
                   },
                   {"tensor 'w'", "field 'external_data.location'",
                    "external data location 'data/weights.bin' leaves the model's folder through a symlink"}});
  cases.push_back({"ExternalDataMissingFile", model_file([] { return external_w_model("nowhere.bin"); }),
                   {"tensor 'w'", "field 'external_data.location'",
                    "external data location 'nowhere.bin' names a file that does not exist"}});
  // The data file is inside the folder but holds 4 of the 8 bytes w needs.
  cases.push_back({"ExternalDataFileTooShort",
                   [](const TempFolder& t) {
                     write_file(t.model_dir() / "weights.bin", kEightBytes.substr(0, 4));
                     fs::path p = t.model_dir() / "model.onnx";
                     onnx::ModelProto m = external_w_model("weights.bin");
                     initializer_w(m)->mutable_external_data()->RemoveLast();  // no "length"
                     write_model(p, m);
                     return p;
                   },
                   {"tensor 'w'", "field 'external_data'", "weights.bin",
                    "external data [offset 0, +8 bytes) runs past the end of the 4-byte file"}});
  return cases;
}

class HostileFile : public ::testing::TestWithParam<HostileCase> {};

// One invocation of the CLI on a hostile model: exit 1, nothing on stdout, exactly one stderr line
// naming the model and the offender.
void check_one(const HostileCase& c, const fs::path& model, const std::vector<std::string>& args) {
  std::string command = "tunnx";
  for (const auto& a : args) command += " " + a;
  SCOPED_TRACE(command);
  ProcessResult r = run_cli(args, std::chrono::seconds(60));
  ASSERT_FALSE(r.timed_out) << "the CLI hung\n" << r.describe();
  ASSERT_FALSE(r.signaled) << "the CLI died by a signal\n" << r.describe();
  ASSERT_TRUE(r.exited) << r.describe();
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_EQ(r.out, "") << "nothing may reach stdout on failure\n" << r.describe();
  ASSERT_FALSE(r.err.empty()) << r.describe();
  EXPECT_EQ(r.err.back(), '\n') << r.describe();
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "stderr must be exactly one line\n"
                                                             << r.describe();
  std::string line = r.err.substr(0, r.err.find('\n'));
  if (verbose()) std::cout << "[  stderr  ] " << command << "\n             " << line << "\n";
  ::testing::Test::RecordProperty("stderr", line);
  EXPECT_EQ(line.rfind("tunnx: error: ", 0), 0u) << line;

  std::vector<std::string> wanted = c.expected;
  wanted.insert(wanted.begin(), model.string());
  for (const std::string& want : wanted)
    EXPECT_TRUE(contains(line, want)) << "stderr line lacks \"" << want << "\"\n  line: " << line;
}

TEST_P(HostileFile, FailsCleanlyWithOneErrorLine) {
  const HostileCase& c = GetParam();
  TempFolder temp;
  fs::path model = c.make(temp);
  std::map<std::string, std::string> before = snapshot(temp.root());
  for (std::vector<std::string> args : {std::vector<std::string>{"params", model.string()},
                                        std::vector<std::string>{"params", "--json", model.string()},
                                        std::vector<std::string>{"check", model.string()},
                                        std::vector<std::string>{"check", "--json", model.string()}}) {
    check_one(c, model, args);
    if (::testing::Test::HasFatalFailure()) return;
    EXPECT_EQ(snapshot(temp.root()), before) << "the folder changed (partial output?)";
  }
}

INSTANTIATE_TEST_SUITE_P(Cli, HostileFile, ::testing::ValuesIn(hostile_cases()),
                         [](const ::testing::TestParamInfo<HostileCase>& info) { return info.param.name; });

// Controls: the same builders without the hostile part load, so the failures above come from the
// part each case breaks and nothing else.
TEST(HostileFileControls, BaseModelLoads) {
  TempFolder temp;
  fs::path p = temp.model_dir() / "model.onnx";
  write_model(p, base_model());
  ProcessResult r = run_cli({"params", p.string()});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_TRUE(contains(r.out, "Trainable parameters: 1 tensor, 2 elements")) << r.out;
  ProcessResult c = run_cli({"check", p.string()});
  ASSERT_EQ(c.exit_code, 0) << c.describe();
}

// A valid model whose ops tunnx cannot run: `tunnx check` names them and exits 3 (1 stays "invalid");
// ONNX Runtime's contrib ops that tunnx lowers do not count.
TEST(CliCheck, ValidModelWithOpsWithoutKernelsExits3) {
  TempFolder temp;
  fs::path p = temp.model_dir() / "custom.onnx";
  onnx::ModelProto m = base_model();
  auto* custom = m.add_opset_import();
  custom->set_domain("com.example");
  custom->set_version(1);
  auto* microsoft = m.add_opset_import();
  microsoft->set_domain("com.microsoft");
  microsoft->set_version(1);
  onnx::GraphProto* g = m.mutable_graph();
  g->mutable_output(0)->set_name("z");
  add_node(g, "gelu", "FastGelu", {"y"}, {"g"})->set_domain("com.microsoft");
  add_node(g, "swizzle", "Swizzle", {"g"}, {"z"})->set_domain("com.example");
  write_model(p, m);
  ProcessResult r = run_cli({"check", p.string()});
  ASSERT_TRUE(r.exited) << r.describe();
  EXPECT_EQ(r.exit_code, 3) << r.describe();
  EXPECT_EQ(split_lines(r.out).back(), "NOT RUNNABLE: " + p.string() +
                                           " is valid ONNX, but these ops have no kernel here: com.example:Swizzle (opset 1)");
  ProcessResult j = run_cli({"check", "--json", p.string()});
  EXPECT_EQ(j.exit_code, 3) << j.describe();
  json parsed = json::parse(j.out);
  EXPECT_EQ(parsed.at("valid"), true);
  EXPECT_EQ(parsed.at("runnable"), false);
  EXPECT_EQ(parsed.at("unsupported_ops"), json::array({"com.example:Swizzle (opset 1)"}));
}

TEST(HostileFileControls, ExternalDataInsideTheFolderLoads) {
  TempFolder temp;
  write_file(temp.model_dir() / "weights.bin", kEightBytes);
  fs::create_directory(temp.model_dir() / "sub");
  write_file(temp.model_dir() / "sub" / "more.bin", kEightBytes);
  for (const char* location : {"weights.bin", "./weights.bin", "sub/more.bin", "sub/../weights.bin"}) {
    SCOPED_TRACE(location);
    fs::path p = temp.model_dir() / "model.onnx";
    write_model(p, external_w_model(location));
    ProcessResult r = run_cli({"params", "--json", p.string()});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    json j = json::parse(r.out);
    ASSERT_EQ(j.at("tensors").size(), 1u);
    EXPECT_EQ(j.at("tensors")[0].at("name"), "w");
    EXPECT_EQ(j.at("tensors")[0].at("bytes"), 8);
  }
}

TEST(HostileFileControls, SymlinkInsideTheFolderLoads) {
  TempFolder temp;
  write_file(temp.model_dir() / "real.bin", kEightBytes);
  fs::create_symlink("real.bin", temp.model_dir() / "weights.bin");
  fs::path p = temp.model_dir() / "model.onnx";
  write_model(p, external_w_model("weights.bin"));
  ProcessResult r = run_cli({"params", p.string()});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
}

}  // namespace
}  // namespace tunnx::e2e
