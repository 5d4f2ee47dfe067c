#include "runtime/core/passes/fuse_one_hot.h"

#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "runtime/core/passes/fuse_linear.h"
#include "runtime/core/passes/graph_facts.h"

namespace tunnx::ir {
namespace {

// K when `t` is an integer tensor [1, ..., 1, K] holding 0, 1, ..., K-1; nothing otherwise.
std::optional<int64_t> iota_length(const Tensor& t) {
  if (t.rank() == 0) return std::nullopt;
  for (size_t i = 0; i + 1 < t.rank(); ++i)
    if (t.dims()[i] != 1) return std::nullopt;
  const int64_t k = t.dims().back();
  for (int64_t i = 0; i < k; ++i) {
    int64_t v = 0;
    switch (t.dtype()) {
      case DataType::kInt32: v = t.data_as<int32_t>()[i]; break;
      case DataType::kInt64: v = t.data_as<int64_t>()[i]; break;
      case DataType::kUInt8: v = t.data_as<uint8_t>()[i]; break;
      default: return std::nullopt;
    }
    if (v != i) return std::nullopt;
  }
  return k;
}

}  // namespace

int fuse_one_hot_matmul(Graph& graph, const ParameterStore& store) {
  if (!has_op_type(graph, {"Equal"})) return 0;
  const GraphFacts facts(graph, store);

  std::vector<bool> removed(graph.nodes.size(), false);
  std::vector<std::pair<size_t, Node>> made;
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    const Node& mm = graph.nodes[i];
    if (!is_onnx_op(mm, "MatMul", 2)) continue;
    const Tensor* w = facts.constant(mm.inputs[1]);
    if (!w || w->dtype() != DataType::kFloat32 || w->rank() != 2) continue;
    const Node* cast = facts.produced_by(mm.inputs[0]);
    if (!cast || !is_onnx_op(*cast, "Cast", 1) || !facts.private_value(mm.inputs[0])) continue;
    const Attribute* to = cast->attribute("to");
    if (!to || to->i != static_cast<int64_t>(DataType::kFloat32)) continue;
    const Node* equal = facts.produced_by(cast->inputs[0]);
    if (!equal || !is_onnx_op(*equal, "Equal", 2) || !facts.private_value(cast->inputs[0])) continue;
    std::string x;
    size_t c_rank = 0;
    for (size_t side = 0; side < 2 && x.empty(); ++side) {
      const Tensor* c = facts.constant(equal->inputs[side]);
      const std::optional<int64_t> k = c ? iota_length(*c) : std::nullopt;
      if (k && *k == w->dims()[0]) {
        x = equal->inputs[1 - side];
        c_rank = c->rank();
      }
    }
    if (x.empty()) continue;
    // X's rank must be at least C's, so that the one-hot's shape is X's with the last dim K.
    auto type = facts.types.find(x);
    if (type == facts.types.end() || type->second->kind != TypeInfo::Kind::kTensor || !type->second->shape ||
        type->second->shape->dims.size() < c_rank)
      continue;
    const std::optional<DataType> x_type = facts.dtype(x);
    if (!x_type || (*x_type != DataType::kInt32 && *x_type != DataType::kInt64 && *x_type != DataType::kUInt8)) continue;
    Node node;
    node.name = mm.name + "+onehot";
    node.op_type = "OneHotMatMul";
    node.domain = kTunnxDomain;
    node.inputs = {x, mm.inputs[1]};
    node.outputs = mm.outputs;
    removed[facts.producer.at(cast->outputs[0])] = true;
    removed[facts.producer.at(equal->outputs[0])] = true;
    made.emplace_back(i, std::move(node));  // where the MatMul was: X and W are ready there
  }
  return splice_nodes(graph, std::move(made), std::move(removed));
}

}  // namespace tunnx::ir
