// Host memory for tensor storage: 64-byte aligned blocks, with freed memory kept for reuse.
//
// A training step or an inference run allocates the same sizes every time. Handing large blocks
// back to the C library lets it return them to the kernel (unmap, heap trim), and the next step
// faults every page in again: for an MLP step that was a quarter of the time. So freed memory is
// kept, up to a cap on the bytes held free (TUNNX_HOST_CACHE_MB, default 1024; 0 turns the cache
// off: every block then goes back to the C library when freed).
//
// Blocks from 64 KiB up are carved from regions, as best-fit-with-coalescing allocators do (ONNX
// Runtime's and TensorFlow's BFC arena): a region is mapped 2 MiB aligned and offered to transparent
// huge pages (a first touch faults once per 2 MiB, not per 4 KiB); each new one is as large as all
// mapped so far (2, 2, 4, 8, ... MiB, at most 128 MiB or the cap, at least the request). A request
// takes the smallest free chunk that holds it (the lowest address among equals) and the rest of
// that chunk stays free from 4 KiB up; a freed block merges with its free neighbours in its region.
// A CNN's layers each have sizes of their own: whole kept blocks serve another size only when one
// fits, so a run took fresh memory for requests that freed memory lying side by side would hold.
// Measured on this 2-core VM, peak RSS at 1 thread (whole blocks kept -> regions -> regions with the
// oneDNN scratch blocks in them too, runtime/cpu/onednn HostScratch, which had a stack of its own):
// PaddleOCR's detector at 640x640 136.4 -> 118.0 -> 100.0 MiB (39.8 MiB of tensor blocks live at the peak),
// YOLOv8n 126.9 -> 111.5 -> 105.6 MiB (2 threads: 117.1 -> 91.8), ResNet-18 155 -> 142 MiB; their
// first runs 5-25% shorter, steady-state medians the same or up to 5% shorter. Carving from 1 KiB up
// kept more (129 MiB for the detector: small long-lived blocks pin holes), as did 16 KiB; 64 KiB and
// 256 KiB about the same. The first regions are huge pages too: ~1 MiB more RSS for the smallest
// models (a partly used 2 MiB page), ~0.5 ms less first run. One mutex: ~155 ns an allocation or free
// (kept whole blocks: ~100 ns), the same total rate with 2 threads hammering it; a detector run does
// a few hundred.
//
// Blocks from 1 KiB to 64 KiB are kept whole: a request takes the smallest kept block that holds it
// and is at most twice its size, the one freed last among equals. Below 1 KiB the C library's own
// fast free lists serve a block quickly.
#pragma once

#include <cstddef>
#include <cstdint>

namespace tunnx::host_memory {

void* allocate(size_t bytes);                // never null for bytes > 0; throws std::bad_alloc
void deallocate(void* block, size_t bytes);  // `bytes` as allocated

struct Stats {
  // Held for reuse now: kept blocks' whole capacity plus the free space of the regions (mapped, not
  // necessarily touched yet). The cap holds it down by unmapping wholly free regions, the largest
  // first; free space beside a live block stays until that block is freed.
  uint64_t cached_bytes = 0;
  // Requests from 1 KiB up served from what is held (hits) or with fresh memory from the system: a
  // new block, or a new region (misses).
  uint64_t hits = 0, misses = 0;
  uint64_t region_bytes = 0;  // mapped in regions now, live blocks and free space alike
};
Stats stats();
void release_cached();  // frees every kept block and unmaps every wholly free region

}  // namespace tunnx::host_memory
