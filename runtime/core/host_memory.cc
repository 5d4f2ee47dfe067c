#include "runtime/core/host_memory.h"

#include <sys/mman.h>

#include <cerrno>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <new>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23  // Linux 5.14; older C library headers lack the name
#endif

namespace tunnx::host_memory {
namespace {

constexpr std::align_val_t kAlignment{64};
constexpr size_t kAlignmentBytes = 64;
// Below this the C library's own fast free lists serve a block quickly. From 1 KiB up glibc takes
// a request from its sorted bins, and each such request first merges every small freed block
// (malloc_consolidate): with the hundreds of small tensors of a recurrent model's run that was a
// fifth of the run, so those sizes are kept here as well.
constexpr size_t kSmallest = size_t{1} << 10;
// From here up blocks are carved from regions (the header has the measurements).
constexpr size_t kRegionSmallest = size_t{64} << 10;
constexpr size_t kHugePage = size_t{2} << 20;
constexpr size_t kPage = size_t{4} << 10;
// The rest of a free chunk after a block is cut from it stays a chunk of its own from this size up;
// a smaller rest goes with the block, and back with it.
constexpr size_t kSmallestRest = size_t{4} << 10;
// A new region is as large as everything mapped so far (the regions double, like ONNX Runtime's
// arena extension), at least 2 MiB, at most this, and at least the request.
constexpr size_t kLargestGrowth = size_t{128} << 20;

size_t round_up(size_t bytes, size_t to) { return (bytes + to - 1) / to * to; }

// A piece of a region: a live block or free space. The chunks of a region tile it, so the chunk after
// another one in address order is its neighbour when both lie in the same region.
struct Chunk {
  size_t size;
  uintptr_t region;  // the region's base
  bool free;
};

struct Cache {
  std::mutex mutex;
  // Blocks under kRegionSmallest: kept whole, by capacity; the last freed at the back.
  std::map<size_t, std::vector<void*>> free_blocks;
  // Those handed out for a smaller request than they hold, with what they hold (deallocate is told
  // the request).
  std::unordered_map<void*, size_t> capacity_of;
  // Larger blocks: regions (base -> bytes), every chunk of them by address, the free ones by size.
  std::map<uintptr_t, size_t> regions;
  // How far from its base each region's pages are known to be in memory (see populate).
  std::map<uintptr_t, size_t> populated;
  bool can_populate = true;  // until the system refuses MADV_POPULATE_WRITE
  std::map<uintptr_t, Chunk> chunks;
  std::set<std::pair<size_t, uintptr_t>> free_chunks;
  uint64_t mapped = 0;
  uint64_t cached = 0, hits = 0, misses = 0;
  uint64_t limit = uint64_t{1024} << 20;
  bool huge_pages = false;  // TUNNX_HUGE_PAGES=1 (see the header)

  Cache() {
    if (const char* on = std::getenv("TUNNX_HUGE_PAGES")) huge_pages = std::string(on) == "1";
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

// Blocks from 2 MiB up, when nothing is cached, are aligned to 2 MiB (where the system gives every
// mapping transparent huge pages, they get whole ones) and, with TUNNX_HUGE_PAGES=1, offered to them.
void* fresh(size_t bytes, bool huge_pages) {
  if (bytes < kHugePage) return ::operator new(bytes, kAlignment);
  void* block = ::operator new(bytes, std::align_val_t{kHugePage});
  if (huge_pages) madvise(block, bytes / kHugePage * kHugePage, MADV_HUGEPAGE);  // whole huge pages only
  return block;
}

void release(void* block, size_t bytes) {
  if (bytes < kHugePage) ::operator delete(block, kAlignment);
  else ::operator delete(block, std::align_val_t{kHugePage});
}

// Below kSmallest: the C library's malloc, aligned here. Its aligned allocation (memalign) splits a
// larger chunk every time and frees the pieces into its bins, where malloc of these sizes comes from
// the thread's cache. The block's own pointer sits in the 8 bytes before the aligned address.
void* small_allocate(size_t bytes) {
  constexpr uintptr_t align = kAlignmentBytes;
  void* raw = std::malloc(bytes + align);  // malloc's 16-byte alignment leaves 16 to 64 bytes before
  if (!raw) throw std::bad_alloc();
  const uintptr_t aligned = (reinterpret_cast<uintptr_t>(raw) + align) & ~(align - 1);
  reinterpret_cast<void**>(aligned)[-1] = raw;
  return reinterpret_cast<void*>(aligned);
}

void small_release(void* block) { std::free(static_cast<void**>(block)[-1]); }

// ---- blocks under kRegionSmallest ----------------------------------------------------------

void* take_kept(Cache& c, size_t bytes) {
  // The smallest kept block that holds the request, if it wastes at most half of itself.
  auto it = c.free_blocks.lower_bound(bytes);
  if (it == c.free_blocks.end() || it->first / 2 > bytes) return nullptr;
  const size_t capacity = it->first;
  void* block = it->second.back();
  it->second.pop_back();
  if (it->second.empty()) c.free_blocks.erase(it);
  if (capacity != bytes) c.capacity_of[block] = capacity;
  c.cached -= capacity;
  return block;
}

void keep(Cache& c, void* block, size_t bytes) {
  if (auto it = c.capacity_of.find(block); it != c.capacity_of.end()) {
    bytes = it->second;
    c.capacity_of.erase(it);
  }
  if (c.cached + bytes > c.limit) {
    release(block, bytes);
    return;
  }
  c.free_blocks[bytes].push_back(block);
  c.cached += bytes;
}

// ---- regions ---------------------------------------------------------------------------------

void add_free(Cache& c, uintptr_t at, size_t size) {
  c.free_chunks.emplace(size, at);
  c.cached += size;
}

void remove_free(Cache& c, uintptr_t at, size_t size) {
  c.free_chunks.erase({size, at});
  c.cached -= size;
}

// Maps a 2 MiB aligned region that holds `bytes`, as one free chunk.
void add_region(Cache& c, size_t bytes) {
  const size_t growth = std::min<uint64_t>({std::max<uint64_t>(c.mapped, kHugePage), kLargestGrowth,
                                            std::max<uint64_t>(c.limit / kHugePage * kHugePage, kHugePage)});
  const size_t size = std::max(round_up(bytes, kHugePage), growth);
  // Over-map by a huge page and trim both ends to the alignment.
  void* mapping = mmap(nullptr, size + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mapping == MAP_FAILED) throw std::bad_alloc();
  const uintptr_t start = reinterpret_cast<uintptr_t>(mapping);
  const uintptr_t base = round_up(start, kHugePage);
  if (base > start) munmap(mapping, base - start);
  if (const uintptr_t end = start + size + kHugePage; end > base + size)
    munmap(reinterpret_cast<void*>(base + size), end - (base + size));
  if (c.huge_pages) madvise(reinterpret_cast<void*>(base), size, MADV_HUGEPAGE);
  c.regions.emplace(base, size);
  c.populated.emplace(base, 0);
  c.chunks.emplace(base, Chunk{size, base, true});
  add_free(c, base, size);
  c.mapped += size;
}

bool wholly_free(const Cache& c, uintptr_t base, size_t size) {
  const Chunk& first = c.chunks.at(base);
  return first.free && first.size == size;
}

void unmap_region(Cache& c, std::map<uintptr_t, size_t>::iterator region) {
  const auto [base, size] = *region;
  remove_free(c, base, size);
  c.chunks.erase(base);
  munmap(reinterpret_cast<void*>(base), size);
  c.mapped -= size;
  c.populated.erase(base);
  c.regions.erase(region);
}

// Unmaps wholly free regions, the largest first, while more than `keep` bytes are cached.
void unmap_free_regions(Cache& c, uint64_t keep) {
  std::vector<std::map<uintptr_t, size_t>::iterator> free_regions;
  for (auto it = c.regions.begin(); it != c.regions.end(); ++it)
    if (wholly_free(c, it->first, it->second)) free_regions.push_back(it);
  std::sort(free_regions.begin(), free_regions.end(), [](auto x, auto y) { return x->second > y->second; });
  for (auto region : free_regions) {
    if (c.cached <= keep) break;
    unmap_region(c, region);
  }
}

// Pages a carved block takes that no block had before: [begin, end), populated by the caller.
struct FreshPages {
  uintptr_t begin = 0, end = 0;
};

void* carve(Cache& c, size_t bytes, FreshPages& fresh_pages) {
  if (bytes > (size_t{1} << 62)) throw std::bad_alloc();  // rounding up must not wrap
  const size_t need = round_up(bytes, kAlignmentBytes);
  // Best fit: the smallest free chunk that holds the request, the lowest address among equals.
  auto fit = c.free_chunks.lower_bound({need, 0});
  if (fit == c.free_chunks.end()) {
    ++c.misses;
    add_region(c, need);
    fit = c.free_chunks.lower_bound({need, 0});
  } else {
    ++c.hits;
  }
  const uintptr_t at = fit->second;
  Chunk& chunk = c.chunks.at(at);
  remove_free(c, at, chunk.size);
  chunk.free = false;
  if (const size_t rest = chunk.size - need; rest >= kSmallestRest) {
    chunk.size = need;
    c.chunks.emplace(at + need, Chunk{rest, chunk.region, true});
    add_free(c, at + need, rest);
  }
  if (c.can_populate) {
    size_t& populated = c.populated.at(chunk.region);
    if (const uintptr_t end = round_up(at + need, kPage); end > chunk.region + populated) {
      fresh_pages = {chunk.region + populated, end};
      populated = end - chunk.region;
    }
  }
  return reinterpret_cast<void*>(at);
}

// A fresh block's pages put in memory in one call, before the caller writes them: a page fault each
// took ~1.3 us on the KVM guests measured, ~0.5 us a page this way (20 MiB: 6.0 -> 3.1-3.4 ms with the
// write). Outside the lock; pages that another thread's block shares are only populated twice.
void populate(Cache& c, const FreshPages& pages) {
  if (pages.end <= pages.begin) return;
  if (madvise(reinterpret_cast<void*>(pages.begin), pages.end - pages.begin, MADV_POPULATE_WRITE) != 0 &&
      errno == EINVAL) {
    std::lock_guard<std::mutex> lock(c.mutex);
    c.can_populate = false;  // a kernel before 5.14: pages fault in as they are written
  }
}

void give_back(Cache& c, void* block) {
  auto it = c.chunks.find(reinterpret_cast<uintptr_t>(block));
  if (it == c.chunks.end() || it->second.free) {
    std::fprintf(stderr, "tunnx: host_memory: %p was not allocated here or is freed twice\n", block);
    std::abort();
  }
  Chunk& chunk = it->second;
  // Merge with the free neighbours of the same region.
  if (auto next = std::next(it); next != c.chunks.end() && next->second.free && next->second.region == chunk.region) {
    remove_free(c, next->first, next->second.size);
    chunk.size += next->second.size;
    c.chunks.erase(next);
  }
  if (it != c.chunks.begin()) {
    if (auto prev = std::prev(it); prev->second.free && prev->second.region == chunk.region) {
      remove_free(c, prev->first, prev->second.size);
      prev->second.size += chunk.size;
      c.chunks.erase(it);
      it = prev;
    }
  }
  it->second.free = true;
  add_free(c, it->first, it->second.size);
  if (c.cached > c.limit) unmap_free_regions(c, c.limit);
}

}  // namespace

void* allocate(size_t bytes, bool written) {
  if (bytes >= kSmallest) {
    Cache& c = cache();
    std::unique_lock<std::mutex> lock(c.mutex);
    if (c.limit > 0 && bytes >= kRegionSmallest) {
      FreshPages fresh_pages;
      void* block = carve(c, bytes, fresh_pages);
      lock.unlock();
      if (written) populate(c, fresh_pages);
      return block;
    }
    if (void* block = take_kept(c, bytes)) {
      ++c.hits;
      return block;
    }
    ++c.misses;
    return fresh(bytes, bytes >= kHugePage && cache().huge_pages);
  }
  return small_allocate(bytes);
}

void deallocate(void* block, size_t bytes) {
  if (!block) return;
  if (bytes >= kSmallest) {
    Cache& c = cache();
    std::lock_guard<std::mutex> lock(c.mutex);
    if (c.limit > 0 && bytes >= kRegionSmallest) give_back(c, block);
    else keep(c, block, bytes);
    return;
  }
  small_release(block);
}

Stats stats() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  return {c.cached, c.hits, c.misses, c.mapped};
}

void release_cached() {
  Cache& c = cache();
  std::lock_guard<std::mutex> lock(c.mutex);
  for (auto& [bytes, blocks] : c.free_blocks) {
    for (void* block : blocks) release(block, bytes);
    c.cached -= bytes * blocks.size();
  }
  c.free_blocks.clear();
  unmap_free_regions(c, 0);
}

}  // namespace tunnx::host_memory
