#include "runtime/core/passes/fuse_linear.h"

#include <algorithm>
#include <limits>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "runtime/core/ops/gradient.h"
#include "runtime/core/ops/linear.h"
#include "runtime/core/passes/fused_activation.h"
#include "runtime/core/passes/graph_facts.h"

namespace tunnx::ir {
namespace {

// Whether `node` is a MatMul with B transposed as fold_weight_transpose makes it: a FusedMatMul
// with nothing fused yet, which this pass extends as it would a MatMul.
bool is_bare_transposed_matmul(const Node& node) {
  if (node.domain != kTunnxDomain || node.op_type != "FusedMatMul") return false;
  const Attribute* op = node.attribute("op");
  const Attribute* act = node.attribute("activation");
  const Attribute* bias = node.attribute("has_bias");
  return op && op->s == "MatMul" && (!act || act->s.empty()) && (!bias || bias->i == 0) && node.inputs.size() == 2;
}

bool trans_b(const Node& node) {
  const Attribute* t = node.attribute("transB");
  return t && t->i != 0;
}

// The output's last dim N of MatMul/Gemm `node`, when B's shape says it.
std::optional<int64_t> output_cols(const Node& node, const GraphFacts& facts) {
  auto b = facts.dims(node.inputs[1]);
  if (!b || b->size() < 2) return std::nullopt;
  if (node.op_type == "Gemm" || trans_b(node)) return trans_b(node) ? (*b)[0] : (*b)[1];
  return b->back();
}

// The other operand of `op`, an Add or Mul of `value` and a float32 value of its shape.
std::optional<std::string> same_shaped_operand(const Node& op, const std::string& value, const GraphFacts& facts) {
  if (!is_onnx(op) || (op.op_type != "Add" && op.op_type != "Mul") || op.inputs.size() != 2 || op.outputs.size() != 1 ||
      op.inputs[0] == op.inputs[1] || (op.inputs[0] != value && op.inputs[1] != value) ||
      !only_attributes(op, {"broadcast", "axis"}))
    return std::nullopt;
  const std::string& other = op.inputs[0] == value ? op.inputs[1] : op.inputs[0];
  if (other.empty() || facts.dtype(other) != DataType::kFloat32 || !same_shape(facts, other, value)) return std::nullopt;
  return other;
}

}  // namespace

int fuse_linear(Graph& graph, const ParameterStore& store, int64_t onnx_opset) {
  if (!has_op_type(graph, {"MatMul", "Gemm", "FusedMatMul"})) return 0;
  const GraphFacts facts(graph, store);
  std::vector<bool> removed(graph.nodes.size(), false);
  std::vector<std::pair<size_t, Node>> fused;  // replaces the node at that index
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    const Node& mm = graph.nodes[i];
    const bool transposed_matmul = is_bare_transposed_matmul(mm);
    if (removed[i] || (!transposed_matmul && (!is_onnx(mm) || (mm.op_type != "MatMul" && mm.op_type != "Gemm")))) continue;
    if (mm.inputs.size() < 2 || mm.outputs.size() != 1 || mm.inputs[0].empty() || mm.inputs[1].empty()) continue;
    if (facts.dtype(mm.inputs[0]) != DataType::kFloat32 || facts.dtype(mm.inputs[1]) != DataType::kFloat32) continue;
    const bool gemm = mm.op_type == "Gemm";

    std::string value = mm.outputs[0];
    size_t last = i;
    std::string bias;
    std::optional<FusedActivation> activation;
    std::vector<size_t> swallowed;
    // [Add(y, bias)]: bias a 1-D float32 initializer of length N, on either side.
    if (facts.private_value(value)) {
      int j = reader_of(graph, value, last);
      if (j >= 0 && !removed[static_cast<size_t>(j)]) {
        const Node& add = graph.nodes[static_cast<size_t>(j)];
        // (Opset 6's `broadcast` aligns trailing dims as numpy does; its `axis` would not.)
        if (is_onnx(add) && add.op_type == "Add" && add.inputs.size() == 2 && add.outputs.size() == 1 &&
            add.inputs[0] != add.inputs[1] && only_attributes(add, {"broadcast"})) {
          const std::string& other = add.inputs[0] == value ? add.inputs[1] : add.inputs[0];
          const Tensor* b = facts.constant(other);
          std::optional<int64_t> n = output_cols(mm, facts);
          if (b && n && b->dtype() == DataType::kFloat32 && b->rank() == 1 && b->numel() == *n) {
            bias = other;
            last = static_cast<size_t>(j);
            swallowed.push_back(last);
            value = add.outputs[0];
          }
        }
      }
    }
    // [activation]: reads only the chain's value (Clip's bounds are constants).
    activation = fused_activation_after(graph, facts, value, last, onnx_opset);
    if (activation && std::any_of(activation->nodes.begin(), activation->nodes.end(), [&](size_t n) { return removed[n]; }))
      activation.reset();
    if (activation) {
      swallowed.insert(swallowed.end(), activation->nodes.begin(), activation->nodes.end());
      last = *std::max_element(activation->nodes.begin(), activation->nodes.end());
      value = activation->output;
    }
    // [Add(y, R) or Mul(y, R)], R of y's shape: a residual, or SwiGLU's other half.
    std::string binary, binary_operand;
    if (facts.private_value(value)) {
      const int j = reader_of(graph, value, last);
      if (j >= 0 && !removed[static_cast<size_t>(j)]) {
        const Node& op = graph.nodes[static_cast<size_t>(j)];
        if (std::optional<std::string> r = same_shaped_operand(op, value, facts)) {
          binary = op.op_type;
          binary_operand = *r;
          last = static_cast<size_t>(j);
          swallowed.push_back(last);
          value = op.outputs[0];
        }
      }
    }
    if (swallowed.empty()) continue;

    Node node;
    node.name = mm.name + "+fused";
    node.op_type = "FusedMatMul";
    node.domain = kTunnxDomain;
    node.inputs = {mm.inputs[0], mm.inputs[1]};
    if (gemm) node.inputs.push_back(mm.inputs.size() > 2 ? mm.inputs[2] : "");
    if (!bias.empty()) node.inputs.push_back(bias);
    node.outputs = {value};
    node.attributes.push_back(ops::attr("op", transposed_matmul ? "MatMul" : mm.op_type));
    if (transposed_matmul) node.attributes.push_back(ops::attr("transB", int64_t{trans_b(mm) ? 1 : 0}));
    if (gemm) {
      const ops::GemmAttrs g = ops::gemm_attrs(mm);
      node.attributes.push_back(ops::attr("transA", int64_t{g.trans_a ? 1 : 0}));
      node.attributes.push_back(ops::attr("transB", int64_t{g.trans_b ? 1 : 0}));
      node.attributes.push_back(ops::attr("alpha", g.alpha));
      node.attributes.push_back(ops::attr("beta", g.beta));
    }
    node.attributes.push_back(ops::attr("has_bias", int64_t{bias.empty() ? 0 : 1}));
    if (activation)
      for (auto& a : activation->attrs) node.attributes.push_back(std::move(a));
    else
      node.attributes.push_back(ops::attr("activation", std::string()));
    if (!binary.empty()) {
      node.inputs.push_back(binary_operand);
      node.attributes.push_back(ops::attr("binary", binary));
    }
    removed[i] = true;
    for (size_t s : swallowed) removed[s] = true;
    // The fused node sits where the last swallowed node was: its inputs are all ready there (R may
    // be computed after the product).
    fused.emplace_back(last, std::move(node));
  }
  return splice_nodes(graph, std::move(fused), std::move(removed));
}

}  // namespace tunnx::ir
