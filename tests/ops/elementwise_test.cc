// Gradient checks of the elementwise family: one case per op and opset range, broadcasting for the
// binary and variadic ops, inputs kept away from kinks (Relu, Abs, Clip bounds, HardSigmoid) and ties
// (Max, Min). Ops a gradient stops at are checked to stop it.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "tests/ops/grad_check.h"

namespace tunnx_test {
namespace {

using tunnx::ops::attr;
using A = std::vector<tunnx::ir::Attribute>;

GradCase unary(const std::string& op, GradInput x, A attributes = {}, int64_t opset = 17) {
  return make_grad_case(op, opset, {std::move(x)}, std::move(attributes));
}

GradCase binary(const std::string& op, GradInput a, GradInput b, int64_t opset = 17, A attributes = {}) {
  return make_grad_case(op, opset, {std::move(a), std::move(b)}, std::move(attributes));
}

Tensor bools(std::vector<int64_t> dims, uint64_t seed) {
  Tensor t(DataType::kBool, dims);
  std::mt19937_64 rng(seed);
  for (int64_t i = 0; i < t.numel(); ++i) t.mutable_data_as<bool>()[i] = (rng() & 1) != 0;
  return t;
}

GradInput of(std::vector<int64_t> dims, double lo = -2, double hi = 2) {
  return GradInput::of(std::move(dims), lo, hi);
}

// ---- Binary arithmetic ------------------------------------------------------------------------------

TEST(ElementwiseGrad, AddSubMulBroadcast) {
  for (const char* op : {"Add", "Sub", "Mul"}) {
    SCOPED_TRACE(op);
    check_gradient(binary(op, of({2, 3, 4}), of({2, 3, 4})));
    check_gradient(binary(op, of({2, 3, 4}), of({3, 1})));
    check_gradient(binary(op, of({2, 3, 4}), of({4})));
    check_gradient(binary(op, of({3, 1}), of({2, 1, 4})));  // both stretched
    check_gradient(binary(op, of({}), of({2, 3})));           // scalar
  }
}

TEST(ElementwiseGrad, DivBroadcast) {
  check_gradient(binary("Div", of({2, 3, 4}), of({3, 1}, 0.5, 2)));
  check_gradient(binary("Div", of({4}), of({2, 3, 4}, -2, -0.5)));
  check_gradient(binary("Div", of({2, 3}), of({2, 3}, 0.5, 2), 13));
}

TEST(ElementwiseGrad, LegacyBroadcastAttribute) {
  // Opset 6: broadcast=1, B aligned with A's trailing dims (with or without axis).
  check_gradient(binary("Add", of({2, 3, 4}), of({4}), 6, {attr("broadcast", int64_t{1})}));
  check_gradient(
      binary("Mul", of({2, 3, 4}), of({3, 4}), 6, {attr("broadcast", int64_t{1}), attr("axis", int64_t{1})}));
  check_gradient(binary("Sub", of({2, 3}), of({2, 3}), 6));
  check_gradient(binary("Div", of({2, 3}), of({3}, 0.5, 2), 6, {attr("broadcast", int64_t{1})}));
}

TEST(ElementwiseGrad, LegacyBroadcastAtInnerAxisIsAnError) {
  GradCase c = binary("Add", of({2, 3, 4}), of({3}), 6, {attr("broadcast", int64_t{1}), attr("axis", int64_t{1})});
  try {
    check_gradient(c);
    FAIL() << "expected an error";
  } catch (const tunnx::Error& e) {
    EXPECT_NE(std::string(e.what()).find("aligned at axis 1"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("under_test"), std::string::npos) << e.what();
  }
}

TEST(ElementwiseGrad, Neg) { check_gradient(unary("Neg", of({2, 3}))); }

TEST(ElementwiseGrad, Pow) {
  check_gradient(binary("Pow", of({2, 3}, 0.5, 2), of({2, 3}, -2, 2)));
  check_gradient(binary("Pow", of({2, 3, 4}, 0.5, 2), of({3, 1}, -2, 2)));
  check_gradient(binary("Pow", of({4}, 0.5, 2), of({2, 4}, -2, 2), 12));
  check_gradient(binary("Pow", of({2, 3}, 0.5, 2).frozen(), of({3}, -2, 2)));  // the exponent's alone
  // An integer exponent (opset 12+): only the base has a gradient.
  check_gradient(binary("Pow", of({2, 3}), GradInput::constant(i64({3}, {2, 3, -1})), 15));
}

// ---- Unary math and activations -----------------------------------------------------------------------

TEST(ElementwiseGrad, Math) {
  check_gradient(unary("Sqrt", of({2, 3}, 0.3, 3)));
  check_gradient(unary("Reciprocal", of({2, 3}).away_from({0}, 0.3)));
  check_gradient(unary("Exp", of({2, 3})));
  check_gradient(unary("Log", of({2, 3}, 0.3, 3)));
  check_gradient(unary("Abs", of({2, 3}).away_from({0})));
  check_gradient(unary("Sin", of({2, 3}, -4, 4)));
  check_gradient(unary("Cos", of({2, 3}, -4, 4)));
  check_gradient(unary("Erf", of({2, 3})));
  check_gradient(unary("Exp", of({4}), {}, 6));  // an older opset of the same rule
}

TEST(ElementwiseGrad, Activations) {
  check_gradient(unary("Relu", of({3, 4}).away_from({0})));
  check_gradient(unary("Relu", of({3, 4}).away_from({0}), {}, 6));
  check_gradient(unary("LeakyRelu", of({3, 4}).away_from({0})));
  check_gradient(unary("LeakyRelu", of({3, 4}).away_from({0}), {attr("alpha", 0.3f)}));
  check_gradient(unary("Elu", of({3, 4}).away_from({0})));
  check_gradient(unary("Elu", of({3, 4}).away_from({0}), {attr("alpha", 0.7f)}));
  check_gradient(unary("Selu", of({3, 4}).away_from({0})));
  check_gradient(unary("Selu", of({3, 4}).away_from({0}), {attr("alpha", 1.5f), attr("gamma", 0.8f)}));
  check_gradient(unary("Celu", of({3, 4}).away_from({0}), {attr("alpha", 1.5f)}));
  check_gradient(unary("ThresholdedRelu", of({3, 4}).away_from({0.5}), {attr("alpha", 0.5f)}));
  check_gradient(unary("Sigmoid", of({3, 4}, -4, 4)));
  check_gradient(unary("Tanh", of({3, 4})));
  check_gradient(unary("Softplus", of({3, 4}, -4, 4)));
  check_gradient(unary("Softsign", of({3, 4}).away_from({0})));
  check_gradient(unary("HardSigmoid", of({3, 4}, -3, 3).away_from({-2.5, 2.5})));
  check_gradient(unary("HardSigmoid", of({3, 4}, -3, 3).away_from({-1, 1}), {attr("alpha", 0.5f), attr("beta", 0.5f)}));
  check_gradient(unary("HardSwish", of({3, 4}, -4, 4).away_from({-3, 3})));
}

TEST(ElementwiseGrad, Gelu) {
  check_gradient(unary("Gelu", of({3, 4}, -3, 3), {}, 20));
  check_gradient(unary("Gelu", of({3, 4}, -3, 3), {attr("approximate", std::string("tanh"))}, 20));
  GradCase fused = unary("Gelu", of({3, 4}, -3, 3), {}, 1);
  fused.domain = "com.tunnx";
  check_gradient(fused);
}

TEST(ElementwiseGrad, Clip) {
  const Tensor lo = f64({}, {-0.5}), hi = f64({}, {0.7});
  GradCase both =
      make_grad_case("Clip", 13, {of({3, 4}).away_from({-0.5, 0.7}), GradInput::constant(lo), GradInput::constant(hi)});
  check_gradient(both);
  GradCase max_only =
      make_grad_case("Clip", 12, {of({3, 4}).away_from({0.7}), GradInput::none(), GradInput::constant(hi)});
  check_gradient(max_only);
  GradCase initializer_bounds = make_grad_case(
      "Clip", 11, {of({3, 4}).away_from({-0.5, 0.7}), GradInput::constant(lo, true), GradInput::constant(hi, true)});
  check_gradient(initializer_bounds);
  check_gradient(unary("Clip", of({3, 4}), {}, 11));  // no bounds: the identity
  check_gradient(unary("Clip", of({3, 4}).away_from({-0.5, 0.7}), {attr("min", -0.5f), attr("max", 0.7f)}, 6));
  check_gradient(unary("Clip", of({3, 4}).away_from({0.25}), {attr("min", 0.25f)}, 6));
}

// Mish has no forward kernel yet: its ElementwiseGrad against finite differences of the formula.
TEST(ElementwiseGrad, MishKernel) {
  auto mish = [](double x) { return x * std::tanh(std::log1p(std::exp(x))); };
  const std::vector<double> xs = {-3, -1.2, -0.1, 0.4, 2.5};
  const std::vector<double> dys = {1, -0.5, 2, 0.3, -1};
  std::vector<tunnx::Value> out = run_node("com.tunnx", "ElementwiseGrad", {f64({5}, dys), f64({5}, xs)},
                                           {attr("op", std::string("Mish"))});
  ASSERT_EQ(out.size(), 1u);
  const double* dx = out[0].tensor().data_as<double>();
  for (size_t i = 0; i < xs.size(); ++i) {
    const double h = 1e-6, fd = (mish(xs[i] + h) - mish(xs[i] - h)) / (2 * h);
    EXPECT_NEAR(dx[i], dys[i] * fd, 1e-8) << "x = " << xs[i];
  }
}

TEST(ElementwiseGrad, KernelErrorsNameTheProblem) {
  try {
    run_node("com.tunnx", "ElementwiseGrad", {f64({2}, {1, 2})}, {attr("op", std::string("Sigmoid"))});
    FAIL() << "expected an error";
  } catch (const tunnx::Error& e) {
    EXPECT_NE(std::string(e.what()).find("op Sigmoid needs Y (input 2)"), std::string::npos) << e.what();
  }
  try {
    run_node("com.tunnx", "ElementwiseGrad", {f64({2}, {1, 2}), f64({2}, {1, 2})}, {attr("op", std::string("Nope"))});
    FAIL() << "expected an error";
  } catch (const tunnx::Error& e) {
    EXPECT_NE(std::string(e.what()).find("op \"Nope\" has no ElementwiseGrad"), std::string::npos) << e.what();
  }
}

// float32 runs the same formulas as float64 (which the gradient checks cover), to float precision.
Tensor f32_of(const Tensor& t) {
  std::vector<float> v(static_cast<size_t>(t.numel()));
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(t.data_as<double>()[i]);
  return Tensor::from_vector<float>(t.dims(), v);
}

void expect_float32_matches(const std::string& op, const std::vector<Tensor>& inputs, A attributes) {
  SCOPED_TRACE(op);
  std::vector<Tensor> narrow;
  for (const Tensor& t : inputs) narrow.push_back(t.defined() ? f32_of(t) : t);
  const Tensor wide = run_node("com.tunnx", op, inputs, attributes)[0].tensor();
  const Tensor low = run_node("com.tunnx", op, narrow, attributes)[0].tensor();
  ASSERT_EQ(low.dtype(), DataType::kFloat32);
  ASSERT_EQ(low.dims(), wide.dims());
  for (int64_t i = 0; i < wide.numel(); ++i) {
    const double w = wide.data_as<double>()[i];
    EXPECT_NEAR(low.data_as<float>()[i], w, 1e-5 * std::max(1.0, std::abs(w))) << "element " << i;
  }
}

Tensor sampled(std::vector<int64_t> dims, double lo, double hi, uint64_t seed) {
  Tensor t(DataType::kFloat64, dims);
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(lo, hi);
  for (int64_t i = 0; i < t.numel(); ++i) t.mutable_data_as<double>()[i] = u(rng);
  return t;
}

TEST(ElementwiseGrad, Float32KernelsMatchFloat64) {
  const Tensor dy = sampled({37}, -1, 1, 1), x = sampled({37}, -3, 3, 2), y = sampled({37}, 0.1, 0.9, 3);
  for (const char* op : {"Relu", "LeakyRelu", "Elu", "Selu", "Celu", "Sigmoid", "Tanh", "Erf", "Gelu", "Softplus",
                         "Softsign", "HardSigmoid", "HardSwish", "Sqrt", "Reciprocal", "Exp", "Abs", "Sin", "Cos",
                         "Clip", "ThresholdedRelu", "Mish"})
    expect_float32_matches("ElementwiseGrad", {dy, x, y},
                           {attr("op", std::string(op)), attr("alpha", 0.7f), attr("beta", 0.4f), attr("gamma", 1.1f),
                            attr("min", -1.0f), attr("max", 1.5f)});
  expect_float32_matches("ElementwiseGrad", {dy, sampled({37}, 0.5, 3, 4), Tensor()}, {attr("op", std::string("Log"))});
  expect_float32_matches("ElementwiseGrad", {dy, x, Tensor()},
                         {attr("op", std::string("Gelu")), attr("approximate", std::string("tanh"))});
  expect_float32_matches("PowGrad", {sampled({3, 5}, -1, 1, 5), sampled({3, 5}, 0.5, 2, 6), sampled({5}, -2, 2, 7)},
                         {});
  for (const char* op : {"SoftmaxGrad", "LogSoftmaxGrad"}) {
    const Tensor g = sampled({3, 4, 21}, -1, 1, 8), out = sampled({3, 4, 21}, 0.01, 0.2, 9);
    expect_float32_matches(op, {g, out}, {attr("axis", int64_t{-1})});
    expect_float32_matches(op, {g, out}, {attr("axis", int64_t{1})});
    expect_float32_matches(op, {g, out}, {attr("axis", int64_t{1}), attr("coerce_2d", int64_t{1})});
  }
}

// float32 Add/Sub/Mul/Div run on vector loops for the broadcasts that come down to rows (same shape or
// a single value: one flat row; a row repeated, a value per row, both stretched) and on the generic walk otherwise; sizes
// from 65,536 elements split among threads. Each must match the float64 kernel, rounded.
TEST(ElementwiseGrad, Float32ArithmeticMatchesFloat64OnEveryBroadcastPattern) {
  const std::vector<std::pair<std::vector<int64_t>, std::vector<int64_t>>> shapes = {
      {{70001}, {70001}},                 // one long row, threaded by columns
      {{1, 16, 56, 56}, {1, 16, 1, 1}},   // a value per channel row (NCHW)
      {{1, 56, 56, 16}, {1, 1, 1, 16}},   // a row repeated (NHWC scale, a bias)
      {{300, 300}, {}},                   // scalar, threaded by rows
      {{}, {5, 7}},                       // scalar first
      {{37, 1}, {1, 41}},                 // both stretched
      {{2, 3, 4}, {2, 1, 4}},             // three dims left after merging: the generic walk
      {{0, 3}, {3}},                      // empty
      {{2, 3}, {1, 1}},                   // one value of rank 2: the flat row, without coalescing
      {{1, 1, 1}, {4, 5}},                // the same, first
      {{1}, {1}},                         // one value each
      {{1, 70001}, {70001}},              // same sizes, different dims: coalesced
  };
  for (const char* op : {"Add", "Sub", "Mul", "Div"}) {
    for (size_t k = 0; k < shapes.size(); ++k) {
      SCOPED_TRACE(std::string(op) + " case " + std::to_string(k));
      const Tensor a = sampled(shapes[k].first, -2, 2, 10 + k), b = sampled(shapes[k].second, 0.5, 2, 20 + k);
      const Tensor wide = run_node("", op, {a, b}, {})[0].tensor();
      const Tensor low = run_node("", op, {f32_of(a), f32_of(b)}, {})[0].tensor();
      ASSERT_EQ(low.dims(), wide.dims());
      for (int64_t i = 0; i < wide.numel(); ++i) {
        const double w = wide.data_as<double>()[i];
        ASSERT_NEAR(low.data_as<float>()[i], w, 1e-6 * std::max(1.0, std::abs(w))) << "element " << i;
      }
    }
  }
}

// ---- Where and the variadic ops ---------------------------------------------------------------------

TEST(ElementwiseGrad, Where) {
  GradCase c = make_grad_case("Where", 17, {GradInput::constant(bools({2, 3, 4}, 7)), of({3, 1}), of({4})});
  check_gradient(c);
  GradCase same = make_grad_case("Where", 16, {GradInput::constant(bools({3, 1}, 3)), of({3, 4}), of({3, 4})});
  check_gradient(same);
}

TEST(ElementwiseGrad, SumAndMean) {
  for (const char* op : {"Sum", "Mean"}) {
    SCOPED_TRACE(op);
    check_gradient(make_grad_case(op, 13, {of({2, 3, 4}), of({3, 1}), of({4})}));
    check_gradient(make_grad_case(op, 8, {of({2, 3}), of({2, 3})}));
    check_gradient(make_grad_case(op, 13, {of({2, 3})}));
  }
}

TEST(ElementwiseGrad, MaxAndMin) {
  for (const char* op : {"Max", "Min"}) {
    SCOPED_TRACE(op);
    // Values of continuous distributions: ties between inputs have probability zero.
    check_gradient(make_grad_case(op, 13, {of({2, 3, 4}), of({3, 1}), of({4})}));
    check_gradient(make_grad_case(op, 9, {of({2, 3}), of({2, 3})}));
    check_gradient(make_grad_case(op, 13, {of({2, 3})}));
    EXPECT_EQ(tunnx::ops::GradientRegistry::global().find("", op, 8), nullptr) << "Where is needed";
  }
}

// ---- Ops a gradient stops at ------------------------------------------------------------------------

TEST(ElementwiseGrad, ComparisonLogicAndRoundingStopTheGradient) {
  using namespace tunnx;
  const std::vector<std::pair<const char*, size_t>> ops = {
      {"Equal", 2}, {"Less", 2},  {"LessOrEqual", 2}, {"Greater", 2}, {"GreaterOrEqual", 2},
      {"Not", 1},   {"And", 2},   {"Or", 2},          {"Xor", 2},     {"IsNaN", 1},
      {"IsInf", 1}, {"Sign", 1},  {"Floor", 1},       {"Ceil", 1},    {"Round", 1}};
  for (const auto& [op, arity] : ops) {
    SCOPED_TRACE(op);
    const ops::GradientRule* rule = ops::GradientRegistry::global().find("", op, 17);
    ASSERT_NE(rule, nullptr);
    for (size_t i = 0; i < arity; ++i) EXPECT_FALSE(rule->differentiable(i));
    ir::Graph g;
    g.inputs.emplace_back();
    g.inputs.back().name = "x";
    ir::Node n;
    n.name = "stop";
    n.op_type = op;
    n.inputs.assign(arity, "x");
    n.outputs = {"y"};
    g.nodes.push_back(n);
    ParameterStore store;
    train::GradientRequest request{.sources = {"x"}, .outputs = {"y"}, .seeds = {""}};
    train::GradientGraph grads = train::differentiate(g, {{"", 17}}, store, request);
    EXPECT_TRUE(grads.gradients[0].empty());
    EXPECT_EQ(grads.backward_nodes, 0u);
  }
}

// ---- Forward values of the opset 18+ elementwise ops, against hand-computed results. ----------

TEST(ElementwiseForward, BitwiseOpsBroadcast) {
  const Tensor a = Tensor::from_vector<int32_t>({2, 2}, {12, -1, 5, 0}), b = Tensor::from_vector<int32_t>({2}, {10, 3});
  EXPECT_EQ(values_of<int32_t>(run_node("", "BitwiseAnd", {a, b}, {}, 18)[0]), (std::vector<int32_t>{8, 3, 0, 0}));
  EXPECT_EQ(values_of<int32_t>(run_node("", "BitwiseOr", {a, b}, {}, 18)[0]), (std::vector<int32_t>{14, -1, 15, 3}));
  EXPECT_EQ(values_of<int32_t>(run_node("", "BitwiseXor", {a, b}, {}, 18)[0]), (std::vector<int32_t>{6, -4, 15, 3}));
  const Tensor x = Tensor::from_vector<uint8_t>({3}, {0, 255, 0x0f});
  EXPECT_EQ(values_of<uint8_t>(run_node("", "BitwiseNot", {x}, {}, 18)[0]), (std::vector<uint8_t>{255, 0, 0xf0}));
  const std::string why = error_of([] { run_node("", "BitwiseAnd", {f64({2}, {1, 2}), f64({2}, {3, 4})}, {}, 18); });
  EXPECT_NE(why.find("float64"), std::string::npos) << why;
}

TEST(ElementwiseForward, SignedBitShift) {
  const Tensor x = Tensor::from_vector<int8_t>({5}, {-8, 5, -1, 64, -8});
  const Tensor by = Tensor::from_vector<int8_t>({5}, {1, 1, 9, 1, -1});
  // RIGHT is arithmetic; a shift >= 8 or < 0 leaves the sign fill (-1 for a negative X).
  EXPECT_EQ(values_of<int8_t>(run_node("", "BitShift", {x, by}, {attr("direction", std::string("RIGHT"))}, 28)[0]),
            (std::vector<int8_t>{-4, 2, -1, 32, -1}));
  // LEFT wraps through the sign bit (64 << 1 is -128) and gives 0 for an out-of-range shift.
  EXPECT_EQ(values_of<int8_t>(run_node("", "BitShift", {x, by}, {attr("direction", std::string("LEFT"))}, 28)[0]),
            (std::vector<int8_t>{-16, 10, 0, -128, 0}));
  // Unsigned X stays a logical shift at opset 28.
  const Tensor u = Tensor::from_vector<uint8_t>({2}, {200, 200}), u_by = Tensor::from_vector<uint8_t>({2}, {1, 8});
  EXPECT_EQ(values_of<uint8_t>(run_node("", "BitShift", {u, u_by}, {attr("direction", std::string("RIGHT"))}, 28)[0]),
            (std::vector<uint8_t>{100, 0}));
  const std::string why =
      error_of([&] { run_node("", "BitShift", {x, by}, {attr("direction", std::string("UP"))}, 28); });
  EXPECT_NE(why.find("direction must be \"LEFT\" or \"RIGHT\""), std::string::npos) << why;
}

TEST(ElementwiseForward, SwishMishSwiGLU) {
  const double sig1 = 1 / (1 + std::exp(-1.0)), sig2 = 1 / (1 + std::exp(-2.0));
  auto swish = run_node("", "Swish", {f64({2}, {1, -1})}, {attr("alpha", 2.0f)}, 24);
  EXPECT_NEAR(values_of<double>(swish[0])[0], sig2, 1e-12);
  EXPECT_NEAR(values_of<double>(swish[0])[1], -(1 - sig2), 1e-12);
  auto mish = run_node("", "Mish", {f64({1}, {1})}, {}, 18);
  EXPECT_NEAR(values_of<double>(mish[0])[0], std::tanh(std::log1p(std::exp(1.0))), 1e-12);
  auto swiglu = run_node("", "SwiGLU", {f64({2}, {1, -2}), f64({2}, {3, 0.5})}, {}, 28);
  EXPECT_NEAR(values_of<double>(swiglu[0])[0], sig1 * 3, 1e-12);
  EXPECT_NEAR(values_of<double>(swiglu[0])[1], -2 * (1 - 1 / (1 + std::exp(-2.0))) * 0.5, 1e-12);
  const std::string why = error_of([] { run_node("", "SwiGLU", {f64({2}, {1, 2}), f64({1}, {3})}, {}, 28); });
  EXPECT_NE(why.find("A of shape [2] and B of shape [1] must have the same shape"), std::string::npos) << why;
}

}  // namespace
}  // namespace tunnx_test
