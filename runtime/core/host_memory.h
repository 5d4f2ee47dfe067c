// Host memory for tensor storage: 64-byte aligned blocks, with freed large blocks kept for reuse.
//
// A training step or an inference run allocates the same sizes every time. Handing large blocks
// back to the C library lets it return them to the kernel (unmap, heap trim), and the next step
// faults every page in again: for an MLP step that was a quarter of the time. Kept blocks are
// reused best-fit: a request takes the smallest kept block that holds it and is at most twice its
// size, the one freed last among equals, up to a cap on the bytes held (TUNNX_HOST_CACHE_MB, default
// 1024; 0 turns the cache off). Reuse across sizes, not by exact size only, keeps a run's
// activations in few blocks that stay in cache from layer to layer (a CNN's layers each have a size
// of their own: a MobileNetV3-small run allocates 7.4 MB in dozens of sizes, exact-size reuse kept
// a block of each) and the process's resident memory near what is live.
#pragma once

#include <cstddef>
#include <cstdint>

namespace tunnx::host_memory {

void* allocate(size_t bytes);                // never null for bytes > 0; throws std::bad_alloc
void deallocate(void* block, size_t bytes);  // `bytes` as allocated

struct Stats {
  uint64_t cached_bytes = 0;  // held for reuse now (blocks' whole capacity)
  uint64_t hits = 0, misses = 0;
};
Stats stats();
void release_cached();  // frees every kept block

}  // namespace tunnx::host_memory
