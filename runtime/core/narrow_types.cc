#include "runtime/core/narrow_types.h"

#include <bit>
#include <cmath>
#include <limits>

namespace tunnx {
namespace {

// A small IEEE-like float: sign, exponent, mantissa bits, with the type's own specials.
struct MiniFloat {
  int bits;           // total width: 8 or 4
  int mantissa_bits;
  int bias;
  float max;          // largest finite value
  enum Specials { kFiniteNanAllOnes, kFnuz, kIeee, kNone } specials;
};

// E4M3FN: NaN is S.1111.111, no infinity. FNUZ types: one NaN, 0x80 (the would-be -0), no -0.
// E5M2: IEEE infinities and NaNs. E2M1: no specials at all.
const MiniFloat* mini_float(DataType dtype) {
  static constexpr MiniFloat kE4M3FN{8, 3, 7, 448.0f, MiniFloat::kFiniteNanAllOnes};
  static constexpr MiniFloat kE4M3FNUZ{8, 3, 8, 240.0f, MiniFloat::kFnuz};
  static constexpr MiniFloat kE5M2{8, 2, 15, 57344.0f, MiniFloat::kIeee};
  static constexpr MiniFloat kE5M2FNUZ{8, 2, 16, 57344.0f, MiniFloat::kFnuz};
  static constexpr MiniFloat kE2M1{4, 1, 1, 6.0f, MiniFloat::kNone};
  switch (dtype) {
    case DataType::kFloat8E4M3FN: return &kE4M3FN;
    case DataType::kFloat8E4M3FNUZ: return &kE4M3FNUZ;
    case DataType::kFloat8E5M2: return &kE5M2;
    case DataType::kFloat8E5M2FNUZ: return &kE5M2FNUZ;
    case DataType::kFloat4E2M1: return &kE2M1;
    default: return nullptr;
  }
}

const MiniFloat& require_mini_float(DataType dtype) {
  const MiniFloat* f = mini_float(dtype);
  if (!f) throw Error(ErrorCode::kInvalidArgument, std::string(to_string(dtype)) + " is not a narrow float type");
  return *f;
}

float mini_float_value(const MiniFloat& f, uint8_t code) {
  const int exponent_bits = f.bits - 1 - f.mantissa_bits;
  const bool negative = (code >> (f.bits - 1)) & 1;
  const int exponent = (code >> f.mantissa_bits) & ((1 << exponent_bits) - 1);
  const int mantissa = code & ((1 << f.mantissa_bits) - 1);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  switch (f.specials) {
    case MiniFloat::kFnuz:
      if (code == 0x80) return nan;
      break;
    case MiniFloat::kFiniteNanAllOnes:
      if ((code & 0x7f) == 0x7f) return negative ? -nan : nan;
      break;
    case MiniFloat::kIeee:
      if (exponent == (1 << exponent_bits) - 1) {
        const float special = mantissa == 0 ? std::numeric_limits<float>::infinity() : nan;
        return negative ? -special : special;
      }
      break;
    case MiniFloat::kNone: break;
  }
  const int min_exponent = 1 - f.bias;
  const double magnitude = exponent == 0
                               ? std::ldexp(mantissa, min_exponent - f.mantissa_bits)
                               : std::ldexp(1.0 + std::ldexp(mantissa, -f.mantissa_bits), exponent - f.bias);
  return static_cast<float>(negative ? -magnitude : magnitude);
}

uint8_t mini_float_code(const MiniFloat& f, float x, bool saturate) {
  const uint8_t sign = std::signbit(x) ? static_cast<uint8_t>(1u << (f.bits - 1)) : 0;
  const int exponent_bits = f.bits - 1 - f.mantissa_bits;
  const uint8_t max_code = static_cast<uint8_t>(
      f.specials == MiniFloat::kFiniteNanAllOnes ? 0x7e
      : f.specials == MiniFloat::kIeee           ? (((1 << exponent_bits) - 2) << f.mantissa_bits) | ((1 << f.mantissa_bits) - 1)
                                                 : (1 << (f.bits - 1)) - 1);
  if (std::isnan(x)) {
    switch (f.specials) {
      case MiniFloat::kFnuz: return 0x80;
      case MiniFloat::kFiniteNanAllOnes: return sign | 0x7f;
      case MiniFloat::kIeee: return sign | static_cast<uint8_t>(0x7e);
      case MiniFloat::kNone: return static_cast<uint8_t>(1u << (f.bits - 1));  // as ml_dtypes: no NaN, the sign bit alone
    }
  }
  const double a = std::fabs(static_cast<double>(x));
  double rounded = a;
  const int min_exponent = 1 - f.bias;
  if (std::isfinite(a) && a != 0) {
    int e;
    std::frexp(a, &e);  // a = m * 2^e, m in [0.5, 1)
    const double quantum = std::ldexp(1.0, std::max(e - 1, min_exponent) - f.mantissa_bits);
    rounded = std::nearbyint(a / quantum) * quantum;  // exact division by a power of two; half to even
  }
  if (!std::isfinite(a) || rounded > f.max) {
    if (saturate || f.specials == MiniFloat::kNone) return sign | max_code;
    switch (f.specials) {
      case MiniFloat::kFnuz: return 0x80;
      case MiniFloat::kFiniteNanAllOnes: return sign | 0x7f;
      default: return sign | static_cast<uint8_t>(((1 << exponent_bits) - 1) << f.mantissa_bits);  // infinity
    }
  }
  if (rounded == 0) return f.specials == MiniFloat::kFnuz ? 0 : sign;
  int e;
  std::frexp(rounded, &e);
  const int exponent = e - 1;
  int exponent_field, mantissa;
  if (exponent < min_exponent) {
    exponent_field = 0;
    mantissa = static_cast<int>(std::ldexp(rounded, f.mantissa_bits - min_exponent));
  } else {
    exponent_field = exponent + f.bias;
    mantissa = static_cast<int>(std::ldexp(std::ldexp(rounded, -exponent) - 1.0, f.mantissa_bits));
  }
  return sign | static_cast<uint8_t>((exponent_field << f.mantissa_bits) | mantissa);
}

// FLOAT8E8M0: an 8-bit biased exponent (2^(code - 127)), 0xFF NaN. Rounds as ONNX's reference
// (numpy_helper.to_float8e8m0) does on the float32 bits; the sign is ignored.
uint8_t e8m0_code(float x, bool saturate, E8M0Rounding rounding) {
  const uint32_t bits = std::bit_cast<uint32_t>(x);
  uint32_t exponent = (bits >> 23) & 0xff;
  if (exponent == 0xff) return 0xff;
  bool round_up = false;
  switch (rounding) {
    case E8M0Rounding::kNearest: {
      const bool guard = bits & 0x400000, round = bits & 0x200000, sticky = bits & 0x1fffff, lsb = exponent > 0;
      round_up = guard && (round || sticky || lsb);
      break;
    }
    case E8M0Rounding::kUp: round_up = (bits & 0x7fffff) != 0; break;
    case E8M0Rounding::kDown: break;
  }
  if (saturate && exponent == 0xfe) round_up = false;
  return static_cast<uint8_t>(exponent + (round_up ? 1 : 0));
}

int packed_bits(DataType dtype) {
  switch (dtype) {
    case DataType::kInt4:
    case DataType::kUInt4:
    case DataType::kFloat4E2M1: return 4;
    case DataType::kInt2:
    case DataType::kUInt2: return 2;
    default: return 8;
  }
}

}  // namespace

bool is_narrow_float(DataType dtype) { return mini_float(dtype) != nullptr || dtype == DataType::kFloat8E8M0; }

bool is_packed_integer(DataType dtype) {
  return dtype == DataType::kInt4 || dtype == DataType::kUInt4 || dtype == DataType::kInt2 || dtype == DataType::kUInt2;
}

E8M0Rounding e8m0_rounding_from_string(const std::string& mode) {
  if (mode == "up") return E8M0Rounding::kUp;
  if (mode == "down") return E8M0Rounding::kDown;
  if (mode == "nearest") return E8M0Rounding::kNearest;
  throw Error(ErrorCode::kInvalidArgument, "round_mode must be 'up', 'down' or 'nearest', got '" + mode + "'");
}

float narrow_float_value(DataType dtype, uint8_t code) {
  if (dtype == DataType::kFloat8E8M0)
    return code == 0xff ? std::numeric_limits<float>::quiet_NaN() : std::ldexp(1.0f, int(code) - 127);
  return mini_float_value(require_mini_float(dtype), code);
}

uint8_t narrow_float_code(DataType dtype, float x, bool saturate, E8M0Rounding rounding) {
  if (dtype == DataType::kFloat8E8M0) return e8m0_code(x, saturate, rounding);
  return mini_float_code(require_mini_float(dtype), x, saturate);
}

int32_t packed_integer_value(DataType dtype, uint8_t code) {
  const int bits = packed_bits(dtype);
  const int32_t v = code & ((1 << bits) - 1);
  if (dtype == DataType::kInt4 || dtype == DataType::kInt2) return v >= (1 << (bits - 1)) ? v - (1 << bits) : v;
  return v;
}

uint8_t packed_integer_code(DataType dtype, int64_t v) {
  return static_cast<uint8_t>(static_cast<uint64_t>(v) & ((1u << packed_bits(dtype)) - 1));
}

int64_t packed_integer_min(DataType dtype) {
  return dtype == DataType::kInt4 ? -8 : dtype == DataType::kInt2 ? -2 : 0;
}

int64_t packed_integer_max(DataType dtype) {
  switch (dtype) {
    case DataType::kInt4: return 7;
    case DataType::kUInt4: return 15;
    case DataType::kInt2: return 1;
    default: return 3;
  }
}

uint8_t read_code(DataType dtype, const void* bytes, int64_t i) {
  const auto* p = static_cast<const uint8_t*>(bytes);
  const int bits = packed_bits(dtype);
  if (bits == 8) return p[i];
  const int64_t per_byte = 8 / bits;
  const int shift = static_cast<int>(i % per_byte) * bits;
  return static_cast<uint8_t>((p[i / per_byte] >> shift) & ((1 << bits) - 1));
}

void write_code(DataType dtype, void* bytes, int64_t i, uint8_t code) {
  auto* p = static_cast<uint8_t*>(bytes);
  const int bits = packed_bits(dtype);
  if (bits == 8) {
    p[i] = code;
    return;
  }
  const int64_t per_byte = 8 / bits;
  const int shift = static_cast<int>(i % per_byte) * bits;
  const uint8_t mask = static_cast<uint8_t>(((1 << bits) - 1) << shift);
  uint8_t& byte = p[i / per_byte];
  byte = static_cast<uint8_t>((byte & ~mask) | ((code << shift) & mask));
}

float narrow_value(DataType dtype, const void* bytes, int64_t i) {
  const uint8_t code = read_code(dtype, bytes, i);
  return is_packed_integer(dtype) ? static_cast<float>(packed_integer_value(dtype, code)) : narrow_float_value(dtype, code);
}

}  // namespace tunnx
