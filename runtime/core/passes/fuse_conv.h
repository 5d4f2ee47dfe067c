// Fuses a Conv with what follows it into one com.tunnx:FusedConv node, in a session's copy of the
// graph (optimization level 2); the stored model keeps its nodes, so export writes them unchanged.
#pragma once

#include <cstdint>

#include "runtime/core/graph.h"
#include "runtime/core/parameter_store.h"

namespace tunnx::ir {

// Rewrites, in the main graph, each float32 chain
//   Conv(X, W, [B]) -> [BatchNormalization (inference form)] -> [Add(y, Z)] -> [affine] -> [activation] -> [affine]
//   Conv(X, W, [B]) -> [BatchNormalization] -> [affine] -> activation -> [affine] -> Add(y, Z)
// with at least one of the bracketed nodes (an affine after the activation only with one), where
// BatchNormalization's scale, bias, mean and var are initializers, Z has the chain's shape (shape
// inference proves it: equal fixed dims or one named symbol), the activation is one of
// passes/fused_activation.h, an affine is Mul(y, s) and/or Add(y, t) of one-element float32
// constants (Paddle2ONNX writes its learnable affine blocks so), and every intermediate value has
// one reader and is not a graph output. The fused node takes the Conv's name + "+fused" and the last
// node's output name. Inputs ("" for the absent): X, W, B, scale, bn_bias, mean, var, Z, and with an
// affine also s and t before, s and t after the activation (ops/conv_pool.h). Attributes: the Conv's
// own, has_bn, epsilon, has_residual, residual_after_activation (0: the activation reads conv + Z;
// 1: Z is added to the activation's output) and the activation's (ops/linear.h). BatchNormalization
// is folded into the weights by the kernels, and the affine maps read, from the current values of
// their Parameters and buffers, so a trained or reloaded model stays consistent.
// Returns the number of nodes made.
// `enclosing`: for an If/Loop/Scan body, the graphs around it, innermost first (GraphFacts).
int fuse_conv(Graph& graph, const ParameterStore& store, int64_t onnx_opset,
              const std::vector<const Graph*>& enclosing = {});

}  // namespace tunnx::ir
