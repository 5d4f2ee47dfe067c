// Gradient checks of the linear family: MatMul (2-D, 1-D operands, batched with and without batch
// broadcasting), Gemm (every transA/transB with alpha, beta and each shape C may broadcast from) and
// Einsum against finite differences (tests/ops/grad_check.h). com.tunnx:FusedMatMul runs in float32
// only, so its gradients are compared with those of the same product spelled out as MatMul/Gemm ->
// Add -> activation. Plus the shared MatMul shape rule (runtime/core/ops/linear.h).
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <memory>

#include "runtime/core/ops/linear.h"
#include "tests/ops/grad_check.h"

namespace tunnx_test {
namespace {

using tunnx::ops::attr;
using A = std::vector<tunnx::ir::Attribute>;
using Ints = std::vector<int64_t>;

GradCase make(const std::string& op, int64_t opset, std::vector<GradInput> inputs, A attributes = {}) {
  GradCase c;
  c.op_type = op;
  c.opset = opset;
  c.inputs = std::move(inputs);
  c.attributes = std::move(attributes);
  return c;
}

GradCase matmul(Ints a, Ints b, int64_t opset = 17) {
  return make("MatMul", opset, {GradInput::of(std::move(a)), GradInput::of(std::move(b))});
}

// ---- MatMul ----

TEST(LinearGrad, MatMul2d) { check_gradient(matmul({3, 4}, {4, 5})); }

TEST(LinearGrad, MatMul2dOpset1) { check_gradient(matmul({3, 4}, {4, 2}, 1)); }

TEST(LinearGrad, MatMulBatched3dBy2d) {
  // Activations [B, T, K] times a weight [K, N]: both gradients are Gemms of flattened views.
  check_gradient(matmul({2, 3, 4}, {4, 5}));
  check_gradient(matmul({2, 3, 4}, {4, 5}, 9));  // Flatten with a positive axis
}

TEST(LinearGrad, MatMul4dBy4d) { check_gradient(matmul({2, 3, 2, 4}, {2, 3, 4, 3})); }

TEST(LinearGrad, MatMulBatchBroadcast) {
  check_gradient(matmul({2, 1, 3, 4}, {1, 2, 4, 5}));
  check_gradient(matmul({3, 4}, {2, 4, 5}));  // A broadcast over B's batch
  check_gradient(matmul({2, 3, 4}, {1, 4, 2}));
}

TEST(LinearGrad, MatMulVectorOperands) {
  check_gradient(matmul({4}, {4, 5}));
  check_gradient(matmul({3, 4}, {4}));
  check_gradient(matmul({4}, {4}));
  check_gradient(matmul({4}, {2, 4, 5}));
  check_gradient(matmul({2, 3, 4}, {4}));
}

TEST(LinearGrad, MatMulOneSideFrozen) {
  GradCase c = matmul({2, 3, 4}, {4, 5});
  c.inputs[0].frozen();
  check_gradient(c);
  c = matmul({2, 3, 4}, {4, 5});
  c.inputs[1].frozen();
  check_gradient(c);
}

TEST(LinearGrad, MatMulWeightAsInitializer) {
  GradCase c = matmul({3, 4}, {});
  c.inputs[1] = GradInput::constant(f64({4, 2}, {0.5, -1, 2, 0.25, -0.75, 1.5, 1, -2}), true);
  check_gradient(c);
}

// ---- Gemm ----

GradCase gemm(bool trans_a, bool trans_b, Ints c_dims, bool with_c = true, int64_t opset = 13) {
  const int64_t M = 3, K = 4, N = 2;
  std::vector<GradInput> inputs = {GradInput::of(trans_a ? Ints{K, M} : Ints{M, K}),
                                   GradInput::of(trans_b ? Ints{N, K} : Ints{K, N})};
  if (with_c) inputs.push_back(GradInput::of(std::move(c_dims)));
  return make("Gemm", opset, std::move(inputs),
              {attr("transA", int64_t{trans_a}), attr("transB", int64_t{trans_b}), attr("alpha", 0.7f),
               attr("beta", 1.3f)});
}

TEST(LinearGrad, GemmEveryTransposeAndC) {
  for (bool ta : {false, true})
    for (bool tb : {false, true})
      for (const Ints& c : {Ints{2}, Ints{3, 2}, Ints{1, 2}, Ints{}, Ints{3, 1}}) {
        SCOPED_TRACE("transA " + std::to_string(ta) + " transB " + std::to_string(tb) + " C " +
                     tunnx::dims_to_string(c));
        check_gradient(gemm(ta, tb, c));
      }
}

TEST(LinearGrad, GemmWithoutC) {
  for (bool ta : {false, true})
    for (bool tb : {false, true}) check_gradient(gemm(ta, tb, {}, false));
}

TEST(LinearGrad, GemmDefaultsOldOpset) {
  GradCase c = make("Gemm", 7, {GradInput::of({3, 4}), GradInput::of({4, 2}), GradInput::of({3, 2})});
  check_gradient(c);
}

// ---- Einsum ----

GradCase einsum(const std::string& equation, std::vector<Ints> shapes) {
  std::vector<GradInput> inputs;
  for (auto& s : shapes) inputs.push_back(GradInput::of(std::move(s)));
  return make("Einsum", 12, std::move(inputs), {attr("equation", equation)});
}

TEST(LinearGrad, EinsumMatMul) { check_gradient(einsum("ij,jk->ik", {{3, 4}, {4, 2}})); }

TEST(LinearGrad, EinsumBatchedMatMul) { check_gradient(einsum("bij,bjk->bik", {{2, 3, 4}, {2, 4, 2}})); }

TEST(LinearGrad, EinsumAttentionScores) { check_gradient(einsum("bhqd,bhkd->bhqk", {{2, 2, 3, 4}, {2, 2, 5, 4}})); }

TEST(LinearGrad, EinsumImplicitOutputTransposeAndThreeOperands) {
  check_gradient(einsum("ij,jk", {{3, 4}, {4, 2}}));
  check_gradient(einsum("ij->ji", {{3, 4}}));
  check_gradient(einsum("i,ij,j->i", {{3}, {3, 4}, {4}}));
}

TEST(LinearGrad, EinsumEllipsisAndSizeOneBroadcast) {
  check_gradient(einsum("...ij,...jk->...ik", {{2, 3, 4}, {4, 2}}));
  check_gradient(einsum("bij,bjk->bik", {{1, 3, 4}, {2, 4, 2}}));
}

TEST(LinearGrad, EinsumWithoutRuleNamesTheEquation) {
  for (const auto& [equation, shapes] : std::vector<std::pair<std::string, std::vector<Ints>>>{
           {"ii->i", {{3, 3}}}, {"ij->i", {{3, 4}}}}) {
    try {
      check_gradient(einsum(equation, shapes));
      ADD_FAILURE() << equation << " has no gradient rule but did not throw";
    } catch (const tunnx::Error& e) {
      EXPECT_NE(std::string(e.what()).find("'" + equation + "'"), std::string::npos) << e.what();
    }
  }
}

// ---- FusedMatMul: float32, against the spelled-out chain ----

using tunnx::ir::Graph;
using tunnx::ir::Node;

// A graph input or output (designated initializers would leave fields out, which -Wextra rejects).
tunnx::ir::ValueInfo value_info(const std::string& name, tunnx::ir::TypeInfo type = {}) {
  tunnx::ir::ValueInfo v;
  v.name = name;
  v.type = std::move(type);
  return v;
}

Node node(const std::string& op, std::vector<std::string> inputs, std::string output, A attributes = {},
          const std::string& domain = "") {
  Node n;
  n.name = output + "_node";
  n.op_type = op;
  n.domain = domain;
  n.inputs = std::move(inputs);
  n.outputs = {std::move(output)};
  n.attributes = std::move(attributes);
  return n;
}

// d(sum(seed * y)) / d(x0..) of `graph` (inputs x0.. and output y), run on the CPU kernels in float32.
std::vector<Tensor> float_gradients(Graph graph, const std::vector<Tensor>& xs, const Tensor& seed) {
  using namespace tunnx;
  const std::map<std::string, int64_t> opsets{{"", 20}, {ops::kGradDomain, 1}};
  train::GradientRequest request;
  std::vector<Value> feeds;
  for (size_t i = 0; i < xs.size(); ++i) {
    const std::string name = "x" + std::to_string(i);
    graph.inputs.push_back(value_info(name, ir::TypeInfo::tensor(DataType::kFloat32, Shape::of(xs[i].dims()))));
    request.sources.push_back(name);
    feeds.emplace_back(xs[i]);
  }
  graph.inputs.push_back(value_info("s"));
  feeds.emplace_back(seed);
  graph.outputs.push_back(value_info("y"));
  request.outputs = {"y"};
  request.seeds = {"s"};
  ParameterStore store;
  train::GradientGraph grads = train::differentiate(graph, opsets, store, request);
  for (const auto& g : grads.gradients) graph.outputs.push_back(value_info(g));
  PlanContext context;
  context.registry = &KernelRegistry::global();
  context.opsets = opsets;
  context.store = &store;
  GraphPlan plan(graph, context, nullptr);
  int64_t bytes = 0;
  std::vector<Value> outs = plan.run(std::move(feeds), nullptr, bytes);
  std::vector<Tensor> result;
  for (size_t i = 1; i < outs.size(); ++i) result.push_back(outs[i].tensor());
  return result;
}

Tensor random_f32(Ints dims, uint64_t seed) {
  Tensor t(DataType::kFloat32, dims);
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(-1.5f, 1.5f);
  for (int64_t i = 0; i < t.numel(); ++i) t.mutable_data_as<float>()[i] = u(rng);
  return t;
}

struct Act {
  std::string name;
  A fused_attrs;  // on FusedMatMul
  A op_attrs;     // on the standalone op
  float lo = 0, hi = 0;  // Clip's bounds
};

std::vector<Act> activations() {
  return {{"", {}, {}},
          {"Relu", {}, {}},
          {"Sigmoid", {}, {}},
          {"Tanh", {}, {}},
          {"LeakyRelu", {attr("activation_alpha", 0.1f)}, {attr("alpha", 0.1f)}},
          {"LeakyRelu", {attr("activation_alpha", -0.2f)}, {attr("alpha", -0.2f)}},
          {"Gelu", {attr("approximate", std::string("none"))}, {attr("approximate", std::string("none"))}},
          {"Gelu", {attr("approximate", std::string("tanh"))}, {attr("approximate", std::string("tanh"))}},
          {"Clip", {attr("activation_alpha", -0.5f), attr("activation_beta", 0.5f)}, {}, -0.5f, 0.5f}};
}

// FusedMatMul(op, has_bias, act) against MatMul/Gemm -> Add(bias) -> act; `gemm` uses transB, alpha, beta, C.
// `trans_b` (op MatMul): B is [N, K], against MatMul(A, Transpose(B)) (passes/fold_weight_transpose.h).
void check_fused(bool gemm, const Act& act, bool trans_b = false) {
  SCOPED_TRACE(std::string(gemm ? "Gemm" : trans_b ? "MatMul transB" : "MatMul") + " + " +
               (act.name.empty() ? "no activation" : act.name));
  const int64_t M = 6, K = 5, N = 4;
  std::vector<Tensor> xs = {random_f32(gemm ? Ints{M, K} : Ints{2, M, K}, 1),
                            random_f32(gemm || trans_b ? Ints{N, K} : Ints{K, N}, 2)};
  if (gemm) xs.push_back(random_f32({1, N}, 3));
  xs.push_back(random_f32({N}, 4));
  const Tensor seed = random_f32(gemm ? Ints{M, N} : Ints{2, M, N}, 5);
  A product_attrs;
  if (gemm) product_attrs = {attr("transB", int64_t{1}), attr("alpha", 0.7f), attr("beta", 1.3f)};

  Graph fused;
  A fattrs = product_attrs;
  if (trans_b) fattrs.push_back(attr("transB", int64_t{1}));
  fattrs.push_back(attr("op", std::string(gemm ? "Gemm" : "MatMul")));
  fattrs.push_back(attr("has_bias", int64_t{1}));
  fattrs.push_back(attr("activation", act.name));
  for (const auto& a : act.fused_attrs) fattrs.push_back(a);
  std::vector<std::string> fin = {"x0", "x1"};
  if (gemm) fin.push_back("x2");
  fin.push_back(gemm ? "x3" : "x2");
  fused.nodes.push_back(node("FusedMatMul", fin, "y", fattrs, tunnx::ops::kGradDomain));

  Graph chain;
  std::vector<std::string> pin = {"x0", "x1"};
  if (trans_b) {
    chain.nodes.push_back(node("Transpose", {"x1"}, "x1t", {attr("perm", Ints{1, 0})}));
    pin[1] = "x1t";
  }
  if (gemm) pin.push_back("x2");
  chain.nodes.push_back(node(gemm ? "Gemm" : "MatMul", pin, "p", product_attrs));
  chain.nodes.push_back(node("Add", {"p", gemm ? "x3" : "x2"}, act.name.empty() ? "y" : "z"));
  if (act.name == "Clip") {
    for (const auto& [name, bound] : {std::pair<std::string, float>{"lo", act.lo}, {"hi", act.hi}})
      chain.nodes.push_back(
          node("Constant", {}, name, {tunnx::ops::attr_tensor("value", Tensor::from_vector<float>({}, {bound}))}));
    chain.nodes.push_back(node("Clip", {"z", "lo", "hi"}, "y"));
  } else if (!act.name.empty()) {
    chain.nodes.push_back(node(act.name, {"z"}, "y", act.op_attrs));
  }

  const std::vector<Tensor> got = float_gradients(fused, xs, seed);
  const std::vector<Tensor> want = float_gradients(chain, xs, seed);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_EQ(got[i].dims(), xs[i].dims()) << "gradient of input " << i;
    ASSERT_EQ(want[i].dims(), xs[i].dims()) << "gradient of input " << i;
    for (int64_t e = 0; e < got[i].numel(); ++e) {
      const float g = got[i].data_as<float>()[e], w = want[i].data_as<float>()[e];
      EXPECT_NEAR(g, w, 1e-4 * std::max(1.0f, std::abs(w))) << "input " << i << " element " << e;
    }
  }
}

TEST(LinearGrad, FusedMatMulMatchesTheSpelledOutChain) {
  for (const Act& act : activations()) {
    check_fused(false, act);
    check_fused(true, act);
    check_fused(false, act, /*trans_b=*/true);
  }
}

// ---- Where the backward products run ----

// The kernels planned for the backward nodes of `graph` (inputs x0.., output y) in float32.
std::vector<std::pair<std::string, std::string>> backward_kernels(Graph graph, const std::vector<Ints>& dims,
                                                                  const std::vector<std::string>& sources) {
  using namespace tunnx;
  const std::map<std::string, int64_t> opsets{{"", 17}, {ops::kGradDomain, 1}};
  for (size_t i = 0; i < dims.size(); ++i)
    graph.inputs.push_back(
        value_info("x" + std::to_string(i), ir::TypeInfo::tensor(DataType::kFloat32, Shape::of(dims[i]))));
  graph.outputs.push_back(value_info("y"));
  const size_t forward = graph.nodes.size();
  ParameterStore store;
  const train::GradientRequest request{.sources = sources, .outputs = {"y"}, .seeds = {""}};
  train::GradientGraph grads = train::differentiate(graph, opsets, store, request);
  for (const auto& g : grads.gradients) graph.outputs.push_back(value_info(g));
  PlanContext context;
  context.registry = &KernelRegistry::global();
  context.opsets = opsets;
  context.store = &store;
  GraphPlan plan(graph, context, nullptr);
  std::vector<std::pair<std::string, std::string>> out;
  for (size_t i = forward; i < plan.steps().size(); ++i)
    out.emplace_back(plan.steps()[i].node->op_type, plan.steps()[i].kernel_name);
  return out;
}

// An MLP layer and a transformer projection (3-D activations times a 2-D weight).
const std::vector<Ints> kLinearLayerInputs = {{8, 16}, {2, 5, 16}};

TEST(LinearGrad, LinearLayerGradientsCopyNothing) {
  for (const Ints& x : kLinearLayerInputs) {
    Graph g;
    g.nodes.push_back(node("MatMul", {"x0", "x1"}, "y"));
    for (const auto& [op, kernel] : backward_kernels(g, {x, {16, 4}}, {"x0", "x1"})) {
      EXPECT_NE(op, "Transpose") << "a copy of an operand";
      EXPECT_NE(op, "SumToShape") << "a batch the weight was not broadcast over";
    }
  }
}

// Disabled until the planner knows the dtypes of backward values: it picks a fast path (priority > 0)
// only for a known dtype, so a Gemm whose A is a gradient (dX = Gemm(dY, W, transB=1)) gets the
// reference kernel today.
TEST(LinearGrad, LinearLayerGradientsRunOnOneDnn) {
  if (!TUNNX_WITH_ONEDNN) GTEST_SKIP() << "built without oneDNN";
  for (const Ints& x : kLinearLayerInputs) {
    Graph g;
    g.nodes.push_back(node("MatMul", {"x0", "x1"}, "y"));
    for (const auto& [op, kernel] : backward_kernels(g, {x, {16, 4}}, {"x0", "x1"})) {
      if (op == "Gemm" || op == "MatMul") {
        EXPECT_EQ(kernel, "cpu/onednn/" + op);
      }
    }
  }
}

// ---- The shared shape rule ----

TEST(LinearShapes, MatMulShapeRule) {
  std::string why;
  auto s = tunnx::ops::matmul_shape({2, 1, 3, 4}, {5, 4, 6}, &why);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->a, (Ints{2, 1, 3, 4}));
  EXPECT_EQ(s->b, (Ints{1, 5, 4, 6}));
  EXPECT_EQ(s->y, (Ints{2, 5, 3, 6}));
  EXPECT_EQ(s->out, (Ints{2, 5, 3, 6}));
  s = tunnx::ops::matmul_shape({4}, {2, 4, 6}, &why);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->out, (Ints{2, 6}));
  s = tunnx::ops::matmul_shape({3, 4}, {4}, &why);
  ASSERT_TRUE(s);
  EXPECT_EQ(s->out, (Ints{3}));
  EXPECT_FALSE(tunnx::ops::matmul_shape({3, 4}, {5, 6}, &why));
  EXPECT_EQ(why, "inner dimensions differ: A is [3,4], B is [5,6]");
  EXPECT_FALSE(tunnx::ops::matmul_shape({2, 3, 4}, {3, 4, 6}, &why));
  EXPECT_EQ(why, "shapes [2] and [3] do not broadcast");
  EXPECT_FALSE(tunnx::ops::matmul_shape({}, {3}, &why));
}

TEST(LinearShapes, ActivationTableAndDefaults) {
  using Kind = tunnx::ops::Activation::Kind;
  EXPECT_EQ(tunnx::ops::activation_kind("Gelu", "tanh"), Kind::kGeluTanh);
  EXPECT_FALSE(tunnx::ops::activation_kind("Gelu", "exact"));
  EXPECT_FALSE(tunnx::ops::activation_kind("Softplus", "none"));
  Node n = node("FusedMatMul", {}, "y", {attr("activation", std::string("LeakyRelu"))}, tunnx::ops::kGradDomain);
  std::string why;
  auto act = tunnx::ops::fused_activation(n, &why);
  ASSERT_TRUE(act);
  EXPECT_FLOAT_EQ(act->alpha, 0.01f);
  n.attributes = {attr("activation", std::string("Swish"))};
  EXPECT_FALSE(tunnx::ops::fused_activation(n, &why));
  EXPECT_EQ(why, "activation \"Swish\" is not one the fused ops take");
}

}  // namespace
}  // namespace tunnx_test
