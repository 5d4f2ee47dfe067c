// Gradient checks of the conv_pool family: Conv, ConvTranspose, MaxPool, AveragePool and the global
// pools against finite differences (tests/ops/grad_check.h). Shapes stay small: finite differences
// run the forward twice per input element.
#include "tests/ops/grad_check.h"

#include <algorithm>

namespace tunnx_test {
namespace {

using tunnx::ops::attr;
using Ints = std::vector<int64_t>;

GradCase conv(std::vector<tunnx::ir::Attribute> attributes, Ints x, Ints w, Ints bias = {}, int64_t opset = 17) {
  GradCase c;
  c.op_type = "Conv";
  c.opset = opset;
  c.attributes = std::move(attributes);
  c.inputs = {GradInput::of(std::move(x)), GradInput::of(std::move(w))};
  if (!bias.empty()) c.inputs.push_back(GradInput::of(std::move(bias)));
  return c;
}

GradCase pool(const std::string& op, std::vector<tunnx::ir::Attribute> attributes, Ints x, int64_t opset = 17) {
  GradCase c;
  c.op_type = op;
  c.opset = opset;
  c.attributes = std::move(attributes);
  c.inputs = {GradInput::of(std::move(x))};
  if (op == "MaxPool" || op == "GlobalMaxPool") c.inputs[0].no_ties();
  return c;
}

TEST(ConvPoolGrad, Conv2dPadsStridesDilations) {
  check_gradient(conv({attr("pads", Ints{1, 0, 1, 2}), attr("strides", Ints{2, 1}), attr("dilations", Ints{1, 2})},
                      {2, 2, 5, 6}, {3, 2, 2, 3}, {3}));
}

TEST(ConvPoolGrad, Conv2dNoBiasOpset1) {
  check_gradient(conv({attr("kernel_shape", Ints{3, 3})}, {1, 2, 4, 5}, {2, 2, 3, 3}, {}, 1));
}

TEST(ConvPoolGrad, Conv2dGroups) {
  check_gradient(conv({attr("group", int64_t{2}), attr("pads", Ints{1, 1, 1, 1})}, {2, 4, 4, 4}, {4, 2, 3, 3}, {4}));
}

TEST(ConvPoolGrad, Conv2dDepthwise) {
  check_gradient(conv({attr("group", int64_t{3}), attr("strides", Ints{2, 2}), attr("pads", Ints{1, 1, 1, 1})},
                      {1, 3, 5, 5}, {3, 1, 3, 3}, {3}));
}

TEST(ConvPoolGrad, Conv1d) {
  check_gradient(conv({attr("strides", Ints{2}), attr("pads", Ints{1, 2})}, {2, 2, 7}, {3, 2, 3}, {3}, 11));
}

TEST(ConvPoolGrad, Conv3d) {
  check_gradient(conv({attr("pads", Ints{1, 0, 1, 0, 1, 1})}, {1, 2, 3, 4, 3}, {2, 2, 2, 2, 2}, {2}));
}

TEST(ConvPoolGrad, Conv2dSameUpper) {
  check_gradient(conv({attr("auto_pad", std::string("SAME_UPPER")), attr("strides", Ints{2, 2})}, {1, 2, 5, 5},
                      {2, 2, 2, 2}, {2}));
}

TEST(ConvPoolGrad, ConvWeightsOnly) {
  // A first layer: X is data, only W and B are trained.
  GradCase c = conv({attr("pads", Ints{1, 1, 1, 1})}, {2, 1, 4, 4}, {2, 1, 3, 3}, {2});
  c.inputs[0].frozen();
  check_gradient(c);
  c.inputs[2].frozen();  // W alone
  check_gradient(c);
}

GradCase conv_transpose(std::vector<tunnx::ir::Attribute> attributes, Ints x, Ints w, Ints bias = {}) {
  GradCase c = conv(std::move(attributes), std::move(x), std::move(w), std::move(bias));
  c.op_type = "ConvTranspose";
  return c;
}

TEST(ConvPoolGrad, ConvTransposeStrides2OutputPadding) {
  check_gradient(conv_transpose({attr("strides", Ints{2, 2}), attr("output_padding", Ints{1, 1}),
                                 attr("pads", Ints{1, 1, 1, 1})},
                                {2, 2, 3, 3}, {2, 3, 3, 3}, {3}));
}

TEST(ConvPoolGrad, ConvTransposeGroups) {
  check_gradient(conv_transpose({attr("group", int64_t{2}), attr("strides", Ints{2, 2})}, {1, 4, 3, 3},
                                {4, 1, 2, 2}, {2}));
}

TEST(ConvPoolGrad, ConvTransposeOutputShape1d) {
  check_gradient(conv_transpose({attr("strides", Ints{3}), attr("output_shape", Ints{10}), attr("dilations", Ints{2})},
                                {1, 2, 3}, {2, 2, 3}));
}

TEST(ConvPoolGrad, MaxPool2x2Stride2) {
  check_gradient(pool("MaxPool", {attr("kernel_shape", Ints{2, 2}), attr("strides", Ints{2, 2})}, {2, 2, 4, 4}));
}

TEST(ConvPoolGrad, MaxPool3x3Stride1Pads1) {
  check_gradient(pool("MaxPool", {attr("kernel_shape", Ints{3, 3}), attr("pads", Ints{1, 1, 1, 1})}, {1, 2, 5, 5}));
}

TEST(ConvPoolGrad, MaxPoolCeilModeDilations) {
  check_gradient(pool("MaxPool",
                      {attr("kernel_shape", Ints{2, 2}), attr("strides", Ints{2, 2}), attr("ceil_mode", int64_t{1})},
                      {1, 2, 5, 5}, 10));
  check_gradient(pool("MaxPool", {attr("kernel_shape", Ints{2, 2}), attr("dilations", Ints{2, 1})}, {1, 1, 5, 4}, 12));
}

TEST(ConvPoolGrad, MaxPoolWithIndices) {
  GradCase c = pool("MaxPool", {attr("kernel_shape", Ints{3}), attr("strides", Ints{2})}, {2, 2, 9}, 8);
  c.num_outputs = 2;
  c.checked_outputs = {0};  // Indices is int64: not differentiable
  check_gradient(c);
}

TEST(ConvPoolGrad, MaxPoolOpset1) {
  check_gradient(pool("MaxPool", {attr("kernel_shape", Ints{2, 2})}, {1, 1, 3, 4}, 1));
}

TEST(ConvPoolGrad, AveragePoolCountIncludePad) {
  for (int64_t include : {0, 1})
    check_gradient(pool("AveragePool",
                        {attr("kernel_shape", Ints{3, 3}), attr("strides", Ints{2, 2}), attr("pads", Ints{1, 1, 1, 1}),
                         attr("count_include_pad", include)},
                        {1, 2, 5, 5}));
}

TEST(ConvPoolGrad, AveragePoolCeilModeSameUpper) {
  check_gradient(pool("AveragePool",
                      {attr("kernel_shape", Ints{2, 2}), attr("strides", Ints{2, 2}), attr("ceil_mode", int64_t{1})},
                      {1, 2, 5, 5}, 10));
  check_gradient(pool("AveragePool",
                      {attr("kernel_shape", Ints{3}), attr("strides", Ints{2}), attr("auto_pad", std::string("SAME_UPPER"))},
                      {2, 1, 6}, 7));
}

TEST(ConvPoolGrad, GlobalAveragePool) { check_gradient(pool("GlobalAveragePool", {}, {2, 3, 3, 4})); }

TEST(ConvPoolGrad, GlobalMaxPool) { check_gradient(pool("GlobalMaxPool", {}, {2, 3, 3, 3})); }

// ---- The gradient kernels run directly: float32 against float64, and errors ----------------------

// Runs one com.tunnx node on `inputs`; returns its outputs.
std::vector<Tensor> run_grad_node(const std::string& op, std::vector<Tensor> inputs, size_t num_outputs,
                                  std::vector<tunnx::ir::Attribute> attributes) {
  using namespace tunnx;
  ir::Graph graph;
  ParameterStore store;
  ir::Node node;
  node.name = "under_test";
  node.op_type = op;
  node.domain = ops::kGradDomain;
  node.attributes = std::move(attributes);
  std::vector<Value> feeds;
  for (size_t i = 0; i < inputs.size(); ++i) {
    ir::ValueInfo v;
    v.name = "x" + std::to_string(i);
    node.inputs.push_back(v.name);
    graph.inputs.push_back(v);
    feeds.emplace_back(inputs[i]);
  }
  for (size_t k = 0; k < num_outputs; ++k) {
    ir::ValueInfo v;
    v.name = "y" + std::to_string(k);
    node.outputs.push_back(v.name);
    graph.outputs.push_back(v);
  }
  graph.nodes.push_back(node);
  PlanContext context;
  context.registry = &KernelRegistry::global();
  context.opsets = {{"", 17}, {ops::kGradDomain, 1}};
  context.store = &store;
  GraphPlan plan(graph, context, nullptr);
  int64_t bytes = 0;
  std::vector<Tensor> out;
  for (const Value& v : plan.run(feeds, nullptr, bytes)) out.push_back(v.tensor());
  return out;
}

Tensor random_f64(std::vector<int64_t> dims, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(-1, 1);
  Tensor t(DataType::kFloat64, dims);
  for (int64_t i = 0; i < t.numel(); ++i) t.mutable_data_as<double>()[i] = u(rng);
  return t;
}

Tensor to_f32(const Tensor& t) {
  Tensor out(DataType::kFloat32, t.dims());
  for (int64_t i = 0; i < t.numel(); ++i) out.mutable_data_as<float>()[i] = static_cast<float>(t.data_as<double>()[i]);
  return out;
}

// The float32 kernel agrees with the float64 one (the one the finite differences checked).
void expect_float32_matches(const std::string& op, std::vector<Tensor> inputs, size_t num_outputs,
                            std::vector<tunnx::ir::Attribute> attributes) {
  SCOPED_TRACE(op);
  std::vector<Tensor> inputs32;
  for (const Tensor& t : inputs) inputs32.push_back(t.dtype() == DataType::kFloat64 ? to_f32(t) : t);
  const std::vector<Tensor> ref = run_grad_node(op, inputs, num_outputs, attributes);
  const std::vector<Tensor> got = run_grad_node(op, inputs32, num_outputs, attributes);
  for (size_t k = 0; k < num_outputs; ++k) {
    ASSERT_EQ(got[k].dtype(), DataType::kFloat32) << "output " << k;
    ASSERT_EQ(got[k].dims(), ref[k].dims()) << "output " << k;
    for (int64_t i = 0; i < ref[k].numel(); ++i) {
      const double want = ref[k].data_as<double>()[i];
      EXPECT_NEAR(got[k].data_as<float>()[i], want, 1e-4 * std::max(1.0, std::abs(want))) << "output " << k << " element " << i;
    }
  }
}

TEST(ConvPoolGrad, Float32KernelsMatchFloat64) {
  // Batch 3: an uneven split of images over threads.
  const Ints x = {3, 4, 6, 5};
  const std::vector<tunnx::ir::Attribute> conv_attrs = {attr("group", int64_t{2}), attr("pads", Ints{1, 1, 1, 0}),
                                                        attr("strides", Ints{2, 1})};
  expect_float32_matches("ConvGrad", {random_f64({3, 6, 3, 4}, 1), random_f64(x, 2), random_f64({6, 2, 3, 3}, 3)}, 3,
                         conv_attrs);
  expect_float32_matches("ConvTransposeGrad",
                         {random_f64({3, 4, 13, 12}, 4), random_f64(x, 5), random_f64({4, 2, 3, 3}, 6)}, 3,
                         {attr("group", int64_t{2}), attr("strides", Ints{2, 2}), attr("output_padding", Ints{0, 1})});
  const std::vector<tunnx::ir::Attribute> pool_attrs = {attr("kernel_shape", Ints{3, 3}), attr("strides", Ints{2, 2}),
                                                        attr("pads", Ints{1, 1, 1, 1})};
  expect_float32_matches("MaxPoolGrad", {random_f64({3, 4, 3, 3}, 7), random_f64(x, 8)}, 1, pool_attrs);
  expect_float32_matches("AveragePoolGrad", {random_f64({3, 4, 3, 3}, 9), i64({4}, x)}, 1, pool_attrs);
  expect_float32_matches("GlobalPoolGrad", {random_f64({3, 4, 1, 1}, 10), random_f64(x, 11)}, 1,
                         {attr("mode", std::string("max"))});
}

TEST(ConvPoolGrad, ErrorsNameTheShapes) {
  try {
    run_grad_node("ConvGrad", {random_f64({1, 2, 4, 4}, 1), random_f64({1, 3, 4, 4}, 2), random_f64({2, 3, 3, 3}, 3)},
                  3, {});
    ADD_FAILURE() << "ConvGrad accepted a dY of the wrong shape";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("dY [1,2,4,4] must have the forward output's shape [1,2,2,2]"),
              std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("under_test"), std::string::npos) << e.what();
  }
  try {
    run_grad_node("GlobalPoolGrad", {random_f64({1, 2, 1, 1}, 1), random_f64({1, 2, 3, 3}, 2)}, 1,
                  {attr("mode", std::string("min"))});
    ADD_FAILURE() << "GlobalPoolGrad accepted mode \"min\"";
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("mode must be \"average\" or \"max\", got \"min\""), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace tunnx_test
