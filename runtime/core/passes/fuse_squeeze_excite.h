// Fuses squeeze-and-excitation blocks (MobileNetV3's, PP-LCNet's) into one com.tunnx:SqueezeExcite
// node each, in an inference session's copy of the graph (optimization level 2, after fuse_conv and
// channels_last). Such a block is four to eight nodes over a vector of C values per image: the
// global mean, two 1x1 convolutions on a 1x1 image, their activations, and the Mul that scales X.
// Each node costs a few microseconds of dispatch for almost no work (MobileNetV3-small: 36 nodes,
// 11% of its run at 1 thread, 17% at 2), where the fused kernel reads X twice and does the rest on
// vectors.
#pragma once

#include <cstdint>

#include "runtime/core/graph.h"
#include "runtime/core/parameter_store.h"

namespace tunnx::ir {

// Rewrites, in the main graph, each float32 chain
//   m = GlobalAveragePool(X), or ReduceMean(X) over its spatial axes with keepdims (channels-first),
//       or over [1, rank - 1) of a channels_last twin (channels-last)
//   layer, repeated: Conv / FusedConv (1x1 kernel, group 1, no pads, nothing fused but an activation,
//       the layout of the mean) -> [Add of a per-channel constant] -> [activation]
//   Y = Mul(X, last layer's output) (either operand order)
// where every value between the mean and the Mul has one reader and is not a graph output, into one
// SqueezeExcite node (ops/conv_pool.h) named after the Mul, writing Y. X may have other readers.
// Returns the number of nodes made.
int fuse_squeeze_excite(Graph& graph, const ParameterStore& store, int64_t onnx_opset);

}  // namespace tunnx::ir
