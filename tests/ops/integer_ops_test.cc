// MatMulInteger and ConvInteger (the int16 products of runtime/cpu/kernels/vector_loops.h) against
// sums written out here in 64 bits and cast to int32: int8 and uint8 operands, zero points per tensor,
// per row of A, per column of B and per output channel of W, batched and broadcast products, column
// counts around the 256-column blocks and row counts around the 16-row ones, depths that wrap the
// 32-bit sums, groups, padding, strides and dilations; and the VNNI product of uint8 rows and an int8
// matrix that the quantized LSTM's R takes where the CPU has it.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <tuple>
#include <random>
#include <string>
#include <vector>

#include "runtime/cpu/kernels/vector_loops.h"
#include "tests/ops/node_runner.h"
#include "tunnx/tensor.h"

namespace tunnx_test {
namespace {

using tunnx::DataType;
using tunnx::Tensor;

template <typename T> Tensor filled(std::vector<int64_t> dims, std::mt19937& rng, int lo, int hi) {
  Tensor t = Tensor::uninitialized(std::is_same_v<T, int8_t> ? DataType::kInt8 : DataType::kUInt8, dims);
  std::uniform_int_distribution<int> d(lo, hi);
  for (int64_t i = 0; i < t.numel(); ++i) t.mutable_data_as<T>()[i] = static_cast<T>(d(rng));
  return t;
}

template <typename T> int64_t at(const Tensor& t, int64_t i) { return static_cast<int64_t>(t.data_as<T>()[i]); }

// MatMulInteger of A [batch..., M, K] and B [K, N] (or batched), zero points as given.
template <typename TA, typename TB>
void check_matmul(std::vector<int64_t> a_dims, std::vector<int64_t> b_dims, bool a_zp_rows, bool b_zp_cols,
                  std::mt19937& rng) {
  const bool a_signed = std::is_same_v<TA, int8_t>, b_signed = std::is_same_v<TB, int8_t>;
  const Tensor a = filled<TA>(a_dims, rng, a_signed ? -128 : 0, a_signed ? 127 : 255);
  const Tensor b = filled<TB>(b_dims, rng, b_signed ? -128 : 0, b_signed ? 127 : 255);
  const int64_t M = a_dims[a_dims.size() - 2], K = a_dims.back(), N = b_dims.back();
  const Tensor a_zp = filled<TA>(a_zp_rows ? std::vector<int64_t>{M} : std::vector<int64_t>{}, rng, a_signed ? -20 : 100, a_signed ? 20 : 140);
  const Tensor b_zp = filled<TB>(b_zp_cols ? std::vector<int64_t>{N} : std::vector<int64_t>{}, rng, b_signed ? -20 : 100, b_signed ? 20 : 140);
  const std::vector<tunnx::Value> out =
      run_one_node({.opset = 10, .op_type = "MatMulInteger", .inputs = {a, b, a_zp, b_zp}});
  const Tensor& y = out.at(0).tensor();
  ASSERT_EQ(y.dtype(), DataType::kInt32);
  const int64_t batches = a.numel() / (M * K), b_batches = b.numel() / (K * N);
  ASSERT_EQ(y.numel(), batches * M * N);
  for (int64_t n = 0; n < batches; ++n)
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) {
        int64_t sum = 0;
        for (int64_t k = 0; k < K; ++k)
          sum += (at<TA>(a, (n * M + i) * K + k) - at<TA>(a_zp, a_zp_rows ? i : 0)) *
                 (at<TB>(b, ((b_batches == 1 ? 0 : n) * K + k) * N + j) - at<TB>(b_zp, b_zp_cols ? j : 0));
        ASSERT_EQ(y.data_as<int32_t>()[(n * M + i) * N + j], static_cast<int32_t>(static_cast<uint32_t>(sum)))
            << "MatMulInteger " << tunnx::dims_to_string(a_dims) << " x " << tunnx::dims_to_string(b_dims) << " at (" << n
            << ", " << i << ", " << j << ")";
      }
}

TEST(IntegerOps, MatMulIntegerMatchesSixtyFourBitSums) {
  std::mt19937 rng(5);
  check_matmul<uint8_t, uint8_t>({15, 512}, {512, 600}, false, false, rng);       // ddddocr's shape, narrower
  check_matmul<uint8_t, int8_t>({17, 33}, {33, 257}, true, true, rng);           // past a row and a column block
  check_matmul<int8_t, int8_t>({2, 3, 5, 7}, {2, 3, 7, 9}, true, false, rng);    // batched
  check_matmul<uint8_t, uint8_t>({4, 1, 16}, {16, 256}, false, true, rng);       // broadcast B
  check_matmul<int8_t, uint8_t>({1, 1}, {1, 1}, false, false, rng);
  // Sums past 2^31: 255 x 255 x 40,000 wraps, as the 64-bit sum cast to int32 does.
  Tensor a = Tensor::uninitialized(DataType::kUInt8, {1, 40000}), b = Tensor::uninitialized(DataType::kUInt8, {40000, 3});
  for (int64_t i = 0; i < a.numel(); ++i) a.mutable_data_as<uint8_t>()[i] = 255;
  for (int64_t i = 0; i < b.numel(); ++i) b.mutable_data_as<uint8_t>()[i] = 255;
  Tensor zero = Tensor::uninitialized(DataType::kUInt8, {});
  zero.mutable_data_as<uint8_t>()[0] = 0;
  const std::vector<tunnx::Value> out = run_one_node({.opset = 10, .op_type = "MatMulInteger", .inputs = {a, b, zero, zero}});
  EXPECT_EQ(out.at(0).tensor().data_as<int32_t>()[0], static_cast<int32_t>(static_cast<uint32_t>(int64_t{255} * 255 * 40000)));
}

// ConvInteger (2-D) of X [N, C, H, W] and W [M, C/group, kh, kw], x zero point per tensor, w zero point
// per output channel.
void check_conv(int64_t n, int64_t c, int64_t h, int64_t w, int64_t m, int64_t group, int64_t k, int64_t stride,
                int64_t dilation, int64_t pad, std::mt19937& rng) {
  const Tensor x = filled<uint8_t>({n, c, h, w}, rng, 0, 255);
  const Tensor wt = filled<uint8_t>({m, c / group, k, k}, rng, 0, 255);
  const Tensor x_zp = filled<uint8_t>({}, rng, 100, 140);
  const Tensor w_zp = filled<uint8_t>({m}, rng, 100, 140);
  std::vector<tunnx::ir::Attribute> attrs = {tunnx::ops::attr("group", group),
                                             tunnx::ops::attr("strides", std::vector<int64_t>{stride, stride}),
                                             tunnx::ops::attr("dilations", std::vector<int64_t>{dilation, dilation}),
                                             tunnx::ops::attr("pads", std::vector<int64_t>{pad, pad, pad, pad})};
  const std::vector<tunnx::Value> out =
      run_one_node({.opset = 10, .op_type = "ConvInteger", .inputs = {x, wt, x_zp, w_zp}, .attributes = attrs});
  const Tensor& y = out.at(0).tensor();
  const int64_t oh = (h + 2 * pad - dilation * (k - 1) - 1) / stride + 1, ow = (w + 2 * pad - dilation * (k - 1) - 1) / stride + 1;
  ASSERT_EQ(y.dims(), (std::vector<int64_t>{n, m, oh, ow}));
  const int64_t cg = c / group, mg = m / group;
  for (int64_t b = 0; b < n; ++b)
    for (int64_t o = 0; o < m; ++o)
      for (int64_t r = 0; r < oh; ++r)
        for (int64_t s = 0; s < ow; ++s) {
          int64_t sum = 0;
          for (int64_t ci = 0; ci < cg; ++ci)
            for (int64_t u = 0; u < k; ++u)
              for (int64_t v = 0; v < k; ++v) {
                const int64_t ir = r * stride - pad + u * dilation, is = s * stride - pad + v * dilation;
                if (ir < 0 || ir >= h || is < 0 || is >= w) continue;  // padding: X - x_zp = 0
                const int64_t ic = o / mg * cg + ci;
                sum += (at<uint8_t>(x, ((b * c + ic) * h + ir) * w + is) - at<uint8_t>(x_zp, 0)) *
                       (at<uint8_t>(wt, ((o * cg + ci) * k + u) * k + v) - at<uint8_t>(w_zp, o));
              }
          ASSERT_EQ(y.data_as<int32_t>()[((b * m + o) * oh + r) * ow + s], static_cast<int32_t>(sum))
              << "ConvInteger c " << c << " m " << m << " group " << group << " k " << k << " at (" << b << ", " << o
              << ", " << r << ", " << s << ")";
        }
}

TEST(IntegerOps, ConvIntegerMatchesSixtyFourBitSums) {
  std::mt19937 rng(9);
  check_conv(1, 8, 9, 11, 20, 1, 3, 1, 1, 1, rng);
  check_conv(2, 6, 7, 7, 6, 3, 3, 2, 1, 1, rng);   // groups, stride
  check_conv(1, 4, 10, 10, 4, 4, 3, 1, 2, 2, rng); // depthwise, dilation
  check_conv(1, 3, 20, 20, 17, 1, 1, 1, 1, 0, rng); // 400 positions: past a column block
}

// u8s8_matmul (AVX-512 VNNI; a quantized LSTM's R each step) against the sums written out: row and
// column counts around its 16-column panels and groups of 8, depths not a multiple of 4, the extreme
// values (255 x -128 at every k), and a row of zeros.
TEST(IntegerOps, VnniProductMatchesThePlainSums) {
  if (!tunnx::cpu::u8s8_available()) GTEST_SKIP() << "no AVX-512 VNNI on this CPU";
  std::mt19937 rng(11);
  std::uniform_int_distribution<int> u8(0, 255), s8(-128, 127);
  for (const auto& [M, K, N] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{
           {1, 512, 2048}, {1, 33, 132}, {3, 7, 17}, {2, 1, 1}, {1, 4, 16}, {4, 129, 143}, {1, 2048, 8},
           {9, 67, 200}, {32, 512, 1000}}) {  // 4-row tiles and the rows left; panels split among threads
    std::vector<uint8_t> a(static_cast<size_t>(M * K));
    std::vector<int8_t> b(static_cast<size_t>(K * N));
    for (auto& v : a) v = static_cast<uint8_t>(u8(rng));
    for (auto& v : b) v = static_cast<int8_t>(s8(rng));
    if (M > 1) std::fill_n(a.begin() + K, K, uint8_t{0});  // the second row all zeros
    if (N > 1)
      for (int64_t k = 0; k < K; ++k) {  // column 1 at the extremes, against a first row of 255s
        b[static_cast<size_t>(k * N + 1)] = -128;
        a[static_cast<size_t>(k)] = 255;
      }
    const std::vector<int8_t> packed = tunnx::cpu::u8s8_pack(b.data(), K, N);
    std::vector<int32_t> c(static_cast<size_t>(M * N), -1);
    tunnx::cpu::u8s8_matmul(a.data(), M, K, packed, N, c.data());
    for (int64_t r = 0; r < M; ++r)
      for (int64_t j = 0; j < N; ++j) {
        int64_t want = 0;
        for (int64_t k = 0; k < K; ++k) want += int64_t{a[static_cast<size_t>(r * K + k)]} * b[static_cast<size_t>(k * N + j)];
        ASSERT_EQ(c[static_cast<size_t>(r * N + j)], want) << M << "x" << K << "x" << N << " at " << r << ", " << j;
      }
  }
}

}  // namespace
}  // namespace tunnx_test
