// Recognizes layer normalization spelled out as elementary ops (torch's exports below opset 17 and
// Paddle2ONNX write it so) and rewrites it into one com.tunnx:LayerNormalization node (ONNX
// LayerNormalization-17's meaning, for models of any opset), in a session's copy of the graph at
// optimization level 2: one pass over the rows instead of nine, on the oneDNN kernel.
#pragma once

#include <cstdint>

#include "runtime/core/graph.h"
#include "runtime/core/parameter_store.h"

namespace tunnx::ir {

// In the main graph, for a float32 x whose last dim is C (where shape inference does not know it, C
// must be more than 1):
//   d = Sub(x, ReduceMean(x)); v = ReduceMean(Pow(d, 2) or Mul(d, d));
//   y = Add(Mul(Div(d, Sqrt(Add(v, eps))), scale), bias)     (the bias Add optional)
// where both ReduceMeans take the last axis only with keepdims, eps is a scalar float32 constant,
// scale and bias are [C] (any operand order of Add and Mul), d is read by exactly the two nodes
// above, and every other intermediate is read once and is not a graph output, becomes
// LayerNormalization(x, scale[, bias]) with axis -1 and epsilon eps, named after the Sub node +
// "+layernorm". Returns the number of nodes made.
int fuse_layer_norm(Graph& graph, const ParameterStore& store, int64_t onnx_opset);

}  // namespace tunnx::ir
