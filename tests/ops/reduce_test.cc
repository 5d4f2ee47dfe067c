// Gradient checks of the reduce family: Reduce* with axes as an attribute and as an input (keepdims 0
// and 1, all axes, noop_with_empty_axes), Softmax/LogSoftmax before and after opset 13, CumSum, and
// the ops a gradient stops at. ReduceMax/Min inputs have no ties; a direct kernel test covers ties.
#include <gtest/gtest.h>

#include "runtime/core/float16.h"
#include "tests/ops/grad_check.h"

namespace tunnx_test {
namespace {

using tunnx::ops::attr;

GradInput of(std::vector<int64_t> dims, double lo = -2, double hi = 2) {
  return GradInput::of(std::move(dims), lo, hi);
}
GradInput axes(std::vector<int64_t> values) {
  const int64_t n = static_cast<int64_t>(values.size());
  return GradInput::constant(i64({n}, std::move(values)));
}
tunnx::ir::Attribute keepdims(int64_t k) { return attr("keepdims", k); }
tunnx::ir::Attribute axes_attr(std::vector<int64_t> a) { return attr("axes", a); }

// Every form of a reduction's axes, for an op whose axes became an input at `since`; `x` samples X.
void check_reduction(const std::string& op, int64_t since, const GradInput& x) {
  SCOPED_TRACE(op);
  const int64_t before = since - 1;
  check_gradient(make_grad_case(op, before, {x}, {axes_attr({1})}));
  check_gradient(make_grad_case(op, before, {x}, {axes_attr({1}), keepdims(0)}));
  check_gradient(make_grad_case(op, before, {x}, {axes_attr({0, -1}), keepdims(0)}));
  check_gradient(make_grad_case(op, before, {x}));               // all axes, kept
  check_gradient(make_grad_case(op, before, {x}, {keepdims(0)}));  // all axes, to a scalar
  check_gradient(make_grad_case(op, since, {x, axes({1})}));
  check_gradient(make_grad_case(op, since, {x, axes({-1, 0})}, {keepdims(0)}));
  check_gradient(make_grad_case(op, since, {x}, {keepdims(0)}));                   // no axes input: all axes
  check_gradient(make_grad_case(op, since, {x, axes({})}, {keepdims(1)}));           // empty axes: all axes
  check_gradient(make_grad_case(op, since, {x}, {attr("noop_with_empty_axes", int64_t{1})}));  // the identity
}

TEST(ReduceGrad, ReduceSum) { check_reduction("ReduceSum", 13, of({2, 3, 4})); }
TEST(ReduceGrad, ReduceMean) { check_reduction("ReduceMean", 18, of({2, 3, 4})); }
TEST(ReduceGrad, ReduceMax) { check_reduction("ReduceMax", 18, of({2, 3, 4}).no_ties()); }
TEST(ReduceGrad, ReduceMin) { check_reduction("ReduceMin", 18, of({2, 3, 4}).no_ties()); }
TEST(ReduceGrad, ReduceSumSquare) { check_reduction("ReduceSumSquare", 18, of({2, 3, 4})); }
TEST(ReduceGrad, ReduceL2) { check_reduction("ReduceL2", 18, of({2, 3, 4}, 0.2, 2)); }
TEST(ReduceGrad, ReduceL1) { check_reduction("ReduceL1", 18, of({2, 3, 4}).away_from({0})); }
TEST(ReduceGrad, ReduceLogSum) { check_reduction("ReduceLogSum", 18, of({2, 3, 4}, 0.2, 2)); }
TEST(ReduceGrad, ReduceLogSumExp) { check_reduction("ReduceLogSumExp", 18, of({2, 3, 4})); }

TEST(ReduceGrad, ReduceSumOpset11And13) {
  check_gradient(make_grad_case("ReduceSum", 11, {of({3, 5})}, {axes_attr({0}), keepdims(1)}));
  check_gradient(make_grad_case("ReduceSum", 11, {of({3, 5})}, {axes_attr({0}), keepdims(0)}));
  check_gradient(make_grad_case("ReduceSum", 13, {of({3, 5}), axes({0})}, {keepdims(1)}));
  check_gradient(make_grad_case("ReduceSum", 13, {of({3, 5}), axes({0})}, {keepdims(0)}));
  check_gradient(make_grad_case("ReduceSum", 1, {of({3, 5})}, {axes_attr({1})}));
}

TEST(ReduceGrad, Softmax) {
  for (const char* op : {"Softmax", "LogSoftmax"}) {
    SCOPED_TRACE(op);
    // Opset 11: coerced to 2-D at axis (default 1): rows of 12 here.
    check_gradient(make_grad_case(op, 11, {of({2, 3, 4})}));
    check_gradient(make_grad_case(op, 11, {of({2, 3, 4})}, {attr("axis", int64_t{2})}));
    check_gradient(make_grad_case(op, 11, {of({2, 3, 4})}, {attr("axis", int64_t{-3})}));
    check_gradient(make_grad_case(op, 1, {of({3, 4})}));
    // Opset 13: along the axis (default -1); axis 1 sums across a strided axis.
    check_gradient(make_grad_case(op, 13, {of({2, 3, 4})}));
    check_gradient(make_grad_case(op, 13, {of({2, 3, 4})}, {attr("axis", int64_t{1})}));
    check_gradient(make_grad_case(op, 13, {of({2, 3, 4})}, {attr("axis", int64_t{0})}));
    check_gradient(make_grad_case(op, 13, {of({5})}));
  }
}

TEST(ReduceGrad, CumSum) {
  for (int64_t exclusive : {0, 1})
    for (int64_t reverse : {0, 1}) {
      SCOPED_TRACE("exclusive " + std::to_string(exclusive) + " reverse " + std::to_string(reverse));
      check_gradient(make_grad_case("CumSum", 14, {of({3, 4}), GradInput::constant(i64({}, {1}))},
                                    {attr("exclusive", exclusive), attr("reverse", reverse)}));
      check_gradient(make_grad_case("CumSum", 11, {of({3, 4}), GradInput::constant(i64({}, {-2}))},
                                    {attr("exclusive", exclusive), attr("reverse", reverse)}));
    }
}

TEST(ReduceGrad, ReduceMaxGradSplitsTiesEqually) {
  // X [2,3]; max over axis 1: row 0 has a double tie at 5, row 1 a single maximum.
  const Tensor x = f64({2, 3}, {5, 1, 5, 0, 7, 2});
  const Tensor y = f64({2, 1}, {5, 7});
  const Tensor dy = f64({2, 1}, {4, 3});
  std::vector<tunnx::Value> out = run_node("com.tunnx", "ReduceMaxGrad", {dy, x, y}, {axes_attr({1})});
  const double* dx = out[0].tensor().data_as<double>();
  const std::vector<double> expected = {2, 0, 2, 0, 3, 0};
  for (size_t i = 0; i < expected.size(); ++i) EXPECT_EQ(dx[i], expected[i]) << "element " << i;
}

TEST(ReduceGrad, ReduceGradRejectsAWrongShape) {
  try {
    run_node("com.tunnx", "ReduceGrad", {f64({2}, {1, 2}), i64({2}, {2, 3})}, {axes_attr({1})});
    FAIL() << "expected an error";
  } catch (const tunnx::Error& e) {
    EXPECT_NE(std::string(e.what()).find("dY has shape [2], the reduction of [2,3] gives [2,1]"), std::string::npos)
        << e.what();
  }
}

TEST(ReduceGrad, ArgMaxArgMinHardmaxStopTheGradient) {
  for (const char* op : {"ArgMax", "ArgMin", "Hardmax"}) {
    SCOPED_TRACE(op);
    const tunnx::ops::GradientRule* rule = tunnx::ops::GradientRegistry::global().find("", op, 13);
    ASSERT_NE(rule, nullptr);
    EXPECT_FALSE(rule->differentiable(0));
  }
}

TEST(ReduceForward, CumProd) {
  const Tensor x = i64({2, 3}, {1, 2, 3, 4, 5, 6});
  EXPECT_EQ(values_of<int64_t>(run_node("", "CumProd", {x, i64({}, {1})}, {}, 26)[0]),
            (std::vector<int64_t>{1, 2, 6, 4, 20, 120}));
  const std::vector<tunnx::ir::Attribute> reverse_exclusive = {attr("reverse", int64_t{1}),
                                                               attr("exclusive", int64_t{1})};
  EXPECT_EQ(values_of<int64_t>(run_node("", "CumProd", {x, i64({}, {-1})}, reverse_exclusive, 26)[0]),
            (std::vector<int64_t>{6, 3, 1, 30, 6, 1}));
  EXPECT_EQ(values_of<double>(run_node("", "CumProd", {f64({3}, {2, -0.5, 3}), i64({}, {0})}, {}, 26)[0]),
            (std::vector<double>{2, -1, -3}));
  const std::string why = error_of([&] { run_node("", "CumProd", {x, i64({2}, {0, 1})}, {}, 26); });
  EXPECT_NE(why.find("axis must be a single value, got shape [2]"), std::string::npos) << why;
}

// bfloat16 Softmax as numpy (the ONNX reference) computes it: x - max, exp, the running sum and the
// quotient each rounded to bfloat16. Rounding only at the end gives 0.4140625 for the last value.
TEST(ReduceForward, SoftmaxOfBFloat16RoundsEveryStep) {
  Tensor x(DataType::kBFloat16, {3});
  const float in[] = {0.91015625f, 0.62890625f, 1.125f};
  for (int i = 0; i < 3; ++i) static_cast<tunnx::BFloat16*>(x.mutable_data())[i] = tunnx::BFloat16(in[i]);
  const Tensor y = run_node("", "Softmax", {x}, {}, 13)[0].tensor();
  ASSERT_EQ(y.dtype(), DataType::kBFloat16);
  const auto* out = static_cast<const tunnx::BFloat16*>(y.data());
  EXPECT_EQ(static_cast<float>(out[0]), 0.333984375f);
  EXPECT_EQ(static_cast<float>(out[1]), 0.251953125f);
  EXPECT_EQ(static_cast<float>(out[2]), 0.412109375f);
}

}  // namespace
}  // namespace tunnx_test
