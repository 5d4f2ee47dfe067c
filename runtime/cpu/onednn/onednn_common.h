// Pieces every oneDNN kernel shares: the process-wide engine, plain row-major memory descriptors,
// and a small LRU cache of primitives keyed by input shapes. Included only by runtime/cpu/onednn/*.cc
// (public headers must not see oneDNN).
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <unordered_map>
#include <string>
#include <utility>
#include <vector>

#include <oneapi/dnnl/dnnl.hpp>

#include "runtime/core/kernel_registry.h"
#include "runtime/core/ops/linear.h"

namespace tunnx::cpu::onednn {

// One CPU engine for the process: engines are thread-safe and cheap to share, streams are not (each
// run makes its own).
const dnnl::engine& cpu_engine();

// A dense row-major f32 descriptor of `dims`.
dnnl::memory::desc plain_f32(const std::vector<int64_t>& dims);

// An f32 descriptor of channels-first `dims` [N, C, spatial...] for memory laid out as they read, or
// channels-last (NWC, NHWC, NDHWC) when `channels_last` (runtime/core/passes/channels_last.h).
dnnl::memory::desc activation_f32(const std::vector<int64_t>& dims, bool channels_last);
// f32 [N, C, spatial...] `dims` (1-D to 3-D images) lying channel-blocked by `block` (8 or 16):
// nCw16c, nChw16c, nCdhw16c and their 8c forms (FusedConv's x_channel_block and y_channel_block).
dnnl::memory::desc channel_blocked_f32(const std::vector<int64_t>& dims, int64_t block);

// Memory over a tensor's data. oneDNN only reads what is passed as a source (SRC, WEIGHTS, BIAS,
// SCALE, ...), so const data may be wrapped.
dnnl::memory wrap(const dnnl::memory::desc& desc, const float* data);
dnnl::memory wrap(const dnnl::memory::desc& desc, float* data);

// oneDNN spreads every primitive over the run's OpenMP threads. On a primitive of a few microseconds
// (a recurrent model's 4-wide convolutions, a reorder of 500 floats) waking the team and meeting at
// its barrier costs more than the work: silero-vad ran slower at 2 threads than at 1. While this
// lives, work of fewer than kSerialWork operations (multiply-adds, elements) runs on the calling thread.
class SerialIfSmall {
 public:
  static constexpr double kSerialWork = 1 << 19;
  explicit SerialIfSmall(double work);
  ~SerialIfSmall();
  SerialIfSmall(const SerialIfSmall&) = delete;
  SerialIfSmall& operator=(const SerialIfSmall&) = delete;

 private:
  int previous_ = 0;  // the thread count to restore; 0: nothing changed
};

// The threads a primitive of `work` operations runs on in the current run: 1 below kSerialWork,
// otherwise the run's count. oneDNN's convolutions, brgemm matmuls and RNNs fix their team when they
// are built (a brgconv built during a 2-thread run still starts 2 threads under
// omp_set_num_threads(1)), so they are built inside the SerialIfSmall of their work and cached per
// this count: a run granted fewer threads (a busy machine, concurrent runs) gets primitives built
// for its count instead of waiting at barriers for threads it does not have.
int team_for(double work);

// A cached primitive with the memory objects of its arguments, made once and reused by later runs
// through set_data_handle: made per call (two allocations each, with a ~1 KiB descriptor copy) they
// were most of a small primitive's time (a 16x16 1x1 convolution alone: 3.0 us with fresh memory
// objects, 0.6 us with reused ones). Concurrent runs take separate sets. Copies share the sets.
// Each run has a stream of its own and a scratchpad made for it: runs share primitives, so
// primitives are built with a user scratchpad, not one they own.
class BoundPrimitive {
 public:
  BoundPrimitive() = default;
  // `pointer_args`: the arguments runs give as pointers, with their descriptors. Setting the handle of
  // a layout with padding zero-fills the padding: memory others read (packed weights) goes to run()
  // as a memory object instead.
  BoundPrimitive(dnnl::primitive primitive, std::vector<std::pair<int, dnnl::memory::desc>> pointer_args,
                 dnnl::memory::desc scratchpad);

  // Runs with `pointers[i]` as the data of pointer_args[i] (null: left out this run) and `objects` as
  // they are, a scratchpad from the host memory cache, and SerialIfSmall(work) (work: multiply-adds of
  // a product; below 0, DST's or DIFF_SRC's element count), and waits.
  void run(std::initializer_list<const void*> pointers,
           std::initializer_list<std::pair<int, dnnl::memory>> objects = {}, double work = -1) const;

  explicit operator bool() const { return static_cast<bool>(state_); }

 private:
  struct Bound;
  struct State;
  std::shared_ptr<State> state_;
};

// A reorder between two layouts of one tensor, with a user scratchpad (the primitive is shared by
// concurrent runs).
struct Reorder {
  dnnl::reorder primitive;
  dnnl::memory::desc scratchpad;
  dnnl::memory::desc from, to;

  // to = from: channel_block_reorder's threaded copy where it takes the pair, else the primitive.
  void run(const float* x, float* y) const;
};

// Whether `a` and `b` place every element at the same offset: one layout, or a blocked one whose
// blocks each span a whole dim (nChw16c with 16 channels lies as nhwc does).
bool lies_as(const dnnl::memory::desc& a, const dnnl::memory::desc& b);

// Nothing when `from` and `to` lie alike (lies_as).
std::optional<Reorder> reorder_between(const dnnl::memory::desc& from, const dnnl::memory::desc& to);

// A weights reorder made on its first run: most weights are constants, packed once through
// reorder_into (packed_weights.h), so the primitive is made only for a fed or trained weight.
class LazyReorder {
 public:
  LazyReorder() = default;
  // Nothing to do when `from` and `to` lie alike (lies_as): the object is then false.
  LazyReorder(const dnnl::memory::desc& from, const dnnl::memory::desc& to);
  explicit operator bool() const { return static_cast<bool>(state_); }
  // `from` (laid out as the first desc) written into `to` (as the second).
  void run(const float* from, float* to) const;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

// Runs a layout reorder or an in-place eltwise (uncommon paths: a kernel's main primitive runs
// through its BoundPrimitive) on a stream of its own with a scratchpad of `scratchpad`'s size, and waits.
void run_on(const dnnl::primitive& p, const dnnl::memory::desc& scratchpad, std::unordered_map<int, dnnl::memory> args);

// Whether oneDNN chose only its reference implementation for `pd` (slower than tunnx's own kernels,
// so the fast paths decline it).
bool reference_only(const dnnl::primitive_desc_base& pd);

// Appends `act` (the fused ops' activation table, runtime/core/ops/linear.h) as eltwise post-ops that
// compute what the reference computes; false, with `ops` unchanged, for one oneDNN cannot match
// (a Clip with lo > hi). HardSigmoid is two post-ops (linear, then clip to [0, 1]); SiLU is swish.
bool append_activation(dnnl::post_ops& ops, const ops::Activation& act);

// `act` over `n` values in place, for the epilogues tunnx applies itself (panel products, a Winograd
// convolution's output as it leaves its blocks): GELU, SiLU and Sigmoid in float_unary's vector
// loops, the others by Activation::apply (whose piecewise-linear loops vectorize).
void apply_activation(const ops::Activation& act, float* values, int64_t n);

// The storage and version of each tensor (null: absent), to tell when weights derived from them
// (BatchNorm folded into a convolution, an RNN's converted gates) must be made again.
std::vector<std::pair<const void*, uint64_t>> source_versions(const std::vector<const Tensor*>& tensors);

// A block of host memory for one node's run (a primitive's scratchpad, a reordered operand, a
// transposed B), held only while the node runs. From the host memory cache, whose regions merge freed
// neighbours: YOLOv8n's Winograd scratchpads (6.8, 7.3, 15.3 and 16.4 MB, in that order) reuse the
// pages earlier nodes touched. (A per-thread stack of scratch blocks did that before the cache
// coalesced; the cache shares those pages with the tensors as well: PaddleOCR's detector peaked at
// 118 MiB with the stack, 100 MiB without.)
class HostScratch {
 public:
  explicit HostScratch(size_t bytes);
  ~HostScratch();
  HostScratch(const HostScratch&) = delete;
  HostScratch& operator=(const HostScratch&) = delete;
  float* data() const { return data_; }

 private:
  size_t bytes_;
  float* data_;
};

// A convolution-like primitive's operands (SRC, WEIGHTS, DST, optional BIAS): the layouts the tensors
// lie in, those the primitive picked (format `any`), and the reorders between them. The convolution
// and deconvolution paths share it.
struct PickedLayouts {
  dnnl::memory::desc src_plain, src, weights_plain, weights, bias, dst_plain, dst, scratchpad;
  std::optional<Reorder> src_in, dst_out;
  LazyReorder weights_in;
  // The primitive with its arguments' memory objects: SRC, WEIGHTS, DST, BIAS, then bind()'s more_args.
  BoundPrimitive bound;

  // Takes the picked layouts from `pd`, makes the reorders and binds `primitive` (built from `pd`),
  // with `more_args` after BIAS (runs pass their pointers in that order). The plain descriptors and
  // `bias` (empty: none) must be set first.
  void bind(const dnnl::primitive& primitive, const dnnl::primitive_desc_base& pd,
            std::vector<std::pair<int, dnnl::memory::desc>> more_args = {});

  // X as the primitive reads it: `x` itself, or reordered into `block`.
  void* source(const float* x, std::optional<HostScratch>& block) const;
  // W as the primitive reads it, reordered on every call (a fed or trained weight; a constant is
  // packed once, packed_weights.h): `w` itself, or reordered into `block`.
  void* weights_for_run(const float* w, std::optional<HostScratch>& block) const;
  // Where the primitive writes Y: `y` itself, or `block` in its own layout.
  void* destination(float* y, std::optional<HostScratch>& block) const;
  // Y from what the primitive wrote at `dst` (destination()'s answer): reordered back when it was a block.
  void finish(void* dst, float* y) const;
};

// Up to `capacity` values by key, least recently used evicted first. Values are shared_ptr so a run
// that holds one keeps it alive even if another thread evicts it meanwhile. Thread-safe.
template <typename Key, typename Value>
class LruCache {
 public:
  explicit LruCache(size_t capacity) : capacity_(capacity) {}

  std::shared_ptr<const Value> find(const Key& key) const {
    std::lock_guard<std::mutex> lock(mutex_);
    for (auto it = items_.begin(); it != items_.end(); ++it)
      if (it->first == key) {
        items_.splice(items_.begin(), items_, it);  // now the most recent
        return it->second;
      }
    return nullptr;
  }

  // Inserts `value` unless another thread inserted this key first; returns the cached one.
  std::shared_ptr<const Value> insert(const Key& key, std::shared_ptr<const Value> value) const {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& item : items_)
      if (item.first == key) return item.second;
    items_.emplace_front(key, std::move(value));
    if (items_.size() > capacity_) items_.pop_back();
    return items_.front().second;
  }

  size_t size() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return items_.size();
  }

 private:
  size_t capacity_;
  mutable std::mutex mutex_;
  mutable std::list<std::pair<Key, std::shared_ptr<const Value>>> items_;
};

// The def of a float32 fast path over the reference kernel of (domain, op_type) found at `opset`, for
// the same opset range; `make` builds the fast kernel around the reference kernel the reference
// factory returns for the same node (and may return that one for nodes it does not take). Nothing when
// no reference is registered yet: no reference to fall back on, no fast path either.
template <typename Make>
std::optional<KernelDef> fast_path_def(const KernelRegistry& registry, const std::string& domain,
                                       const std::string& op_type, int64_t opset, Make make) {
  const KernelDef* ref = registry.find_reference(domain, op_type, opset, DeviceType::kCpu);
  if (!ref || ref->priority != 0) return std::nullopt;
  KernelDef def = *ref;
  def.types = {DataType::kFloat32};
  def.name = "cpu/onednn/" + op_type;
  def.priority = 10;
  def.falls_back_at_run_time = true;  // every oneDNN kernel hands non-float32 inputs to `reference`
  def.factory = [reference = ref->factory, make](const KernelInit& init) { return make(init, reference(init)); };
  return def;  // `ref` may dangle once the def is added; its factory was copied
}

// Registers fast_path_def's def, for an ONNX op (`domain` "") unless another domain is given.
template <typename Make>
void add_fast_path(KernelRegistry& registry, const std::string& op_type, Make make, int64_t opset = 13,
                   const std::string& domain = "") {
  if (std::optional<KernelDef> def = fast_path_def(registry, domain, op_type, opset, make)) registry.add(std::move(*def));
}

// The fast paths of each op family, registered by register_onednn_kernels.
void register_onednn_softmax(KernelRegistry& registry);         // softmax.cc
void register_onednn_layer_norm(KernelRegistry& registry);      // layer_norm.cc
void register_onednn_eltwise(KernelRegistry& registry);         // eltwise.cc
void register_onednn_conv(KernelRegistry& registry);            // conv.cc
void register_onednn_pool(KernelRegistry& registry);            // pool.cc
void register_onednn_rnn(KernelRegistry& registry);             // rnn.cc
void register_onednn_transpose(KernelRegistry& registry);       // transpose.cc
void register_onednn_attention(KernelRegistry& registry);       // attention.cc
void register_onednn_conv_transpose(KernelRegistry& registry);  // conv_transpose.cc

}  // namespace tunnx::cpu::onednn
