#include "runtime/core/passes/fuse_conv.h"

#include <algorithm>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "runtime/core/ops/gradient.h"
#include "runtime/core/passes/fuse_linear.h"
#include "runtime/core/passes/fused_activation.h"
#include "runtime/core/passes/graph_facts.h"

namespace tunnx::ir {
namespace {

// BatchNormalization in its inference form reading `value`, with constant statistics and affine.
bool is_foldable_batch_norm(const Node& bn, const std::string& value, const GraphFacts& facts) {
  if (!is_onnx(bn) || bn.op_type != "BatchNormalization" || bn.inputs.size() != 5 || bn.outputs.size() != 1 ||
      bn.inputs[0] != value || ops::node_int(bn, "training_mode", 0) != 0 || ops::node_int(bn, "spatial", 1) != 1 ||
      !only_attributes(bn, {"epsilon", "momentum", "spatial", "training_mode", "is_test"}))
    return false;
  for (size_t i = 1; i < 5; ++i) {
    const Tensor* t = facts.constant(bn.inputs[i]);
    if (!t || t->dtype() != DataType::kFloat32 || t->rank() != 1) return false;
  }
  return true;
}

// The other operand of Add `add` when one of its two inputs is `value` and the other has its shape.
std::optional<std::string> residual_of(const Node& add, const std::string& value, const GraphFacts& facts) {
  if (!is_onnx(add) || add.op_type != "Add" || add.inputs.size() != 2 || add.outputs.size() != 1 ||
      add.inputs[0] == add.inputs[1] || !only_attributes(add, {"broadcast", "axis"}))
    return std::nullopt;
  const std::string& other = add.inputs[0] == value ? add.inputs[1] : add.inputs[0];
  if (add.inputs[0] != value && add.inputs[1] != value) return std::nullopt;
  if (facts.dtype(other) != DataType::kFloat32 || !same_shape(facts, other, value)) return std::nullopt;
  return other;
}

// Whether `name` is a one-element float32 initializer or Constant node of rank 3 at most (a
// convolution's output has 3 or more, so the product keeps its shape). The fused node reads it as an
// input: a Parameter written after the session is made (Paddle2ONNX's are) is seen.
bool is_scalar_constant(const GraphFacts& facts, const std::string& name) {
  const Tensor* t = name.empty() ? nullptr : facts.constant_value(name);
  return t && t->dtype() == DataType::kFloat32 && t->numel() == 1 && t->rank() <= 3;
}

}  // namespace

int fuse_conv(Graph& graph, const ParameterStore& store, int64_t onnx_opset, const std::vector<const Graph*>& enclosing) {
  if (!has_op_type(graph, {"Conv"})) return 0;
  const GraphFacts facts(graph, store, enclosing);
  std::vector<bool> removed(graph.nodes.size(), false);
  std::vector<std::pair<size_t, Node>> fused;
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    const Node& conv = graph.nodes[i];
    if (removed[i] || !is_onnx(conv) || conv.op_type != "Conv" || conv.outputs.size() != 1 || conv.inputs.size() < 2)
      continue;
    // X and W share one type (ONNX's T): W's says it where inference lost X's (after a Resize, a Split).
    const std::optional<DataType> x_type = facts.dtype(conv.inputs[0]);
    if (facts.dtype(conv.inputs[1]) != DataType::kFloat32 || (x_type && *x_type != DataType::kFloat32)) continue;

    std::string value = conv.outputs[0];
    size_t last = i;
    std::vector<size_t> swallowed;
    std::vector<std::string> bn_inputs(4);
    float epsilon = 1e-5f;
    std::string residual;
    bool residual_after_activation = false;
    std::optional<FusedActivation> activation;
    auto next_reader = [&](const std::string& v) -> const Node* {
      if (!facts.private_value(v)) return nullptr;
      const int j = reader_of(graph, v, last);
      // A node another chain swallowed already (the Add of a block whose two branches both end in a
      // convolution) stays with that chain.
      return j < 0 || removed[static_cast<size_t>(j)] ? nullptr : &graph.nodes[static_cast<size_t>(j)];
    };
    auto take = [&](const Node* node) {
      last = static_cast<size_t>(node - graph.nodes.data());
      swallowed.push_back(last);
      value = node->outputs[0];
    };
    if (const Node* bn = next_reader(value); bn && is_foldable_batch_norm(*bn, value, facts)) {
      bn_inputs.assign(bn->inputs.begin() + 1, bn->inputs.end());
      epsilon = ops::node_float(*bn, "epsilon", 1e-5f);
      take(bn);
    }
    if (const Node* add = next_reader(value)) {
      if (std::optional<std::string> z = residual_of(*add, value, facts)) {
        residual = *z;
        take(add);
      }
    }
    // y * s + t, spelled Mul and/or Add of scalar constants (Paddle's learnable affine blocks around
    // each activation): the names of s and t, "" where absent.
    std::vector<std::string> affine_inputs(4);
    auto take_affine = [&](size_t first) {
      for (size_t k = 0; k < 2; ++k) {
        const Node* n = next_reader(value);
        if (!n || !is_onnx_op(*n, k == 0 ? "Mul" : "Add", 2) || !only_attributes(*n, {})) continue;
        const std::string other = ChainWalker::other_operand(*n, value);
        if (!is_scalar_constant(facts, other)) continue;
        affine_inputs[first + k] = other;
        take(n);
      }
    };
    take_affine(0);
    activation = fused_activation_after(graph, facts, value, last, onnx_opset);
    if (activation && std::any_of(activation->nodes.begin(), activation->nodes.end(), [&](size_t n) { return removed[n]; }))
      activation.reset();
    if (activation) {
      swallowed.insert(swallowed.end(), activation->nodes.begin(), activation->nodes.end());
      last = activation->nodes.back();
      value = activation->output;
      take_affine(2);
      if (residual.empty())
        if (const Node* add = next_reader(value))
          if (std::optional<std::string> z = residual_of(*add, value, facts)) {
            residual = *z;
            residual_after_activation = true;
            take(add);
          }
    }
    if (swallowed.empty()) continue;

    Node node;
    node.name = conv.name + "+fused";
    node.op_type = "FusedConv";
    node.domain = kTunnxDomain;
    node.inputs = {conv.inputs[0], conv.inputs[1], conv.inputs.size() > 2 ? conv.inputs[2] : ""};
    node.inputs.insert(node.inputs.end(), bn_inputs.begin(), bn_inputs.end());
    node.inputs.push_back(residual);
    if (std::any_of(affine_inputs.begin(), affine_inputs.end(), [](const std::string& s) { return !s.empty(); }))
      node.inputs.insert(node.inputs.end(), affine_inputs.begin(), affine_inputs.end());
    node.outputs = {value};
    node.attributes = conv.attributes;
    node.attributes.push_back(ops::attr("has_bn", int64_t{bn_inputs[0].empty() ? 0 : 1}));
    node.attributes.push_back(ops::attr("epsilon", epsilon));
    node.attributes.push_back(ops::attr("has_residual", int64_t{residual.empty() ? 0 : 1}));
    node.attributes.push_back(ops::attr("residual_after_activation", int64_t{residual_after_activation ? 1 : 0}));
    if (activation)
      for (auto& a : activation->attrs) node.attributes.push_back(std::move(a));
    else
      node.attributes.push_back(ops::attr("activation", std::string()));
    removed[i] = true;
    for (size_t s : swallowed) removed[s] = true;
    // The fused node sits where the last swallowed node was: Z may be computed after the Conv.
    fused.emplace_back(last, std::move(node));
  }
  return splice_nodes(graph, std::move(fused), std::move(removed));
}

}  // namespace tunnx::ir
