#include "runtime/cpu/kernels/vector_loops.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <stdexcept>
#include <vector>

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>
#endif

#include "runtime/cpu/kernels/common.h"

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

// 16 floats, loaded and stored at any float's alignment; GCC splits them for narrower instruction sets.
// The helpers taking or returning them are always inlined into the clones, so GCC's note that such a
// function's ABI differs with AVX-512 (-Wpsabi) concerns no call that exists.
#pragma GCC diagnostic ignored "-Wpsabi"
typedef float Vec16 __attribute__((vector_size(64)));
typedef float Vec16Unaligned __attribute__((vector_size(64), aligned(4)));

__attribute__((always_inline)) inline Vec16 load16(const float* p) {
  return *reinterpret_cast<const Vec16Unaligned*>(p);
}
__attribute__((always_inline)) inline void store16(float* p, Vec16 v) { *reinterpret_cast<Vec16Unaligned*>(p) = v; }

typedef int32_t Lanes16 __attribute__((vector_size(64)));

// Halves the lanes that hold partial sums, for two vectors at once: in every block of 2w lanes, x's
// two halves and then y's two halves are added, so the result holds x's block sums (w lanes) then y's
// (w lanes) per block. `lo` and `hi` pick the halves (indices 16-31 are y's).
__attribute__((always_inline)) inline Vec16 pair_sums(Vec16 x, Vec16 y, Lanes16 lo, Lanes16 hi) {
  return __builtin_shuffle(x, y, lo) + __builtin_shuffle(x, y, hi);
}

// out[i] = the sum of acc[i]'s lanes, for 16 accumulators: four levels of pair_sums (15 shuffles and
// adds instead of 16 separate folds) leave key i's sum in lane bitreverse(i), put back in order last.
__attribute__((always_inline)) inline Vec16 fold16x16(const Vec16 (&acc)[16]) {
  const Lanes16 lo8 = {0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23};
  const Lanes16 hi8 = {8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31};
  const Lanes16 lo4 = {0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27};
  const Lanes16 hi4 = {4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31};
  const Lanes16 lo2 = {0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29};
  const Lanes16 hi2 = {2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31};
  const Lanes16 lo1 = {0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30};
  const Lanes16 hi1 = {1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31};
  const Lanes16 bit_reversed = {0, 8, 4, 12, 2, 10, 6, 14, 1, 9, 5, 13, 3, 11, 7, 15};
  Vec16 eights[8], fours[4], twos[2];
  for (int i = 0; i < 8; ++i) eights[i] = pair_sums(acc[2 * i], acc[2 * i + 1], lo8, hi8);
  for (int i = 0; i < 4; ++i) fours[i] = pair_sums(eights[2 * i], eights[2 * i + 1], lo4, hi4);
  for (int i = 0; i < 2; ++i) twos[i] = pair_sums(fours[2 * i], fours[2 * i + 1], lo2, hi2);
  return __builtin_shuffle(pair_sums(twos[0], twos[1], lo1, hi1), bit_reversed);
}

// The sum of v's lanes, as a tree.
__attribute__((always_inline)) inline float fold16(Vec16 v) {
  float lanes[16];
  store16(lanes, v);
  for (int w = 8; w > 0; w /= 2)
    for (int i = 0; i < w; ++i) lanes[i] += lanes[i + w];
  return lanes[0];
}

// R rows by 16 * V columns of block_product, its accumulators held in registers through the k loop
// (the loops over them unrolled whole: at -O2 GCC kept them in memory, half the speed).
template <int R, int V>
__attribute__((always_inline)) inline void product_tile(const float* a, int64_t lda, const float* b, int64_t ldb,
                                                        float* c, int64_t ldc, int64_t k, float alpha) {
  Vec16 acc[R][V];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < V; ++v) acc[r][v] = Vec16{};
  for (int64_t p = 0; p < k; ++p) {
    Vec16 bv[V];
#pragma GCC unroll 16
    for (int v = 0; v < V; ++v) bv[v] = load16(b + p * ldb + 16 * v);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const float x = a[r * lda + p];
#pragma GCC unroll 16
      for (int v = 0; v < V; ++v) acc[r][v] += x * bv[v];
    }
  }
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < V; ++v) store16(c + r * ldc + 16 * v, acc[r][v] * alpha);
}

// Rows [0, R) of block_product across all n columns: 32 at a time where the registers hold 2 * R
// accumulators (AVX-512's 32), else 16.
template <int R, bool Wide>
__attribute__((always_inline)) inline void product_rows(const float* a, int64_t lda, const float* b, int64_t ldb,
                                                        float* c, int64_t ldc, int64_t n, int64_t k, float alpha) {
  int64_t j = 0;
  if constexpr (Wide)
    for (; j + 32 <= n; j += 32) product_tile<R, 2>(a, lda, b + j, ldb, c + j, ldc, k, alpha);
  for (; j < n; j += 16) product_tile<R, 1>(a, lda, b + j, ldb, c + j, ldc, k, alpha);
}

template <bool Wide>
__attribute__((always_inline)) inline void product_blocks(const float* a, int64_t lda, const float* b, int64_t ldb,
                                                          float* c, int64_t ldc, int64_t rows, int64_t n, int64_t k,
                                                          float alpha) {
  int64_t r = 0;
  if constexpr (Wide)
    for (; r + 8 <= rows; r += 8) product_rows<8, true>(a + r * lda, lda, b, ldb, c + r * ldc, ldc, n, k, alpha);
  for (; r + 4 <= rows; r += 4) product_rows<4, Wide>(a + r * lda, lda, b, ldb, c + r * ldc, ldc, n, k, alpha);
  for (; r < rows; ++r) product_rows<1, Wide>(a + r * lda, lda, b, ldb, c + r * ldc, ldc, n, k, alpha);
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

// The clones share one body; 8-row tiles only where the machine has AVX-512's 32 vector registers
// (on AVX2 the same tile spills its accumulators).
TUNNX_MULTI_ISA
void block_product(const float* a, int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc, int64_t rows,
                   int64_t n, int64_t k, float alpha) {
  static const bool wide = __builtin_cpu_supports("avx512f");
  if (wide) return product_blocks<true>(a, lda, b, ldb, c, ldc, rows, n, k, alpha);
  product_blocks<false>(a, lda, b, ldb, c, ldc, rows, n, k, alpha);
}

namespace {

// R rows by P neighbouring panels of panel_product, the k loop unrolled U times into separate
// accumulators: one chain of dependent adds per output waits on the FMA latency, and the weights
// stream faster from several panels at once (one prefetch stream each) than from one.
template <int R, int P, int U>
__attribute__((always_inline)) inline void panel_tile(const float* a, int64_t lda, const float* w, int64_t k,
                                                      Vec16 (&out)[R][P]) {
  Vec16 acc[R][P][U];
  for (int r = 0; r < R; ++r)
    for (int q = 0; q < P; ++q)
      for (int u = 0; u < U; ++u) acc[r][q][u] = Vec16{};
  const int64_t panel = k * 16;
  int64_t p = 0;
  // Unrolled whole, so the accumulators stay in registers at -O2 too (RelWithDebInfo): there GCC
  // kept 8 panels' in memory, and block_product's tile ran at half its -O3 speed.
  for (; p + U <= k; p += U)
#pragma GCC unroll 16
    for (int u = 0; u < U; ++u) {
      Vec16 wv[P];
#pragma GCC unroll 16
      for (int q = 0; q < P; ++q) wv[q] = load16(w + q * panel + (p + u) * 16);
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) {
        const float x = a[r * lda + p + u];
#pragma GCC unroll 16
        for (int q = 0; q < P; ++q) acc[r][q][u] += x * wv[q];
      }
    }
  for (; p < k; ++p)
    for (int r = 0; r < R; ++r)
      for (int q = 0; q < P; ++q) acc[r][q][0] += a[r * lda + p] * load16(w + q * panel + p * 16);
  for (int r = 0; r < R; ++r)
    for (int q = 0; q < P; ++q) {
      out[r][q] = acc[r][q][0];
      for (int u = 1; u < U; ++u) out[r][q] += acc[r][q][u];
    }
}

// Writes panel `q`'s R x 16 sums, with the bias, as far as column n.
template <int R>
__attribute__((always_inline)) inline void store_panel(const Vec16 (&sums)[R], int64_t q, int64_t n, const float* bias,
                                                       float* c, int64_t ldc) {
  const int64_t j0 = q * 16, cols = std::min<int64_t>(16, n - j0);
  if (cols == 16) {
    const Vec16 b = bias ? load16(bias + j0) : Vec16{};
    for (int r = 0; r < R; ++r) store16(c + r * ldc + j0, sums[r] + b);
    return;
  }
  for (int r = 0; r < R; ++r) {
    float lanes[16];
    store16(lanes, sums[r]);
    for (int64_t j = 0; j < cols; ++j) c[r * ldc + j0 + j] = lanes[j] + (bias ? bias[j0 + j] : 0.0f);
  }
}

// Panels from q on in groups of G (k unrolled V times) while a whole group fits before `end`; returns
// the first panel left. (A function, not a lambda: a lambda's body is not compiled per clone.)
template <int R, int G, int V>
__attribute__((always_inline)) inline int64_t panel_groups(const float* a, int64_t lda, const float* panels, int64_t k,
                                                           int64_t n, const float* bias, float* c, int64_t ldc,
                                                           int64_t q, int64_t end) {
  for (; q + G <= end; q += G) {
    Vec16 out[R][G];
    panel_tile<R, G, V>(a, lda, panels + q * k * 16, k, out);
    for (int i = 0; i < G; ++i) {
      Vec16 sums[R];
      for (int r = 0; r < R; ++r) sums[r] = out[r][i];
      store_panel<R>(sums, q + i, n, bias, c, ldc);
    }
  }
  return q;
}

// Panels [begin, end) in groups of P (k unrolled U times), then the rest in groups of P2 (U2), then
// one at a time (T): the smaller groups keep accumulators and streams where the panels left are fewer.
template <int R, int P, int U, int P2, int U2, int T>
__attribute__((always_inline)) inline void panel_rows(const float* a, int64_t lda, const float* panels, int64_t k,
                                                      int64_t n, const float* bias, float* c, int64_t ldc,
                                                      int64_t begin, int64_t end) {
  int64_t q = panel_groups<R, P, U>(a, lda, panels, k, n, bias, c, ldc, begin, end);
  if constexpr (P2 < P) q = panel_groups<R, P2, U2>(a, lda, panels, k, n, bias, c, ldc, q, end);
  if constexpr (1 < P2) panel_groups<R, 1, T>(a, lda, panels, k, n, bias, c, ldc, q, end);
}

// Wide (AVX-512's 32 registers): one row against 4 panels at once (k unrolled twice: 8 accumulators),
// two to four rows against 4 (4-16 accumulators). Measured on the machine of bench/README.md against
// a 1024 x 1000 weight streamed from DRAM, against the 2-panel tiles with 4 accumulators before: one
// row 0.155 -> 0.136 ms, two 0.143 -> 0.133, three 0.21 -> 0.13, four 0.21-0.26 -> 0.16, six 0.36 ->
// 0.23 (more streams in flight); from the L3 the same within 5%. Else (AVX2: a Vec16 is a pair of
// its 16 registers) four rows at a time with 3-4 accumulators. Software prefetch only slowed these.
template <bool Wide>
__attribute__((always_inline)) inline void panel_product_rows(const float* a, int64_t lda, int64_t rows,
                                                              const float* panels, int64_t k, int64_t n,
                                                              const float* bias, float* c, int64_t ldc, int64_t begin,
                                                              int64_t end) {
  for (int64_t r = 0; r < rows; r += 4) {
    const float* ar = a + r * lda;
    float* cr = c + r * ldc;
    if constexpr (Wide) {
      switch (std::min<int64_t>(4, rows - r)) {
        case 1: panel_rows<1, 4, 2, 2, 4, 8>(ar, lda, panels, k, n, bias, cr, ldc, begin, end); break;
        case 2: panel_rows<2, 4, 1, 2, 1, 2>(ar, lda, panels, k, n, bias, cr, ldc, begin, end); break;
        case 3: panel_rows<3, 4, 1, 2, 1, 2>(ar, lda, panels, k, n, bias, cr, ldc, begin, end); break;
        default: panel_rows<4, 4, 1, 2, 1, 2>(ar, lda, panels, k, n, bias, cr, ldc, begin, end); break;
      }
      continue;
    }
    switch (std::min<int64_t>(4, rows - r)) {
      case 1: panel_rows<1, 2, 2, 2, 2, 2>(ar, lda, panels, k, n, bias, cr, ldc, begin, end); break;
      case 2: panel_rows<2, 2, 1, 2, 1, 2>(ar, lda, panels, k, n, bias, cr, ldc, begin, end); break;
      case 3: panel_rows<3, 1, 1, 1, 1, 2>(ar, lda, panels, k, n, bias, cr, ldc, begin, end); break;
      default: panel_rows<4, 1, 1, 1, 1, 2>(ar, lda, panels, k, n, bias, cr, ldc, begin, end); break;
    }
  }
}

}  // namespace

TUNNX_MULTI_ISA
void panel_product(const float* a, int64_t lda, int64_t rows, const float* panels, int64_t k, int64_t n,
                   const float* bias, float* c, int64_t ldc, int64_t panel_begin, int64_t panel_end) {
  static const bool wide = __builtin_cpu_supports("avx512f");
  if (wide) return panel_product_rows<true>(a, lda, rows, panels, k, n, bias, c, ldc, panel_begin, panel_end);
  panel_product_rows<false>(a, lda, rows, panels, k, n, bias, c, ldc, panel_begin, panel_end);
}

// Each dot product runs in 16 lanes, folded at the end (GCC does not vectorize a float sum itself
// without -ffast-math): sixteen columns at a time share the loads of a's row and one fold tree;
// the last columns four and then one at a time.
TUNNX_MULTI_ISA
void block_product_bt(const float* a, int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc,
                      int64_t rows, int64_t n, int64_t k, float alpha) {
  const int64_t full = k - k % 16;
  for (int64_t r = 0; r < rows; ++r) {
    const float* x = a + r * lda;
    int64_t j = 0;
    for (; j + 16 <= n; j += 16) {
      Vec16 acc[16] = {};
      for (int64_t p = 0; p < full; p += 16) {
        const Vec16 xv = load16(x + p);
#pragma GCC unroll 16
        for (int i = 0; i < 16; ++i) acc[i] += xv * load16(b + (j + i) * ldb + p);
      }
      float sums[16];
      store16(sums, fold16x16(acc));
      for (int i = 0; i < 16; ++i) {
        for (int64_t p = full; p < k; ++p) sums[i] += x[p] * b[(j + i) * ldb + p];
        c[r * ldc + j + i] = alpha * sums[i];
      }
    }
    for (; j + 4 <= n; j += 4) {
      Vec16 acc[4] = {};
      for (int64_t p = 0; p < full; p += 16) {
        const Vec16 xv = load16(x + p);
#pragma GCC unroll 4
        for (int i = 0; i < 4; ++i) acc[i] += xv * load16(b + (j + i) * ldb + p);
      }
      for (int i = 0; i < 4; ++i) {
        float sum = fold16(acc[i]);
        for (int64_t p = full; p < k; ++p) sum += x[p] * b[(j + i) * ldb + p];
        c[r * ldc + j + i] = alpha * sum;
      }
    }
    for (; j < n; ++j) {
      Vec16 acc{};
      for (int64_t p = 0; p < full; p += 16) acc += load16(x + p) * load16(b + j * ldb + p);
      float sum = fold16(acc);
      for (int64_t p = full; p < k; ++p) sum += x[p] * b[j * ldb + p];
      c[r * ldc + j] = alpha * sum;
    }
  }
}

namespace {

// W columns summed down all rows with the sums held in registers: the loop over any n kept them in
// memory, and each row's add waited for the last row's store (a channels-last global average pool of
// 16 channels took 29 us for 3,136 rows); so did the loop over W = 32 until it was unrolled whole
// (MobileNetV3's squeeze-excite averages of 196 x 240 and 49 x 576: 7.2 -> 11.7 G values/s). Each
// column still adds its rows in order.
template <int W>
__attribute__((always_inline)) inline void accumulate_columns(const float* in, int64_t rows, int64_t stride,
                                                              double* acc) {
  double sum[W];
  for (int j = 0; j < W; ++j) sum[j] = acc[j];
  for (int64_t r = 0; r < rows; ++r) {
    const float* __restrict row = in + r * stride;
#pragma GCC unroll 64
    for (int j = 0; j < W; ++j) sum[j] += static_cast<double>(row[j]);
  }
  for (int j = 0; j < W; ++j) acc[j] = sum[j];
}

// The larger (Max) or smaller of a running extreme `b` and `v`, for floats and for Vec16 lanes.
// NanWins: a NaN makes the result NaN for good (as ReduceMax's general loop); else a NaN is passed
// over (as GlobalMaxPool's kernel).
template <bool Max, bool NanWins, typename V>
__attribute__((always_inline)) inline V extreme(V v, V b) {
  if constexpr (NanWins) {
    const auto take = Max ? !(v <= b) : !(v >= b);  // v beyond b, or v NaN
    return b != b ? b : take ? v : b;
  } else {
    return (Max ? v > b : v < b) ? v : b;
  }
}

// The same for the largest (or smallest) of each of W columns.
template <int W, bool Max, bool NanWins>
__attribute__((always_inline)) inline void extreme_columns(const float* in, int64_t rows, int64_t stride, float* acc) {
  float best[W];
  for (int j = 0; j < W; ++j) best[j] = acc[j];
  for (int64_t r = 0; r < rows; ++r) {
    const float* __restrict row = in + r * stride;
    for (int j = 0; j < W; ++j) best[j] = extreme<Max, NanWins>(row[j], best[j]);
  }
  for (int j = 0; j < W; ++j) acc[j] = best[j];
}

// 32 columns in two vectors (the scalar form above does not vectorize its NaN tests).
template <bool Max, bool NanWins>
__attribute__((always_inline)) inline void extreme_columns32(const float* in, int64_t rows, int64_t stride, float* acc) {
  Vec16 best[2] = {load16(acc), load16(acc + 16)};
  for (int64_t r = 0; r < rows; ++r)
    for (int h = 0; h < 2; ++h) best[h] = extreme<Max, NanWins>(load16(in + r * stride + 16 * h), best[h]);
  store16(acc, best[0]);
  store16(acc + 16, best[1]);
}

template <bool Max, bool NanWins>
__attribute__((always_inline)) inline void extreme_rows_of(const float* in, int64_t rows, int64_t stride, int64_t n,
                                                           float* acc) {
  int64_t j = 0;
  for (; j + 32 <= n; j += 32) extreme_columns32<Max, NanWins>(in + j, rows, stride, acc + j);
  for (; j + 8 <= n; j += 8) extreme_columns<8, Max, NanWins>(in + j, rows, stride, acc + j);
  for (; j < n; ++j) extreme_columns<1, Max, NanWins>(in + j, rows, stride, acc + j);
}

}  // namespace

TUNNX_MULTI_ISA
void extreme_rows(const float* in, int64_t rows, int64_t stride, int64_t n, float* acc, bool max, bool nan_wins) {
  if (max && nan_wins) extreme_rows_of<true, true>(in, rows, stride, n, acc);
  else if (max) extreme_rows_of<true, false>(in, rows, stride, n, acc);
  else if (nan_wins) extreme_rows_of<false, true>(in, rows, stride, n, acc);
  else extreme_rows_of<false, false>(in, rows, stride, n, acc);
}

TUNNX_MULTI_ISA
void int16_product_sums(const int16_t* a, int64_t lda, int64_t rows, const int16_t* b, int64_t ldb, int64_t k,
                        int64_t cols, uint32_t* sums, int64_t ld_sums) {
  for (int64_t p = 0; p < k; ++p) {
    const int16_t* __restrict brow = b + p * ldb;
    for (int64_t i = 0; i < rows; ++i) {
      const int32_t av = a[i * lda + p];
      if (av == 0) continue;
      uint32_t* __restrict row = sums + i * ld_sums;
      for (int64_t j = 0; j < cols; ++j) row[j] += static_cast<uint32_t>(av * static_cast<int32_t>(brow[j]));
    }
  }
}

#if defined(__GNUC__) && defined(__x86_64__)
#define TUNNX_PAIRED_INT16 1
namespace {

// AVX-512BW's vpmaddwd multiplies 32 int16 pairs and adds each pair into an int32 lane: two k steps
// of 16 columns per instruction, against 16 widening multiplies and a load and store of each sum
// in the loop above. Its operands: A's rows as int32s holding the pair (a[i][2p], a[i][2p+1]), B's
// rows 2p and 2p+1 interleaved column by column. A pair's sum is at most 2 x 255 x 255, and the
// int32 adds wrap, as the loop above's do: the results are the same bits.
constexpr int64_t kPairColumns = 64;  // four vectors of 16 columns

// int16s in one interleaved block of 64 columns of a b with `pairs` pairs of rows.
constexpr int64_t interleaved_block(int64_t pairs) { return pairs * kPairColumns * 2; }

bool paired_int16() {
  static const bool paired = __builtin_cpu_supports("avx512bw");
  return paired;
}

template <int R>
__attribute__((target("avx512f,avx512bw"), always_inline)) inline void paired_tile(const int32_t* a_pairs, int64_t pairs,
                                                                                 const int16_t* b_pairs, uint32_t* c) {
  __m512i acc[R][4];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < 4; ++v) acc[r][v] = _mm512_setzero_si512();
  for (int64_t p = 0; p < pairs; ++p) {
    __m512i bv[4];
#pragma GCC unroll 4
    for (int v = 0; v < 4; ++v) bv[v] = _mm512_loadu_si512(b_pairs + (p * kPairColumns + 16 * v) * 2);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const __m512i av = _mm512_set1_epi32(a_pairs[r * pairs + p]);
#pragma GCC unroll 4
      for (int v = 0; v < 4; ++v) acc[r][v] = _mm512_add_epi32(acc[r][v], _mm512_madd_epi16(bv[v], av));
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
    for (int v = 0; v < 4; ++v) _mm512_storeu_si512(c + r * kPairColumns + 16 * v, acc[r][v]);
}

// Block `block` of 64 columns of b [K, N] interleaved into `out` ([pairs][64][2]; zero past N and
// past an odd K).
void interleave_block(const int16_t* b, int64_t K, int64_t N, int64_t block, int16_t* out) {
  const int64_t pairs = (K + 1) / 2, j0 = block * kPairColumns, cols = std::min(kPairColumns, N - j0);
  for (int64_t p = 0; p < pairs; ++p, out += kPairColumns * 2) {
    const int16_t* even = b + 2 * p * N + j0;
    const int16_t* odd = 2 * p + 1 < K ? even + N : nullptr;
    for (int64_t j = 0; j < cols; ++j) {
      out[2 * j] = even[j];
      out[2 * j + 1] = odd ? odd[j] : 0;
    }
    std::fill(out + 2 * cols, out + 2 * kPairColumns, int16_t{0});
  }
}

// int16_matmul on the paired operands: each block of 64 columns of B interleaved into a buffer of the
// thread's, or read from `interleaved` (int16_interleave's), then every row of A against it, six at a
// time.
__attribute__((target("avx512f,avx512bw"))) void paired_int16_matmul(const int16_t* a, int64_t M, int64_t K,
                                                                      const int16_t* b, int64_t N, uint32_t* c,
                                                                      const int16_t* interleaved) {
  const int64_t pairs = (K + 1) / 2, blocks = (N + kPairColumns - 1) / kPairColumns;
  std::vector<int32_t> a_pairs(static_cast<size_t>(M * pairs));
  for (int64_t i = 0; i < M; ++i)
    for (int64_t p = 0; p < pairs; ++p) {
      const uint16_t lo = static_cast<uint16_t>(a[i * K + 2 * p]);
      const uint16_t hi = 2 * p + 1 < K ? static_cast<uint16_t>(a[i * K + 2 * p + 1]) : 0;
      a_pairs[static_cast<size_t>(i * pairs + p)] = static_cast<int32_t>(static_cast<uint32_t>(lo) | (static_cast<uint32_t>(hi) << 16));
    }
  const int threads = M * K * N >= (int64_t{1} << 17) ? static_cast<int>(std::min<int64_t>(max_threads(), blocks)) : 1;
#pragma omp parallel num_threads(threads)
  {
    std::vector<int16_t> buffer(interleaved ? 0 : static_cast<size_t>(interleaved_block(pairs)));
    alignas(64) uint32_t tile[6][kPairColumns];
#pragma omp for schedule(static)
    for (int64_t block = 0; block < blocks; ++block) {
      const int64_t j0 = block * kPairColumns, cols = std::min(kPairColumns, N - j0);
      const int16_t* b_pairs = interleaved ? interleaved + block * interleaved_block(pairs) : buffer.data();
      if (!interleaved) interleave_block(b, K, N, block, buffer.data());
      int64_t i = 0;
      for (; i + 6 <= M; i += 6) {
        paired_tile<6>(a_pairs.data() + i * pairs, pairs, b_pairs, tile[0]);
        for (int r = 0; r < 6; ++r) std::copy_n(tile[r], cols, c + (i + r) * N + j0);
      }
      // The last rows in one tile too: a row at a time read the block once per row (ddddocr's
      // 32-row product spent 2 of its 7 passes over B on its last two rows).
      const int64_t left = M - i;
      const int32_t* rest = a_pairs.data() + i * pairs;
      switch (left) {
        case 5: paired_tile<5>(rest, pairs, b_pairs, tile[0]); break;
        case 4: paired_tile<4>(rest, pairs, b_pairs, tile[0]); break;
        case 3: paired_tile<3>(rest, pairs, b_pairs, tile[0]); break;
        case 2: paired_tile<2>(rest, pairs, b_pairs, tile[0]); break;
        case 1: paired_tile<1>(rest, pairs, b_pairs, tile[0]); break;
        default: break;
      }
      for (int64_t r = 0; r < left; ++r) std::copy_n(tile[r], cols, c + (i + r) * N + j0);
    }
  }
}

}  // namespace
#endif

std::vector<int16_t> int16_interleave(const int16_t* b, int64_t K, int64_t N) {
  std::vector<int16_t> out;
#ifdef TUNNX_PAIRED_INT16
  if (!paired_int16() || K <= 0 || N <= 0) return out;
  const int64_t pairs = (K + 1) / 2, blocks = (N + kPairColumns - 1) / kPairColumns;
  out.resize(static_cast<size_t>(blocks * interleaved_block(pairs)));
  for (int64_t block = 0; block < blocks; ++block) interleave_block(b, K, N, block, out.data() + block * interleaved_block(pairs));
#else
  (void)b, (void)K, (void)N;
#endif
  return out;
}

void int16_matmul(const int16_t* a, int64_t M, int64_t K, const int16_t* b, int64_t N, uint32_t* c,
                  const std::vector<int16_t>* interleaved) {
#ifdef TUNNX_PAIRED_INT16
  if (paired_int16() && M > 0 && N > 0 && K > 0)
    return paired_int16_matmul(a, M, K, b, N, c, interleaved && !interleaved->empty() ? interleaved->data() : nullptr);
#else
  (void)interleaved;
#endif
  constexpr int64_t kCols = 256, kRows = 16;
  const int64_t col_blocks = (N + kCols - 1) / kCols;
  if (M <= 0 || col_blocks <= 0) return;
  const int threads = M * K * N >= (int64_t{1} << 17) ? static_cast<int>(std::min<int64_t>(max_threads(), col_blocks)) : 1;
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t t = 0; t < col_blocks; ++t) {
    const int64_t j0 = t * kCols, cols = std::min(kCols, N - j0);
    uint32_t sums[kRows][kCols];
    for (int64_t i0 = 0; i0 < M; i0 += kRows) {
      const int64_t rows = std::min(kRows, M - i0);
      for (int64_t i = 0; i < rows; ++i) std::fill_n(sums[i], cols, 0u);
      int16_product_sums(a + i0 * K, K, rows, b + j0, N, K, cols, sums[0], kCols);
      for (int64_t i = 0; i < rows; ++i) std::copy_n(sums[i], cols, c + (i0 + i) * N + j0);
    }
  }
}

namespace {

constexpr int64_t kVnniColumns = 16;  // one panel: 16 int32 lanes

int64_t vnni_panel_bytes(int64_t K) { return (K + 3) / 4 * 4 * kVnniColumns; }

// R rows of `a` (each padded to `quads` x 4 bytes with zeros, `lda` apart) against panels [first,
// first + G): R x G accumulators, each panel's 64 bytes loaded once for the R rows.
template <int R, int G>
__attribute__((target("avx512f,avx512bw,avx512vnni"), always_inline)) inline void vnni_tile(
    const uint8_t* a, int64_t lda, int64_t quads, const int8_t* panels, int64_t panel_bytes, int64_t first, int64_t N,
    int32_t* c, int64_t ldc) {
  __m512i acc[R][G];
  // Every loop over r and g unrolled whole, so the accumulators stay in registers at -O2 too.
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int g = 0; g < G; ++g) acc[r][g] = _mm512_setzero_si512();
  const int8_t* base = panels + first * panel_bytes;
  for (int64_t q = 0; q < quads; ++q) {
    __m512i bv[G];
#pragma GCC unroll 8
    for (int g = 0; g < G; ++g) bv[g] = _mm512_loadu_si512(base + g * panel_bytes + q * 64);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      int32_t four;
      std::memcpy(&four, a + r * lda + q * 4, 4);
      const __m512i av = _mm512_set1_epi32(four);
#pragma GCC unroll 8
      for (int g = 0; g < G; ++g) acc[r][g] = _mm512_dpbusd_epi32(acc[r][g], av, bv[g]);
    }
  }
#pragma GCC unroll 8
  for (int g = 0; g < G; ++g) {
    const int64_t j0 = (first + g) * kVnniColumns, cols = std::min<int64_t>(kVnniColumns, N - j0);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      if (cols == kVnniColumns) {
        _mm512_storeu_si512(c + r * ldc + j0, acc[r][g]);
      } else {
        alignas(64) int32_t lanes[kVnniColumns];
        _mm512_store_si512(lanes, acc[r][g]);
        std::copy_n(lanes, cols, c + r * ldc + j0);
      }
    }
  }
}

// Rows [r0, r0 + R) against panels [begin, end): G at a time, then 2, then 1.
template <int R, int G>
__attribute__((target("avx512f,avx512bw,avx512vnni"), always_inline)) inline void vnni_rows(
    const uint8_t* a, int64_t lda, int64_t quads, const int8_t* panels, int64_t panel_bytes, int64_t begin, int64_t end,
    int64_t N, int32_t* c) {
  int64_t p = begin;
  for (; p + G <= end; p += G) vnni_tile<R, G>(a, lda, quads, panels, panel_bytes, p, N, c, N);
  for (; p + 2 <= end; p += 2) vnni_tile<R, 2>(a, lda, quads, panels, panel_bytes, p, N, c, N);
  for (; p < end; ++p) vnni_tile<R, 1>(a, lda, quads, panels, panel_bytes, p, N, c, N);
}

__attribute__((target("avx512f,avx512bw,avx512vnni"))) void vnni_matmul(const uint8_t* a, int64_t M, int64_t K,
                                                                         const int8_t* panels, int64_t N, int32_t* c) {
  const int64_t quads = (K + 3) / 4, lda = quads * 4, panel_bytes = vnni_panel_bytes(K);
  const int64_t count = (N + kVnniColumns - 1) / kVnniColumns;
  std::vector<uint8_t> rows(static_cast<size_t>(M * lda), 0);  // a, each row padded to whole quads
  for (int64_t r = 0; r < M; ++r) std::copy_n(a + r * K, K, rows.data() + r * lda);
  // The panels split among the run's threads, in whole groups of 6 (a thread reads only its panels).
  const double work = static_cast<double>(M) * static_cast<double>(K) * static_cast<double>(N);
  const int threads = work >= static_cast<double>(int64_t{1} << 22) ? static_cast<int>(std::min<int64_t>(max_threads(), (count + 5) / 6)) : 1;
  const int64_t share = ((count + threads - 1) / threads + 5) / 6 * 6;
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int t = 0; t < threads; ++t) {
    const int64_t begin = std::min(count, t * share), end = std::min(count, begin + share);
    // Panels in chunks of ~256 KiB that stay in the L2 while every row tile reads them: tile by tile
    // over all panels, each tile streamed the whole matrix from the L3 again.
    const int64_t chunk = std::max<int64_t>(6, (int64_t{256} << 10) / panel_bytes / 6 * 6);
    for (int64_t p0 = begin; p0 < end; p0 += chunk) {
      const int64_t p1 = std::min(end, p0 + chunk);
      int64_t r = 0;
      for (; r + 4 <= M; r += 4) vnni_rows<4, 6>(rows.data() + r * lda, lda, quads, panels, panel_bytes, p0, p1, N, c + r * N);
      for (; r < M; ++r) vnni_rows<1, 8>(rows.data() + r * lda, lda, quads, panels, panel_bytes, p0, p1, N, c + r * N);
    }
  }
}

}  // namespace

TUNNX_MULTI_ISA
void copy_blocks(const float* from, int64_t from_step, float* into, int64_t into_step, int64_t count, int64_t width) {
  if (width == 16) {
    for (int64_t i = 0; i < count; ++i) store16(into + i * into_step, load16(from + i * from_step));
    return;
  }
  for (int64_t i = 0; i < count; ++i)
    for (int64_t j = 0; j < width; ++j) into[i * into_step + j] = from[i * from_step + j];
}

TUNNX_MULTI_ISA
void max_pool_channels_last(const float* x, int64_t H, int64_t W, int64_t C, float* y, int64_t OW,
                            const int64_t kernel[2], const int64_t strides[2], const int64_t dilations[2],
                            const int64_t pads[2], int64_t oh_begin, int64_t oh_end) {
  std::vector<const float*> taps(static_cast<size_t>(kernel[0] * kernel[1]));
  for (int64_t oh = oh_begin; oh < oh_end; ++oh)
    for (int64_t ow = 0; ow < OW; ++ow) {
      size_t count = 0;  // the window's taps inside X, in row-major order
      for (int64_t kh = 0; kh < kernel[0]; ++kh) {
        const int64_t ih = oh * strides[0] - pads[0] + kh * dilations[0];
        if (ih < 0 || ih >= H) continue;
        for (int64_t kw = 0; kw < kernel[1]; ++kw) {
          const int64_t iw = ow * strides[1] - pads[1] + kw * dilations[1];
          if (iw >= 0 && iw < W) taps[count++] = x + (ih * W + iw) * C;
        }
      }
      float* out = y + (oh * OW + ow) * C;
      if (count == 0) {
        std::fill_n(out, C, 0.0f);
        continue;
      }
      int64_t c = 0;
      for (; c + 16 <= C; c += 16) {
        Vec16 best = load16(taps[0] + c);
        for (size_t t = 1; t < count; ++t) {
          const Vec16 v = load16(taps[t] + c);
          best = v > best ? v : best;
        }
        store16(out + c, best);
      }
      for (; c < C; ++c) {
        float best = taps[0][c];
        for (size_t t = 1; t < count; ++t)
          if (taps[t][c] > best) best = taps[t][c];
        out[c] = best;
      }
    }
}

// ---- panel_gemm: many rows times groups of 48 columns, on AVX-512 ----

namespace {

constexpr int64_t kGemmDepth = 256;  // k steps per slice: a group's slice (48 KiB) stays in the L2
constexpr int64_t kGroupWidth = 16 * kPanelGroup;

// R rows (1-8) by P panels (1-3) of a group, over one slice of kc k steps: 8 x 3 keeps 24 of the 32
// registers as accumulators and 3 for the weights. `b`: the group's row at the slice's first k step
// (rows kGroupWidth floats apart). `prefetch`, `lines`: the next slice, fetched into the L2 a few
// lines per four k steps while this tile computes: the hardware's prefetch alone left the
// multiply-adds waiting on weights that come from memory every run (BERT's 57 MB), ~15% of a
// product's time.
template <int R, int P>
__attribute__((target("avx512f"), always_inline)) inline void gemm_tile(const float* a, int64_t lda, const float* b,
                                                                         int64_t kc, float* c, int64_t ldc,
                                                                         bool accumulate, const float* bias,
                                                                         __mmask16 last_mask, const float* prefetch,
                                                                         int64_t lines) {
  __m512 acc[R][P];
  const __mmask16 full = 0xFFFF;
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 3
    for (int q = 0; q < P; ++q)
      acc[r][q] = accumulate ? _mm512_maskz_loadu_ps(q + 1 == P ? last_mask : full, c + r * ldc + 16 * q)
                             : _mm512_setzero_ps();
  const int64_t chunks = kc / 4;
  const int64_t per_chunk = chunks > 0 ? (lines + chunks - 1) / chunks : 0;
  int64_t line = 0;
  int64_t p = 0;
  for (; p + 4 <= kc; p += 4) {
    for (int64_t i = 0; i < per_chunk && line < lines; ++i, ++line)
      _mm_prefetch(reinterpret_cast<const char*>(prefetch + line * 16), _MM_HINT_T1);
#pragma GCC unroll 4
    for (int u = 0; u < 4; ++u) {
      __m512 w[P];
#pragma GCC unroll 3
      for (int q = 0; q < P; ++q) w[q] = _mm512_loadu_ps(b + (p + u) * kGroupWidth + 16 * q);
#pragma GCC unroll 8
      for (int r = 0; r < R; ++r) {
        const __m512 x = _mm512_set1_ps(a[r * lda + p + u]);
#pragma GCC unroll 3
        for (int q = 0; q < P; ++q) acc[r][q] = _mm512_fmadd_ps(x, w[q], acc[r][q]);
      }
    }
  }
  for (; p < kc; ++p) {
    __m512 w[P];
#pragma GCC unroll 3
    for (int q = 0; q < P; ++q) w[q] = _mm512_loadu_ps(b + p * kGroupWidth + 16 * q);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m512 x = _mm512_set1_ps(a[r * lda + p]);
#pragma GCC unroll 3
      for (int q = 0; q < P; ++q) acc[r][q] = _mm512_fmadd_ps(x, w[q], acc[r][q]);
    }
  }
  for (; line < lines; ++line) _mm_prefetch(reinterpret_cast<const char*>(prefetch + line * 16), _MM_HINT_T1);
#pragma GCC unroll 3
  for (int q = 0; q < P; ++q) {
    const __mmask16 mask = q + 1 == P ? last_mask : full;
    const __m512 add = bias ? _mm512_maskz_loadu_ps(mask, bias + 16 * q) : _mm512_setzero_ps();
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) _mm512_mask_storeu_ps(c + r * ldc + 16 * q, mask, _mm512_add_ps(acc[r][q], add));
  }
}

template <int P>
__attribute__((target("avx512f"))) void gemm_rows(int64_t R, const float* a, int64_t lda, const float* b, int64_t kc,
                                                  float* c, int64_t ldc, bool accumulate, const float* bias,
                                                  __mmask16 last_mask, const float* prefetch, int64_t lines) {
  switch (R) {
#define TUNNX_GEMM_ROWS(n) \
  case n: return gemm_tile<n, P>(a, lda, b, kc, c, ldc, accumulate, bias, last_mask, prefetch, lines);
    TUNNX_GEMM_ROWS(1) TUNNX_GEMM_ROWS(2) TUNNX_GEMM_ROWS(3) TUNNX_GEMM_ROWS(4)
    TUNNX_GEMM_ROWS(5) TUNNX_GEMM_ROWS(6) TUNNX_GEMM_ROWS(7) TUNNX_GEMM_ROWS(8)
#undef TUNNX_GEMM_ROWS
  }
}

}  // namespace

bool panel_gemm_available() {
  static const bool available = __builtin_cpu_supports("avx512f");
  return available;
}

__attribute__((target("avx512f"))) void panel_gemm(const float* a, int64_t lda, int64_t rows, const float* groups,
                                                   int64_t k, int64_t n, const float* bias, float* c, int64_t ldc,
                                                   int64_t group_begin, int64_t group_end, const PanelFinish& finish) {
  const int64_t count = (n + 15) / 16, group_stride = k * kGroupWidth;
  group_end = std::min(group_end, (count + kPanelGroup - 1) / kPanelGroup);
  if (group_begin >= group_end || rows <= 0) return;
  const int64_t tiles = (rows + 7) / 8;
  const int tail = static_cast<int>(n - (count - 1) * 16);
  const __mmask16 tail_mask = static_cast<__mmask16>(tail == 16 ? 0xFFFF : (1u << tail) - 1);
  for (int64_t k0 = 0; k0 < k; k0 += kGemmDepth) {
    const int64_t kc = std::min(kGemmDepth, k - k0);
    const bool last_slice = k0 + kc == k;
    for (int64_t g = group_begin; g < group_end; ++g) {
      const int64_t q0 = g * kPanelGroup, P = std::min(kPanelGroup, count - q0);
      const __mmask16 last_mask = q0 + P == count ? tail_mask : static_cast<__mmask16>(0xFFFF);
      // The slice computed next (this slice's next group, or the next slice's first), one stretch of
      // memory; its lines are shared out among the tiles.
      const float* next = nullptr;
      int64_t next_lines = 0;
      if (g + 1 < group_end) {
        next = groups + (g + 1) * group_stride + k0 * kGroupWidth;
        next_lines = kc * kPanelGroup;
      } else if (!last_slice) {
        next = groups + group_begin * group_stride + (k0 + kc) * kGroupWidth;
        next_lines = std::min(kGemmDepth, k - k0 - kc) * kPanelGroup;
      }
      const float* b = groups + g * group_stride + k0 * kGroupWidth;
      for (int64_t t = 0; t < tiles; ++t) {
        const int64_t r0 = t * 8, R = std::min<int64_t>(8, rows - r0);
        const int64_t l0 = next_lines * t / tiles, l1 = next_lines * (t + 1) / tiles;
        const float* ar = a + r0 * lda + k0;
        float* cr = c + r0 * ldc + q0 * 16;
        const float* br = last_slice && bias ? bias + q0 * 16 : nullptr;
        const float* fetch = next ? next + l0 * 16 : nullptr;
        if (P == 3)
          gemm_rows<3>(R, ar, lda, b, kc, cr, ldc, k0 > 0, br, last_mask, fetch, l1 - l0);
        else if (P == 2)
          gemm_rows<2>(R, ar, lda, b, kc, cr, ldc, k0 > 0, br, last_mask, fetch, l1 - l0);
        else
          gemm_rows<1>(R, ar, lda, b, kc, cr, ldc, k0 > 0, br, last_mask, fetch, l1 - l0);
        if (last_slice && finish) finish(r0, R, q0 * 16, std::min<int64_t>(P * 16, n - q0 * 16));
      }
    }
  }
}

bool u8s8_available() {
  static const bool available = __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bw");
  return available;
}

std::vector<int8_t> u8s8_pack(const int8_t* b, int64_t K, int64_t N) {
  std::vector<int8_t> out;
  if (!u8s8_available() || K <= 0 || N <= 0) return out;
  const int64_t panel_bytes = vnni_panel_bytes(K), count = (N + kVnniColumns - 1) / kVnniColumns;
  out.assign(static_cast<size_t>(count * panel_bytes), 0);
  for (int64_t k = 0; k < K; ++k)
    for (int64_t j = 0; j < N; ++j)  // panel j / 16, quad k / 4: lane j % 16 holds k % 4 at byte k % 4
      out[static_cast<size_t>(j / kVnniColumns * panel_bytes + k / 4 * 64 + j % kVnniColumns * 4 + k % 4)] = b[k * N + j];
  return out;
}

void u8s8_matmul(const uint8_t* a, int64_t M, int64_t K, const std::vector<int8_t>& packed, int64_t N, int32_t* c) {
  if (packed.empty()) throw std::logic_error("u8s8_matmul: b was not packed (no AVX-512 VNNI)");
  vnni_matmul(a, M, K, packed.data(), N, c);
}

namespace {

// The logistic function and tanh from exp_nonpositive of -|x| (no overflow, no calls): within a few
// ulp of libm's away from 0; tanh near 0 by its series, where 1 - e would cancel. NaN stays NaN.
__attribute__((always_inline)) inline float logistic(float x) {
  const float e = exp_nonpositive(-std::fabs(x)), s = 1.0f / (1.0f + e);
  return x >= 0.0f ? s : e * s;
}

__attribute__((always_inline)) inline float tanh_of(float x) {
  const float a = std::fabs(x), e = exp_nonpositive(-2.0f * a);
  const float far = (1.0f - e) / (1.0f + e), x2 = x * x;
  const float near = a * (1.0f - x2 * (1.0f / 3.0f) + x2 * x2 * (2.0f / 15.0f));
  return std::copysign(a < 0.01f ? near : far, x);
}

}  // namespace

namespace {

// log(x) for a positive normal x, as Cephes' logf: x = m 2^e with m in [sqrt(1/2), sqrt(2)), log(m)
// by a degree-9 polynomial in m - 1, e ln 2 added in two parts. Bits, not frexp, so it vectorizes.
__attribute__((always_inline)) inline float log_positive(float x) {
  const int32_t bits = std::bit_cast<int32_t>(x);
  float e = static_cast<float>(((bits >> 23) & 0xff) - 126);
  float m = std::bit_cast<float>((bits & 0x007fffff) | 0x3f000000);  // [0.5, 1)
  const bool low = m < 0.707106781186547524f;
  e = low ? e - 1.0f : e;
  m = low ? m + m - 1.0f : m - 1.0f;
  const float z = m * m;
  float y = 7.0376836292e-2f;
  y = y * m - 1.1514610310e-1f;
  y = y * m + 1.1676998740e-1f;
  y = y * m - 1.2420140846e-1f;
  y = y * m + 1.4249322787e-1f;
  y = y * m - 1.6668057665e-1f;
  y = y * m + 2.0000714765e-1f;
  y = y * m - 2.4999993993e-1f;
  y = y * m + 3.3333331174e-1f;
  y = y * m * z - 2.12194440e-4f * e - 0.5f * z;
  return m + y + 0.693359375f * e;
}

// log(1 + t) for t in [0, 1]: log(u) of u = 1 + t, times t / (u - 1) to take back the rounding of u
// (u - 1 is exact), so a tiny t keeps its digits.
__attribute__((always_inline)) inline float log1p_unit(float t) {
  const float u = 1.0f + t, d = u - 1.0f;
  const float scaled = log_positive(u) * (t / (d == 0.0f ? 1.0f : d));  // both sides computed: no branch
  return d == 0.0f ? t : scaled;
}

// log(x) for every float: subnormals scaled into the normal range first; 0 gives -inf, a negative
// number NaN, +inf and NaN themselves.
__attribute__((always_inline)) inline float log_of(float x) {
  const bool tiny = x < 1.17549435e-38f;
  const float y = log_positive(tiny ? x * 8388608.0f : x) - (tiny ? 15.9423851528787f : 0.0f);  // 2^23, 23 ln 2
  const float special = x == 0.0f ? -std::numeric_limits<float>::infinity() : std::numeric_limits<float>::quiet_NaN();
  return x > 0.0f && x < std::numeric_limits<float>::infinity() ? y : x == std::numeric_limits<float>::infinity() ? x
         : x != x ? x : special;
}

__attribute__((always_inline)) inline float softplus(float x) {
  const float y = (x > 0.0f ? x : 0.0f) + log1p_unit(exp_nonpositive(-std::fabs(x)));
  return x != x ? x : y;
}

// x tanh(softplus(x)). With a = e^-|x|: for x <= 0, (1 + e^x)^2 - 1 = a (a + 2), so the ratio is
// n / (n + 2) (no cancellation as x falls: about a); for x > 0, times a^2 above and below it is
// (1 + 2a) / (1 + 2a + 2a^2). -inf gives -inf * 0 = NaN, as the formula does.
__attribute__((always_inline)) inline float mish(float x) {
  const float a = exp_nonpositive(-std::fabs(x)), n = a * (a + 2.0f), twice = a + a;
  const float above = x > 0.0f ? 1.0f + twice : n, below = x > 0.0f ? 1.0f + twice + twice * a : n + 2.0f;
  return x != x ? x : x * (above / below);
}

__attribute__((always_inline)) inline float erf_of(float x) {
  const float a = std::fabs(x), s = a * a;
  // Below 0.5: 2/sqrt(pi) (x - x^3/3 + x^5/10 - x^7/42 + x^9/216 - x^11/1320 + x^13/9360); the next
  // term is under 1e-9 of the value.
  float p = 1.0f / 9360.0f;
  p = p * s - 1.0f / 1320.0f;
  p = p * s + 1.0f / 216.0f;
  p = p * s - 1.0f / 42.0f;
  p = p * s + 1.0f / 10.0f;
  p = p * s - 1.0f / 3.0f;
  p = p * s + 1.0f;
  const float near = 1.12837916709551257f * p * x;
  // From 0.5: erfc(a) = t exp(-a^2 + q(t)), t = 1 / (1 + a/2); from 4 on, erf is 1 in float.
  const float t = 1.0f / (1.0f + 0.5f * a);
  float q = 0.17087277f;
  q = q * t - 0.82215223f;
  q = q * t + 1.48851587f;
  q = q * t - 1.13520398f;
  q = q * t + 0.27886807f;
  q = q * t - 0.18628806f;
  q = q * t + 0.09678418f;
  q = q * t + 0.37409196f;
  q = q * t + 1.00002368f;
  q = q * t - 1.26551223f;
  const float erfc = t * exp_nonpositive(std::min(q - s, 0.0f));
  const float far = std::copysign(a < 4.0f ? 1.0f - erfc : 1.0f, x);
  return x != x ? x : a < 0.5f ? near : far;
}

template <typename Fn>
__attribute__((always_inline)) inline void each(const float* in, float* out, int64_t n, Fn fn) {
  for (int64_t i = 0; i < n; ++i) out[i] = fn(in[i]);
}

}  // namespace

TUNNX_MULTI_ISA
void float_unary(FloatUnaryOp op, const float* in, float* out, int64_t n, float alpha, float beta) {
  switch (op) {
    case FloatUnaryOp::kSqrt: return each(in, out, n, [](float x) { return std::sqrt(x); });
    case FloatUnaryOp::kFloor: return each(in, out, n, [](float x) { return std::floor(x); });
    case FloatUnaryOp::kCeil: return each(in, out, n, [](float x) { return std::ceil(x); });
    case FloatUnaryOp::kRoundHalfEven: return each(in, out, n, [](float x) { return __builtin_roundevenf(x); });
    case FloatUnaryOp::kHardSigmoid:
      return each(in, out, n, [alpha, beta](float x) {
        float v = alpha * x + beta;
        v = v < 1.0f ? v : 1.0f;  // a NaN becomes 1, as fmin(1, NaN) is
        return v > 0.0f ? v : 0.0f;
      });
    case FloatUnaryOp::kSoftplus: return each(in, out, n, softplus);
    case FloatUnaryOp::kMish: return each(in, out, n, mish);
    case FloatUnaryOp::kErf: return each(in, out, n, erf_of);
    case FloatUnaryOp::kLog: return each(in, out, n, log_of);
    case FloatUnaryOp::kGelu:
      return each(in, out, n, [](float x) { return 0.5f * x * (1.0f + erf_of(x / 1.41421356237309505f)); });
    case FloatUnaryOp::kSigmoid: return each(in, out, n, logistic);
    case FloatUnaryOp::kSilu: return each(in, out, n, [](float x) { return x * logistic(x); });
  }
}

TUNNX_MULTI_ISA
void lstm_cell(const float* gates, float* c, float* h, int64_t n, bool input_forget) {
  for (int64_t j = 0; j < n; ++j) {
    const float i = logistic(gates[j]), o = logistic(gates[n + j]);
    const float f = input_forget ? 1.0f - i : logistic(gates[2 * n + j]);
    const float cell = f * c[j] + i * tanh_of(gates[3 * n + j]);
    c[j] = cell;
    h[j] = o * tanh_of(cell);
  }
}

TUNNX_MULTI_ISA
void range_with_zero(const float* x, int64_t n, float& lo, float& hi) {
  // 16 lanes each, folded at the end: a single running minimum would not vectorize.
  float lanes_lo[16] = {}, lanes_hi[16] = {};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int j = 0; j < 16; ++j) {
      const float v = x[i + j];
      lanes_lo[j] = v < lanes_lo[j] ? v : lanes_lo[j];
      lanes_hi[j] = v > lanes_hi[j] ? v : lanes_hi[j];
    }
  float l = 0, h = 0;
  for (int j = 0; j < 16; ++j) {
    l = lanes_lo[j] < l ? lanes_lo[j] : l;
    h = lanes_hi[j] > h ? lanes_hi[j] : h;
  }
  for (; i < n; ++i) {
    l = x[i] < l ? x[i] : l;
    h = x[i] > h ? x[i] : h;
  }
  lo = l;
  hi = h;
}

TUNNX_MULTI_ISA
void quantize_to_uint8(const float* x, int64_t n, float scale, float zero, uint8_t* out) {
  for (int64_t i = 0; i < n; ++i) {
    float v = std::nearbyint(x[i] / scale) + zero;
    v = v > 0.0f ? v : 0.0f;  // a NaN too
    v = v < 255.0f ? v : 255.0f;
    out[i] = static_cast<uint8_t>(static_cast<int32_t>(v));
  }
}

TUNNX_MULTI_ISA
void accumulate_rows(const float* in, int64_t rows, int64_t stride, int64_t n, double* acc) {
  int64_t j = 0;
  for (; j + 32 <= n; j += 32) accumulate_columns<32>(in + j, rows, stride, acc + j);
  if (j + 16 <= n) {
    accumulate_columns<16>(in + j, rows, stride, acc + j);
    j += 16;
  }
  if (j + 8 <= n) {
    accumulate_columns<8>(in + j, rows, stride, acc + j);
    j += 8;
  }
  for (; j < n; ++j) accumulate_columns<1>(in + j, rows, stride, acc + j);
}

}  // namespace tunnx::cpu
