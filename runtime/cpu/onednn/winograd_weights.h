// A 3x3 convolution's weights transformed into oneDNN's Winograd F(4x4, 3x3) layout
// (wino_wei_OBaaIBOIio, what jit_wino_4x3 reads) or its F(2x2, 3x3) ones (wino_wei_aaOBiOo, and
// wino_wei_aaOio for images of 14x14 and less: jit_fp32_wino_2x3's, 16 tiles, tiles outermost), as
// oneDNN's own reorder makes them, but fast.
//
// Why: oneDNN 2.6's reorder into that layout is scalar code that gathers each output channel's nine
// weights across the whole tensor: 35-70 ns a weight on one thread. YOLOv8n's 19 Winograd layers took
// 30 ms of its first run at one thread, ResNet-18's 512 x 512 layers ~40 ms each. Here each 3x3 kernel
// becomes its 6x6 (4x4) transformed tile by one 36 x 9 (16 x 9) matrix (the transform G g G^T
// written as a product with the nine weights), applied to 16 output channels at a time in vector
// registers, and stored straight into the blocked layout. (ResNet-18's 128 -> 128 layers, which run
// on F(2x2), took 2.3-2.7 ms each in oneDNN's reorder.)
//
// The matrices are not written here: each is read off oneDNN itself, the first time, by transforming
// unit kernels with its own reorder, so it is whatever the installed oneDNN's kernels expect (its G is
// scaled for accuracy). The same first call transforms a random 32 x 32 kernel both ways and compares;
// if the layout or the matrix did not match, that form's path stays off for the process and oneDNN's
// reorder does the work, as before.
#pragma once

#include <oneapi/dnnl/dnnl.hpp>

namespace tunnx::cpu::onednn {

// Writes `from` (f32 [OC, IC, 3, 3] weights, dense OIHW) into `to` when `to` is oneDNN's Winograd
// F(4x4, 3x3) or F(2x2, 3x3) weight layout; the run's threads share the work. False, with nothing written, for any
// other pair (or when the check above failed): the caller reorders with oneDNN.
bool winograd_weights_into(dnnl::memory from, dnnl::memory to);

}  // namespace tunnx::cpu::onednn
