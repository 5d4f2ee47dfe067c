#include "runtime/cpu/onednn/packed_weights.h"

#include <algorithm>
#include <atomic>
#include <cstddef>

#include "runtime/core/host_memory.h"
#include "runtime/cpu/onednn/blocked_reorder.h"
#include "runtime/cpu/onednn/onednn_common.h"
#include "runtime/cpu/onednn/winograd_weights.h"

namespace tunnx::cpu::onednn {

PackedWeights::PackedWeights(const Tensor* constant, bool trained) : trained_(trained) {
  if (constant && constant->dtype() == DataType::kFloat32) constant_ = *constant;
}

bool PackedWeights::is_constant(const Tensor& input) const {
  return constant_.defined() && input.shares_storage_with(constant_) && input.dims() == constant_.dims();
}

std::shared_ptr<const dnnl::memory> PackedWeights::get(const Tensor& input, const dnnl::memory::desc& stored,
                                                       const dnnl::memory::desc& layout) const {
  const bool released = released_.load(std::memory_order_acquire);
  if (layout == stored && !released) return std::make_shared<const dnnl::memory>(wrap(stored, input.data_as<float>()));

  const uint64_t version = input.version();
  std::lock_guard<std::mutex> lock(mutex_);
  for (size_t i = 0; i < copies_.size(); ++i) {
    if (!(copies_[i].layout == layout)) continue;
    if (released || copies_[i].version == version) {
      std::rotate(copies_.begin(), copies_.begin() + static_cast<std::ptrdiff_t>(i),
                  copies_.begin() + static_cast<std::ptrdiff_t>(i) + 1);
      return copies_.front().memory;
    }
    copies_.erase(copies_.begin() + static_cast<std::ptrdiff_t>(i));  // stale: the weight was written
    break;
  }
  // Packed under the lock: concurrent first runs wait for one copy instead of each making their own.
  // A freed constant is first read back from a copy, as it lay (every `stored` describes those bytes).
  const Tensor source = released ? restored_locked() : input;
  std::shared_ptr<dnnl::memory> packed = packed_memory(layout);
  reorder_into(wrap(stored, source.data_as<float>()), *packed);
  ++packs_;
  copies_.insert(copies_.begin(), Copy{layout, stored, version, packed});
  while (copies_.size() > kMaxLayouts) {
    size_t victim = copies_.size() - 1;
    if (released) {  // the last copy a reorder reads back stays: the next layout is made from it
      const auto reversible =
          std::count_if(copies_.begin(), copies_.end(), [](const Copy& c) { return is_reversible(c.layout); });
      while (reversible == 1 && victim > 0 && is_reversible(copies_[victim].layout)) --victim;
    }
    copies_.erase(copies_.begin() + static_cast<std::ptrdiff_t>(victim));
  }
  return packed;
}

bool PackedWeights::holds_reversible_copy() const {
  if (!constant_.defined()) return false;
  const bool released = released_.load(std::memory_order_acquire);
  const uint64_t version = constant_.version();
  std::lock_guard<std::mutex> lock(mutex_);
  return std::any_of(copies_.begin(), copies_.end(), [&](const Copy& c) {
    return is_reversible(c.layout) && (released || c.version == version);
  });
}

void PackedWeights::release(const Tensor& stand_in) {
  std::lock_guard<std::mutex> lock(mutex_);
  const uint64_t version = constant_.version();
  // Copies of an older version can no longer be made again: dropped.
  const auto stale = [version](const Copy& c) { return c.version != version; };
  copies_.erase(std::remove_if(copies_.begin(), copies_.end(), stale), copies_.end());
  constant_ = stand_in;
  released_.store(true, std::memory_order_release);
}

Tensor PackedWeights::restored() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return restored_locked();
}

Tensor PackedWeights::restored_locked() const {
  for (const Copy& c : copies_) {
    if (!is_reversible(c.layout)) continue;
    Tensor plain = Tensor::uninitialized(DataType::kFloat32, constant_.dims());
    reorder_into(*c.memory, wrap(c.stored, plain.mutable_data_as<float>()));
    return plain;
  }
  throw Error(ErrorCode::kInternal, "a freed weight has no copy that a reorder reads back");
}

Kernel::ConstantUse PackedWeights::constant_use() const {
  if (!has_constant() || trained_) return Kernel::ConstantUse::kReadsIt;
  return holds_reversible_copy() ? Kernel::ConstantUse::kHoldsCopies : Kernel::ConstantUse::kNotYet;
}

void PackedWeights::run_reference(const Kernel& reference, KernelContext& ctx, size_t input) const {
  if (!released() || !is_constant(ctx.input(input))) return reference.run(ctx);
  const Value restored_input(restored());
  KernelContext with_input = ctx.with_input(input, &restored_input);
  reference.run(with_input);
}

bool PackedWeights::rewritten_every_run(const Tensor& input) const {
  if (!is_constant(input)) return false;
  if (trained_) return true;
  const uint64_t version = input.version();
  const uint64_t before = seen_version_.exchange(version, std::memory_order_relaxed);
  if (before == UINT64_MAX) return false;
  // Two runs in a row after a write: a first write (load_state_dict, a single update) still packs.
  const int writes = before != version ? std::min(writes_in_a_row_.load(std::memory_order_relaxed) + 1, 2) : 0;
  writes_in_a_row_.store(writes, std::memory_order_relaxed);
  return writes >= 2;
}

int64_t PackedWeights::packs() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return packs_;
}

namespace {
std::atomic<bool> pack_plain_layouts{false};
}  // namespace

std::shared_ptr<dnnl::memory> packed_memory(const dnnl::memory::desc& layout) {
  struct Owned {
    size_t bytes;
    void* block;
    dnnl::memory memory;
    explicit Owned(const dnnl::memory::desc& d)
        : bytes(std::max<size_t>(d.get_size(), 1)), block(host_memory::allocate(bytes)) {
      try {
        memory = dnnl::memory(d, cpu_engine(), block);  // zero-fills a blocked layout's padding
      } catch (...) {
        host_memory::deallocate(block, bytes);
        throw;
      }
    }
    ~Owned() { host_memory::deallocate(block, bytes); }
    Owned(const Owned&) = delete;
    Owned& operator=(const Owned&) = delete;
  };
  auto owned = std::make_shared<Owned>(layout);
  return std::shared_ptr<dnnl::memory>(owned, &owned->memory);
}

void reorder_into(dnnl::memory from, dnnl::memory to) {
  if (winograd_weights_into(from, to)) return;  // oneDNN's own is scalar there (winograd_weights.h)
  if (blocked_reorder_into(from, to)) return;    // no code to generate (blocked_reorder.h)
  dnnl::stream stream(cpu_engine());
  dnnl::reorder(from, to).execute(stream, from, to);
  stream.wait();
}

bool is_reversible(const dnnl::memory::desc& layout) { return layout.data.format_kind == dnnl_blocked; }

bool worth_packing(const dnnl::memory::desc& preferred) {
  if (pack_plain_layouts.load(std::memory_order_relaxed)) return true;
  const dnnl_memory_desc_t& d = preferred.data;
  return d.format_kind != dnnl_blocked || d.format_desc.blocking.inner_nblks > 0;
}

void set_pack_plain_layouts_for_tests(bool on) { pack_plain_layouts.store(on, std::memory_order_relaxed); }

dnnl::memory::desc any_layout(const dnnl::memory::desc& desc) {
  return dnnl::memory::desc(desc.dims(), desc.data_type(), dnnl::memory::format_tag::any);
}

}  // namespace tunnx::cpu::onednn
