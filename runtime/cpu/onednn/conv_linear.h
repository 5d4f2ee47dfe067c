// Y [M, N] = A [M, K] x B' [K, N] for a constant B, on oneDNN's 1x1 convolution instead of its matmul.
//
// Why: on AVX2 machines oneDNN 2.6's matmul is gemm:jit, which packs B again on every call and, on
// the shapes of Linear layers, reaches 50-70% of the FMA peak; the jit_1x1:avx2 convolution reads
// weights packed once into its blocked layout and reaches 75-87% (bench/README.md has the numbers).
// The product maps onto it with no copy of A or Y: A [M, K] row-major is the convolution's source
// [1, K, M, 1] in nhwc (channels innermost), and Y [M, N] its nhwc destination [1, N, M, 1]; B is the
// [N, K, 1, 1] weights, which `packed` (the caller's, shared with its matmul path) copies once into the
// layout the primitive asks for.
//
// The bias [N] is the convolution's own and the activation a post-op. Gemm's alpha (output scales) and
// a general C (a sum post-op) are not taken: oneDNN 2.6 has no f32 output scales for this convolution
// and runs one with a sum post-op on its slow reference implementation, so those stay on the matmul
// path. A shape only a reference implementation takes is declined the same way.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include <oneapi/dnnl/dnnl.hpp>

#include "runtime/cpu/onednn/onednn_common.h"
#include "runtime/cpu/onednn/packed_weights.h"
#include "tunnx/tensor.h"

namespace tunnx::cpu::onednn {

class ConvLinear {
 public:
  // `b_transposed`: B is stored [N, K] (Gemm transB=1), else [K, N]. `activation`: the node's (one
  // append_activation takes); whether a run adds a bias is said per run.
  // `binary`: whether runs add or multiply an [M, N] operand into the result (after the activation).
  // `packed` (B's copies) must outlive this object.
  ConvLinear(const PackedWeights& packed, bool b_transposed, ops::Activation activation = {},
             ops::FusedBinary binary = ops::FusedBinary::kNone);

  // Runs the product when this path takes it (see takes()) and oneDNN has a fast convolution for the
  // shapes. False otherwise, with nothing written; the caller takes another path.
  // `bias`: add this [N] vector (null: none). `operand`: the binary's [M, N] operand: added by a sum
  // post-op over Y filled with it where brgconv takes that, else a binary post-op (oneDNN's
  // brgconv_1x1 declines a full-tensor one; its jit_1x1 takes it, slower on AVX-512).
  bool run(const Tensor& b, const float* a, int64_t M, int64_t K, int64_t N, float* y, const float* bias,
           const float* operand = nullptr) const;

  // Whether this path is for `b` with M rows (checked before the caller allocates Y; run() may still
  // decline a shape oneDNN has no fast convolution for).
  bool takes(const Tensor& b, int64_t M) const;

  // What the first run() of these sizes would build (the primitive, B packed into its layout), built
  // now (Kernel::prepare); false when this path would not take them.
  bool prepare(const Tensor& b, int64_t M, int64_t K, int64_t N, bool has_bias) const;

 private:
  struct Primitive {
    dnnl::convolution_forward primitive;
    dnnl::memory::desc src, stored_weights, weights, bias, dst, scratchpad;
    BoundPrimitive bound;  // SRC, DST[, BIAS]; the packed weights go in as their memory object
    bool operand_by_sum = false;  // the added operand is copied into DST for a sum post-op
  };
  using Key = std::vector<int64_t>;

  // The primitive for these sizes, cached or built now (inside the caller's SerialIfSmall of `work`);
  // null when oneDNN declines them.
  std::shared_ptr<const Primitive> primitive_for(int64_t M, int64_t K, int64_t N, bool has_bias, double work) const;

  bool b_transposed_;
  ops::Activation activation_;
  ops::FusedBinary binary_;
  const PackedWeights& packed_;
  LruCache<Key, Primitive> cache_{16};
  // Shapes oneDNN declined (kept so they are not retried on every run).
  LruCache<Key, bool> declined_{16};
};

}  // namespace tunnx::cpu::onednn
