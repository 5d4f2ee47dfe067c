// Recognizes the exact GELU that exporters write as elementary ops (ONNX had no Gelu before opset 20;
// torch and transformers exports spell it out) and rewrites it into one com.tunnx:Gelu node, in a
// session's copy of the graph at optimization level 2. fuse_linear then folds a Gelu that follows a
// MatMul/Gemm (+ bias) into the FusedMatMul, where oneDNN applies it as a post-op.
#pragma once

#include "runtime/core/graph.h"
#include "runtime/core/parameter_store.h"

namespace tunnx::ir {

// In the main graph, for a floating-point x, each of
//   Mul(Mul(x, Add(Erf(S(x)), 1)), 0.5)        (torch's export)
//   Mul(Mul(x, 0.5), Add(Erf(S(x)), 1))        (the half taken first)
//   Mul(x, Mul(0.5, Add(Erf(S(x)), 1)))        (torch's dynamo exporter)
// where S(x) is Div(x, sqrt(2)) or Mul(x, 1/sqrt(2)), any operand order of Add and Mul, constants
// scalar float32 initializers (within 1e-6 relative), and every intermediate read once and not a
// graph output, becomes com.tunnx:Gelu(x) (approximate "none"), named after the Erf node + "+gelu",
// with the last node's output. The tanh form, 0.5 x (1 + Tanh(sqrt(2/pi) (x + 0.044715 x^3))), with
// the cube written as products of x and constants or a Pow by 3 (JAX's export: Mul(x, Mul(x,
// Mul(0.044715, x)))) and the half and x multiplied in either order, becomes Gelu with approximate
// "tanh", named after the Tanh node + "+gelu". Returns the number of nodes made.
int fuse_gelu(Graph& graph, const ParameterStore& store);

}  // namespace tunnx::ir
