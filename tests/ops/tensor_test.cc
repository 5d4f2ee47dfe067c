// Gradient checks of the tensor family: shape and movement ops, Gather*, Cast, eval-mode Dropout, and
// the com.tunnx helpers SumToShape and Scale. One case per op and opset range whose meaning differs.
#include <map>
#include <string>
#include <utility>

#include "runtime/core/float16.h"
#include "tests/ops/grad_check.h"

namespace tunnx_test {
namespace {

using tunnx::ops::attr;
using Ints = std::vector<int64_t>;
using Attrs = std::vector<tunnx::ir::Attribute>;

GradInput X(Ints dims) { return GradInput::of(std::move(dims)); }
GradInput ints(Ints values) {
  const int64_t n = static_cast<int64_t>(values.size());
  return GradInput::constant(i64({n}, std::move(values)));
}
GradInput ints_at(Ints dims, Ints values) { return GradInput::constant(i64(std::move(dims), std::move(values))); }

GradCase grad_case(std::string op, int64_t opset, std::vector<GradInput> inputs, Attrs attributes = {},
                   size_t num_outputs = 1, std::vector<size_t> checked = {}) {
  GradCase c;
  c.op_type = std::move(op);
  c.opset = opset;
  c.inputs = std::move(inputs);
  c.attributes = std::move(attributes);
  c.num_outputs = num_outputs;
  c.checked_outputs = std::move(checked);
  return c;
}

GradCase tunnx_case(std::string op, std::vector<GradInput> inputs, Attrs attributes = {}) {
  GradCase c = grad_case(std::move(op), 1, std::move(inputs), std::move(attributes));
  c.domain = "com.tunnx";
  return c;
}

// ---- Views ---------------------------------------------------------------------------------------

TEST(TensorGrad, Identity) { check_gradient(grad_case("Identity", 17, {X({2, 3})})); }

TEST(TensorGrad, Reshape) {
  check_gradient(grad_case("Reshape", 13, {X({2, 3, 2}), ints({3, -1})}));
  check_gradient(grad_case("Reshape", 14, {X({2, 3, 2}), ints({0, 6})}, {attr("allowzero", int64_t{0})}));
}

TEST(TensorGrad, ReshapeWithShapeAttribute) {
  check_gradient(grad_case("Reshape", 4, {X({2, 3, 2})}, {attr("shape", Ints{6, 2})}));
}

TEST(TensorGrad, Flatten) {
  check_gradient(grad_case("Flatten", 13, {X({2, 3, 2})}, {attr("axis", int64_t{2})}));
  check_gradient(grad_case("Flatten", 11, {X({2, 3})}, {attr("axis", int64_t{0})}));
}

TEST(TensorGrad, Squeeze) {
  check_gradient(grad_case("Squeeze", 11, {X({2, 1, 3, 1})}, {attr("axes", Ints{1, -1})}));
  check_gradient(grad_case("Squeeze", 13, {X({2, 1, 3}), ints({1})}));
  check_gradient(grad_case("Squeeze", 13, {X({1, 3, 1})}));  // every 1 dim
}

TEST(TensorGrad, Unsqueeze) {
  check_gradient(grad_case("Unsqueeze", 11, {X({2, 3})}, {attr("axes", Ints{0, 3})}));
  check_gradient(grad_case("Unsqueeze", 13, {X({2, 3}), ints({-1, 1})}));
}

// ---- Permutations --------------------------------------------------------------------------------

TEST(TensorGrad, Transpose) {
  check_gradient(grad_case("Transpose", 13, {X({2, 3, 4})}, {attr("perm", Ints{1, 2, 0})}));
  check_gradient(grad_case("Transpose", 13, {X({2, 3, 4})}));  // default: reversed dims
}

TEST(TensorGrad, ReverseSequence) {
  check_gradient(grad_case("ReverseSequence", 10, {X({4, 2, 3}), ints({3, 4})},
                           {attr("batch_axis", int64_t{1}), attr("time_axis", int64_t{0})}));
  check_gradient(grad_case("ReverseSequence", 10, {X({2, 4}), ints({1, 2})},
                           {attr("batch_axis", int64_t{0}), attr("time_axis", int64_t{1})}));
}

TEST(TensorGrad, Trilu) {
  check_gradient(grad_case("Trilu", 14, {X({2, 3, 4}), ints_at({}, {1})}, {attr("upper", int64_t{0})}));
  check_gradient(grad_case("Trilu", 14, {X({3, 4})}));
}

TEST(TensorGrad, DepthToSpace) {
  check_gradient(grad_case("DepthToSpace", 11, {X({2, 8, 2, 3})}, {attr("blocksize", int64_t{2})}));
  check_gradient(grad_case("DepthToSpace", 13, {X({2, 8, 2, 3})},
                           {attr("blocksize", int64_t{2}), attr("mode", std::string("CRD"))}));
}

TEST(TensorGrad, SpaceToDepth) {
  check_gradient(grad_case("SpaceToDepth", 13, {X({1, 2, 4, 6})}, {attr("blocksize", int64_t{2})}));
}

// ---- Concat / Split ------------------------------------------------------------------------------

TEST(TensorGrad, Concat) {
  check_gradient(grad_case("Concat", 13, {X({2, 1, 3}), X({2, 2, 3}), X({2, 3, 3})}, {attr("axis", int64_t{1})}));
  check_gradient(grad_case("Concat", 13, {X({2, 2}), X({2, 3}).frozen(), X({2, 1})}, {attr("axis", int64_t{-1})}));
}

TEST(TensorGrad, Split) {
  check_gradient(grad_case("Split", 11, {X({2, 3, 4})}, {attr("axis", int64_t{1}), attr("split", Ints{1, 2})}, 2));
  check_gradient(grad_case("Split", 13, {X({2, 5}), ints({2, 3})}, {attr("axis", int64_t{-1})}, 2));
  check_gradient(grad_case("Split", 18, {X({7, 2})}, {attr("num_outputs", int64_t{3})}, 3));  // 3, 3, 1
}

TEST(TensorGrad, SplitWithOutputsWithoutGradient) {
  // Only the middle part reaches the loss: the others' gradients are zeros.
  check_gradient(grad_case("Split", 13, {X({6, 2})}, {attr("axis", int64_t{0})}, 3, {1}));
}

// ---- Slice ---------------------------------------------------------------------------------------

TEST(TensorGrad, Slice) {
  // Opset 1-9: attributes; out-of-range ends clamp; axes default to 0, 1, ...
  check_gradient(grad_case("Slice", 9, {X({3, 2, 4})},
                           {attr("starts", Ints{0, 1}), attr("ends", Ints{2, 100}), attr("axes", Ints{0, 2})}));
  check_gradient(grad_case("Slice", 9, {X({4, 2})}, {attr("starts", Ints{1}), attr("ends", Ints{-1})}));
  // Opset 10+: inputs, negative steps, negative and out-of-range starts and ends.
  check_gradient(grad_case("Slice", 13, {X({3, 5, 4}), ints({-1, 4}), ints({-100, 0}), ints({2, 1}), ints({-2, -1})}));
  check_gradient(grad_case("Slice", 13, {X({3, 5}), ints({1}), ints({5}), GradInput::none(), ints({2})}));
  check_gradient(grad_case("Slice", 10, {X({3, 5}), ints({0, 1}), ints({2, -1})}));
}

// ---- Gather --------------------------------------------------------------------------------------

TEST(TensorGrad, Gather) {
  // Repeated and negative indices add up.
  check_gradient(grad_case("Gather", 13, {X({4, 3}), ints_at({2, 2}, {0, -1, 0, 3})}, {attr("axis", int64_t{0})}));
  check_gradient(grad_case("Gather", 13, {X({2, 4, 3}), ints({3, -4, 3, 1})}, {attr("axis", int64_t{1})}));
  // A scalar index drops the axis.
  check_gradient(grad_case("Gather", 11, {X({2, 3}), ints_at({}, {2})}, {attr("axis", int64_t{-1})}));
}

TEST(TensorGrad, GatherElements) {
  check_gradient(grad_case("GatherElements", 13, {X({3, 4}), ints_at({3, 2}, {0, 0, 3, -1, 2, 1})},
                           {attr("axis", int64_t{1})}));
  // Indices smaller than the data outside the axis.
  check_gradient(grad_case("GatherElements", 11, {X({3, 4}), ints_at({4, 2}, {0, 1, 2, 2, 1, 0, 0, 0})},
                           {attr("axis", int64_t{0})}));
}

TEST(TensorGrad, TopKValues) {
  check_gradient(grad_case("TopK", 11, {X({3, 5}).no_ties(), ints({2})}, {attr("axis", int64_t{1})}, 2, {0}));
  check_gradient(grad_case("TopK", 1, {X({2, 4}).no_ties()}, {attr("k", int64_t{2})}, 2, {0}));
}

// ---- Broadcasts: Expand (SumToShape), Tile -----------------------------------------------------

TEST(TensorGrad, Expand) {
  check_gradient(grad_case("Expand", 13, {X({3, 1}), ints({2, 3, 4})}));  // a leading dim, a stretched 1
  check_gradient(grad_case("Expand", 8, {X({}), ints({2, 3})}));          // a scalar
  check_gradient(grad_case("Expand", 13, {X({2, 3}), ints({1, 1})}));     // no change
}

TEST(TensorGrad, Tile) {
  check_gradient(grad_case("Tile", 13, {X({2, 3}), ints({2, 3})}));
  check_gradient(grad_case("Tile", 6, {X({2, 1, 2}), ints({1, 3, 1})}));
}

// ---- Pad -----------------------------------------------------------------------------------------

TEST(TensorGrad, Pad) {
  // Opset 2-10: pads and value attributes.
  check_gradient(grad_case("Pad", 2, {X({2, 3})}, {attr("pads", Ints{0, 1, 1, 2}), attr("value", 0.5f)}));
  // Opset 11+: a pads input; a negative pad crops.
  check_gradient(grad_case("Pad", 11, {X({3, 4}), ints({1, -1, 0, 2})}));
  // Opset 18: an axes input, and a constant value (no gradient).
  check_gradient(grad_case("Pad", 18, {X({2, 3, 2}), ints({1, 2}), GradInput::constant(f64({}, {0.25})), ints({-2})}));
}

TEST(TensorGrad, PadModesFoldBack) {
  check_gradient(grad_case("Pad", 13, {X({3, 4}), ints({2, 1, 1, 3})}, {attr("mode", std::string("reflect"))}));
  check_gradient(grad_case("Pad", 13, {X({2, 3}), ints({1, 2, 2, 1})}, {attr("mode", std::string("edge"))}));
  check_gradient(grad_case("Pad", 19, {X({2, 3}), ints({1, 4, 0, 2})}, {attr("mode", std::string("wrap"))}));
}

// ---- Cast, Dropout -------------------------------------------------------------------------------

TEST(TensorGrad, Cast) {
  check_gradient(grad_case("Cast", 13, {X({2, 3})}, {attr("to", int64_t{11})}));
  check_gradient(grad_case("Cast", 1, {X({3})}, {attr("to", std::string("DOUBLE"))}));  // Cast-1 names types
  check_gradient(grad_case("CastLike", 15, {X({2, 3}), X({1}).frozen()}));
}

TEST(TensorGrad, DropoutAtInference) {
  check_gradient(grad_case("Dropout", 7, {X({2, 3})}, {attr("ratio", 0.3f)}));
  check_gradient(grad_case("Dropout", 13, {X({2, 3})}));
  check_gradient(grad_case("Dropout", 13, {X({2, 3}), GradInput::constant(f64({}, {0.5}))}));
}

TEST(TensorGrad, DropoutWithTrainingModeInput) {
  // training_mode false: the identity, differentiated through the mask by the loss family's rule.
  const GradInput off = GradInput::constant(tunnx::Tensor::from_vector<bool>({}, {false}));
  check_gradient(grad_case("Dropout", 13, {X({2, 3}), GradInput::constant(f64({}, {0.5})), off}, {}, 2, {0}));
  // Without a mask output that rule has nothing to differentiate through: an error naming the mask.
  try {
    check_gradient(grad_case("Dropout", 13, {X({2, 3}), GradInput::none(), off}));
    ADD_FAILURE() << "expected an error";
  } catch (const tunnx::Error& e) {
    EXPECT_NE(std::string(e.what()).find("mask"), std::string::npos) << e.what();
  }
}

// ---- com.tunnx helpers -------------------------------------------------------------------------

TEST(TensorGrad, SumToShape) {
  check_gradient(tunnx_case("SumToShape", {X({2, 3, 4}), ints({3, 1})}));     // a leading dim, a stretched 1
  check_gradient(tunnx_case("SumToShape", {X({2, 3}), ints({})}));            // a scalar target
  check_gradient(tunnx_case("SumToShape", {X({2, 3, 4}), ints({1, 3, 4})}));  // a kept leading 1
  check_gradient(tunnx_case("SumToShape", {X({2, 3}), ints({2, 3})}));        // unchanged
}

TEST(TensorGrad, Scale) { check_gradient(tunnx_case("Scale", {X({2, 3})}, {attr("alpha", -2.5f)})); }

// ---- float32: the gradient kernels' other dtype, on hand-computed gradients of sum(Y) -------------

tunnx::ir::ValueInfo value_info(const std::string& name, tunnx::ir::TypeInfo type = {}) {
  tunnx::ir::ValueInfo v;
  v.name = name;
  v.type = std::move(type);
  return v;
}

// The gradients of sum(Y) for a one-node float32 graph with respect to its input 0.
std::vector<float> float32_gradient(const std::string& op, int64_t opset, std::vector<tunnx::Tensor> inputs,
                                    Attrs attributes = {}) {
  using namespace tunnx;
  ir::Graph graph;
  ParameterStore store;
  ir::Node node;
  node.name = "under_test";
  node.op_type = op;
  node.attributes = std::move(attributes);
  node.outputs = {"y"};
  for (size_t i = 0; i < inputs.size(); ++i) {
    const std::string name = "x" + std::to_string(i);
    node.inputs.push_back(name);
    graph.inputs.push_back(value_info(name, ir::TypeInfo::tensor(inputs[i].dtype(), Shape::of(inputs[i].dims()))));
  }
  graph.nodes.push_back(node);
  graph.outputs.push_back(value_info("y"));
  const std::map<std::string, int64_t> opsets{{"", opset}, {ops::kGradDomain, 1}};
  train::GradientRequest request;
  request.sources = {"x0"};
  request.outputs = {"y"};
  request.seeds = {""};  // ones
  train::GradientGraph grads = train::differentiate(graph, opsets, store, request);
  graph.outputs.push_back(value_info(grads.gradients[0]));
  PlanContext context;
  context.registry = &KernelRegistry::global();
  context.opsets = opsets;
  context.store = &store;
  GraphPlan plan(graph, context, nullptr);
  std::vector<Value> feeds;
  for (const Tensor& t : inputs) feeds.emplace_back(t);
  int64_t bytes = 0;
  const Tensor g = plan.run(feeds, nullptr, bytes)[1].tensor();
  EXPECT_EQ(g.dtype(), DataType::kFloat32) << op;
  EXPECT_EQ(g.dims(), inputs[0].dims()) << op;
  return std::vector<float>(g.data_as<float>(), g.data_as<float>() + g.numel());
}

tunnx::Tensor f32(Ints dims, std::vector<float> values) {
  return tunnx::Tensor::from_vector<float>(std::move(dims), std::move(values));
}

TEST(TensorGrad, Float32Kernels) {
  using V = std::vector<float>;
  EXPECT_EQ(float32_gradient("Gather", 13, {f32({3, 2}, V(6, 1)), i64({3}, {0, 0, -1})}), (V{2, 2, 0, 0, 1, 1}));
  EXPECT_EQ(float32_gradient("GatherElements", 13, {f32({3}, V(3, 1)), i64({4}, {0, 2, 2, 2})}), (V{1, 0, 3}));
  EXPECT_EQ(float32_gradient("Slice", 13, {f32({4}, V(4, 1)), i64({1}, {3}), i64({1}, {-100}), i64({1}, {0}),
                                           i64({1}, {-2})}),
            (V{0, 1, 0, 1}));
  EXPECT_EQ(float32_gradient("Pad", 13, {f32({2}, V(2, 1)), i64({2}, {1, 2})}, {attr("mode", std::string("reflect"))}),
            (V{2, 3}));  // Y = [b a b a b]
  EXPECT_EQ(float32_gradient("Pad", 13, {f32({3}, V(3, 1)), i64({2}, {-1, 1})}), (V{0, 1, 1}));
  EXPECT_EQ(float32_gradient("Tile", 13, {f32({2}, V(2, 1)), i64({1}, {3})}), (V{3, 3}));
  EXPECT_EQ(float32_gradient("Concat", 13, {f32({1}, V(1, 1)), f32({2}, V(2, 1))}, {attr("axis", int64_t{0})}),
            (V{1}));
  EXPECT_EQ(float32_gradient("Expand", 13, {f32({1}, V(1, 1)), i64({2}, {2, 3})}), (V{6}));
  // A float32 -> float64 cast: the float64 gradient is cast back (com.tunnx CastLike).
  EXPECT_EQ(float32_gradient("Cast", 13, {f32({2}, V(2, 1))}, {attr("to", int64_t{11})}), (V{1, 1}));
}

TEST(TensorForward, RangeOfFloat16) {
  auto half = [](float v) {
    Tensor t(DataType::kFloat16, {});
    *static_cast<uint16_t*>(t.mutable_data()) = tunnx::Float16::from_float(v);
    return t;
  };
  const Tensor y = run_node("", "Range", {half(1), half(5), half(2)}, {}, 27)[0].tensor();
  ASSERT_EQ(y.dtype(), DataType::kFloat16);
  ASSERT_EQ(y.dims(), (Ints{2}));
  const auto* bits = static_cast<const uint16_t*>(y.data());
  EXPECT_EQ(tunnx::Float16::to_float(bits[0]), 1.0f);
  EXPECT_EQ(tunnx::Float16::to_float(bits[1]), 3.0f);
  const std::string why = error_of([&] { run_node("", "Range", {half(1), half(5), half(0)}, {}, 27); });
  EXPECT_NE(why.find("delta must not be 0"), std::string::npos) << why;
}

}  // namespace
}  // namespace tunnx_test
