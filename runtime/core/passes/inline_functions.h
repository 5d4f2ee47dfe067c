// Expands calls of model-local functions into their bodies, in a session's copy of the graph (the
// stored model keeps its functions, so export writes them back unchanged).
#pragma once

#include <vector>

#include "runtime/core/graph.h"

namespace tunnx::ir {

// A deep copy: subgraphs are copied too, so passes may edit them without touching the model.
Graph deep_copy(const Graph& graph);

// Replaces every node that calls one of `functions` (matched by domain and name), in `graph` and its
// subgraphs, by the function's nodes: formal inputs/outputs renamed to the caller's values, internal
// values given unique names, attributes that refer to the caller's (ref_attr_name) resolved.
// Functions calling functions are expanded too; throws Error for recursion deeper than 32.
void inline_functions(Graph& graph, const std::vector<Function>& functions);

}  // namespace tunnx::ir
