#include "importer/constant_weights.h"

#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

namespace tunnx {
namespace {

using AType = ir::AttributeType;

// The weight a Constant node holds, or an undefined tensor when it is not one to lift.
Tensor lifted_value(const ir::Node& n) {
  if ((!n.domain.empty() && n.domain != "ai.onnx") || n.op_type != "Constant" || !n.inputs.empty() ||
      n.outputs.size() != 1 || n.outputs[0].empty() || n.attributes.size() != 1)
    return {};
  const ir::Attribute& a = n.attributes[0];
  Tensor value;
  if (a.name == "value" && a.type == AType::kTensor) value = a.t;
  else if (a.name == "value_floats" && a.type == AType::kFloats)
    value = Tensor::from_vector<float>({static_cast<int64_t>(a.floats.size())}, a.floats);
  if (!value.defined() || !is_floating_point(value.dtype()) || value.rank() == 0) return {};
  return value;
}

void lift(ir::Graph& graph, ParameterStore& store, const std::string& scope) {
  std::unordered_set<std::string> initializers;
  for (const auto& init : graph.initializers) initializers.insert(init.name);
  std::vector<ir::Node> kept;
  kept.reserve(graph.nodes.size());
  for (auto& n : graph.nodes) {
    Tensor value = lifted_value(n);
    if (!value.defined() || initializers.count(n.outputs[0])) {
      kept.push_back(std::move(n));
      continue;
    }
    const std::string& name = n.outputs[0];
    std::string key = name;
    for (int i = 2; store.find(key); ++i) key = scope + "/" + name + (i > 2 ? "#" + std::to_string(i - 1) : "");
    StoredTensor entry;
    entry.name = key;
    entry.value = std::move(value);
    entry.origin = TensorOrigin::kConstantNode;
    store.add(std::move(entry));
    ir::Initializer init{name, key, ""};
    init.constant_node = ir::ConstantNodeOrigin{n.name, n.doc_string, n.attributes[0].name, n.attributes[0].t_label, kept.size()};
    graph.initializers.push_back(std::move(init));
    initializers.insert(name);
  }
  graph.nodes = std::move(kept);
  for (auto& n : graph.nodes) {
    const std::string node_scope = scope + (scope.empty() ? "" : "/") + (n.name.empty() ? n.op_type : n.name);
    for (auto& attr : n.attributes) {
      if (attr.g) lift(*attr.g, store, node_scope + "/" + attr.name);
      for (size_t i = 0; i < attr.graphs.size(); ++i)
        lift(*attr.graphs[i], store, node_scope + "/" + attr.name + "." + std::to_string(i));
    }
  }
}

}  // namespace

void lift_constant_weights(ir::Graph& graph, ParameterStore& store) { lift(graph, store, ""); }

}  // namespace tunnx
