#include "runtime/cpu/kernels/vector_loops.h"

// The clones are resolved through an ifunc; a compiler or target without them gets the plain loops.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define TUNNX_MULTI_ISA __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define TUNNX_MULTI_ISA
#endif

namespace tunnx::cpu {
namespace {

template <FloatBinaryOp Op> inline float apply(float x, float y) {
  if constexpr (Op == FloatBinaryOp::kAdd) return x + y;
  else if constexpr (Op == FloatBinaryOp::kSub) return x - y;
  else if constexpr (Op == FloatBinaryOp::kMul) return x * y;
  else return x / y;
}

// One loop per (operand contiguous, operand repeated) pair, so each vectorizes with known strides.
// The output never overlaps an input but where it is that input (an in-place op), element for element.
template <FloatBinaryOp Op, bool ACol, bool BCol>
__attribute__((always_inline)) inline void rows_of(const float* a, int64_t a_row, const float* b, int64_t b_row,
                                                   float* out, int64_t rows, int64_t n) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* __restrict ra = a + r * a_row;
    const float* __restrict rb = b + r * b_row;
    float* __restrict ro = out + r * n;
    if constexpr (ACol && BCol) {
      for (int64_t j = 0; j < n; ++j) ro[j] = apply<Op>(ra[j], rb[j]);
    } else if constexpr (ACol) {
      const float y = rb[0];
      for (int64_t j = 0; j < n; ++j) ro[j] = apply<Op>(ra[j], y);
    } else if constexpr (BCol) {
      const float x = ra[0];
      for (int64_t j = 0; j < n; ++j) ro[j] = apply<Op>(x, rb[j]);
    } else {
      const float v = apply<Op>(ra[0], rb[0]);
      for (int64_t j = 0; j < n; ++j) ro[j] = v;
    }
  }
}

template <FloatBinaryOp Op>
__attribute__((always_inline)) inline void rows_of(const float* a, int64_t a_row, int64_t a_col, const float* b,
                                                   int64_t b_row, int64_t b_col, float* out, int64_t rows,
                                                   int64_t n) {
  if (a_col && b_col) {
    if (a_row == n && b_row == n) return rows_of<Op, true, true>(a, 0, b, 0, out, 1, rows * n);  // one flat row
    return rows_of<Op, true, true>(a, a_row, b, b_row, out, rows, n);
  }
  if (a_col) return rows_of<Op, true, false>(a, a_row, b, b_row, out, rows, n);
  if (b_col) return rows_of<Op, false, true>(a, a_row, b, b_row, out, rows, n);
  rows_of<Op, false, false>(a, a_row, b, b_row, out, rows, n);
}

}  // namespace

TUNNX_MULTI_ISA
void float_binary_rows(FloatBinaryOp op, const float* a, int64_t a_row, int64_t a_col, const float* b, int64_t b_row,
                       int64_t b_col, float* out, int64_t rows, int64_t n) {
  switch (op) {
    case FloatBinaryOp::kAdd: return rows_of<FloatBinaryOp::kAdd>(a, a_row, a_col, b, b_row, b_col, out, rows, n);
    case FloatBinaryOp::kSub: return rows_of<FloatBinaryOp::kSub>(a, a_row, a_col, b, b_row, b_col, out, rows, n);
    case FloatBinaryOp::kMul: return rows_of<FloatBinaryOp::kMul>(a, a_row, a_col, b, b_row, b_col, out, rows, n);
    case FloatBinaryOp::kDiv: return rows_of<FloatBinaryOp::kDiv>(a, a_row, a_col, b, b_row, b_col, out, rows, n);
  }
}

TUNNX_MULTI_ISA
void accumulate_rows(const float* in, int64_t rows, int64_t stride, int64_t n, double* acc) {
  double* __restrict out = acc;
  for (int64_t r = 0; r < rows; ++r) {
    const float* __restrict row = in + r * stride;
    for (int64_t j = 0; j < n; ++j) out[j] += static_cast<double>(row[j]);
  }
}

}  // namespace tunnx::cpu
