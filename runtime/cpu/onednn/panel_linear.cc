#include "runtime/cpu/onednn/panel_linear.h"

#include <algorithm>
#include <memory>

#include "runtime/cpu/kernels/common.h"
#include "runtime/cpu/kernels/vector_loops.h"
#include "runtime/cpu/onednn/onednn_common.h"

namespace tunnx::cpu::onednn {

namespace {

// Weights below this many floats are read by one thread: the team's start costs more than it saves.
constexpr int64_t kParallelWeights = int64_t{1} << 15;

// Activations panel_gemm's blocks apply in vector loops: the piecewise-linear kinds (Activation::apply
// vectorizes them) and GELU (float_unary's erf).
bool vector_activation(const ops::Activation& act) {
  using Kind = ops::Activation::Kind;
  switch (act.kind) {
    case Kind::kNone:
    case Kind::kRelu:
    case Kind::kLeakyRelu:
    case Kind::kClip:
    case Kind::kHardSigmoid:
    case Kind::kHardSwish:
    case Kind::kGelu: return true;
    default: return false;
  }
}

}  // namespace

PanelLinear::PanelLinear(const PackedWeights& packed, bool b_transposed, ops::Activation activation,
                         ops::FusedBinary binary)
    : b_transposed_(b_transposed),
      activation_(activation),
      binary_(binary),
      gemm_takes_activation_(vector_activation(activation)),
      packed_(packed) {}

bool PanelLinear::takes(const Tensor& b, int64_t M) const {
  if (M < 1 || b.rank() != 2 || !packed_.is_constant(b)) return false;
  return M <= kMaxRows || (M >= kMinGemmRows && M <= kMaxGemmRows && gemm_takes_activation_ && on_gemm(M));
}

std::shared_ptr<const dnnl::memory> PanelLinear::panels(const Tensor& b, int64_t M, int64_t K, int64_t N) const {
  using dt = dnnl::memory::data_type;
  using tag = dnnl::memory::format_tag;
  // B as [N, K, 1, 1] weights: [N, K] is plain oihw, [K, N] the same with the first two strides swapped.
  const dnnl::memory::desc stored(
      {N, K, 1, 1}, dt::f32, b_transposed_ ? dnnl::memory::dims{K, 1, 1, 1} : dnnl::memory::dims{1, N, 1, 1});
  // Panels of 16 columns for panel_product, groups of 48 for panel_gemm.
  const dnnl::memory::desc layout({N, K, 1, 1}, dt::f32, on_gemm(M) ? tag::Ohwi48o : tag::Oihw16o);
  return packed_.get(b, stored, layout);
}

bool PanelLinear::on_gemm(int64_t M) { return M > kMaxRows && panel_gemm_available(); }

void PanelLinear::prepare(const Tensor& b, int64_t M, int64_t K, int64_t N) const { panels(b, M, K, N); }

void PanelLinear::finish(float* y, int64_t N, const float* operand, int64_t r0, int64_t rows, int64_t c0,
                         int64_t cols) const {
  for (int64_t r = r0; r < r0 + rows; ++r) {
    float* row = y + r * N + c0;
    apply_activation(activation_, row, cols);
    if (operand)
      float_binary_rows(binary_ == ops::FusedBinary::kAdd ? FloatBinaryOp::kAdd : FloatBinaryOp::kMul, row, 0, 1,
                        operand + r * N + c0, 0, 1, row, 1, cols);
  }
}

void PanelLinear::run(const Tensor& b, const float* a, int64_t M, int64_t K, int64_t N, float* y, const float* bias,
                      const float* operand) const {
  const std::shared_ptr<const dnnl::memory> packed = panels(b, M, K, N);
  const float* w = static_cast<const float*>(packed->get_data_handle());
  const bool epilogue = activation_.kind != ops::Activation::Kind::kNone || operand;

  const int64_t count = (N + 15) / 16;
  if (on_gemm(M)) {
    const int64_t groups = (count + kPanelGroup - 1) / kPanelGroup;
    const double work = static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K);
    const int threads =
        static_cast<int>(std::min<int64_t>(work >= SerialIfSmall::kSerialWork ? max_threads() : 1, groups));
    const PanelFinish done = epilogue ? PanelFinish([&](int64_t r0, int64_t rows, int64_t c0, int64_t cols) {
      finish(y, N, operand, r0, rows, c0, cols);
    })
                                      : PanelFinish();
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int t = 0; t < threads; ++t)
      panel_gemm(a, K, M, w, K, N, bias, y, N, groups * t / threads, groups * (t + 1) / threads, done);
    return;
  }

  const int threads = static_cast<int>(std::min<int64_t>(K * N >= kParallelWeights ? max_threads() : 1, count));
  // Whole panels per thread, in pairs where there are enough (the kernel reads them in groups of
  // four, then two, then one).
  int64_t share = (count + threads - 1) / threads;
  if (share % 2 == 1 && count >= 2 * threads) ++share;
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int t = 0; t < threads; ++t) {
    const int64_t begin = std::min(count, t * share), end = t + 1 == threads ? count : std::min(count, begin + share);
    if (begin < end) panel_product(a, K, M, w, K, N, bias, y, N, begin, end);
  }
  if (epilogue) finish(y, N, operand, 0, M, 0, N);
}

}  // namespace tunnx::cpu::onednn
