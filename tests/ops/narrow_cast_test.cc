// Cast, CastLike, QuantizeLinear and DequantizeLinear with the narrow types (float8, float4, int4,
// int2) against hand-worked codes: `saturate`, `round_mode`, packed outputs, zero points.
#include <cmath>

#include <gtest/gtest.h>

#include "runtime/core/narrow_types.h"
#include "tests/ops/grad_check.h"

namespace tunnx_test {
namespace {

using tunnx::DataType;
using tunnx::ops::attr;

Tensor f32(std::vector<int64_t> dims, std::vector<float> values) { return Tensor::from_vector<float>(std::move(dims), values); }

std::vector<int> codes_of(const tunnx::Value& v) {
  const Tensor& t = v.tensor();
  std::vector<int> out;
  for (int64_t i = 0; i < t.numel(); ++i) out.push_back(tunnx::read_code(t.dtype(), t.data(), i));
  return out;
}

std::vector<int> ints_of(const tunnx::Value& v) {
  std::vector<int> out;
  for (int c : codes_of(v)) out.push_back(tunnx::packed_integer_value(v.tensor().dtype(), static_cast<uint8_t>(c)));
  return out;
}

Tensor packed(DataType dtype, std::vector<int64_t> values) {
  Tensor t(dtype, {static_cast<int64_t>(values.size())});
  for (size_t i = 0; i < values.size(); ++i)
    tunnx::write_code(dtype, t.mutable_data(), static_cast<int64_t>(i), tunnx::packed_integer_code(dtype, values[i]));
  return t;
}

auto to(DataType dtype) { return attr("to", static_cast<int64_t>(dtype)); }

TEST(NarrowCast, FloatToInt4TruncatesAndGivesZeroOutOfRange) {
  // As ONNX's reference (ml_dtypes): truncation toward zero, 0 outside [-8, 7], NaN 0.
  const Tensor x = f32({6}, {-9.f, -8.f, -2.7f, 7.9f, 8.f, NAN});
  const tunnx::Value y = run_node("", "Cast", {x}, {to(DataType::kInt4)}, 21)[0];
  EXPECT_EQ(y.tensor().dtype(), DataType::kInt4);
  EXPECT_EQ(y.tensor().nbytes(), 3u);
  EXPECT_EQ(ints_of(y), (std::vector<int>{0, -8, -2, 7, 0, 0}));
  // Integers keep their low bits, as integer narrowing does.
  const Tensor i = Tensor::from_vector<int32_t>({3}, {-9, 300, 5});
  EXPECT_EQ(ints_of(run_node("", "Cast", {i}, {to(DataType::kInt4)}, 21)[0]), (std::vector<int>{7, -4, 5}));
  // And back, through CastLike: int4 widens exactly.
  const Tensor like = Tensor::from_vector<float>({1}, {0.f});
  EXPECT_EQ(values_of<float>(run_node("", "CastLike", {packed(DataType::kInt4, {-8, 7, -1}), like}, {}, 21)[0]),
            (std::vector<float>{-8, 7, -1}));
}

TEST(NarrowCast, Float8SaturatesUnlessToldNot) {
  const Tensor x = f32({3}, {1000.f, -INFINITY, 0.3f});
  const tunnx::Value saturated = run_node("", "Cast", {x}, {to(DataType::kFloat8E4M3FN)}, 19)[0];
  EXPECT_EQ(codes_of(saturated), (std::vector<int>{0x7e, 0xfe, 0x2a}));  // 448, -448, 0.3125
  const tunnx::Value raw =
      run_node("", "Cast", {x}, {to(DataType::kFloat8E4M3FN), attr("saturate", int64_t{0})}, 19)[0];
  EXPECT_EQ(codes_of(raw), (std::vector<int>{0x7f, 0xff, 0x2a}));  // NaN, -NaN
  EXPECT_EQ(values_of<float>(run_node("", "Cast", {saturated.tensor()}, {to(DataType::kFloat32)}, 19)[0]),
            (std::vector<float>{448.f, -448.f, 0.3125f}));
}

TEST(NarrowCast, E8M0FollowsRoundMode) {
  const Tensor x = f32({2}, {1.5f, 3.f});
  EXPECT_EQ(codes_of(run_node("", "Cast", {x}, {to(DataType::kFloat8E8M0)}, 24)[0]), (std::vector<int>{128, 129}));
  EXPECT_EQ(codes_of(run_node("", "Cast", {x}, {to(DataType::kFloat8E8M0), attr("round_mode", std::string("down"))}, 24)[0]),
            (std::vector<int>{127, 128}));
  const std::string why = error_of([&] {
    run_node("", "Cast", {x}, {to(DataType::kFloat8E8M0), attr("round_mode", std::string("sideways"))}, 24);
  });
  EXPECT_NE(why.find("round_mode must be 'up', 'down' or 'nearest', got 'sideways'"), std::string::npos) << why;
}

TEST(NarrowCast, StringsAndNarrowTypesAreRefusedByName) {
  const Tensor s = Tensor::from_vector<std::string>({1}, {"1.5"});
  const std::string why = error_of([&] { run_node("", "Cast", {s}, {to(DataType::kFloat8E5M2)}, 19); });
  EXPECT_NE(why.find("Cast from string to float8e5m2 is not supported"), std::string::npos) << why;
}

TEST(NarrowQuantize, Int4WithZeroPointSaturatesToItsRange) {
  // round(x / 2) + zp(-2), clipped to [-8, 7].
  const Tensor x = f32({5}, {-40.f, -3.f, 1.f, 5.f, 40.f});
  const Tensor scale = f32({}, {2.f});
  Tensor zp(DataType::kInt4, {});
  tunnx::write_code(DataType::kInt4, zp.mutable_data(), 0, tunnx::packed_integer_code(DataType::kInt4, -2));
  const tunnx::Value q = run_node("", "QuantizeLinear", {x, scale, zp}, {}, 21)[0];
  EXPECT_EQ(q.tensor().dtype(), DataType::kInt4);
  EXPECT_EQ(ints_of(q), (std::vector<int>{-8, -4, -2, 0, 7}));  // -1.5 -> -2, 0.5 -> 0 (half to even)
  const tunnx::Value back = run_node("", "DequantizeLinear", {q.tensor(), scale, zp}, {}, 21)[0];
  EXPECT_EQ(values_of<float>(back), (std::vector<float>{-12.f, -4.f, 0.f, 4.f, 18.f}));
}

TEST(NarrowQuantize, Float8OutputIgnoresNoZeroPointButRefusesANonZeroOne) {
  const Tensor x = f32({2}, {1000.f, 0.5f});
  const Tensor scale = f32({}, {1.f});
  Tensor zp(DataType::kFloat8E4M3FN, {});
  EXPECT_EQ(codes_of(run_node("", "QuantizeLinear", {x, scale, zp}, {}, 19)[0]), (std::vector<int>{0x7e, 0x30}));
  EXPECT_EQ(codes_of(run_node("", "QuantizeLinear", {x, scale, zp}, {attr("saturate", int64_t{0})}, 19)[0]),
            (std::vector<int>{0x7f, 0x30}));
  tunnx::write_code(DataType::kFloat8E4M3FN, zp.mutable_data(), 0, 0x38);  // 1.0
  const std::string why = error_of([&] { run_node("", "QuantizeLinear", {x, scale, zp}, {}, 19); });
  EXPECT_NE(why.find("a float8e4m3fn zero point must be 0"), std::string::npos) << why;
}

TEST(NarrowViews, ReshapeKeepsThePackingAndElementwiseOpsRefuseByName) {
  const Tensor q = packed(DataType::kInt4, {1, -2, 3, -4});
  const tunnx::Value r = run_node("", "Reshape", {q, Tensor::from_vector<int64_t>({2}, {2, 2})}, {}, 21)[0];
  EXPECT_EQ(r.tensor().dims(), (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(ints_of(r), (std::vector<int>{1, -2, 3, -4}));
  const std::string why = error_of([&] { run_node("", "Neg", {q}, {}, 21); });
  EXPECT_NE(why.find("int4"), std::string::npos) << why;
}

}  // namespace
}  // namespace tunnx_test
