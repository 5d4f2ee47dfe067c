// Which initializers are trainable Parameters and which are buffers, decided by how nodes use them
// (ONNX's differentiability in the op schema), never by their names. The Model API over them is in
// model_api_test.cc.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/importer/model_builder.h"

namespace tunnx_test {
namespace {

using tunnx::Model;

constexpr int32_t kFloat = TensorProto::FLOAT;

class Policy : public TempDirTest {
 protected:
  Model load(const ModelBuilder& b) { return Model::load(b.save(path("m.onnx"))); }
};

// ---- Trainable: inputs the schema calls differentiable ---------------------------------------------

TEST_F(Policy, GemmWeightAndBiasAreParameters) {
  ModelBuilder b;
  b.input("x", kFloat, Dims{1, 3});
  b.initializer(float_tensor("W", {2, 3}, {1, 2, 3, 4, 5, 6}));
  b.initializer(float_tensor("B", {2}, {0, 1}));
  attr_int(b.node("Gemm", {"x", "W", "B"}, {"y"}, "gemm"), "transB", 1);
  b.output("y", kFloat, Dims{1, 2});
  Model model = load(b);
  EXPECT_TRUE(is_parameter(model, "W"));
  EXPECT_TRUE(is_parameter(model, "B"));
  EXPECT_EQ(info_of(model, "W").reason, "B of Gemm is differentiable");
  EXPECT_EQ(info_of(model, "B").reason, "C of Gemm is differentiable");
}

TEST_F(Policy, MatMulWeightIsAParameter) {
  ModelBuilder b;
  b.input("x", kFloat, Dims{1, 2});
  b.initializer(float_tensor("W", {2, 2}, {1, 2, 3, 4}));
  b.node("MatMul", {"x", "W"}, {"y"}, "matmul");
  b.output("y", kFloat, Dims{1, 2});
  EXPECT_TRUE(is_parameter(load(b), "W"));
}

TEST_F(Policy, ConvWeightAndBiasAreParameters) {
  ModelBuilder b;
  b.input("x", kFloat, Dims{1, 1, 4, 4});
  b.initializer(float_tensor("W", {2, 1, 1, 1}, {1, 2}));
  b.initializer(float_tensor("B", {2}, {0, 0}));
  b.node("Conv", {"x", "W", "B"}, {"y"}, "conv");
  b.output("y", kFloat, Dims{1, 2, 4, 4});
  Model model = load(b);
  EXPECT_TRUE(is_parameter(model, "W"));
  EXPECT_TRUE(is_parameter(model, "B"));
}

TEST_F(Policy, GatherDataIsAParameterAndItsIndicesABuffer) {
  ModelBuilder b;
  b.initializer(float_tensor("embedding", {3, 2}, {1, 2, 3, 4, 5, 6}));
  b.initializer(int64_tensor("ids", {2}, {2, 0}));
  b.node("Gather", {"embedding", "ids"}, {"y"}, "gather");
  b.output("y", kFloat, Dims{2, 2});
  Model model = load(b);
  EXPECT_TRUE(is_parameter(model, "embedding"));
  EXPECT_TRUE(is_buffer(model, "ids"));
  EXPECT_EQ(info_of(model, "ids").reason, "int64 tensor");
}

TEST_F(Policy, VariadicInputsAreClassifiedByTheirFormal) {
  ModelBuilder b;
  b.input("x", kFloat, Dims{1});
  b.initializer(float_tensor("a", {1}, {1}));
  b.initializer(float_tensor("c", {1}, {2}));
  attr_int(b.node("Concat", {"x", "a", "c"}, {"y"}, "concat"), "axis", 0);
  b.output("y", kFloat, Dims{3});
  Model model = load(b);
  EXPECT_TRUE(is_parameter(model, "a"));
  EXPECT_TRUE(is_parameter(model, "c"));
}

TEST_F(Policy, HalfBfloatAndDoubleWeightsAreParameters) {
  ModelBuilder b;
  b.input("x16", TensorProto::FLOAT16, Dims{1, 1});
  b.input("xb16", TensorProto::BFLOAT16, Dims{1, 1});
  b.input("x64", TensorProto::DOUBLE, Dims{1, 1});
  b.initializer(raw_tensor<uint16_t>("w16", {1, 1}, {0x3C00}, TensorProto::FLOAT16));
  b.initializer(raw_tensor<uint16_t>("wb16", {1, 1}, {0x3F80}, TensorProto::BFLOAT16));
  b.initializer(raw_tensor<double>("w64", {1, 1}, {1.0}));
  b.node("MatMul", {"x16", "w16"}, {"y16"}, "m16");
  b.node("MatMul", {"xb16", "wb16"}, {"yb16"}, "mb16");
  b.node("MatMul", {"x64", "w64"}, {"y64"}, "m64");
  b.output("y16", TensorProto::FLOAT16, Dims{1, 1});
  b.output("yb16", TensorProto::BFLOAT16, Dims{1, 1});
  b.output("y64", TensorProto::DOUBLE, Dims{1, 1});
  Model model = load(b);
  EXPECT_TRUE(is_parameter(model, "w16"));
  EXPECT_TRUE(is_parameter(model, "wb16"));
  EXPECT_TRUE(is_parameter(model, "w64"));
}

TEST_F(Policy, CustomDomainOpInputIsAParameter) {
  ModelBuilder b;
  b.add_opset("com.example", 1);
  b.input("x", kFloat, Dims{2});
  b.initializer(float_tensor("w", {2}, {1, 2}));
  b.node("Fancy", {"x", "w"}, {"y"}, "fancy", "com.example");
  b.output("y", kFloat, Dims{2});
  Model model = load(b);
  EXPECT_TRUE(is_parameter(model, "w"));
  EXPECT_EQ(info_of(model, "w").reason, "input 1 of Fancy (no ONNX schema)");
}

TEST_F(Policy, NamesDoNotMatter) {
  ModelBuilder b;
  b.input("x", kFloat, Dims{1, 1, 2, 2});
  b.initializer(float_tensor("onnx::MatMul_12", {2, 2}, {1, 0, 0, 1}));
  b.initializer(float_tensor("bn.running_mean", {2, 2}, {1, 0, 0, 1}));
  b.initializer(float_tensor("fc.weight", {4}, {1, 1, 2, 2}));
  b.node("MatMul", {"x", "onnx::MatMul_12"}, {"a"}, "m1");
  b.node("MatMul", {"a", "bn.running_mean"}, {"c"}, "m2");
  b.node("Resize", {"c", "", "fc.weight"}, {"y"}, "resize");
  b.output("y", kFloat, Dims{1, 1, 4, 4});
  Model model = load(b);
  EXPECT_TRUE(is_parameter(model, "onnx::MatMul_12"));
  EXPECT_TRUE(is_parameter(model, "bn.running_mean"));
  EXPECT_TRUE(is_buffer(model, "fc.weight"));
}

// ---- Buffers ---------------------------------------------------------------------------------------

TEST_F(Policy, ReshapeShapeIsABuffer) {
  ModelBuilder b;
  b.input("x", kFloat, Dims{2, 2});
  b.initializer(int64_tensor("shape", {1}, {4}));
  b.node("Reshape", {"x", "shape"}, {"y"}, "reshape");
  b.output("y", kFloat, Dims{4});
  EXPECT_TRUE(is_buffer(load(b), "shape"));
}

TEST_F(Policy, BatchNormRunningStatisticsAreBuffersAndScaleBiasParameters) {
  ModelBuilder b;
  b.input("x", kFloat, Dims{1, 2, 2, 2});
  b.initializer(float_tensor("scale", {2}, {1, 1}));
  b.initializer(float_tensor("bias", {2}, {0, 0}));
  b.initializer(float_tensor("mean", {2}, {0, 0}));
  b.initializer(float_tensor("var", {2}, {1, 1}));
  b.node("BatchNormalization", {"x", "scale", "bias", "mean", "var"}, {"y"}, "bn");
  b.output("y", kFloat, Dims{1, 2, 2, 2});
  Model model = load(b);
  EXPECT_TRUE(is_parameter(model, "scale"));
  EXPECT_TRUE(is_parameter(model, "bias"));
  EXPECT_TRUE(is_buffer(model, "mean"));
  EXPECT_TRUE(is_buffer(model, "var"));
  EXPECT_EQ(info_of(model, "mean").reason, "running mean of BatchNormalization");
  EXPECT_EQ(info_of(model, "var").reason, "running variance of BatchNormalization");
}

TEST_F(Policy, IntegerAndBoolTensorsAreBuffersEvenOnDifferentiableInputs) {
  ModelBuilder b;
  b.input("x", TensorProto::INT32, Dims{2});
  b.input("m", TensorProto::BOOL, Dims{2});
  b.initializer(raw_tensor<int32_t>("offset", {2}, {1, 2}));
  b.initializer(raw_tensor<bool>("mask", {2}, {true, false}));
  b.node("Add", {"x", "offset"}, {"y"}, "add");
  b.node("And", {"m", "mask"}, {"z"}, "and");
  b.output("y", TensorProto::INT32, Dims{2});
  b.output("z", TensorProto::BOOL, Dims{2});
  Model model = load(b);
  EXPECT_TRUE(is_buffer(model, "offset"));
  EXPECT_EQ(info_of(model, "offset").reason, "int32 tensor");
  EXPECT_TRUE(is_buffer(model, "mask"));
}

TEST_F(Policy, RankZeroFloatIsABuffer) {
  ModelBuilder b;
  b.input("x", kFloat, Dims{2});
  b.initializer(float_tensor("scale", {}, {2}));
  b.node("Mul", {"x", "scale"}, {"y"}, "mul");
  b.output("y", kFloat, Dims{2});
  Model model = load(b);
  EXPECT_TRUE(is_buffer(model, "scale"));
  EXPECT_EQ(info_of(model, "scale").reason, "rank-0 constant");
}

TEST_F(Policy, UnusedFloatInitializerIsABuffer) {
  ModelBuilder b;
  b.input("x", kFloat, Dims{2});
  b.initializer(float_tensor("orphan", {2}, {1, 2}));
  b.node("Relu", {"x"}, {"y"}, "relu");
  b.output("y", kFloat, Dims{2});
  Model model = load(b);
  EXPECT_TRUE(is_buffer(model, "orphan"));
  EXPECT_EQ(info_of(model, "orphan").reason, "not read by any node");
}

TEST_F(Policy, FloatFeedingANonDifferentiableInputIsABuffer) {
  ModelBuilder b;
  b.input("x", kFloat, Dims{1, 1, 2, 2});
  b.initializer(float_tensor("scales", {4}, {1, 1, 2, 2}));
  b.node("Resize", {"x", "", "scales"}, {"y"}, "resize");
  b.output("y", kFloat, Dims{1, 1, 4, 4});
  Model model = load(b);
  EXPECT_TRUE(is_buffer(model, "scales"));
  EXPECT_EQ(info_of(model, "scales").reason, "scales of Resize is non-differentiable");
}

TEST_F(Policy, OneDifferentiableUseMakesAParameter) {
  ModelBuilder b;
  b.input("x", kFloat, Dims{1, 1, 2, 2});
  b.initializer(float_tensor("w", {4}, {1, 1, 2, 2}));
  b.node("Resize", {"x", "", "w"}, {"r"}, "resize");
  b.node("Mul", {"r", "w"}, {"y"}, "mul");
  b.output("y", kFloat, Dims{1, 1, 4, 4});
  Model model = load(b);
  EXPECT_TRUE(is_parameter(model, "w"));
  EXPECT_EQ(info_of(model, "w").reason, "B of Mul is differentiable");
}

// ---- Subgraphs ------------------------------------------------------------------------------------

// If(cond): then = MatMul(x, W), else = Resize(x, scales); W and S live in the main graph.
void build_if_with_outer_weights(ModelBuilder& b) {
  b.input("cond", TensorProto::BOOL, Dims{});
  b.input("x", kFloat, Dims{1, 1, 2, 2});
  b.initializer(float_tensor("W", {2, 2}, {1, 0, 0, 1}));
  b.initializer(float_tensor("S", {4}, {1, 1, 1, 1}));
  auto& node = b.node("If", {"cond"}, {"y"}, "if");
  GraphBuilder then_branch(attr_graph(node, "then_branch", "then"));
  then_branch.node("MatMul", {"x", "W"}, {"t"}, "then_matmul");
  then_branch.output("t", kFloat, Dims{1, 1, 2, 2});
  GraphBuilder else_branch(attr_graph(node, "else_branch", "else"));
  else_branch.node("Resize", {"x", "", "S"}, {"e"}, "else_resize");
  else_branch.output("e", kFloat, Dims{1, 1, 2, 2});
  b.output("y", kFloat, Dims{1, 1, 2, 2});
}

TEST_F(Policy, InitializerUsedOnlyInsideAnIfBranchIsClassifiedByItsConsumerThere) {
  ModelBuilder b;
  build_if_with_outer_weights(b);
  Model model = load(b);
  EXPECT_TRUE(is_parameter(model, "W"));
  EXPECT_EQ(info_of(model, "W").reason, "B of MatMul is differentiable");
  EXPECT_TRUE(is_buffer(model, "S"));
}

TEST_F(Policy, SubgraphsOwnInitializerIsClassifiedToo) {
  ModelBuilder b;
  b.input("cond", TensorProto::BOOL, Dims{});
  b.input("x", kFloat, Dims{2, 2});
  auto& node = b.node("If", {"cond"}, {"y"}, "if");
  GraphBuilder then_branch(attr_graph(node, "then_branch", "then"));
  then_branch.initializer(float_tensor("inner_w", {2, 2}, {1, 0, 0, 1}));
  then_branch.initializer(int64_tensor("inner_shape", {2}, {2, 2}));
  then_branch.node("MatMul", {"x", "inner_w"}, {"t0"}, "then_matmul");
  then_branch.node("Reshape", {"t0", "inner_shape"}, {"t"}, "then_reshape");
  then_branch.output("t", kFloat, Dims{2, 2});
  GraphBuilder else_branch(attr_graph(node, "else_branch", "else"));
  else_branch.node("Neg", {"x"}, {"e"}, "else_neg");
  else_branch.output("e", kFloat, Dims{2, 2});
  b.output("y", kFloat, Dims{2, 2});
  Model model = load(b);
  EXPECT_TRUE(is_parameter(model, "inner_w"));
  EXPECT_TRUE(is_buffer(model, "inner_shape"));
}

TEST_F(Policy, SubgraphInitializerShadowingAnOuterNameDoesNotChangeTheOuterRole) {
  // The main graph's "w" only feeds Resize scales (a buffer); a branch declares its own "w" for a
  // MatMul. The branch's use must not make the outer tensor trainable.
  ModelBuilder b;
  b.input("cond", TensorProto::BOOL, Dims{});
  b.input("x", kFloat, Dims{1, 1, 2, 2});
  b.initializer(float_tensor("w", {4}, {1, 1, 1, 1}));
  b.node("Resize", {"x", "", "w"}, {"r"}, "resize");
  auto& node = b.node("If", {"cond"}, {"y"}, "if");
  GraphBuilder then_branch(attr_graph(node, "then_branch", "then"));
  then_branch.initializer(float_tensor("w", {2, 2}, {1, 0, 0, 1}));
  then_branch.node("MatMul", {"r", "w"}, {"t"}, "then_matmul");
  then_branch.output("t", kFloat, Dims{1, 1, 2, 2});
  GraphBuilder else_branch(attr_graph(node, "else_branch", "else"));
  else_branch.node("Neg", {"r"}, {"e"}, "else_neg");
  else_branch.output("e", kFloat, Dims{1, 1, 2, 2});
  b.output("y", kFloat, Dims{1, 1, 2, 2});
  Model model = load(b);
  ASSERT_EQ(model.tensors().size(), 2u);
  std::string inner_key = model.tensors()[1].name;
  EXPECT_TRUE(is_parameter(model, inner_key)) << inner_key;
  EXPECT_TRUE(is_buffer(model, "w"));
}

TEST_F(Policy, LoopBodyInputShadowingAnOuterNameDoesNotChangeTheOuterRole) {
  // The body's carried input is named "w" like the outer initializer; the body's Mul reads the
  // carried value, so the outer "w" (only Resize scales outside) stays a buffer.
  ModelBuilder b;
  b.input("trip", TensorProto::INT64, Dims{});
  b.input("cond", TensorProto::BOOL, Dims{});
  b.input("x", kFloat, Dims{1, 1, 2, 2});
  b.initializer(float_tensor("w", {4}, {1, 1, 1, 1}));
  b.node("Resize", {"x", "", "w"}, {"r"}, "resize");
  auto& loop = b.node("Loop", {"trip", "cond", "r"}, {"v_final"}, "loop");
  GraphBuilder body(attr_graph(loop, "body", "body"));
  body.input("iter", TensorProto::INT64, Dims{});
  body.input("cond_in", TensorProto::BOOL, Dims{});
  body.input("w", kFloat, Dims{1, 1, 2, 2});
  body.node("Identity", {"cond_in"}, {"cond_out"}, "keep_going");
  body.node("Mul", {"w", "w"}, {"v_out"}, "square");
  body.output("cond_out", TensorProto::BOOL, Dims{});
  body.output("v_out", kFloat, Dims{1, 1, 2, 2});
  b.output("v_final", kFloat, Dims{1, 1, 2, 2});
  Model model = load(b);
  EXPECT_TRUE(is_buffer(model, "w"));
}

// ---- Real files --------------------------------------------------------------------------------------

const std::string kPytorchConverted = std::string(TUNNX_TESTDATA_DIR) + "/pytorch-converted/";

TEST(PolicyOnRealFiles, BatchNorm2dEvalScaleBiasTrainableStatisticsBuffers) {
  Model model = Model::load(kPytorchConverted + "test_BatchNorm2d_eval/model.onnx");
  EXPECT_TRUE(is_parameter(model, "1"));
  EXPECT_TRUE(is_parameter(model, "2"));
  EXPECT_TRUE(is_buffer(model, "3"));
  EXPECT_TRUE(is_buffer(model, "4"));
}

TEST(PolicyOnRealFiles, Conv2dWeightAndBiasTrainable) {
  Model model = Model::load(kPytorchConverted + "test_Conv2d/model.onnx");
  EXPECT_EQ(names_of(model.named_parameters()), (std::vector<std::string>{"1", "2"}));
  EXPECT_TRUE(model.named_buffers().empty());
}

TEST(PolicyOnRealFiles, LinearWeightAndBiasTrainable) {
  Model model = Model::load(kPytorchConverted + "test_Linear/model.onnx");
  EXPECT_EQ(names_of(model.named_parameters()), (std::vector<std::string>{"1", "2"}));
  EXPECT_TRUE(model.named_buffers().empty());
}

// ---- Quantization parameters and empty tensors are buffers -----------------------------------------

TEST_F(Policy, QuantizationScalesAndZeroPointsAreBuffers) {
  ModelBuilder b;
  b.add_opset("com.microsoft", 1);
  b.input("x", kFloat, Dims{1, 4});
  b.initializer(float_tensor("q_scale", {1}, {0.1f}));
  b.initializer(float_tensor("W", {4, 2}, {1, 2, 3, 4, 5, 6, 7, 8}));
  b.initializer(float_tensor("b_scale", {2}, {0.5f, 0.25f}));
  b.initializer(float_tensor("dq_scale", {1}, {0.1f}));
  b.node("QuantizeLinear", {"x", "q_scale"}, {"q"}, "quantize");
  b.node("DequantizeLinear", {"q", "dq_scale"}, {"dq"}, "dequantize");
  b.node("MatMul", {"dq", "W"}, {"y"}, "matmul");
  auto& dynamic = b.node("DynamicQuantizeMatMul", {"dq", "Wq", "b_scale"}, {"z"}, "dqmm");
  dynamic.set_domain("com.microsoft");
  b.initializer(raw_tensor<int8_t>("Wq", {4, 2}, {1, 2, 3, 4, 5, 6, 7, 8}));
  b.output("y", kFloat, Dims{1, 2});
  b.output("z", kFloat, Dims{1, 2});
  tunnx::LoadOptions options;
  options.run_onnx_checker = false;  // com.microsoft has no schema in the ONNX library
  Model model = Model::load(b.save(path("m.onnx")), options);
  EXPECT_TRUE(is_parameter(model, "W"));
  for (const char* name : {"q_scale", "dq_scale", "b_scale"}) {
    EXPECT_FALSE(is_parameter(model, name)) << name;
    EXPECT_NE(info_of(model, name).reason.find("quantization scale or zero point"), std::string::npos) << name;
  }
}

TEST_F(Policy, EmptyFloatTensorIsABuffer) {
  ModelBuilder b;
  b.input("x", kFloat, Dims{1, 2});
  b.initializer(float_tensor("roi", {0}, {}));
  b.initializer(float_tensor("scales", {2}, {1, 2}));
  b.node("Resize", {"x", "roi", "scales"}, {"y"}, "resize");
  b.output("y", kFloat, Dims{1, 4});
  Model model = load(b);
  EXPECT_FALSE(is_parameter(model, "roi"));
  EXPECT_EQ(info_of(model, "roi").reason, "empty tensor");
}

}  // namespace
}  // namespace tunnx_test
