// RotaryEmbedding (opset 23) against hand-computed rotations: halves and interleaved pairs, 4-D and
// 3-D X, with and without position_ids.
#include <gtest/gtest.h>

#include "tests/ops/grad_check.h"

namespace tunnx_test {
namespace {

using tunnx::ops::attr;

Tensor f32(std::vector<int64_t> dims, std::vector<float> values) {
  return Tensor::from_vector<float>(std::move(dims), values);
}

// One head of 4 values {1, 2, 3, 4}; angle 90 degrees for the first pair, 0 for the second.
TEST(AttentionForward, RotaryEmbeddingRotatesPairs) {
  const Tensor x = f32({1, 1, 1, 4}, {1, 2, 3, 4});  // [batch, heads, seq, head_size]
  const Tensor cos = f32({1, 1, 2}, {0, 1}), sin = f32({1, 1, 2}, {1, 0});
  // Halves: pairs (x[0], x[2]) and (x[1], x[3]).
  EXPECT_EQ(values_of<float>(run_node("", "RotaryEmbedding", {x, cos, sin}, {}, 23)[0]),
            (std::vector<float>{-3, 2, 1, 4}));
  // Interleaved: pairs (x[0], x[1]) and (x[2], x[3]).
  EXPECT_EQ(values_of<float>(run_node("", "RotaryEmbedding", {x, cos, sin}, {attr("interleaved", int64_t{1})}, 23)[0]),
            (std::vector<float>{-2, 1, 3, 4}));
  // 3-D X [batch, seq, heads * head_size] with position_ids picking row 1 of [2, 2] caches.
  const Tensor x3 = f32({1, 1, 4}, {1, 2, 3, 4});
  const Tensor cos_rows = f32({2, 2}, {1, 1, 0, 1}), sin_rows = f32({2, 2}, {0, 0, 1, 0});
  EXPECT_EQ(values_of<float>(run_node("", "RotaryEmbedding", {x3, cos_rows, sin_rows, i64({1, 1}, {1})},
                                      {attr("num_heads", int64_t{1})}, 23)[0]),
            (std::vector<float>{-3, 2, 1, 4}));
  const std::string why = error_of([&] { run_node("", "RotaryEmbedding", {x3, cos, sin}, {}, 23); });
  EXPECT_NE(why.find("a 3-D X needs num_heads dividing its hidden size 4"), std::string::npos) << why;
}

}  // namespace
}  // namespace tunnx_test
