// Scaled dot-product attention written out as two products and a softmax, as BERT-style exporters
// write it, becomes one Attention node: the scores [B, N, S, T] are then computed a block of rows at
// a time and never stored, and Attention's kernel spreads (batch, head, row block) over the threads,
// where oneDNN's batched products of [128, 64] x [64, 128] ran no faster on 2 threads than on 1.
#pragma once

#include <cstdint>

#include "runtime/core/graph.h"
#include "runtime/core/parameter_store.h"

namespace tunnx::ir {

// In the main graph, the chain
//   S = MatMul(Q, Kt) -> [Div(S, c) or Mul by c, c a float32 scalar] -> [Add(mask)]
//     -> Softmax over the last axis -> Y = MatMul(P, V)
// with Q [B, N, S, H], Kt [B, N, H, T], V [B, N, T, Hv] and an additive float32 mask whose dims are 1
// or the scores' (shape inference must prove all of it), every intermediate read only by the next
// node, becomes com.tunnx:Attention (ai.onnx Attention-23's meaning, 4-D form) on (Q', K, V[, mask])
// with scale 1. K is Kt's producer rewritten when Kt is a Transpose only the product reads (perm
// [0, 2, 3, 1] of a [B, T, N, H] value becomes [0, 2, 1, 3]; a swap of the last two dims is dropped),
// else a Transpose of Kt. The scale stays a node on the operand and still reads c, so a written c is
// seen: Q' = Div(Q, c) (or the Mul), put before Q's Reshape -> Transpose when the exporter wrote Q so
// (attention_heads_last then removes those transposes), else on Q itself. `onnx_opset` decides
// Softmax's default axis. Forward sessions only: Attention has no gradient rule in com.tunnx. Returns
// the number of chains rewritten.
int fuse_attention(Graph& graph, const ParameterStore& store, int64_t onnx_opset);

}  // namespace tunnx::ir
