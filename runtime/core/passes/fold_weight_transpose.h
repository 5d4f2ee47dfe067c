// Exporters write a Linear layer whose weight stays a named initializer as MatMul(x, Transpose(W))
// (torch.onnx.export without constant folding, so the Parameter keeps its name). Run as written, the
// Transpose copies W on every run, the product reads a computed B (no packed weights), and in
// training the backward pass transposes the gradient back. This pass, at optimization level 2 and
// before autodiff, makes each such MatMul one com.tunnx:FusedMatMul (op "MatMul", transB 1) that
// reads W where it lies: its gradient rule gives dX = dY W and dW = dY^T X with no transposes, and
// fuse_linear later folds a bias Add and an activation into it as into a MatMul.
#pragma once

#include "runtime/core/graph.h"
#include "runtime/core/parameter_store.h"

namespace tunnx::ir {

// In the main graph: for each Transpose of a 2-D float32 initializer W with perm [1, 0] (or none)
// whose output is no graph output and is read only as input B of MatMul nodes, each of those MatMuls
// becomes FusedMatMul(A, W) {op: "MatMul", transB: 1, has_bias: 0, activation: ""} named after the
// MatMul + "+wt", and the Transpose leaves the graph. Returns the number of MatMuls rewritten.
int fold_weight_transpose(Graph& graph, const ParameterStore& store);

}  // namespace tunnx::ir
