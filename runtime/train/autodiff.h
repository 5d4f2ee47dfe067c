// Reverse-mode autodiff as a graph rewrite: from a forward graph, the values to differentiate
// (outputs, each with a seed gradient) and the sources (Parameters or graph inputs), append the
// backward nodes that compute d(outputs)/d(sources) to the same graph, built from the per-op rules of
// runtime/core/ops. Forward and backward then run as one plan on the same executor and kernels.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "runtime/core/graph.h"
#include "runtime/core/parameter_store.h"

namespace tunnx::train {

struct GradientRequest {
  std::vector<std::string> sources;  // Parameters (initializer names) or graph inputs
  std::vector<std::string> outputs;  // values to differentiate
  // Per output, the name of its seed gradient (a value of the output's shape); "" seeds with ones.
  std::vector<std::string> seeds;
  // Where a source is read by nodes without a rule outside any path to an output, nothing is done;
  // a node without a rule *on* such a path is an error naming it, its op and the source.
};

struct GradientGraph {
  // Per source, the value holding its gradient, or "" when no output depends on it (no path).
  std::vector<std::string> gradients;
  size_t backward_nodes = 0;
};

// Appends the backward nodes to `graph` (which must be topologically sorted; it stays so).
// `opsets` maps domain ("" = ai.onnx) to version. Throws Error(kUnsupported) naming the node, op type
// and opset when a node on a path from a source to an output has no gradient rule.
GradientGraph differentiate(ir::Graph& graph, const std::map<std::string, int64_t>& opsets,
                            const ParameterStore& store, const GradientRequest& request);

}  // namespace tunnx::train
