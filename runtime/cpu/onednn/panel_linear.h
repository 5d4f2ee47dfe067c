// Y [M, N] = act(A [M, K] x B' + bias) (+ or * R) for a constant B, from B packed once into panels
// of 16 columns (oneDNN's Oihw16o layout of B seen as [N, K, 1, 1] weights, which `packed` keeps, so
// a session that frees its constants (release_packed_originals) and a weight that an optimizer
// rewrites are handled as for the other packed paths). Two kernels read the panels:
//
// - A few rows (a Linear layer at batch 1: a classifier head, an MLP, a decoder's step): each weight
//   is read once per run for one multiply-add, so the product runs at the speed B streams from
//   memory. oneDNN 2.6's paths stream it poorly: its 1x1 convolution on one thread and its matmul on
//   two read a chain of eight 1024 x 1024 weights (32 MiB, past the L3) at 27 GB/s on the machine of
//   bench/README.md where ONNX Runtime reads them at 34 and panel_product at 50 (each panel one
//   sequential stream, four read at once, several accumulators per output).
// - From kMinGemmRows to kMaxGemmRows rows on AVX-512 (panel_gemm): a transformer's Linear layers at
//   sequence length 128. Their weights come from memory on every run (BERT-2L's 57 MB), and oneDNN's
//   brgemm waited on them: 128 x 768 x 768 ran 1.02 ms with weights from memory against 0.86 in
//   cache; panel_gemm fetches the next panels while it computes, 0.875 either way (bench/README.md).
//   With weights in cache it is ~2% slower than oneDNN, which at fewer rows shows: an MLP of 7 MB at
//   batch 64 ran 0.81 against 0.77 ms at 2 threads (its weights stay in the L3 between runs), so
//   fewer rows stay on oneDNN. From a few hundred rows on, each weight is reused enough that the fetch
//   hides itself and oneDNN's own blocking runs faster (1024 rows: 13.1 against 14.7 ms), so those
//   stay there too. The activation and R are applied per finished block, while it is in the L1;
//   activations without a vector form here (Sigmoid, Tanh, SiLU, tanh-GELU) stay on oneDNN, where
//   they are post-ops.
//
// The run's threads split the panels (groups of three for panel_gemm).
#pragma once

#include <cstdint>
#include <memory>

#include "runtime/core/ops/linear.h"
#include "runtime/cpu/onednn/packed_weights.h"
#include "tunnx/tensor.h"

namespace tunnx::cpu::onednn {

class PanelLinear {
 public:
  // Rows up to which panel_product is taken: from 8 rows on, blocked products reuse each weight
  // enough to compute faster than B streams.
  static constexpr int64_t kMaxRows = 4;
  // Rows from and up to which panel_gemm is taken where the machine has it (see above).
  static constexpr int64_t kMinGemmRows = 96, kMaxGemmRows = 256;

  // `b_transposed`: B is stored [N, K] (Gemm transB=1, a Linear weight as it lies), else [K, N].
  // `activation` and `binary`: the node's, as ConvLinear takes them. `packed` (B's copies, shared
  // with the kernel's other paths) must outlive this object.
  PanelLinear(const PackedWeights& packed, bool b_transposed, ops::Activation activation = {},
              ops::FusedBinary binary = ops::FusedBinary::kNone);

  // Whether this path is for `b` with M rows: B the 2-D constant, M up to kMaxRows, or from
  // kMinGemmRows to kMaxGemmRows where panel_gemm runs and takes the activation.
  bool takes(const Tensor& b, int64_t M) const;

  // B packed now, as the first run() with M rows would pack it (Kernel::prepare).
  void prepare(const Tensor& b, int64_t M, int64_t K, int64_t N) const;

  // Y = act(A B' + bias) (+ or * R); Y [M, N], A [M, K] and R [M, N] row-major and dense; bias [N]
  // or null; `operand` R, null without a binary.
  void run(const Tensor& b, const float* a, int64_t M, int64_t K, int64_t N, float* y, const float* bias,
           const float* operand = nullptr) const;

 private:
  // B in the layout M rows read it: `packed_`'s copy, made on the first call for each version of B.
  std::shared_ptr<const dnnl::memory> panels(const Tensor& b, int64_t M, int64_t K, int64_t N) const;
  // Whether M rows run on panel_gemm (else panel_product, whatever M: a pointwise convolution's few
  // rows, conv.cc, come here from 5 on).
  static bool on_gemm(int64_t M);
  // act, then R, on rows [r0, r0 + rows) and columns [c0, c0 + cols) of Y (row length N).
  void finish(float* y, int64_t N, const float* operand, int64_t r0, int64_t rows, int64_t c0, int64_t cols) const;

  bool b_transposed_;
  ops::Activation activation_;
  ops::FusedBinary binary_;
  bool gemm_takes_activation_;
  const PackedWeights& packed_;
};

}  // namespace tunnx::cpu::onednn
