// `tunnx run`: the bundled digits model on four real test digits, outputs as .npy files (all or
// nothing, names made file-safe), comparison with ONNX test data, and clean failures.
#include <algorithm>
#include <cmath>
#include <fstream>

#include <gtest/gtest.h>

#include "onnx/onnx_pb.h"
#include "tests/e2e/cli_harness.h"
#include "tunnx/io.h"

namespace tunnx::e2e {
namespace {

const fs::path kSample = fs::path(TUNNX_SOURCE_DIR) / "examples" / "digits_sample.npy";
const fs::path kLabels = fs::path(TUNNX_SOURCE_DIR) / "examples" / "digits_sample_labels.txt";
const fs::path kAddCase = kTestData / "node" / "test_add_bcast";

std::vector<int64_t> read_labels() {
  std::ifstream in(kLabels);
  std::vector<int64_t> labels;
  for (int64_t l; in >> l;) labels.push_back(l);
  return labels;
}

std::vector<std::string> files_in(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

TEST(CliRun, PrintsEachOutput) {
  ProcessResult r = run_cli({"run", kExampleModel.string(), "--input", "input=" + kSample.string()});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out.rfind("logits  float32  [4,10]  [", 0), 0u) << r.out;
}

TEST(CliRun, ClassifiesTheSampleDigitsAndWritesNpy) {
  TempFolder temp;
  ProcessResult r = run_cli({"run", kExampleModel.string(), "--input", "input=" + kSample.string(), "--output-dir",
                             temp.model_dir().string()});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out, "wrote " + (temp.model_dir() / "logits.npy").string() + "\n");
  ASSERT_EQ(files_in(temp.model_dir()), (std::vector<std::string>{"logits.npy"}));
  Tensor logits = load_npy(temp.model_dir() / "logits.npy");
  ASSERT_EQ(logits.dims(), (std::vector<int64_t>{4, 10}));
  std::vector<int64_t> predicted;
  for (int64_t i = 0; i < 4; ++i) {
    const float* row = logits.data_as<float>() + i * 10;
    predicted.push_back(std::max_element(row, row + 10) - row);
  }
  EXPECT_EQ(predicted, read_labels());
}

TEST(CliRun, OutputNamesBecomeSafeFileNames) {
  TempFolder temp;
  onnx::ModelProto m;
  m.set_ir_version(8);
  m.add_opset_import()->set_version(17);
  auto* g = m.mutable_graph();
  g->set_name("g");
  auto* in = g->add_input();
  in->set_name("x");
  in->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
  in->mutable_type()->mutable_tensor_type()->mutable_shape()->add_dim()->set_dim_value(2);
  auto* node = g->add_node();
  node->set_op_type("Identity");
  node->add_input("x");
  node->add_output("scores:0/../x");
  *g->add_output() = *in;
  g->mutable_output(0)->set_name("scores:0/../x");
  fs::path model = temp.model_dir() / "m.onnx";
  {
    std::ofstream out(model, std::ios::binary);
    m.SerializeToOstream(&out);
  }
  fs::path x = temp.model_dir() / "x.npy";
  save_npy(x, Tensor::from_vector<float>({2}, {1.5f, -2.f}));
  fs::path out_dir = temp.root() / "out";
  fs::create_directory(out_dir);
  ProcessResult r = run_cli({"run", model.string(), "--input", "x=" + x.string(), "--output-dir", out_dir.string()});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(files_in(out_dir), (std::vector<std::string>{"scores_0_.._x.npy"}));
}

// x -> Cast(to=INT4) -> q, and x -> Identity -> y: one output NumPy lacks, one it has.
fs::path write_int4_model(const fs::path& dir) {
  onnx::ModelProto m;
  m.set_ir_version(10);
  m.add_opset_import()->set_version(21);
  auto* g = m.mutable_graph();
  g->set_name("g");
  auto* in = g->add_input();
  in->set_name("x");
  in->mutable_type()->mutable_tensor_type()->set_elem_type(onnx::TensorProto::FLOAT);
  in->mutable_type()->mutable_tensor_type()->mutable_shape()->add_dim()->set_dim_value(3);
  auto* cast = g->add_node();
  cast->set_op_type("Cast");
  cast->add_input("x");
  cast->add_output("q");
  auto* to = cast->add_attribute();
  to->set_name("to");
  to->set_type(onnx::AttributeProto::INT);
  to->set_i(static_cast<int64_t>(DataType::kInt4));
  auto* identity = g->add_node();
  identity->set_op_type("Identity");
  identity->add_input("x");
  identity->add_output("y");
  auto* q = g->add_output();
  q->set_name("q");
  q->mutable_type()->mutable_tensor_type()->set_elem_type(static_cast<int32_t>(DataType::kInt4));  // not in Debian's onnx.proto
  *g->add_output() = *in;
  g->mutable_output(1)->set_name("y");
  fs::path model = dir / "int4.onnx";
  std::ofstream out(model, std::ios::binary);
  m.SerializeToOstream(&out);
  return model;
}

TEST(CliRun, OutputsNumpyLacksAreWrittenAsTensorProtos) {
  TempFolder temp;
  const fs::path model = write_int4_model(temp.model_dir());
  const fs::path x = temp.model_dir() / "x.npy";
  save_npy(x, Tensor::from_vector<float>({3}, {-3.f, 7.f, 1.5f}));
  const fs::path out_dir = temp.root() / "out";
  ProcessResult r = run_cli({"run", model.string(), "--input", "x=" + x.string(), "--output-dir", out_dir.string()});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(files_in(out_dir), (std::vector<std::string>{"q.pb", "y.npy"}));
  const Tensor q = load_value(out_dir / "q.pb").tensor();
  ASSERT_EQ(q.dtype(), DataType::kInt4);
  ASSERT_EQ(q.nbytes(), 2u);
  const auto* bytes = static_cast<const uint8_t*>(q.data());
  EXPECT_EQ(bytes[0], 0x7d);  // -3 (0xd) low, 7 high
  EXPECT_EQ(bytes[1], 0x01);  // 1.5 truncates to 1; the padding nibble is 0

  // --output-format pb writes every output as a TensorProto; npy refuses int4 naming it, writing nothing.
  const fs::path pb_dir = temp.root() / "pb";
  r = run_cli({"run", model.string(), "--input", "x=" + x.string(), "--output-dir", pb_dir.string(), "--output-format", "pb"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(files_in(pb_dir), (std::vector<std::string>{"q.pb", "y.pb"}));
  EXPECT_TRUE(load_value(pb_dir / "y.pb").tensor().equals(load_npy(x)));
  const fs::path npy_dir = temp.root() / "npy";
  r = run_cli({"run", model.string(), "--input", "x=" + x.string(), "--output-dir", npy_dir.string(), "--output-format", "npy"});
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_NE(r.err.find("int4 tensors cannot be written as .npy"), std::string::npos) << r.describe();
  EXPECT_TRUE(!fs::exists(npy_dir) || fs::is_empty(npy_dir));
}

TEST(CliRun, TestDataMatchReportsErrorsPerOutput) {
  ProcessResult r = run_cli({"run", (kAddCase / "model.onnx").string(), "--test-data", (kAddCase / "test_data_set_0").string()});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_NE(r.out.find("max abs error"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("OK: outputs match within rtol 0.001, atol 1e-07"), std::string::npos) << r.out;
}

TEST(CliRun, TestDataMismatchExitsOne) {
  TempFolder temp;
  fs::path set = temp.model_dir() / "test_data_set_0";
  fs::create_directory(set);
  fs::copy_file(kAddCase / "test_data_set_0" / "input_0.pb", set / "input_0.pb");
  fs::copy_file(kAddCase / "test_data_set_0" / "input_1.pb", set / "input_1.pb");
  fs::copy_file(kAddCase / "test_data_set_0" / "input_0.pb", set / "output_0.pb");  // the wrong answer
  ProcessResult r = run_cli({"run", (kAddCase / "model.onnx").string(), "--test-data", set.string()});
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_NE(r.out.find("MISMATCH"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("FAILED: outputs differ"), std::string::npos) << r.out;
}

// ONNX 1.12's data stores bfloat16 as uint16; the CLI reads it as the model declares it, as the
// conformance runner does (load_test_data_set), so the case passes through both.
TEST(CliRun, TestDataReadsBFloat16StoredAsUInt16) {
  const fs::path c = kTestData / "node" / "test_cast_BFLOAT16_to_FLOAT";
  ProcessResult r = run_cli({"run", (c / "model.onnx").string(), "--test-data", (c / "test_data_set_0").string()});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
}

TEST(CliRun, TestDataFolderMustExist) {
  TempFolder temp;
  const fs::path missing = temp.model_dir() / "test_data_set_9";
  ProcessResult r = run_cli({"run", (kAddCase / "model.onnx").string(), "--test-data", missing.string()});
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_NE(r.err.find("no such test data folder"), std::string::npos) << r.describe();
}

TEST(CliRun, ProfileNamesTheKernelPerNode) {
  ProcessResult r = run_cli({"run", kExampleModel.string(), "--input", "input=" + kSample.string(), "--profile"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_NE(r.out.find("/fc1/Gemm"), std::string::npos) << r.out;
  // Conv -> Relu is one FusedConv at the default level (runtime/core/passes/fuse_conv.h).
  EXPECT_NE(r.out.find(TUNNX_WITH_ONEDNN ? "cpu/onednn/FusedConv" : "cpu/reference/FusedConv"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("plans built: 1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("ms/call"), std::string::npos) << r.out;  // the nodes are timed
}

// The same prediction at every optimization level; level 0 keeps Gemm and Relu apart, 2 fuses them
// (and Conv with what follows it). Folding changes the last bits, so values agree within 1e-5.
TEST(CliRun, OptimizationLevelsAgree) {
  TempFolder temp;
  Tensor first;
  for (const char* level : {"0", "1", "2"}) {
    const fs::path dir = temp.model_dir() / (std::string("level") + level);
    ProcessResult r = run_cli({"run", kExampleModel.string(), "--input", "input=" + kSample.string(), "--optimization",
                               level, "--profile", "--output-dir", dir.string()});
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    const Tensor logits = load_npy(dir / "logits.npy");
    if (!first.defined()) first = logits;
    ASSERT_EQ(logits.dims(), first.dims());
    for (int64_t i = 0; i < logits.numel(); ++i)
      EXPECT_NEAR(logits.data_as<float>()[i], first.data_as<float>()[i], 1e-5 * std::max(1.0f, std::abs(first.data_as<float>()[i])))
          << "level " << level << " element " << i;
    EXPECT_EQ(r.out.find("FusedMatMul") != std::string::npos, std::string(level) == "2") << r.out;
    EXPECT_EQ(r.out.find("FusedConv") != std::string::npos, std::string(level) == "2") << r.out;
  }
}

// Weights freed once packed (the default) or kept (--keep-weights): the same bits, and the profile
// says what was freed.
TEST(CliRun, ReleasedWeightsGiveTheSameOutputs) {
  TempFolder temp;
  std::vector<Tensor> logits;
  for (bool release : {false, true}) {
    const fs::path dir = temp.model_dir() / (release ? "released" : "kept");
    std::vector<std::string> args = {"run", kExampleModel.string(), "--input", "input=" + kSample.string(), "--threads",
                                      "1", "--fixed-threads", "--profile", "--output-dir", dir.string()};
    if (!release) args.push_back("--keep-weights");
    ProcessResult r = run_cli(args);
    ASSERT_EQ(r.exit_code, 0) << r.describe();
    EXPECT_EQ(r.out.find("weights freed once packed: ") != std::string::npos, release && TUNNX_WITH_ONEDNN) << r.out;
    logits.push_back(load_npy(dir / "logits.npy"));
  }
  EXPECT_TRUE(logits[0].equals(logits[1]));
}

struct BadRun {
  std::vector<std::string> args;
  std::string expected;  // in the single stderr line
};

TEST(CliRun, BadInputsFailWithOneLineAndNoFiles) {
  TempFolder temp;
  fs::path out_dir = temp.root() / "out";
  fs::create_directory(out_dir);
  fs::path doubles = temp.model_dir() / "d.npy";
  save_npy(doubles, Tensor(DataType::kFloat64, {4, 1, 8, 8}));
  fs::path wrong_shape = temp.model_dir() / "s.npy";
  save_npy(wrong_shape, Tensor(DataType::kFloat32, {4, 64}));
  fs::path garbage = temp.model_dir() / "g.npy";
  std::ofstream(garbage) << "not numpy";
  const std::string model = kExampleModel.string();
  std::vector<BadRun> cases = {
      {{"--input", "pixels=" + kSample.string()}, "tensor 'pixels': is not an input of this model (inputs: input)"},
      {{"--input", "input=" + doubles.string()}, "tensor 'input': expects dtype float32, got float64"},
      {{"--input", "input=" + wrong_shape.string()}, "tensor 'input': expects rank 4, got rank 2"},
      {{"--input", "input=" + garbage.string()}, garbage.string() + ": not a .npy file"},
      {{"--input", "input=" + (temp.root() / "missing.npy").string()}, "missing.npy: no such file"},
      {{"--input", "input"}, "--input 'input' must be NAME=FILE"},
      {{}, "tensor 'input': is a required input and was not given"},
      {{"--device", "tpu", "--input", "input=" + kSample.string()}, "unknown device 'tpu'"},
      {{"--input", "input=" + kSample.string(), "--output-dir", (garbage / "sub").string()},
       "g.npy/sub: cannot create the output folder"},
  };
  for (const auto& c : cases) {
    std::vector<std::string> args = {"run", model};
    args.insert(args.end(), c.args.begin(), c.args.end());
    if (std::find(c.args.begin(), c.args.end(), "--output-dir") == c.args.end()) {
      args.push_back("--output-dir");
      args.push_back(out_dir.string());
    }
    ProcessResult r = run_cli(args);
    SCOPED_TRACE(c.expected);
    EXPECT_EQ(r.exit_code, 1) << r.describe();
    EXPECT_EQ(r.out, "") << r.describe();
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.describe();
    EXPECT_EQ(r.err.rfind("tunnx: error: ", 0), 0u) << r.describe();
    EXPECT_NE(r.err.find(c.expected), std::string::npos) << r.describe();
    EXPECT_TRUE(fs::is_empty(out_dir)) << "partial output left behind";
  }
}

}  // namespace
}  // namespace tunnx::e2e
