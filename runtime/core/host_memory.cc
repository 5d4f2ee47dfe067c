#include "runtime/core/host_memory.h"

#include <sys/mman.h>

#include <cstdlib>
#include <map>
#include <mutex>
#include <new>
#include <string>
#include <unordered_map>
#include <vector>

namespace tunnx::host_memory {
namespace {

constexpr std::align_val_t kAlignment{64};
// Below this the C library's own fast free lists serve a block quickly. From 1 KiB up glibc takes
// a request from its sorted bins, and each such request first merges every small freed block
// (malloc_consolidate): with the hundreds of small tensors of a recurrent model's run that was a
// fifth of the run, so those sizes are kept here as well.
constexpr size_t kSmallest = size_t{1} << 10;

struct Cache {
  std::mutex mutex;
  std::map<size_t, std::vector<void*>> free_blocks;  // by capacity; the last freed at the back
  // Blocks handed out for a smaller request than they hold, with what they hold (deallocate is told
  // the request).
  std::unordered_map<void*, size_t> capacity_of;
  uint64_t cached = 0, hits = 0, misses = 0;
  uint64_t limit = uint64_t{1024} << 20;

  Cache() {
    if (const char* mb = std::getenv("TUNNX_HOST_CACHE_MB")) {
      try {
        limit = std::stoull(mb) << 20;
      } catch (...) {
        // An unreadable value keeps the default rather than failing every allocation.
      }
    }
  }
};

// Never destroyed: tensors held by static objects may be freed after any static destructor ran.
Cache& cache() {
  static Cache* instance = new Cache();
  return *instance;
}

// Blocks from 2 MiB up (a detector's activations, packed weights) are aligned to 2 MiB and offered
// to the kernel's transparent huge pages: their first touch then faults once per 2 MiB instead of
// once per 4 KiB, a fifth of a detector's first run.
constexpr size_t kHugePage = size_t{2} << 20;

void* fresh(size_t bytes) {
  if (bytes < kHugePage) return ::operator new(bytes, kAlignment);
  void* block = ::operator new(bytes, std::align_val_t{kHugePage});
  madvise(block, bytes / kHugePage * kHugePage, MADV_HUGEPAGE);  // whole huge pages only: no tail
  return block;
}

void release(void* block, size_t bytes) {
  if (bytes < kHugePage) ::operator delete(block, kAlignment);
  else ::operator delete(block, std::align_val_t{kHugePage});
}

}  // namespace

void* allocate(size_t bytes) {
  if (bytes >= kSmallest) {
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mutex);
    // The smallest kept block that holds the request, if it wastes at most half of itself.
    auto it = c.free_blocks.lower_bound(bytes);
    if (it != c.free_blocks.end() && it->first / 2 <= bytes) {
      const size_t capacity = it->first;
      void* block = it->second.back();
      it->second.pop_back();
      if (it->second.empty()) c.free_blocks.erase(it);
      if (capacity != bytes) c.capacity_of[block] = capacity;
      c.cached -= capacity;
      ++c.hits;
      return block;
    }
    ++c.misses;
  }
  return fresh(bytes);
}

void deallocate(void* block, size_t bytes) {
  if (!block) return;
  if (bytes >= kSmallest) {
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mutex);
    if (auto it = c.capacity_of.find(block); it != c.capacity_of.end()) {
      bytes = it->second;
      c.capacity_of.erase(it);
    }
    if (c.cached + bytes <= c.limit) {
      c.free_blocks[bytes].push_back(block);
      c.cached += bytes;
      return;
    }
  }
  release(block, bytes);
}

Stats stats() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  return {c.cached, c.hits, c.misses};
}

void release_cached() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  for (auto& [bytes, blocks] : c.free_blocks)
    for (void* block : blocks) release(block, bytes);
  c.free_blocks.clear();
  c.cached = 0;
}

}  // namespace tunnx::host_memory
