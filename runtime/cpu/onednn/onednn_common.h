// Pieces every oneDNN kernel shares: the process-wide engine, plain row-major memory descriptors,
// and a small LRU cache of primitives keyed by input shapes. Included only by runtime/cpu/onednn/*.cc
// (public headers must not see oneDNN).
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include <oneapi/dnnl/dnnl.hpp>

namespace tunnx::cpu::onednn {

// One CPU engine for the process: engines are thread-safe and cheap to share, streams are not (each
// run makes its own).
const dnnl::engine& cpu_engine();

// A dense row-major f32 descriptor of `dims`.
dnnl::memory::desc plain_f32(const std::vector<int64_t>& dims);

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

}  // namespace tunnx::cpu::onednn
