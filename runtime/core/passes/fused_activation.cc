#include "runtime/core/passes/fused_activation.h"

#include <limits>

#include "runtime/core/ops/gradient.h"
#include "runtime/core/ops/linear.h"
#include "runtime/core/passes/fuse_linear.h"

namespace tunnx::ir {
namespace {

// The attributes of one activation node, or nothing when it is not one the fused ops take (or its
// parameters are not constants the pass can read).
std::optional<std::vector<Attribute>> single_node_attrs(const Node& node, const GraphFacts& facts, int64_t onnx_opset) {
  // com.tunnx's Gelu and HardSwish: made by fuse_gelu and fuse_hard_swish.
  const bool made_here = node.domain == kTunnxDomain && (node.op_type == "Gelu" || node.op_type == "HardSwish");
  if ((!is_onnx(node) && !made_here) || node.inputs.empty() || node.outputs.size() != 1) return std::nullopt;
  using Kind = ops::Activation::Kind;
  const std::string& op = node.op_type;
  if (op == "Silu") return std::nullopt;  // the table's name for a pattern, not an ONNX op
  const std::string approximate = ops::node_string(node, "approximate", "none");
  const std::optional<Kind> kind = op.empty() ? std::nullopt : ops::activation_kind(op, approximate);
  if (!kind) return std::nullopt;  // not one the fused ops take (an unknown approximation: the op reports it)
  if (!only_attributes(node, {"alpha", "beta", "min", "max", "approximate"})) return std::nullopt;
  std::vector<Attribute> attrs = {ops::attr("activation", op)};
  if (*kind == Kind::kLeakyRelu) attrs.push_back(ops::attr("activation_alpha", ops::node_float(node, "alpha", 0.01f)));
  if (*kind == Kind::kHardSigmoid) {
    attrs.push_back(ops::attr("activation_alpha", ops::node_float(node, "alpha", 0.2f)));
    attrs.push_back(ops::attr("activation_beta", ops::node_float(node, "beta", 0.5f)));
  }
  if (*kind == Kind::kGelu || *kind == Kind::kGeluTanh) attrs.push_back(ops::attr("approximate", approximate));
  if (*kind == Kind::kClip) {
    const float inf = std::numeric_limits<float>::infinity();
    std::optional<float> lo = -inf, hi = inf;
    if (onnx_opset < 11) {
      lo = ops::node_float(node, "min", -inf);
      hi = ops::node_float(node, "max", inf);
    } else {
      lo = facts.scalar(node.inputs.size() > 1 ? node.inputs[1] : "", -inf);
      hi = facts.scalar(node.inputs.size() > 2 ? node.inputs[2] : "", inf);
    }
    if (!lo || !hi) return std::nullopt;
    attrs.push_back(ops::attr("activation_alpha", *lo));
    attrs.push_back(ops::attr("activation_beta", *hi));
  }
  return attrs;
}

}  // namespace

std::optional<FusedActivation> fused_activation_after(const Graph& graph, const GraphFacts& facts,
                                                      const std::string& value, size_t after, int64_t onnx_opset) {
  const int j = reader_of(graph, value, after);
  if (j < 0) return std::nullopt;
  const Node& first = graph.nodes[static_cast<size_t>(j)];
  // SiLU: Sigmoid(v) and Mul(v, s) in either order of nodes and operands, the only readers of v.
  if (facts.readers.count(value) && facts.readers.at(value) == 2 && !facts.outputs.count(value)) {
    const int k = reader_of(graph, value, static_cast<size_t>(j));
    if (k >= 0) {
      const Node& second = graph.nodes[static_cast<size_t>(k)];
      const bool sigmoid_first = is_onnx_op(first, "Sigmoid", 1);
      const Node& sigmoid = sigmoid_first ? first : second;
      const Node& mul = sigmoid_first ? second : first;
      const size_t mul_index = static_cast<size_t>(sigmoid_first ? k : j);
      if (is_onnx_op(sigmoid, "Sigmoid", 1) && is_onnx_op(mul, "Mul", 2) && facts.private_value(sigmoid.outputs[0]) &&
          only_attributes(sigmoid, {}) && only_attributes(mul, {"broadcast", "axis"})) {
        const std::string& s = sigmoid.outputs[0];
        if ((mul.inputs[0] == value && mul.inputs[1] == s) || (mul.inputs[1] == value && mul.inputs[0] == s)) {
          // The Mul must come after the Sigmoid (it reads it), so it is the later of the two.
          if (!sigmoid_first) return std::nullopt;
          return FusedActivation{{ops::attr("activation", std::string("Silu"))},
                                 {static_cast<size_t>(j), mul_index},
                                 mul.outputs[0]};
        }
      }
    }
  }
  if (!facts.private_value(value) || first.inputs.empty() || first.inputs[0] != value) return std::nullopt;
  std::optional<std::vector<Attribute>> attrs = single_node_attrs(first, facts, onnx_opset);
  if (!attrs) return std::nullopt;
  return FusedActivation{std::move(*attrs), {static_cast<size_t>(j)}, first.outputs[0]};
}

}  // namespace tunnx::ir
