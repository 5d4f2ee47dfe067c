// Fuses a MatMul or Gemm with the bias Add and the activation that follow it into one node
// com.tunnx:FusedMatMul, in a session's copy of the graph (run at optimization level 2). The stored
// model keeps its nodes, so export writes them back unchanged.
#pragma once

#include <cstdint>

#include "runtime/core/graph.h"
#include "runtime/core/parameter_store.h"

namespace tunnx::ir {

// The domain of the nodes this pass makes; sessions import it at version 1.
inline constexpr const char* kTunnxDomain = "com.tunnx";

// Rewrites, in the main graph, each float32 chain
//   MatMul(A, B) | Gemm(A, B, C)  ->  [Add(y, bias)]  ->  [Relu | LeakyRelu | Clip | Sigmoid | Tanh | Gelu]
// (also a FusedMatMul that fold_weight_transpose made, nothing fused yet: it keeps its transB)
// (Gelu: ONNX's, or com.tunnx's that fuse_gelu makes)
// with at least one of the optional nodes, where bias is a 1-D initializer of length N (the output's
// last dim, known from B's shape), Clip bounds are attributes or scalar initializers, and every
// intermediate value has exactly one reader and is not a graph output. The fused node takes the
// first node's name + "+fused" and the last node's output name; its inputs are A, B, C ("" when Gemm
// has none; MatMul has no slot), [bias]; its attributes: op ("MatMul"/"Gemm"), transA, transB, alpha,
// beta (Gemm), has_bias, activation ("" or the op type), activation_alpha, activation_beta
// (LeakyRelu alpha; Clip min/max), approximate (Gelu). Clip bounds are read from `store` now.
// `onnx_opset` is the model's ai.onnx opset (Clip's bounds moved from attributes to inputs at 11).
// Returns the number of nodes made.
int fuse_linear(Graph& graph, const ParameterStore& store, int64_t onnx_opset);

}  // namespace tunnx::ir
