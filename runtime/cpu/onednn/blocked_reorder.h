// A tensor of floats moved between two of oneDNN's blocked layouts (plain OIHW into the Acdb16a a
// convolution picked, a grouped layout back into plain goihw), by tunnx's own loops.
//
// Why: oneDNN 2.6 generates machine code for each reorder it is asked for (jit:uni, jit:blk): 20-200 us
// per pair of layouts, for a weight that is then packed once. PaddleOCR's classifier made 42 of them
// in its first run, ~1.4 ms at one thread, to move 0.6 MB. Here no code is generated: an element's
// offset in a blocked layout is a sum of one term per dim (its outer block times the dim's stride,
// plus its place in each inner block), so each layout becomes a table per dim, and the copy walks the
// destination's innermost block with a gather from the source. Padding the destination's blocks add
// (16 channels for 8) is written as zeros, as oneDNN writes it.
#pragma once

#include <cstdint>
#include <functional>

#include <oneapi/dnnl/dnnl.hpp>

namespace tunnx::cpu::onednn {

// Writes `from` into `to` when both are f32 in blocked (or plain) layouts of the same dims, with no
// compensation or offsets in padding, and `to` holds at most 128 Ki floats (512 KiB: past that,
// oneDNN's generated loops run fast enough to pay for their making). False, with nothing written, for
// any other pair (larger tensors, Winograd's or an RNN's packed layouts, int8, other types): the
// caller reorders with oneDNN.
bool blocked_reorder_into(const dnnl::memory& from, const dnnl::memory& to);

// y = x moved between channels-last (nhwc, nwc, ndhwc) and channels-blocked (nChw16c, nChw8c) float32
// layouts of the same dims, either way, with C a multiple of the block, by a copy of whole blocks
// split among the run's threads; or between channels-first (nchw) and channels-last, by a transpose
// of each image (transpose_matrices). False, with nothing written, for any other pair. Why: a
// Winograd convolution reads and writes nChw16c between brgconv's channels-last ones, and oneDNN's
// jit:uni reorders of its activations ran on one thread (ResNet-18's 56x56x64: ~0.065 ms each, ten a
// run); a network's first convolution reads the NCHW image channels-last (0.08 ms at 224x224).
// `then`, if given, runs on each stretch of y just written (values, count), while it is in the cache:
// a Winograd convolution's activation and residual, which it takes no post-op for or would read back
// from memory, applied as its output leaves the blocked layout instead of in passes of their own
// (conv.cc).
bool channel_block_reorder(const dnnl::memory::desc& from, const float* x, const dnnl::memory::desc& to, float* y,
                           const std::function<void(float*, int64_t)>& then = nullptr);
// Whether channel_block_reorder moves `from` into `to` (the same checks; nothing is moved).
bool channel_block_reorder_takes(const dnnl::memory::desc& from, const dnnl::memory::desc& to);

}  // namespace tunnx::cpu::onednn
