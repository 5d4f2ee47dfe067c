// Constant weights kept in the layout a oneDNN primitive asks for. A primitive built with weights of
// format `any` names the layout its implementation wants: blocked layouts for the brgemm kernels of
// AVX-512 machines, which are worth a copy. A plain layout (all that gemm:jit, oneDNN 2.6's matmul on
// AVX2, ever asks for) is not: gemm:jit packs panels itself on every call, and measured on Zen 3 it ran
// Gemm's transB weights 45% slower after a transpose to the plain [K, N] it names than where they lie
// (bench/README.md). So only a blocked or otherwise packed layout is copied. The copy is made on the first run that needs it and kept for the session's life, and
// remade when the weight's version changes (an optimizer step, load_state_dict, any write through
// Tensor::mutable_data). A run whose input is not the constant (a caller fed an input of the
// initializer's name) does not come here: its primitive reads the plain layout.
//
// With SessionOptions::release_packed_originals the session may free the constant once a copy is
// held (release()): the weights are fixed from then on, and a layout no copy has, the plain one
// included, is reordered from a held copy in a blocked layout (exact: a reorder moves floats, it
// computes nothing). Winograd's transformed layout cannot be read back, so a weight held only in it
// is never freed.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include <oneapi/dnnl/dnnl.hpp>

#include "runtime/core/kernel.h"
#include "tunnx/tensor.h"

namespace tunnx::cpu::onednn {

class PackedWeights {
 public:
  PackedWeights() = default;  // no constant: nothing is ever packed
  // `trained`: the plan says an optimizer writes the constant after every run (KernelInit::trained_input).
  explicit PackedWeights(const Tensor* constant, bool trained = false);

  // True when `input` is the constant weight (same storage, same dims), so it may be read packed.
  bool is_constant(const Tensor& input) const;

  // The weights as `layout` asks, for a primitive that reads them there. `stored` describes `input`
  // (the constant) as it lies in memory; when `layout` equals it, `input`'s own memory is wrapped.
  // The returned memory stays valid while the caller holds it, whatever other runs repack meanwhile.
  std::shared_ptr<const dnnl::memory> get(const Tensor& input, const dnnl::memory::desc& stored,
                                          const dnnl::memory::desc& layout) const;

  // Whether `input`, the constant, was written between each of the last runs that asked (a trained
  // weight: every optimizer step writes it). Packing such a weight costs a copy per step, as much as
  // a product that reads it plain. Call once per run; false for anything but the constant. Always
  // true for a constant the plan said is trained, so every step of a trainer computes the same way.
  bool rewritten_every_run(const Tensor& input) const;

  // Whether the plan said the constant is trained (the constructor's `trained`).
  bool trained_by_plan() const { return trained_; }
  bool has_constant() const { return constant_.defined(); }  // a float32 constant was given

  // Copies made so far (repacks after a write included): for tests and statistics.
  int64_t packs() const;

  // SessionOptions::release_packed_originals (Kernel::constant_use): whether a copy of the constant's
  // current version is held in a layout a reorder reads back (blocked or plain, not Winograd's).
  bool holds_reversible_copy() const;
  // The session freed the constant: `stand_in` (a Tensor::placeholder) takes its place in
  // is_constant(), and get() serves every layout from the copies held (see the header comment).
  // Call only while holds_reversible_copy() and no run reads this object.
  void release(const Tensor& stand_in);
  bool released() const { return released_.load(std::memory_order_acquire); }
  // After release(): the constant as it lay (its dims and bytes), reordered back from a held copy, for
  // a path that reads it plain (a reference kernel). Made on every call, not kept.
  Tensor restored() const;

  // Kernel::constant_use for the constant, of a kernel that keeps no other copies of it: kReadsIt for
  // none or one the plan trains, else kNotYet until holds_reversible_copy().
  Kernel::ConstantUse constant_use() const;
  // Runs `reference` (the kernel's fallback) on `ctx`, whose input `input` is the constant: after
  // release(), with the constant restored() in its place.
  void run_reference(const Kernel& reference, KernelContext& ctx, size_t input) const;

 private:
  struct Copy {
    dnnl::memory::desc layout;
    dnnl::memory::desc stored;  // the constant as it lay when this copy was made
    uint64_t version = 0;
    std::shared_ptr<const dnnl::memory> memory;
  };
  static constexpr size_t kMaxLayouts = 2;  // shapes that want different layouts each keep one

  Tensor restored_locked() const;  // restored(), with mutex_ held

  Tensor constant_;
  bool trained_ = false;
  std::atomic<bool> released_{false};
  mutable std::mutex mutex_;
  mutable std::vector<Copy> copies_;  // most recent first
  mutable int64_t packs_ = 0;
  mutable std::atomic<uint64_t> seen_version_{UINT64_MAX};  // at the last rewritten_every_run()
  mutable std::atomic<int> writes_in_a_row_{0};
};

// Whether weights in `layout` can be reordered back into any other layout: a blocked (or plain) one,
// not Winograd's transform or an RNN's packed format.
bool is_reversible(const dnnl::memory::desc& layout);

// Memory for weights packed into `layout`, from host_memory (runtime/core/host_memory.h): a session's
// packed weights are written once, and there their pages are populated in one call rather than
// faulted in one by one, and memory a released original or a freed plain copy left is reused.
std::shared_ptr<dnnl::memory> packed_memory(const dnnl::memory::desc& layout);

// `from` reordered into `to` (same dims, any layouts oneDNN reorders between), on a stream of its own.
void reorder_into(dnnl::memory from, dnnl::memory to);

// `desc`'s dims with format `any`: lets the primitive choose the weights layout.
dnnl::memory::desc any_layout(const dnnl::memory::desc& desc);

// Whether weights a primitive wants in `preferred` are worth a copy: a blocked or special layout, not
// a plain strided one (see above).
bool worth_packing(const dnnl::memory::desc& preferred);

// Tests only: also copy into plain layouts, so machines without blocked layouts (AVX2) still run the
// packed path end to end. Process-wide; affects primitives built after the call.
void set_pack_plain_layouts_for_tests(bool on);

}  // namespace tunnx::cpu::onednn
