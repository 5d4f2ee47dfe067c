// The activation a fusion pass swallows after a product (fuse_linear) or a convolution (fuse_conv),
// as the fused node's attributes (activation, activation_alpha, activation_beta, approximate: the
// table of runtime/core/ops/linear.h).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "runtime/core/graph.h"
#include "runtime/core/passes/graph_facts.h"

namespace tunnx::ir {

struct FusedActivation {
  std::vector<Attribute> attrs;  // the fused node's activation attributes
  std::vector<size_t> nodes;     // the nodes it replaces, by index
  std::string output;            // the value the last of them writes
};

// The activation that reads `value` (written by the node at index `after`, read by nothing else the
// caller keeps): one ONNX node (Relu, LeakyRelu, Clip with constant bounds, Sigmoid, Tanh,
// HardSigmoid, HardSwish, Gelu; com.tunnx:Gelu of fuse_gelu), or SiLU spelled x * Sigmoid(x) (the
// Sigmoid and the Mul are then the only readers of `value`). Nothing when what follows is none of
// these. `onnx_opset`: Clip's bounds moved from attributes to inputs at 11.
std::optional<FusedActivation> fused_activation_after(const Graph& graph, const GraphFacts& facts,
                                                      const std::string& value, size_t after, int64_t onnx_opset);

}  // namespace tunnx::ir
