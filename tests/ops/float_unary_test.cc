// vector_loops' float_unary (the float32 loops of Sqrt, Floor, Ceil, Round, HardSigmoid, Softplus, Mish,
// Erf and Log) against the same functions in double precision: over random values from 1e-30 to 1e4 in
// magnitude, the edges where a formula changes (0.5 and 4 for Erf, 0 for Mish and Softplus, the
// subnormal exp below -87.3), halves for Round, and NaN and the infinities as the reference kernels
// (libm's calls, elementwise.cc) give them.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "runtime/cpu/kernels/vector_loops.h"

namespace {

using tunnx::cpu::FloatUnaryOp;

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

double softplus(double x) { return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x)); }

// Distance in units in the last place of `want` (float), counting a difference below 1e-35 as none:
// the loops' exp gives 0 below -87.3, where e^x is under 1.2e-38 (Mish's x e^x there under 1e-35).
double ulps(float got, double want) {
  if (std::isnan(want)) return std::isnan(got) ? 0 : 1e30;
  if (std::isinf(want)) return got == static_cast<float>(want) ? 0 : 1e30;
  const double diff = std::fabs(static_cast<double>(got) - want);
  if (diff < 1e-35) return 0;
  const float w = static_cast<float>(want);
  const double ulp = std::nextafter(std::fabs(w), kInf) - std::fabs(w);
  return diff / ulp;
}

std::vector<float> inputs() {
  std::vector<float> x = {0.0f, -0.0f, 1e-30f, -1e-30f, 1e-7f, -1e-7f, 0.49999997f, 0.5f, 0.50000006f, -0.5f,
                          3.9999998f, 4.0f, 4.0000005f, -4.0f, 20.0f, -20.0f, 87.0f, -87.0f, -87.4f, -88.0f,
                          -100.0f, -104.0f, 100.0f, 1e4f, -1e4f, 1.0f, -1.0f, 2.5f, -2.5f, 3.5f, 0.75f};
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> unit(-1.0f, 1.0f);
  std::uniform_int_distribution<int> exponent(-100, 13);
  for (int i = 0; i < 20000; ++i) {
    x.push_back(unit(rng) * 6.0f);                                    // where the functions bend
    x.push_back(std::ldexp(unit(rng), exponent(rng)));                // 1e-30 .. 1e4
  }
  return x;
}

void expect_close(FloatUnaryOp op, const char* name, double (*truth)(double), double max_ulps, float alpha = 0,
                  float beta = 0) {
  std::vector<float> x = inputs();
  std::vector<float> y(x.size());
  tunnx::cpu::float_unary(op, x.data(), y.data(), static_cast<int64_t>(x.size()), alpha, beta);
  double worst = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double e = ulps(y[i], truth(x[i]));
    EXPECT_LE(e, max_ulps) << name << "(" << x[i] << ") = " << y[i] << ", want " << truth(x[i]);
    worst = std::max(worst, e);
    if (e > max_ulps) return;  // one failure tells it
  }
  ::testing::Test::RecordProperty(std::string(name) + "_worst_ulps", std::to_string(worst));
}

float one(FloatUnaryOp op, float x, float alpha = 0, float beta = 0) {
  float y = 0;
  tunnx::cpu::float_unary(op, &x, &y, 1, alpha, beta);
  return y;
}

TEST(FloatUnary, ExactOpsMatchTheInstructions) {
  expect_close(FloatUnaryOp::kSqrt, "sqrt", [](double v) { return static_cast<double>(std::sqrt(static_cast<float>(v))); }, 0);
  expect_close(FloatUnaryOp::kFloor, "floor", [](double v) { return std::floor(v); }, 0);
  expect_close(FloatUnaryOp::kCeil, "ceil", [](double v) { return std::ceil(v); }, 0);
  // Ties to even: 2.5 -> 2, 3.5 -> 4, -2.5 -> -2, 0.5 -> 0.
  expect_close(FloatUnaryOp::kRoundHalfEven, "round", [](double v) { return std::nearbyint(v); }, 0);
  EXPECT_EQ(one(FloatUnaryOp::kRoundHalfEven, 2.5f), 2.0f);
  EXPECT_EQ(one(FloatUnaryOp::kRoundHalfEven, -3.5f), -4.0f);
  EXPECT_TRUE(std::isnan(one(FloatUnaryOp::kSqrt, -1.0f)));
  EXPECT_TRUE(std::isnan(one(FloatUnaryOp::kFloor, kNaN)));
  EXPECT_EQ(one(FloatUnaryOp::kCeil, -kInf), -kInf);
}

TEST(FloatUnary, HardSigmoidClampsAndNaNGivesOne) {
  const float alpha = 0.2f, beta = 0.5f;
  std::vector<float> x = inputs();
  std::vector<float> y(x.size());
  tunnx::cpu::float_unary(FloatUnaryOp::kHardSigmoid, x.data(), y.data(), static_cast<int64_t>(x.size()), alpha, beta);
  for (size_t i = 0; i < x.size(); ++i)  // within the rounding of alpha x + beta (fused or not)
    ASSERT_LE(ulps(y[i], std::fmax(0.0, std::fmin(1.0, static_cast<double>(alpha) * x[i] + beta))), 1.0) << x[i];
  EXPECT_EQ(one(FloatUnaryOp::kHardSigmoid, kNaN, alpha, beta), 1.0f);  // fmin(1, NaN) = 1
  EXPECT_EQ(one(FloatUnaryOp::kHardSigmoid, -kInf, alpha, beta), 0.0f);
}

TEST(FloatUnary, SoftplusMishErfAndLogStayWithinAFewUlp) {
  expect_close(FloatUnaryOp::kSoftplus, "softplus", softplus, 4);
  expect_close(FloatUnaryOp::kMish, "mish", [](double v) { return v * std::tanh(softplus(v)); }, 6);
  expect_close(FloatUnaryOp::kErf, "erf", [](double v) { return std::erf(v); }, 4);
  expect_close(FloatUnaryOp::kLog, "log", [](double v) { return std::log(v); }, 4);  // subnormals among them
  EXPECT_EQ(one(FloatUnaryOp::kLog, 0.0f), -kInf);
  EXPECT_EQ(one(FloatUnaryOp::kLog, -0.0f), -kInf);
  EXPECT_TRUE(std::isnan(one(FloatUnaryOp::kLog, -1.0f)));
  EXPECT_TRUE(std::isnan(one(FloatUnaryOp::kLog, -kInf)));
  EXPECT_EQ(one(FloatUnaryOp::kLog, kInf), kInf);
  EXPECT_EQ(one(FloatUnaryOp::kLog, 1.0f), 0.0f);
  const float smallest = std::numeric_limits<float>::denorm_min();
  EXPECT_NEAR(one(FloatUnaryOp::kLog, smallest), std::log(static_cast<double>(smallest)), 1e-5);
  for (FloatUnaryOp op : {FloatUnaryOp::kSoftplus, FloatUnaryOp::kMish, FloatUnaryOp::kErf, FloatUnaryOp::kLog})
    EXPECT_TRUE(std::isnan(one(op, kNaN)));
  EXPECT_EQ(one(FloatUnaryOp::kSoftplus, kInf), kInf);
  EXPECT_EQ(one(FloatUnaryOp::kSoftplus, -kInf), 0.0f);
  EXPECT_EQ(one(FloatUnaryOp::kMish, kInf), kInf);
  EXPECT_TRUE(std::isnan(one(FloatUnaryOp::kMish, -kInf)));  // -inf * tanh(0), as the formula gives
  EXPECT_EQ(one(FloatUnaryOp::kErf, kInf), 1.0f);
  EXPECT_EQ(one(FloatUnaryOp::kErf, -kInf), -1.0f);
  // Tiny inputs keep their digits: softplus(-30) = e^-30, mish(-1e-30) = -1e-30 * tanh(log 2).
  EXPECT_NEAR(one(FloatUnaryOp::kSoftplus, -30.0f), std::exp(-30.0), 1e-6 * std::exp(-30.0));
  EXPECT_NEAR(one(FloatUnaryOp::kMish, -1e-30f), -1e-30 * std::tanh(std::log(2.0)), 1e-36);
}

// Sigmoid and SiLU from e^-|x|, which is 0 below -87.3: where the true value is subnormal (x below
// about -87) they give 0 or a value within FLT_MIN of it; elsewhere within a few ulp.
TEST(FloatUnary, SigmoidAndSiluStayWithinAFewUlp) {
  const auto sigmoid = [](double v) { return 1.0 / (1.0 + std::exp(-v)); };
  const std::vector<float> x = inputs();
  for (const FloatUnaryOp op : {FloatUnaryOp::kSigmoid, FloatUnaryOp::kSilu}) {
    std::vector<float> y(x.size());
    tunnx::cpu::float_unary(op, x.data(), y.data(), static_cast<int64_t>(x.size()));
    for (size_t i = 0; i < x.size(); ++i) {
      const double v = x[i], want = op == FloatUnaryOp::kSilu ? v * sigmoid(v) : sigmoid(v);
      if (std::fabs(want) < std::numeric_limits<float>::min())
        ASSERT_LE(std::fabs(y[i] - want), std::numeric_limits<float>::min()) << x[i];
      else
        ASSERT_LE(ulps(y[i], want), 4.0) << (op == FloatUnaryOp::kSilu ? "silu(" : "sigmoid(") << x[i] << ") = " << y[i];
    }
    EXPECT_TRUE(std::isnan(one(op, kNaN)));
  }
  EXPECT_EQ(one(FloatUnaryOp::kSigmoid, kInf), 1.0f);
  EXPECT_EQ(one(FloatUnaryOp::kSigmoid, -kInf), 0.0f);
  EXPECT_EQ(one(FloatUnaryOp::kSilu, kInf), kInf);
  EXPECT_TRUE(std::isnan(one(FloatUnaryOp::kSilu, -kInf)));  // -inf * 0, as the standalone ops give
  EXPECT_EQ(one(FloatUnaryOp::kSilu, -1e-30f), -0.5e-30f);
}

TEST(FloatUnary, InPlaceAndTails) {
  for (int64_t n : {1, 15, 16, 17, 33}) {
    std::vector<float> x(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) x[static_cast<size_t>(i)] = static_cast<float>(i) * 0.37f - 3.0f;
    std::vector<float> want(x.size());
    tunnx::cpu::float_unary(FloatUnaryOp::kMish, x.data(), want.data(), n);
    tunnx::cpu::float_unary(FloatUnaryOp::kMish, x.data(), x.data(), n);
    EXPECT_EQ(x, want) << n;
  }
}

}  // namespace
