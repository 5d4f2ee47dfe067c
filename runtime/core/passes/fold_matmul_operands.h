// Folds what sits next to a product into it, as ONNX Runtime's MatmulTransposeFusion and
// MatMulScaleFusion do: a Transpose that swaps an operand's last two dims becomes the product's
// transA / transB (the product reads the operand through strides instead of a copy), and a
// multiplication or division by a scalar constant on the product's output or on an operand becomes its
// alpha. Attention writes both: Q K^T / sqrt(d) forward, and autodiff's dY B^T, A^T dY and the scale's
// gradient backward. Runs at optimization level 2 after fuse_linear (and after autodiff in a trainer:
// the folded node needs no gradient rule).
#pragma once

#include "runtime/core/graph.h"
#include "runtime/core/parameter_store.h"

namespace tunnx::ir {

// In the main graph, on each ONNX MatMul and com.tunnx:FusedMatMul with op "MatMul" (the product P):
//   - an operand made by Transpose(X) with perm [0, 1, ..., r-1, r-2] (r >= 2, the perm attribute
//     given), whose output only P reads and the graph does not return, is replaced by X and P's
//     transA / transB toggled;
//   - Mul(P, c), Mul(c, P) or Div(P, c) that alone reads P's output, P having no bias and no
//     activation, is removed and alpha multiplied by c or 1/c;
//   - an operand made by Mul(X, c), Mul(c, X) or Div(X, c) whose output only products read (each as
//     one operand), not returned, is replaced by X in each and their alphas multiplied by c or 1/c.
// c is a float32 scalar of a Constant node: an initializer could be a Parameter a caller writes. An
// ONNX MatMul that gains an attribute becomes FusedMatMul {op: "MatMul", has_bias: 0, activation: ""}
// named after it + "+folded". Returns the number of rewrites.
int fold_matmul_operands(Graph& graph, const ParameterStore& store);

}  // namespace tunnx::ir
