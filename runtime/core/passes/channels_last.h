// Runs 2-D convolutions on channels-last (NHWC) activations, in a session's copy of the graph
// (optimization level 2, after fuse_conv), so consecutive convolutions hand each other NHWC tensors
// instead of converting to and from NCHW around every one.
//
// Why: oneDNN's fastest convolutions (brgconv on AVX-512) read and write NHWC; fed NCHW, each
// convolution reordered its input and output, a third of YOLOv8n's time. Other runtimes do the same
// rewrite (ONNX Runtime's NHWC transformer).
#pragma once

#include "runtime/core/graph.h"
#include "runtime/core/parameter_store.h"

namespace tunnx::ir {

// Rewrites every 2-D float32 Conv and FusedConv (rank-4 X, W a rank-4 float32 value) into a FusedConv
// with attribute channels_last = 1, which reads X [N, H, W, C] and Z [N, OH, OW, M] and writes Y
// [N, OH, OW, M] (W, B and the batch-norm inputs are unchanged). Between such nodes the NHWC values
// flow directly; Concat and Split along the channels, Resize of H and W by constant scales (with
// the scales reordered by a Constant node), and Add, Mul, Sub, Div, Relu, Sigmoid, Tanh, LeakyRelu,
// HardSigmoid, HardSwish of NHWC operands run on NHWC values too (Concat/Split on axis 3), a
// GlobalAveragePool becomes a ReduceMean over H and W, and a 2-D MaxPool (without Indices) or
// AveragePool a com.tunnx:ChannelsLastPool (attribute op, the pool's own attributes). Everywhere else a Transpose (perm 0,2,3,1 in, 0,3,1,2 out) converts at the edge,
// and only where a node still reads the NCHW value; graph inputs and outputs keep their layout.
// Values are renamed "<name>/nhwc". Returns the number of nodes rewritten.
// `onnx_opset`: the model's ai.onnx opset (the ReduceMean that stands for a GlobalAveragePool takes
// its axes as an attribute before 18, as an input from 18).
int channels_last(Graph& graph, const ParameterStore& store, int64_t onnx_opset);

}  // namespace tunnx::ir
