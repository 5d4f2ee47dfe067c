// Hot float loops of the reference kernels, compiled once per instruction set (AVX-512, AVX2, the
// x86-64 baseline) and picked when the library loads (GCC target_clones). The rest of tunnx is built
// for the baseline, so that one binary runs on every x86-64 machine; without this, the loops that
// sit between oneDNN's convolutions (a squeeze-excite block's channel scale and its global average)
// ran on SSE2 at a quarter of the vector width the machine has.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

namespace tunnx::cpu {

enum class FloatBinaryOp { kAdd, kSub, kMul, kDiv };

// out[r * n + j] = a[r * a_row + j * a_col] op b[r * b_row + j * b_col] for r < rows, j < n, where
// a_col and b_col are 0 (the operand repeats along the row) or 1 (it is contiguous).
void float_binary_rows(FloatBinaryOp op, const float* a, int64_t a_row, int64_t a_col, const float* b, int64_t b_row,
                       int64_t b_col, float* out, int64_t rows, int64_t n);

// sums[i * ld_sums + j] += sum over p < k of a[i * lda + p] * b[p * ldb + j], for i < rows and j < cols,
// in wrapping 32-bit arithmetic (each product of two int16 values of magnitude at most 255 is exact):
// MatMulInteger's and ConvInteger's centered operands. Rows of a that are 0 at p skip it.
void int16_product_sums(const int16_t* a, int64_t lda, int64_t rows, const int16_t* b, int64_t ldb, int64_t k,
                        int64_t cols, uint32_t* sums, int64_t ld_sums);

// c [M, N] = a [M, K] x b [K, N] (row-major, dense), in wrapping 32-bit arithmetic. With AVX-512BW:
// blocks of 64 columns of b interleaved two k steps at a time for vpmaddwd, six rows of a per tile of
// 24 accumulators (ddddocr's 32 x 512 x 8192 product: 8.8 -> 2.1 ms at one thread). Else by
// int16_product_sums: columns in blocks of 256, whose sums for up to 16 rows of a stay in the L1
// while each row of b's block is read once for all of them. The blocks are split among the run's threads.
// `interleaved`, when given and not empty: int16_interleave(b, K, N), made once for a b that many
// products read (a recurrent weight, once per step), instead of each call interleaving b again.
void int16_matmul(const int16_t* a, int64_t M, int64_t K, const int16_t* b, int64_t N, uint32_t* c,
                  const std::vector<int16_t>* interleaved = nullptr);
// b [K, N] as int16_matmul's AVX-512BW path reads it; empty where that path does not run.
std::vector<int16_t> int16_interleave(const int16_t* b, int64_t K, int64_t N);

// into[i * into_step + j] = from[i * from_step + j] for i < count, j < width (8 or 16): blocks of
// channels moved between channels-last and channels-blocked layouts (blocked_reorder.h), a vector each.
void copy_blocks(const float* from, int64_t from_step, float* into, int64_t into_step, int64_t count, int64_t width);

// 2-D max pooling of one channels-last image, output rows [oh_begin, oh_end): y [OH, OW, C] from
// x [H, W, C] over windows of kernel[0] x kernel[1] taps at strides, dilations and leading pads
// (taps in the pads are left out). Each output takes its window's first tap, then any later tap
// greater than it, as the reference kernel compares (a NaN is kept where it comes first, passed over
// later); a window of pads alone gives 0. Channels a vector at a time.
void max_pool_channels_last(const float* x, int64_t H, int64_t W, int64_t C, float* y, int64_t OW,
                            const int64_t kernel[2], const int64_t strides[2], const int64_t dilations[2],
                            const int64_t pads[2], int64_t oh_begin, int64_t oh_end);

// Many rows times a weight matrix in groups of 48 columns (a transformer's Linear layer at sequence
// length 128, a pointwise convolution of 5 to 16 pixels: panel_linear.h), on AVX-512. `groups` holds
// ceil(n / 48) groups of k rows of 48 floats (oneDNN's Ohwi48o layout of B as [n, k, 1, 1] weights,
// zero past n); for r < rows and the columns of groups [group_begin, group_end) below n,
//   c[r * ldc + j] = sum_p a[r * lda + p] * groups[(j / 48) * k * 48 + p * 48 + j % 48] (+ bias[j]),
// then finish(row0, rows, col0, cols) on each finished block of c while it is in the L1 (an
// activation, a residual). Tiles of 8 rows by 48 columns over slices of 256 k steps; each tile
// fetches part of the next slice into the L2 as it computes, so weights read from memory on every
// run arrive before they are needed (panel_linear.h has the numbers). Sums run in k order within a
// slice, slices added in order. Only where panel_gemm_available() (AVX-512F).
inline constexpr int64_t kPanelGroup = 3;  // panels of 16 columns per group
using PanelFinish = std::function<void(int64_t row0, int64_t rows, int64_t col0, int64_t cols)>;
bool panel_gemm_available();
void panel_gemm(const float* a, int64_t lda, int64_t rows, const float* groups, int64_t k, int64_t n, const float* bias,
                float* c, int64_t ldc, int64_t group_begin, int64_t group_end, const PanelFinish& finish);

// Products of uint8 rows and an int8 matrix on AVX-512 VNNI (vpdpbusd: four u8 x s8 products summed
// into each int32 lane): c [M, N] = a [M, K] x b [K, N], exact while the sums fit in 32 bits. b is
// first packed by u8s8_pack (empty where the CPU lacks VNNI: the caller keeps another path) into
// panels of 16 columns, k in groups of 4: half int16_matmul's bytes, for a product that streams its
// matrix every call (a quantized LSTM's R, once per step). Tiles of 4 rows by 6 panels (one row by
// 8 where fewer rows are left); the panels split among the run's threads for large products.
bool u8s8_available();
std::vector<int8_t> u8s8_pack(const int8_t* b, int64_t K, int64_t N);
void u8s8_matmul(const uint8_t* a, int64_t M, int64_t K, const std::vector<int8_t>& packed, int64_t N, int32_t* c);

// One LSTM step for n units without peepholes or clip: gates in ONNX's order i, o, f, c (n floats
// each, before their activations, biases added); c = f * c + i * tanh(g), h = o * tanh(c), with
// f = 1 - i under input_forget. Sigmoid and tanh from a Cephes-style exp, within a few ulp of libm's
// (2.1 ms of ddddocr's quantized LSTM was libm's calls, one value at a time).
void lstm_cell(const float* gates, float* c, float* h, int64_t n, bool input_forget);

// DynamicQuantizeLinear's two passes over x: the range [min(x, 0), max(x, 0)] (a NaN passed over, as
// std::min and std::max pass it), and out[i] = x[i] / scale rounded half to even, plus zero,
// saturated to [0, 255] (a NaN gives 0).
void range_with_zero(const float* x, int64_t n, float& lo, float& hi);
void quantize_to_uint8(const float* x, int64_t n, float scale, float zero, uint8_t* out);

// Unary float ops in vector loops where the reference kernel calls libm one value at a time (on one
// AVX-512 core, per value: Mish 45 ns, Softplus 16, Erf 5.1, HardSigmoid 3.4, Log 2.6, Round 2.3, Sqrt 1.4,
// Floor and Ceil 1.2): out[i] = f(in[i]) for i < n, `in` and `out` the same array or apart.
//   kSqrt, kFloor, kCeil, kRoundHalfEven: exact (the instructions, rounding ties to even whatever
//     the floating-point environment's mode).
//   kHardSigmoid: min(1, max(0, alpha x + beta)), a NaN giving 1 as fmin(1, NaN) does.
//   kSoftplus: log(1 + e^x) as max(x, 0) + log1p(e^-|x|); kMish: x tanh(softplus(x)) from e^-|x| by
//     tanh(log(1 + e^x)) = ((1 + e^x)^2 - 1) / ((1 + e^x)^2 + 1); kErf: a series below 0.5, above it
//     1 - erfc with erfc from a rational fit of fractional error 1.2e-7 (Numerical Recipes' erfcc).
//     Within a few ulp of the double-precision value (tests/ops/float_unary_test.cc); NaN stays NaN.
//   kLog: Cephes' logf polynomial, subnormals scaled first; 0 gives -inf, below 0 NaN.
//   kGelu: x (1 + erf(x / sqrt 2)) / 2 with kErf's erf (a fused product's activation, panel_linear.h).
//   kSigmoid: 1 / (1 + e^-x) from e^-|x| (no overflow); kSilu: x Sigmoid(x) (a Winograd convolution's
//     activation, applied as its output leaves the blocked layout: runtime/cpu/onednn/conv.cc).
enum class FloatUnaryOp { kSqrt, kFloor, kCeil, kRoundHalfEven, kHardSigmoid, kSoftplus, kMish, kErf, kLog, kGelu, kSigmoid, kSilu };
void float_unary(FloatUnaryOp op, const float* in, float* out, int64_t n, float alpha = 0, float beta = 0);

// acc[j] += in[r * stride + j] (in double) for r < rows, j < n.
void accumulate_rows(const float* in, int64_t rows, int64_t stride, int64_t n, double* acc);
// acc[j] = the largest (max) or smallest of acc[j] and in[r * stride + j] for r < rows, j < n. A NaN
// in a column makes it NaN when `nan_wins` (ReduceMax), and is passed over otherwise (GlobalMaxPool).
void extreme_rows(const float* in, int64_t rows, int64_t stride, int64_t n, float* acc, bool max, bool nan_wins);

// The numerators of a softmax for Attention's float32 fast path: row[j] = exp(row[j] - max) in place,
// returning their sum (the caller divides by it later, on fewer values). exp is a Cephes-style
// polynomial, within 2 ulp of std::exp, exactly 0 below -87.3 and so for -inf. A row whose maximum is
// -inf (no key allowed) becomes zeros and gives 0.
float softmax_numerators(float* row, int64_t n);

// Softmax along a strided axis for `n` neighbouring positions: y[c * stride + j] = exp(x[c * stride +
// j] - max_c) / sum_c for c < channels, j < n (n at most 512), the exp of softmax_numerators. A
// detector's DFL softmax (16 bins over 8400 anchors) spent 1.8 ms in libm's scalar expf.
void softmax_columns(const float* x, float* y, int64_t channels, int64_t stride, int64_t n);

// RMSNormalization's float rows, in double as the reference computes them: out[r * n + j] =
// in[r * n + j] * (1 / sqrt(mean of the row's squares + epsilon)) * scale[j] for r < rows.
void rms_norm_rows(const float* in, const double* scale, float* out, int64_t rows, int64_t n, double epsilon);

// The two products of Attention's float32 fast path on a block of query rows, small enough that a
// BLAS call's setup (oneDNN's sgemm generates its kernels on the first call of a process, ~28 ms)
// outweighs them. Row-major, leading dimensions in elements:
// c[r * ldc + j] = alpha * sum_p a[r * lda + p] * b[p * ldb + j] for r < rows, j < n, p < k.
// n must be a multiple of 16: b is read and c written 16 columns at a time.
void block_product(const float* a, int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc, int64_t rows,
                   int64_t n, int64_t k, float alpha);
// c[r * ldc + j] = alpha * sum_p a[r * lda + p] * b[j * ldb + p] (b's rows are the columns), for any
// n: one dot product per output, the form for a few rows against many (a decoding step's single query).
void block_product_bt(const float* a, int64_t lda, const float* b, int64_t ldb, float* c, int64_t ldc,
                      int64_t rows, int64_t n, int64_t k, float alpha);

// A few rows times a weight matrix packed in panels of 16 columns (a batch-1 Linear layer, which
// reads every weight once per run, so its speed is the speed its weights stream in): for r < rows
// (four at a time) and the columns j of panels [panel_begin, panel_end) below n,
//   c[r * ldc + j] = sum_p a[r * lda + p] * panels[(j / 16) * k * 16 + p * 16 + j % 16] (+ bias[j]).
// `panels` holds ceil(n / 16) panels of k rows of 16 floats, the last zero-padded past n.
void panel_product(const float* a, int64_t lda, int64_t rows, const float* panels, int64_t k, int64_t n,
                   const float* bias, float* c, int64_t ldc, int64_t panel_begin, int64_t panel_end);

}  // namespace tunnx::cpu
