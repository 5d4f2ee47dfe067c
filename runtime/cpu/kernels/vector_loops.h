// Hot float loops of the reference kernels, compiled once per instruction set (AVX-512, AVX2, the
// x86-64 baseline) and picked when the library loads (GCC target_clones). The rest of tunnx is built
// for the baseline, so that one binary runs on every x86-64 machine; without this, the loops that
// sit between oneDNN's convolutions (a squeeze-excite block's channel scale and its global average)
// ran on SSE2 at a quarter of the vector width the machine has.
#pragma once

#include <cstdint>

namespace tunnx::cpu {

enum class FloatBinaryOp { kAdd, kSub, kMul, kDiv };

// out[r * n + j] = a[r * a_row + j * a_col] op b[r * b_row + j * b_col] for r < rows, j < n, where
// a_col and b_col are 0 (the operand repeats along the row) or 1 (it is contiguous).
void float_binary_rows(FloatBinaryOp op, const float* a, int64_t a_row, int64_t a_col, const float* b, int64_t b_row,
                       int64_t b_col, float* out, int64_t rows, int64_t n);

// acc[j] += in[r * stride + j] (in double) for r < rows, j < n.
void accumulate_rows(const float* in, int64_t rows, int64_t stride, int64_t n, double* acc);

}  // namespace tunnx::cpu
