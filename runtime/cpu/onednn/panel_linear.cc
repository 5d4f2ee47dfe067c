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

}  // namespace

bool PanelLinear::takes(const Tensor& b, int64_t M) const {
  return M >= 1 && M <= kMaxRows && b.rank() == 2 && packed_.is_constant(b);
}

std::shared_ptr<const dnnl::memory> PanelLinear::panels(const Tensor& b, int64_t K, int64_t N) const {
  using dt = dnnl::memory::data_type;
  // B as [N, K, 1, 1] weights: [N, K] is plain oihw, [K, N] the same with the first two strides swapped.
  const dnnl::memory::desc stored(
      {N, K, 1, 1}, dt::f32, b_transposed_ ? dnnl::memory::dims{K, 1, 1, 1} : dnnl::memory::dims{1, N, 1, 1});
  const dnnl::memory::desc layout({N, K, 1, 1}, dt::f32, dnnl::memory::format_tag::Oihw16o);
  return packed_.get(b, stored, layout);
}

void PanelLinear::prepare(const Tensor& b, int64_t K, int64_t N) const { panels(b, K, N); }

void PanelLinear::run(const Tensor& b, const float* a, int64_t M, int64_t K, int64_t N, float* y,
                      const float* bias) const {
  const std::shared_ptr<const dnnl::memory> packed = panels(b, K, N);
  const float* w = static_cast<const float*>(packed->get_data_handle());

  const int64_t count = (N + 15) / 16;
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
}

}  // namespace tunnx::cpu::onednn
