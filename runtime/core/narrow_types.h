// The narrow ONNX element types: float8 (E4M3FN, E4M3FNUZ, E5M2, E5M2FNUZ, E8M0), float4 (E2M1) and
// the packed integers (INT4, UINT4, INT2, UINT2). They have no arithmetic here: Cast, CastLike,
// QuantizeLinear and DequantizeLinear convert them to and from float, and movement kernels copy their
// bytes. Sub-byte types keep ONNX's packing in memory as on disk: element i sits in the bits
// [(i % k) * w, (i % k + 1) * w) of byte i / k (w bits, k = 8 / w elements per byte; low bits first).
#pragma once

#include <cstdint>
#include <string>

#include "tunnx/tensor.h"

namespace tunnx {

bool is_narrow_float(DataType dtype);    // the float8 and float4 types
bool is_packed_integer(DataType dtype);  // int4, uint4, int2, uint2

// How a float is rounded to FLOAT8E8M0 (a power of two): Cast's `round_mode`.
enum class E8M0Rounding { kUp, kDown, kNearest };
E8M0Rounding e8m0_rounding_from_string(const std::string& mode);  // throws kInvalidArgument on others

// The value of the code `code` (the element's bits, low-aligned) of a narrow float type; exact.
float narrow_float_value(DataType dtype, uint8_t code);
// `x` rounded to the narrow float type, half to even (E8M0: per `rounding`). With `saturate`, values
// beyond the largest finite one (infinities too) give it with their sign; without, they give the
// type's infinity or NaN as Cast's table says. FLOAT4E2M1 has neither, so it always saturates.
uint8_t narrow_float_code(DataType dtype, float x, bool saturate,
                          E8M0Rounding rounding = E8M0Rounding::kUp);

// The value of a packed integer code (two's complement for int4/int2).
int32_t packed_integer_value(DataType dtype, uint8_t code);
// The code of integer `v`, keeping its low bits (integer narrowing wraps, as Cast's spec says).
uint8_t packed_integer_code(DataType dtype, int64_t v);
int64_t packed_integer_min(DataType dtype);
int64_t packed_integer_max(DataType dtype);

// Element i of a tensor of a narrow dtype stored at `bytes`, as its code; and its writer, which
// leaves the other elements of the byte alone.
uint8_t read_code(DataType dtype, const void* bytes, int64_t i);
void write_code(DataType dtype, void* bytes, int64_t i, uint8_t code);
// The value of element i of a narrow tensor at `bytes`, float or integer (exact in float).
float narrow_value(DataType dtype, const void* bytes, int64_t i);

}  // namespace tunnx
