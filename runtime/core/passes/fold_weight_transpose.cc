#include "runtime/core/passes/fold_weight_transpose.h"

#include <unordered_map>
#include <utility>
#include <vector>

#include "runtime/core/ops/gradient.h"
#include "runtime/core/passes/fuse_linear.h"
#include "runtime/core/passes/graph_facts.h"

namespace tunnx::ir {
namespace {

// W when `node` is Transpose(W) of a 2-D float32 initializer with perm [1, 0] or none, else "".
std::string transposed_weight(const Node& node, const GraphFacts& facts) {
  if (!is_onnx(node) || node.op_type != "Transpose" || node.inputs.size() != 1 || node.outputs.size() != 1) return "";
  const Tensor* w = facts.constant(node.inputs[0]);
  if (!w || w->rank() != 2 || w->dtype() != DataType::kFloat32) return "";
  if (const Attribute* perm = node.attribute("perm"))
    if (perm->ints != std::vector<int64_t>{1, 0}) return "";
  return node.inputs[0];
}

}  // namespace

int fold_weight_transpose(Graph& graph, const ParameterStore& store) {
  if (!has_op_type(graph, {"Transpose"})) return 0;
  const GraphFacts facts(graph, store);
  // Transposed weights by the Transpose's output, with the node's index.
  std::unordered_map<std::string, std::pair<std::string, size_t>> transposes;
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    const std::string w = transposed_weight(graph.nodes[i], facts);
    if (!w.empty() && !facts.outputs.count(graph.nodes[i].outputs[0])) transposes[graph.nodes[i].outputs[0]] = {w, i};
  }
  if (transposes.empty()) return 0;
  // Readers that are MatMul's B, per transposed value; a value read any other way stays as it is.
  std::unordered_map<std::string, std::vector<size_t>> products;
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    const Node& n = graph.nodes[i];
    if (is_onnx(n) && n.op_type == "MatMul" && n.inputs.size() == 2 && n.outputs.size() == 1 && transposes.count(n.inputs[1]) &&
        n.inputs[0] != n.inputs[1] && facts.dtype(n.inputs[0]) == DataType::kFloat32)
      products[n.inputs[1]].push_back(i);
  }
  std::vector<bool> removed(graph.nodes.size(), false);
  std::vector<std::pair<size_t, Node>> made;
  for (const auto& [value, readers] : products) {
    auto it = facts.readers.find(value);
    if (readers.empty() || it == facts.readers.end() || it->second != static_cast<int>(readers.size())) continue;
    const auto& [w, transpose_index] = transposes.at(value);
    removed[transpose_index] = true;
    for (size_t i : readers) {
      const Node& mm = graph.nodes[i];
      Node node;
      node.name = mm.name + "+wt";
      node.op_type = "FusedMatMul";
      node.domain = kTunnxDomain;
      node.inputs = {mm.inputs[0], w};
      node.outputs = mm.outputs;
      node.attributes = {ops::attr("op", std::string("MatMul")), ops::attr("transB", int64_t{1}),
                         ops::attr("has_bias", int64_t{0}), ops::attr("activation", std::string())};
      made.emplace_back(i, std::move(node));
    }
  }
  return splice_nodes(graph, std::move(made), std::move(removed));
}

}  // namespace tunnx::ir
