// Host memory for tensor storage: 64-byte aligned blocks, with freed memory kept for reuse.
//
// A training step or an inference run allocates the same sizes every time. Handing large blocks
// back to the C library lets it return them to the kernel (unmap, heap trim), and the next step
// faults every page in again: for an MLP step that was a quarter of the time. So freed memory is
// kept, up to a cap on the bytes held free (TUNNX_HOST_CACHE_MB, default 1024; 0 turns the cache
// off: every block then goes back to the C library when freed).
//
// Blocks from 64 KiB up are carved from regions, as best-fit-with-coalescing allocators do (ONNX
// Runtime's and TensorFlow's BFC arena): a region is mapped 2 MiB aligned (see huge pages below);
// each new one is as large as all mapped so far (2, 2, 4, 8, ... MiB, at most 128 MiB or the cap, at
// least the request). A request takes the smallest free chunk that holds it (the lowest address among equals) and the rest of
// that chunk stays free from 4 KiB up; a freed block merges with its free neighbours in its region.
// A CNN's layers each have sizes of their own: whole kept blocks serve another size only when one
// fits, so a run took fresh memory for requests that freed memory lying side by side would hold.
// Measured on this 2-core VM, peak RSS at 1 thread (whole blocks kept -> regions -> regions with the
// oneDNN scratch blocks in them too, runtime/cpu/onednn HostScratch, which had a stack of its own):
// PaddleOCR's detector at 640x640 136.4 -> 118.0 -> 100.0 MiB (39.8 MiB of tensor blocks live at the peak),
// YOLOv8n 126.9 -> 111.5 -> 105.6 MiB (2 threads: 117.1 -> 91.8), ResNet-18 155 -> 142 MiB; their
// first runs 5-25% shorter, steady-state medians the same or up to 5% shorter. Carving from 1 KiB up
// kept more (129 MiB for the detector: small long-lived blocks pin holes), as did 16 KiB; 64 KiB and
// 256 KiB about the same. One mutex: ~155 ns an allocation or free (kept whole blocks: ~100 ns), the
// same total rate with 2 threads hammering it; a detector run does a few hundred.
//
// A block that takes pages no block had before, and that its caller writes whole (tensors, packed
// weights: allocate's `written`), has them populated in one madvise(MADV_POPULATE_WRITE) call rather
// than faulted in one by one: ~0.5 us a page against ~1.2-1.3 us a fault on these KVM guests. YOLOv8n
// at 1 thread, 8 alternating runs: load + session + first run 132.3 -> 128.6 ms, with its packed
// weights here too (runtime/cpu/onednn packed_memory); peak RSS the same (96.8 MiB). oneDNN's scratch
// blocks are not populated: a kernel may use part of one (populating them too: 103.7 MiB, no faster).
//
// Transparent huge pages only with TUNNX_HUGE_PAGES=1 (read once, at the first allocation): regions
// and large blocks are then madvised to them, and a first touch faults once per 2 MiB. On the 2-vCPU
// KVM guests these sessions run on, a first touch of such memory ran at either ~10 GB/s or ~0.45 GB/s,
// by luck of which host pages backed it (a 512 MiB test, three tries in a row: 1175, 49, 1210 ms),
// while 4 KiB pages ran at a steady ~2.6 GB/s (198-208 ms); a first run of PaddleOCR's detector took
// 117-197 ms with them against 135-153 without, and steady-state medians were the same within 0-4%
// (BERT-2L, YOLOv8n, ResNet-18, magika: equal; the detector 2-4% slower without). Where the system
// gives every mapping huge pages (THP "always") the 2 MiB alignment still gets them whole ones.
//
// Blocks from 1 KiB to 64 KiB are kept whole: a request takes the smallest kept block that holds it
// and is at most twice its size, the one freed last among equals. Below 1 KiB the C library's own
// fast free lists serve a block quickly.
#pragma once

#include <cstddef>
#include <cstdint>

namespace tunnx::host_memory {

// Never null for bytes > 0; throws std::bad_alloc. `written`: the caller writes the whole block
// before it reads any of it (a tensor, packed weights), so pages it is the first to take are put in
// memory at once; a scratch block a kernel may use only part of passes false.
void* allocate(size_t bytes, bool written = true);
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
