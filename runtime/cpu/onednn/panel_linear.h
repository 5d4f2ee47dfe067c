// Y [M, N] = A [M, K] x B' for a few rows and a constant B (a Linear layer at batch 1: a classifier
// head, an MLP, a decoder's step), from B packed once into panels of 16 columns.
//
// Why: such a product reads each weight once per run and does one multiply-add with it, so it runs
// at the speed B streams from memory. oneDNN 2.6's paths stream it poorly: its 1x1 convolution on one
// thread and its matmul on two read a chain of eight 1024 x 1024 weights (32 MiB, past the L3) at
// 27 GB/s on the machine of bench/README.md where ONNX Runtime reads them at 34 and this path at 50.
// Each panel [K, 16] is one sequential stream, four panels are read at once, and the k loop keeps
// several accumulators so the multiply-adds never wait on each other. The panels are `packed`'s copy
// in oneDNN's Oihw16o layout (B seen as [N, K, 1, 1] weights), so a session that frees its constants
// (release_packed_originals) and a weight that an optimizer rewrites are handled as for the other
// packed paths. The run's threads split the panels.
#pragma once

#include <cstdint>
#include <memory>

#include "runtime/cpu/onednn/packed_weights.h"
#include "tunnx/tensor.h"

namespace tunnx::cpu::onednn {

class PanelLinear {
 public:
  // Rows up to which this path is taken: from 8 rows on, oneDNN's blocked products reuse each weight
  // enough to compute faster than B streams.
  static constexpr int64_t kMaxRows = 4;

  // `b_transposed`: B is stored [N, K] (Gemm transB=1, a Linear weight as it lies), else [K, N].
  // `packed` (B's copies, shared with the kernel's other paths) must outlive this object.
  PanelLinear(const PackedWeights& packed, bool b_transposed) : b_transposed_(b_transposed), packed_(packed) {}

  // Whether this path is for `b` with M rows: B the 2-D constant, at most kMaxRows rows.
  bool takes(const Tensor& b, int64_t M) const;

  // B packed now, as the first run() would pack it (Kernel::prepare).
  void prepare(const Tensor& b, int64_t K, int64_t N) const;

  // Y = A B' (+ bias [N] when not null); Y [M, N] and A [M, K] row-major and dense.
  void run(const Tensor& b, const float* a, int64_t M, int64_t K, int64_t N, float* y, const float* bias) const;

 private:
  // B in panels: `packed_`'s copy, made on the first call for each version of B.
  std::shared_ptr<const dnnl::memory> panels(const Tensor& b, int64_t K, int64_t N) const;

  bool b_transposed_;
  const PackedWeights& packed_;
};

}  // namespace tunnx::cpu::onednn
