#include "runtime/cpu/kernels/vector_loops.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>

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

// e^x for x <= 0 (softmax's shifted scores) as Cephes' expf: x = n ln2 + r with |r| <= ln2 / 2,
// e^r by a degree-6 polynomial, 2^n put into the exponent bits. No calls and no branches, so the loop
// around it vectorizes (libm's expf does not without -ffast-math). Below -87.3 the result would be
// subnormal: 0 instead, which is also e^-inf.
__attribute__((always_inline)) inline float exp_nonpositive(float x) {
  const float clamped = std::max(x, -87.3f);
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: adding and subtracting it rounds to an integer
  const float n = (clamped * 1.44269504088896341f + kRound) - kRound;
  const float r = (clamped - n * 0.693359375f) + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float er = p * r * r + r + 1.0f;
  const float two_n = std::bit_cast<float>((static_cast<int32_t>(n) + 127) << 23);
  return x < -87.3f ? 0.0f : er * two_n;
}

}  // namespace

// Running maxima and sums are kept in 16 lanes and folded as a tree at the end: a single running
// value is a chain of dependent operations (and GCC does not vectorize a max reduction without
// -ffinite-math-only), and a sequential fold of the lanes was a tenth of a short row's time.
TUNNX_MULTI_ISA
float softmax_numerators(float* row, int64_t n) {
  constexpr int64_t kLanes = 16;
  float* __restrict v = row;
  float lanes[kLanes];
  std::fill(lanes, lanes + kLanes, -std::numeric_limits<float>::infinity());
  const int64_t full = n - n % kLanes;
  for (int64_t j0 = 0; j0 < full; j0 += kLanes)
    for (int64_t k = 0; k < kLanes; ++k) lanes[k] = v[j0 + k] > lanes[k] ? v[j0 + k] : lanes[k];
  for (int64_t k = 0; full + k < n; ++k) lanes[k] = v[full + k] > lanes[k] ? v[full + k] : lanes[k];
  for (int64_t w = kLanes / 2; w > 0; w /= 2)
    for (int64_t k = 0; k < w; ++k) lanes[k] = lanes[k + w] > lanes[k] ? lanes[k + w] : lanes[k];
  const float max = lanes[0];
  if (max == -std::numeric_limits<float>::infinity()) {
    std::fill(v, v + n, 0.0f);
    return 0;
  }
  std::fill(lanes, lanes + kLanes, 0.0f);
  for (int64_t j0 = 0; j0 < full; j0 += kLanes)
    for (int64_t k = 0; k < kLanes; ++k) {
      const float e = exp_nonpositive(v[j0 + k] - max);
      v[j0 + k] = e;
      lanes[k] += e;
    }
  for (int64_t k = 0; full + k < n; ++k) {
    const float e = exp_nonpositive(v[full + k] - max);
    v[full + k] = e;
    lanes[k] += e;
  }
  for (int64_t w = kLanes / 2; w > 0; w /= 2)
    for (int64_t k = 0; k < w; ++k) lanes[k] += lanes[k + w];
  return lanes[0];
}

TUNNX_MULTI_ISA
void softmax_columns(const float* x, float* y, int64_t channels, int64_t stride, int64_t n) {
  constexpr int64_t kMost = 512;
  float max[kMost], sum[kMost];
  std::copy(x, x + n, max);
  for (int64_t c = 1; c < channels; ++c) {
    const float* __restrict xc = x + c * stride;
    for (int64_t j = 0; j < n; ++j) max[j] = xc[j] > max[j] ? xc[j] : max[j];
  }
  std::fill(sum, sum + n, 0.0f);
  // A column whose maximum is -inf (every score -inf) or NaN gives what the reference's libm exp
  // gives (NaN): such a block takes std::exp, the others the polynomial.
  bool special = false;
  for (int64_t j = 0; j < n; ++j) special |= !(max[j] > -std::numeric_limits<float>::infinity());
  for (int64_t c = 0; c < channels; ++c) {
    const float* __restrict xc = x + c * stride;
    float* __restrict yc = y + c * stride;
    if (special) {
      for (int64_t j = 0; j < n; ++j) sum[j] += yc[j] = std::exp(xc[j] - max[j]);
      continue;
    }
    for (int64_t j = 0; j < n; ++j) {
      const float e = exp_nonpositive(xc[j] - max[j]);
      yc[j] = e;
      sum[j] += e;
    }
  }
  for (int64_t j = 0; j < n; ++j) sum[j] = 1.0f / sum[j];
  for (int64_t c = 0; c < channels; ++c) {
    float* __restrict yc = y + c * stride;
    for (int64_t j = 0; j < n; ++j) yc[j] *= sum[j];
  }
}

TUNNX_MULTI_ISA
void rms_norm_rows(const float* in, const double* scale, float* out, int64_t rows, int64_t n, double epsilon) {
  const double* __restrict s = scale;
  for (int64_t r = 0; r < rows; ++r) {
    const float* __restrict x = in + r * n;
    float* __restrict y = out + r * n;
    double sq = 0;
#pragma omp simd reduction(+ : sq)
    for (int64_t j = 0; j < n; ++j) sq += static_cast<double>(x[j]) * static_cast<double>(x[j]);
    const double inv_rms = 1.0 / std::sqrt(sq / static_cast<double>(n > 0 ? n : 1) + epsilon);
    for (int64_t j = 0; j < n; ++j) y[j] = static_cast<float>(static_cast<double>(x[j]) * inv_rms * s[j]);
  }
}

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
