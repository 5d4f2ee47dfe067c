// The narrow element types: float8/float4 codes against hand-worked values (rounding half to even,
// saturation, each type's specials), E8M0's three rounding modes, and ONNX's packing of int4/int2.
#include "runtime/core/narrow_types.h"

#include <cmath>
#include <limits>

#include <gtest/gtest.h>

#include "importer/tensor_proto.h"
#include "onnx/onnx_pb.h"

namespace tunnx {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

uint8_t code(DataType t, float x, bool saturate = true) { return narrow_float_code(t, x, saturate); }

TEST(NarrowTypes, Float8E4M3FNRoundsHalfToEvenAndHasNoInfinity) {
  const DataType t = DataType::kFloat8E4M3FN;
  EXPECT_EQ(code(t, 1.0f), 0x38);                    // exponent 7 (bias 7), mantissa 0
  EXPECT_EQ(code(t, 448.0f), 0x7e);                  // the largest finite value, S.1111.110
  EXPECT_EQ(code(t, 464.0f, false), 0x7e);           // halfway to 480: even mantissa 110 wins
  EXPECT_EQ(code(t, 480.0f, false), 0x7f);           // beyond the range: NaN without saturation
  EXPECT_EQ(code(t, 480.0f), 0x7e);                  // the largest value with it
  EXPECT_EQ(code(t, -kInf, false), 0xff);            // -NaN
  EXPECT_EQ(code(t, -kInf), 0xfe);                   // -448
  EXPECT_EQ(code(t, -0.0f), 0x80);                   // -0 exists
  EXPECT_EQ(code(t, std::ldexp(1.0f, -9)), 0x01);    // the smallest subnormal
  EXPECT_EQ(code(t, std::ldexp(1.0f, -10)), 0x00);   // half of it: ties to even, 0
  EXPECT_EQ(code(t, std::ldexp(3.0f, -10)), 0x02);   // 1.5 of it rounds to 2 (even)
  EXPECT_EQ(narrow_float_value(t, 0x7e), 448.0f);
  EXPECT_EQ(narrow_float_value(t, 0x01), std::ldexp(1.0f, -9));
  EXPECT_TRUE(std::isnan(narrow_float_value(t, 0x7f)));
}

TEST(NarrowTypes, FnuzTypesHaveOneNaNAndNoNegativeZero) {
  EXPECT_EQ(code(DataType::kFloat8E4M3FNUZ, -0.0f), 0x00);
  EXPECT_EQ(code(DataType::kFloat8E4M3FNUZ, -1e-7f), 0x00);
  EXPECT_EQ(code(DataType::kFloat8E4M3FNUZ, kNaN), 0x80);
  EXPECT_EQ(code(DataType::kFloat8E4M3FNUZ, 1000.0f), 0x7f);  // 240 saturated
  EXPECT_EQ(code(DataType::kFloat8E4M3FNUZ, 1000.0f, false), 0x80);
  EXPECT_EQ(narrow_float_value(DataType::kFloat8E4M3FNUZ, 0x7f), 240.0f);
  EXPECT_EQ(code(DataType::kFloat8E5M2FNUZ, 1.0f), 0x40);  // bias 16
  EXPECT_TRUE(std::isnan(narrow_float_value(DataType::kFloat8E5M2FNUZ, 0x80)));
}

TEST(NarrowTypes, Float8E5M2HasIeeeInfinities) {
  const DataType t = DataType::kFloat8E5M2;
  EXPECT_EQ(code(t, 1.0f), 0x3c);
  EXPECT_EQ(code(t, kInf, false), 0x7c);
  EXPECT_EQ(code(t, 1e6f, false), 0x7c);
  EXPECT_EQ(code(t, 1e6f), 0x7b);  // 57344
  EXPECT_EQ(narrow_float_value(t, 0x7b), 57344.0f);
  EXPECT_EQ(narrow_float_value(t, 0xfc), -kInf);
}

TEST(NarrowTypes, Float4E2M1AlwaysSaturates) {
  const DataType t = DataType::kFloat4E2M1;
  EXPECT_EQ(code(t, 0.25f), 0x0);  // halfway between 0 and 0.5: even
  EXPECT_EQ(code(t, 0.75f), 0x2);  // halfway between 0.5 and 1: 1.0
  EXPECT_EQ(code(t, 5.0f), 0x6);   // halfway between 4 and 6: 4
  EXPECT_EQ(code(t, -3.5f), 0xe);  // -4
  EXPECT_EQ(code(t, kInf, false), 0x7);
  EXPECT_EQ(narrow_float_value(t, 0x7), 6.0f);
  EXPECT_EQ(narrow_float_value(t, 0x9), -0.5f);
}

TEST(NarrowTypes, E8M0RoundsUpDownOrNearest) {
  const DataType t = DataType::kFloat8E8M0;
  EXPECT_EQ(narrow_float_code(t, 1.0f, true, E8M0Rounding::kUp), 127);
  EXPECT_EQ(narrow_float_code(t, 1.5f, true, E8M0Rounding::kUp), 128);
  EXPECT_EQ(narrow_float_code(t, 1.5f, true, E8M0Rounding::kDown), 127);
  EXPECT_EQ(narrow_float_code(t, 1.25f, true, E8M0Rounding::kNearest), 127);
  EXPECT_EQ(narrow_float_code(t, 1.75f, true, E8M0Rounding::kNearest), 128);
  EXPECT_EQ(narrow_float_code(t, 3e38f, true, E8M0Rounding::kUp), 0xfe);  // saturated below NaN
  EXPECT_EQ(narrow_float_code(t, 3e38f, false, E8M0Rounding::kUp), 0xff);
  EXPECT_EQ(narrow_float_value(t, 130), 8.0f);
  EXPECT_THROW(e8m0_rounding_from_string("sideways"), Error);
}

TEST(NarrowTypes, SubByteTypesKeepOnnxPacking) {
  EXPECT_EQ(storage_bytes(DataType::kInt4, 3), 2u);
  EXPECT_EQ(storage_bytes(DataType::kUInt2, 5), 2u);
  EXPECT_EQ(storage_bytes(DataType::kFloat8E5M2, 5), 5u);
  Tensor t(DataType::kInt4, {3});
  ASSERT_EQ(t.nbytes(), 2u);
  write_code(DataType::kInt4, t.mutable_data(), 0, packed_integer_code(DataType::kInt4, -1));
  write_code(DataType::kInt4, t.mutable_data(), 1, packed_integer_code(DataType::kInt4, 7));
  write_code(DataType::kInt4, t.mutable_data(), 2, packed_integer_code(DataType::kInt4, -8));
  const auto* bytes = static_cast<const uint8_t*>(t.data());
  EXPECT_EQ(bytes[0], 0x7f);  // first element in the low nibble
  EXPECT_EQ(bytes[1], 0x08);  // padding nibble stays 0
  EXPECT_EQ(packed_integer_value(DataType::kInt4, read_code(DataType::kInt4, bytes, 2)), -8);
  Tensor two(DataType::kInt2, {4});
  for (int i = 0; i < 4; ++i) write_code(DataType::kInt2, two.mutable_data(), i, packed_integer_code(DataType::kInt2, i - 2));
  EXPECT_EQ(static_cast<const uint8_t*>(two.data())[0], 0b01'00'11'10);  // -2, -1, 0, 1 from the low bits
  const std::string why = [] {
    try {
      element_size(DataType::kUInt4);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  }();
  EXPECT_NE(why.find("uint4 packs 2 elements per byte"), std::string::npos) << why;
}

TEST(NarrowTypes, TensorProtoReadsPackedRawDataAndInt32Data) {
  onnx::TensorProto proto;
  proto.set_name("w");
  proto.set_data_type(static_cast<int32_t>(DataType::kInt4));  // Debian's onnx.proto predates INT4
  proto.add_dims(3);
  proto.set_raw_data(std::string("\x7f\x08", 2));
  Tensor t = tensor_from_proto(proto, {});
  EXPECT_EQ(packed_integer_value(DataType::kInt4, read_code(DataType::kInt4, t.data(), 1)), 7);
  onnx::TensorProto round_trip;
  tensor_to_proto(t, &round_trip);
  EXPECT_EQ(round_trip.raw_data(), proto.raw_data());

  proto.clear_raw_data();  // int32_data: one packed byte per entry for 4-bit types
  proto.add_int32_data(0x7f);
  proto.add_int32_data(0x08);
  EXPECT_TRUE(tensor_from_proto(proto, {}).equals(t));

  proto.clear_int32_data();
  proto.set_raw_data(std::string("\x7f\x08\x00", 3));
  const std::string why = [&] {
    try {
      tensor_from_proto(proto, {});
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  }();
  EXPECT_NE(why.find("raw_data has 3 bytes but shape [3] of int4 needs 2"), std::string::npos) << why;
}

}  // namespace
}  // namespace tunnx
