#include "runtime/cpu/onednn/packed_weights.h"

#include <algorithm>
#include <atomic>
#include <cstddef>

#include "runtime/cpu/onednn/onednn_common.h"

namespace tunnx::cpu::onednn {

PackedWeights::PackedWeights(const Tensor* constant, bool trained) : trained_(trained) {
  if (constant && constant->dtype() == DataType::kFloat32) constant_ = *constant;
}

bool PackedWeights::is_constant(const Tensor& input) const {
  return constant_.defined() && input.shares_storage_with(constant_) && input.dims() == constant_.dims();
}

std::shared_ptr<const dnnl::memory> PackedWeights::get(const Tensor& input, const dnnl::memory::desc& stored,
                                                       const dnnl::memory::desc& layout) const {
  const dnnl::engine& engine = cpu_engine();
  if (layout == stored) return std::make_shared<const dnnl::memory>(wrap(stored, input.data_as<float>()));

  const uint64_t version = input.version();
  std::lock_guard<std::mutex> lock(mutex_);
  for (size_t i = 0; i < copies_.size(); ++i) {
    if (!(copies_[i].layout == layout)) continue;
    if (copies_[i].version == version) {
      std::rotate(copies_.begin(), copies_.begin() + static_cast<std::ptrdiff_t>(i),
                  copies_.begin() + static_cast<std::ptrdiff_t>(i) + 1);
      return copies_.front().memory;
    }
    copies_.erase(copies_.begin() + static_cast<std::ptrdiff_t>(i));  // stale: the weight was written
    break;
  }
  // Packed under the lock: concurrent first runs wait for one copy instead of each making their own.
  auto packed = std::make_shared<dnnl::memory>(layout, engine);
  dnnl::memory source = wrap(stored, input.data_as<float>());
  dnnl::stream stream(engine);
  dnnl::reorder(source, *packed).execute(stream, source, *packed);
  stream.wait();
  ++packs_;
  copies_.insert(copies_.begin(), Copy{layout, version, packed});
  if (copies_.size() > kMaxLayouts) copies_.pop_back();
  return packed;
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
