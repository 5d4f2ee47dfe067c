// Runs 1-D and 2-D convolutions on channels-last (NWC, NHWC) activations, in a session's copy of the
// graph (optimization level 2, after fuse_conv), so consecutive convolutions hand each other
// channels-last tensors instead of converting to and from channels-first around every one.
//
// Why: oneDNN's fastest convolutions (brgconv on AVX-512) read and write channels-last; fed NCHW,
// each convolution reordered its input and output, a third of YOLOv8n's time. Other runtimes do the
// same rewrite (ONNX Runtime's NHWC transformer). tf2onnx's 1-D convolutions sit between transposes
// of the model's own channels-last values: there the transposes cancel (magika's convolution
// reordered a 16.6 MB output on every run at batch 16).
#pragma once

#include <string>

#include "runtime/core/graph.h"
#include "runtime/core/parameter_store.h"

namespace tunnx::ir {

// What a value's channels-last twin is called: "<value>/nhwc" (Kernel::prepare reads its dims off the
// value's, channels moved last).
inline const std::string kChannelsLastSuffix = "/nhwc";

// Rewrites 2-D float32 Conv and FusedConv nodes (rank-4 X, W a rank-4 float32 value), and 1-D ones
// (rank-3 X, or tf2onnx's [N, C, L, 1] with a [k, 1] kernel) whose input costs no copy to read
// channels-last, into a FusedConv with attribute channels_last = 1, which reads X [N, spatial..., C]
// and Z and writes Y the same way (W, B and the batch-norm inputs are unchanged); a 2-D one of one
// group over at most 4 input channels (a network's first layer, reading the image) whose X is not
// channels-last already reads X as it lies instead (channels_first_source = 1). Between such nodes
// the channels-last values flow directly; Concat and Split along the channels, Resize of H and W by
// constant scales (with the scales reordered by a Constant node), Slices that keep everything,
// Squeezes of spatial axes (down to [N, C], which is the value itself), and Add, Mul, Sub, Div, Relu,
// Sigmoid, Tanh, LeakyRelu, HardSigmoid, HardSwish, Gelu, Erf, Abs, Neg of channels-last operands
// (or of one and a scalar, or a per-channel constant [1, C, 1...] viewed as [1, ..., 1, C]) run on
// them too; a GlobalAveragePool becomes a ReduceMean over the spatial axes, a GlobalMaxPool a
// com.tunnx:ChannelsLastPool (op GlobalMaxPool: NaN passed over, as the pool does), and a 2-D MaxPool
// (without Indices) or AveragePool a ChannelsLastPool (attribute op, the pool's own attributes).
// Everywhere else a Transpose converts at the edge, and only where a node still reads the channels-
// first value; graph inputs and outputs keep their layout. A value made by a Transpose is read through
// one Transpose of that one's input, or a Reshape where it only moves dims of size 1. Values are
// renamed "<name>/nhwc". Transposes, Reshapes, Slices, Squeezes, Unsqueezes and Constants that
// nothing reads any more are dropped. Returns the number of nodes rewritten.
// `onnx_opset`: the model's ai.onnx opset (the ReduceMean that stands for a GlobalAveragePool takes
// its axes as an attribute before 18, as an input from 18; Squeeze's axes became an input at 13).
int channels_last(Graph& graph, const ParameterStore& store, int64_t onnx_opset);

// After channels_last: a channels-last FusedConv with no bias, batch norm, residual or activation
// whose output goes only through a Squeeze of unit spatial dims to an Add of a per-channel constant
// (the channels_last view of a [1, C, 1...] tensor; tf2onnx writes 1-D convolutions' biases so), and
// optionally on to an activation fused_activation_after takes, takes the constant as its bias and the
// activation as its own; the Squeeze then writes what the last of them wrote. (Squeeze(y) + b =
// Squeeze(y + b) for b along the channels.) The bias is read through a Reshape to [C], so a written
// constant is seen. Returns the number of convolutions that took one.
int fold_squeezed_conv_epilogues(Graph& graph, const ParameterStore& store, int64_t onnx_opset);

}  // namespace tunnx::ir
