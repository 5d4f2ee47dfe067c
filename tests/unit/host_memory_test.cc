// host_memory: blocks under 64 KiB kept whole and reused best-fit within 2x; larger ones carved from
// regions, split and merged with their free neighbours; never one block twice, never two overlapping;
// the cap (TUNNX_HOST_CACHE_MB) and release_cached; fresh pages of written blocks populated.
#include "runtime/core/host_memory.h"

#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "tunnx/tensor.h"

namespace {

namespace hm = tunnx::host_memory;

constexpr size_t kKiB = size_t{1} << 10;
constexpr size_t kMiB = size_t{1} << 20;

uintptr_t address(const void* block) { return reinterpret_cast<uintptr_t>(block); }

TEST(HostMemory, FreedLargeBlocksAreReusedAndCanBeReleased) {
  const auto before = hm::stats();
  {
    tunnx::Tensor t(tunnx::DataType::kFloat32, {1 << 18});  // 1 MiB, written, then freed into the cache
    std::fill_n(t.mutable_data_as<float>(), t.numel(), 1.0f);
  }
  const auto cached = hm::stats();
  {
    tunnx::Tensor again(tunnx::DataType::kFloat32, {1 << 18});
    const auto after = hm::stats();
    EXPECT_GT(after.hits, before.hits);
    EXPECT_EQ(after.misses, cached.misses);
    EXPECT_LT(after.cached_bytes, cached.cached_bytes);
    EXPECT_EQ(again.data_as<float>()[12345], 0.0f);  // reused memory is zero-filled like new memory
  }
  hm::release_cached();
  EXPECT_EQ(hm::stats().cached_bytes, 0u);
  EXPECT_EQ(hm::stats().region_bytes, 0u);
}

// Under 64 KiB a request takes the smallest kept block that holds it when that wastes at most half
// of it, the block freed last among equals; the block comes back whole.
TEST(HostMemory, SmallBlocksAreKeptWholeAndReusedBestFit) {
  hm::release_cached();
  const size_t base = hm::stats().cached_bytes;
  void* big = hm::allocate(48 * kKiB);
  void* one = hm::allocate(16 * kKiB);
  void* other_one = hm::allocate(16 * kKiB);
  hm::deallocate(big, 48 * kKiB);
  hm::deallocate(one, 16 * kKiB);
  hm::deallocate(other_one, 16 * kKiB);
  EXPECT_EQ(hm::stats().cached_bytes - base, 80 * kKiB);
  void* a = hm::allocate(10 * kKiB);  // a 16 KiB block, the last freed
  EXPECT_EQ(a, other_one);
  void* b = hm::allocate(16 * kKiB);
  EXPECT_EQ(b, one);
  void* c = hm::allocate(16 * kKiB);  // the 48 KiB block would waste two thirds: a new one
  EXPECT_NE(c, big);
  void* d = hm::allocate(28 * kKiB);
  EXPECT_EQ(d, big);
  for (auto [block, bytes] : {std::pair{a, 10 * kKiB}, {b, 16 * kKiB}, {c, 16 * kKiB}, {d, 28 * kKiB}})
    hm::deallocate(block, bytes);
  EXPECT_EQ(hm::stats().cached_bytes - base, 96 * kKiB);  // whole capacities come back
  hm::release_cached();
  EXPECT_EQ(hm::stats().cached_bytes, 0u);
}

TEST(HostMemory, EveryBlockIs64ByteAlignedAndWhollyUsable) {
  std::mt19937 rng(7);
  std::vector<std::pair<void*, size_t>> live;
  for (int i = 0; i < 300; ++i) {
    const size_t bytes = 1 + rng() % (3 * kMiB);  // odd sizes too
    void* block = hm::allocate(bytes);
    ASSERT_NE(block, nullptr);
    EXPECT_EQ(address(block) % 64, 0u) << bytes;
    std::memset(block, 0x5a, bytes);
    live.emplace_back(block, bytes);
    if (rng() % 3 == 0) {
      const size_t at = rng() % live.size();
      hm::deallocate(live[at].first, live[at].second);
      live.erase(live.begin() + static_cast<std::ptrdiff_t>(at));
    }
  }
  for (auto [block, bytes] : live) hm::deallocate(block, bytes);
  hm::release_cached();
  EXPECT_EQ(hm::stats().region_bytes, 0u);
}

// Two freed neighbours become one free chunk: a request for their sum takes it, and no fresh memory
// is mapped for it.
TEST(HostMemory, FreedNeighboursMergeAndServeTheirSum) {
  hm::release_cached();
  ASSERT_EQ(hm::stats().region_bytes, 0u) << "a block of another test is still live";
  const size_t size = 256 * kKiB;
  char* a = static_cast<char*>(hm::allocate(size));
  char* b = static_cast<char*>(hm::allocate(size));
  char* c = static_cast<char*>(hm::allocate(size));
  char* d = static_cast<char*>(hm::allocate(size));  // keeps c's right neighbour live
  ASSERT_EQ(b, a + size);  // carved one after another from the first region
  ASSERT_EQ(c, b + size);
  ASSERT_EQ(d, c + size);
  hm::deallocate(a, size);
  hm::deallocate(b, size);
  const auto merged = hm::stats();
  void* ab = hm::allocate(2 * size);
  EXPECT_EQ(ab, a);
  EXPECT_EQ(hm::stats().misses, merged.misses);
  EXPECT_EQ(hm::stats().hits, merged.hits + 1);
  EXPECT_EQ(hm::stats().region_bytes, merged.region_bytes);
  // A chunk freed between two free ones joins both: a, b, c as one.
  hm::deallocate(ab, 2 * size);
  hm::deallocate(c, size);
  const auto three = hm::stats();
  void* abc = hm::allocate(3 * size);
  EXPECT_EQ(abc, a);
  EXPECT_EQ(hm::stats().misses, three.misses);
  // A part of a free chunk is handed out and the rest stays free: the first 100 KiB of a..c, then
  // the next block right after it.
  hm::deallocate(abc, 3 * size);
  void* part = hm::allocate(100 * kKiB);
  void* next = hm::allocate(100 * kKiB);
  EXPECT_EQ(part, a);
  EXPECT_EQ(next, a + 100 * kKiB);
  for (void* block : {part, next}) hm::deallocate(block, 100 * kKiB);
  hm::deallocate(d, size);
  hm::release_cached();
  EXPECT_EQ(hm::stats().region_bytes, 0u);
  EXPECT_EQ(hm::stats().cached_bytes, 0u);
}

TEST(HostMemory, ReleaseCachedUnmapsWhollyFreeRegionsOnly) {
  hm::release_cached();
  ASSERT_EQ(hm::stats().region_bytes, 0u) << "a block of another test is still live";
  void* live = hm::allocate(kMiB);
  void* other = hm::allocate(24 * kMiB);  // larger than the first region: a region of its own
  const auto held = hm::stats();
  EXPECT_GE(held.region_bytes, 25 * kMiB);
  hm::deallocate(other, 24 * kMiB);
  hm::release_cached();  // the 24 MiB region goes; the one holding `live` stays, its free space too
  const auto kept = hm::stats();
  EXPECT_LT(kept.region_bytes, held.region_bytes);
  EXPECT_GE(kept.region_bytes, kMiB);
  EXPECT_EQ(kept.cached_bytes, kept.region_bytes - kMiB);
  hm::deallocate(live, kMiB);
  hm::release_cached();
  EXPECT_EQ(hm::stats().region_bytes, 0u);
  EXPECT_EQ(hm::stats().cached_bytes, 0u);
}

// Pages a written block is the first to take are in memory before it is touched (populated in one
// call, not faulted in one by one); a scratch block's (written = false) are left to fault in.
TEST(HostMemory, AWrittenBlocksFreshPagesArePopulatedAScratchBlocksAreNot) {
  const auto resident_pages = [](const void* block, size_t bytes) {
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    const uintptr_t first = address(block) / page * page;
    std::vector<unsigned char> in_memory((address(block) + bytes - first + page - 1) / page);
    EXPECT_EQ(mincore(reinterpret_cast<void*>(first), address(block) + bytes - first, in_memory.data()), 0);
    return static_cast<size_t>(std::count_if(in_memory.begin(), in_memory.end(), [](unsigned char v) { return v & 1; }));
  };
  {
    void* probe = mmap(nullptr, 4 * kKiB, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    ASSERT_NE(probe, MAP_FAILED);
    const bool supported = madvise(probe, 4 * kKiB, 23 /* MADV_POPULATE_WRITE */) == 0;
    munmap(probe, 4 * kKiB);
    if (!supported) GTEST_SKIP() << "this kernel has no MADV_POPULATE_WRITE (Linux 5.14)";
  }
  hm::release_cached();
  ASSERT_EQ(hm::stats().region_bytes, 0u) << "a block of another test is still live";
  const size_t bytes = 3 * kMiB;  // each in a region of its own (4 MiB)
  void* written = hm::allocate(bytes);
  void* scratch = hm::allocate(bytes, /*written=*/false);
  const size_t pages = bytes / static_cast<size_t>(sysconf(_SC_PAGESIZE));
  EXPECT_EQ(resident_pages(written, bytes), pages);
  EXPECT_LT(resident_pages(scratch, bytes), pages / 8);
  const auto* values = static_cast<const unsigned char*>(written);
  EXPECT_TRUE(std::all_of(values, values + bytes, [](unsigned char v) { return v == 0; }));
  hm::deallocate(scratch, bytes);
  hm::deallocate(written, bytes);
  hm::release_cached();
  EXPECT_EQ(hm::stats().region_bytes, 0u);
}

// Threads allocate and free blocks of random sizes (both sides of 64 KiB) and lifetimes, while one
// of them releases the cache now and then. Every live block is recorded: a new one must overlap none,
// and each is filled with a pattern of its own that must be intact when it is freed.
TEST(HostMemory, ThreadsNeverShareOrOverlapABlock) {
  std::mutex live_mutex;
  std::map<uintptr_t, uintptr_t> live;  // start -> end of every block handed out and not yet freed
  int overlaps = 0, corrupted = 0;
  auto run = [&](unsigned seed) {
    std::mt19937 rng(seed);
    struct Held {
      unsigned char* block;
      size_t bytes;
      unsigned char pattern;
    };
    std::vector<Held> held;
    auto free_one = [&](size_t at) {
      const Held h = held[at];
      held[at] = held.back();
      held.pop_back();
      for (size_t i = 0; i < h.bytes; ++i) {
        if (h.block[i] != h.pattern) {
          std::lock_guard<std::mutex> lock(live_mutex);
          ++corrupted;
          break;
        }
      }
      {
        std::lock_guard<std::mutex> lock(live_mutex);
        live.erase(address(h.block));
      }
      hm::deallocate(h.block, h.bytes);
    };
    for (int step = 0; step < 1500; ++step) {
      if (held.size() >= 24 || (!held.empty() && rng() % 2 == 0)) {
        free_one(rng() % held.size());
        continue;
      }
      if (seed == 1 && step % 100 == 99) hm::release_cached();
      // Log-uniform from 1 KiB to 1 MiB, so the small and the region path both see many sizes.
      const size_t bytes = std::uniform_int_distribution<size_t>(kKiB, kKiB << (rng() % 11))(rng);
      auto* block = static_cast<unsigned char*>(hm::allocate(bytes));
      const uintptr_t start = address(block), end = start + bytes;
      {
        std::lock_guard<std::mutex> lock(live_mutex);
        auto after = live.lower_bound(start);
        if ((after != live.end() && after->first < end) || (after != live.begin() && std::prev(after)->second > start))
          ++overlaps;
        live[start] = end;
      }
      const auto pattern = static_cast<unsigned char>(rng() | 1);
      std::memset(block, pattern, bytes);
      held.push_back({block, bytes, pattern});
    }
    while (!held.empty()) free_one(held.size() - 1);
  };
  std::vector<std::thread> threads;
  for (unsigned seed = 1; seed <= 4; ++seed) threads.emplace_back(run, seed);
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(overlaps, 0);
  EXPECT_EQ(corrupted, 0);
  EXPECT_TRUE(live.empty());
  hm::release_cached();
  EXPECT_EQ(hm::stats().region_bytes, 0u);
  EXPECT_EQ(hm::stats().cached_bytes, 0u);
}

// The cap is read once, from the environment of the process: these run in a child process of this
// test binary (the test below) with TUNNX_HOST_CACHE_MB set.
int run_child(const std::string& cache_mb, const std::string& test) {
  const std::string command = "TUNNX_HOST_CACHE_MB=" + cache_mb + " TUNNX_HOST_MEMORY_CHILD=1 /proc/" +
                              std::to_string(getpid()) + "/exe --gtest_filter=HostMemoryChild." + test +
                              " >/dev/null 2>&1";
  const int status = std::system(command.c_str());
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(HostMemory, CacheOffGivesEveryBlockBack) { EXPECT_EQ(run_child("0", "CacheOff"), 0); }
TEST(HostMemory, CapUnmapsWhollyFreeRegions) { EXPECT_EQ(run_child("8", "Capped"), 0); }

bool in_child() { return std::getenv("TUNNX_HOST_MEMORY_CHILD") != nullptr; }

TEST(HostMemoryChild, CacheOff) {
  if (!in_child()) GTEST_SKIP() << "runs in a child process (HostMemory.CacheOffGivesEveryBlockBack)";
  for (size_t bytes : {2 * kKiB, 100 * kKiB, 3 * kMiB}) {
    void* block = hm::allocate(bytes);
    EXPECT_EQ(address(block) % 64, 0u);
    std::memset(block, 1, bytes);
    hm::deallocate(block, bytes);
    const auto freed = hm::stats();
    EXPECT_EQ(freed.cached_bytes, 0u);
    EXPECT_EQ(freed.region_bytes, 0u);
    hm::deallocate(hm::allocate(bytes), bytes);
    EXPECT_EQ(hm::stats().misses, freed.misses + 1);
    EXPECT_EQ(hm::stats().hits, 0u);
  }
}

TEST(HostMemoryChild, Capped) {
  if (!in_child()) GTEST_SKIP() << "runs in a child process (HostMemory.CapUnmapsWhollyFreeRegions)";
  // Regions grow to 8 MiB at most under an 8 MiB cap; requests over it get a region their size.
  std::vector<void*> blocks;
  for (int i = 0; i < 6; ++i) blocks.push_back(hm::allocate(6 * kMiB));
  EXPECT_GE(hm::stats().region_bytes, 36 * kMiB);
  for (void* block : blocks) hm::deallocate(block, 6 * kMiB);
  EXPECT_LE(hm::stats().cached_bytes, 8 * kMiB);
  EXPECT_LE(hm::stats().region_bytes, 8 * kMiB);
  void* big = hm::allocate(20 * kMiB);
  hm::deallocate(big, 20 * kMiB);  // more than the cap alone: unmapped at once
  EXPECT_LE(hm::stats().cached_bytes, 8 * kMiB);
}

}  // namespace
