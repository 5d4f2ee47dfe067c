// Constant weights kept in the layout a oneDNN primitive asks for. A primitive built with weights of
// format `any` picks the layout its implementation reads fastest (on AVX2 the matmul's gemm wants
// plain [K, N], so Gemm's transB weights get transposed once; on AVX-512 brgemm wants blocked
// layouts). The copy is made on the first run that needs it and kept for the session's life, and
// remade when the weight's version changes (an optimizer step, load_state_dict, any write through
// Tensor::mutable_data). A run whose input is not the constant (a caller fed an input of the
// initializer's name) does not come here: its primitive reads the plain layout.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include <oneapi/dnnl/dnnl.hpp>

#include "tunnx/tensor.h"

namespace tunnx::cpu::onednn {

class PackedWeights {
 public:
  PackedWeights() = default;  // no constant: nothing is ever packed
  explicit PackedWeights(const Tensor* constant);

  // True when `input` is the constant weight (same storage, same dims), so it may be read packed.
  bool is_constant(const Tensor& input) const;

  // The weights as `layout` asks, for a primitive that reads them there. `stored` describes `input`
  // (the constant) as it lies in memory; when `layout` equals it, `input`'s own memory is wrapped.
  // The returned memory stays valid while the caller holds it, whatever other runs repack meanwhile.
  std::shared_ptr<const dnnl::memory> get(const Tensor& input, const dnnl::memory::desc& stored,
                                          const dnnl::memory::desc& layout) const;

  // Copies made so far (repacks after a write included): for tests and statistics.
  int64_t packs() const;

 private:
  struct Copy {
    dnnl::memory::desc layout;
    uint64_t version = 0;
    std::shared_ptr<const dnnl::memory> memory;
  };
  static constexpr size_t kMaxLayouts = 2;  // shapes that want different layouts each keep one

  Tensor constant_;
  mutable std::mutex mutex_;
  mutable std::vector<Copy> copies_;  // most recent first
  mutable int64_t packs_ = 0;
};

// `desc`'s dims with format `any`: lets the primitive choose the weights layout.
dnnl::memory::desc any_layout(const dnnl::memory::desc& desc);

}  // namespace tunnx::cpu::onednn
