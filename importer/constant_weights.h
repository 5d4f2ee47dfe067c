// Weights kept in Constant nodes (Paddle2ONNX and spox write every weight so) become initializers
// marked with the node they came from: params, state_dict(), checkpoints and training see them as
// they see the file's initializers, and Model::save writes each back as its Constant node.
#pragma once

#include "runtime/core/graph.h"
#include "runtime/core/parameter_store.h"

namespace tunnx {

// Lifts, in `graph` and every subgraph, each ai.onnx Constant node whose `value` (or `value_floats`)
// is a floating tensor of rank 1 or more. Rank-0 literals (GELU's 0.5, an attention's scale) stay
// nodes: the initializer rule makes them buffers, and listing them says nothing. Run after the graph
// is sorted (positions are indices among the nodes that stay). Store keys are the output names,
// qualified by the graph's name where a subgraph reuses one.
void lift_constant_weights(ir::Graph& graph, ParameterStore& store);

}  // namespace tunnx
