// vector_loops' lstm_cell (DynamicQuantizeLSTM's common step) against the cell written out with libm's
// exp and tanh, over gates from -100 to 100 and down to 1e-30, with input_forget, and NaN carried.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "runtime/cpu/kernels/vector_loops.h"

namespace {

float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

TEST(LstmCell, MatchesTheCellWrittenWithLibm) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (bool input_forget : {false, true}) {
    const int64_t n = 203;  // past the vector width, with a tail
    std::vector<float> gates(static_cast<size_t>(4 * n)), c(static_cast<size_t>(n)), h(static_cast<size_t>(n));
    for (size_t i = 0; i < gates.size(); ++i) {
      const float scale = i % 7 == 0 ? 100.0f : i % 7 == 1 ? 1e-3f : i % 7 == 2 ? 1e-30f : 4.0f;
      gates[i] = u(rng) * scale;
    }
    for (auto& v : c) v = u(rng) * 3.0f;
    std::vector<float> want_c = c, want_h(static_cast<size_t>(n));
    for (int64_t j = 0; j < n; ++j) {
      const float i = sigmoid(gates[static_cast<size_t>(j)]), o = sigmoid(gates[static_cast<size_t>(n + j)]);
      const float f = input_forget ? 1.0f - i : sigmoid(gates[static_cast<size_t>(2 * n + j)]);
      want_c[static_cast<size_t>(j)] = f * want_c[static_cast<size_t>(j)] + i * std::tanh(gates[static_cast<size_t>(3 * n + j)]);
      want_h[static_cast<size_t>(j)] = o * std::tanh(want_c[static_cast<size_t>(j)]);
    }
    tunnx::cpu::lstm_cell(gates.data(), c.data(), h.data(), n, input_forget);
    for (int64_t j = 0; j < n; ++j) {
      EXPECT_NEAR(c[static_cast<size_t>(j)], want_c[static_cast<size_t>(j)], 2e-6f * (1.0f + std::fabs(want_c[static_cast<size_t>(j)]))) << j;
      EXPECT_NEAR(h[static_cast<size_t>(j)], want_h[static_cast<size_t>(j)], 2e-6f) << j;
    }
  }
  // Tiny gates keep tanh's value (no cancellation to 0), and a NaN gate gives NaN, as libm's do.
  std::vector<float> gates = {0.0f, 0.0f, 0.0f, 1e-20f}, c = {0.0f}, h = {0.0f};
  tunnx::cpu::lstm_cell(gates.data(), c.data(), h.data(), 1, false);
  EXPECT_FLOAT_EQ(c[0], 0.5f * 1e-20f);
  gates = {std::numeric_limits<float>::quiet_NaN(), 0.0f, 0.0f, 0.0f};
  c = {1.0f};
  tunnx::cpu::lstm_cell(gates.data(), c.data(), h.data(), 1, false);
  EXPECT_TRUE(std::isnan(c[0]) && std::isnan(h[0]));
}

}  // namespace
