// 16-bit floating-point element types. Storage is the raw bits; arithmetic converts through float.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>

namespace tunnx {

// IEEE half precision, stored as bits; arithmetic goes through float.
struct Float16 {
  uint16_t bits = 0;
  Float16() = default;
  Float16(float f) : bits(from_float(f)) {}  // NOLINT: implicit like a float
  operator float() const { return to_float(bits); }  // NOLINT
  static uint16_t from_float(float f);
  static float to_float(uint16_t h);
};

// bfloat16: the top half of a float32, rounded to nearest even.
struct BFloat16 {
  uint16_t bits = 0;
  BFloat16() = default;
  BFloat16(float f) {  // NOLINT
    uint32_t u = std::bit_cast<uint32_t>(f);
    if (std::isnan(f)) bits = 0x7fc0;
    else bits = static_cast<uint16_t>((u + 0x7fff + ((u >> 16) & 1)) >> 16);
  }
  operator float() const { return std::bit_cast<float>(static_cast<uint32_t>(bits) << 16); }  // NOLINT
};

}  // namespace tunnx
