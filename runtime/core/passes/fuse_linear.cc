#include "runtime/core/passes/fuse_linear.h"

#include <limits>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace tunnx::ir {
namespace {

bool is_onnx(const Node& node) { return node.domain.empty() || node.domain == "ai.onnx"; }

// What the pass knows of the graph's values before it rewrites anything.
struct Facts {
  const Graph& graph;
  const ParameterStore& store;
  std::unordered_map<std::string, const Initializer*> initializers;
  std::unordered_map<std::string, const TypeInfo*> types;
  std::unordered_map<std::string, int> readers;  // nodes (subgraphs included) that read each value
  std::unordered_set<std::string> outputs;

  Facts(const Graph& g, const ParameterStore& s) : graph(g), store(s) {
    for (const auto& init : g.initializers) initializers[init.name] = &init;
    for (const auto& [name, t] : g.inferred_types) types[name] = &t;
    for (const auto& v : g.value_infos) types[v.name] = &v.type;
    for (const auto& v : g.inputs) types[v.name] = &v.type;
    for (const auto& v : g.outputs) {
      types[v.name] = &v.type;
      outputs.insert(v.name);
    }
    g.visit([this](const Graph& sub, int) {
      for (const auto& node : sub.nodes)
        for (const auto& in : node.inputs)
          if (!in.empty()) ++readers[in];
      for (const auto& v : sub.outputs)
        if (&sub != &graph) ++readers[v.name];  // a subgraph returning an outer value reads it
    });
  }

  const Tensor* constant(const std::string& name) const {
    auto it = initializers.find(name);
    return it == initializers.end() ? nullptr : &store.at(it->second->store_key).value;
  }

  std::optional<DataType> dtype(const std::string& name) const {
    if (const Tensor* t = constant(name)) return t->dtype();
    auto it = types.find(name);
    if (it == types.end() || it->second->kind != TypeInfo::Kind::kTensor) return std::nullopt;
    return it->second->elem_type;
  }

  // Fixed dims of `name`, or nothing when any is unknown. An initializer that a graph input of the
  // same name may override is still taken as its initializer: a fed value must match its shape.
  std::optional<std::vector<int64_t>> dims(const std::string& name) const {
    if (const Tensor* t = constant(name)) return t->dims();
    auto it = types.find(name);
    if (it == types.end() || it->second->kind != TypeInfo::Kind::kTensor || !it->second->shape) return std::nullopt;
    std::vector<int64_t> out;
    for (const auto& d : it->second->shape->dims) {
      if (!d.is_fixed()) return std::nullopt;
      out.push_back(d.value);
    }
    return out;
  }

  // A value the chain may swallow: read by exactly one node and not returned by the graph.
  bool private_value(const std::string& name) const {
    auto it = readers.find(name);
    return !outputs.count(name) && it != readers.end() && it->second == 1;
  }

  // The scalar float32 initializer `name` ("" means absent: `fallback`), or nothing.
  std::optional<float> scalar(const std::string& name, float fallback) const {
    if (name.empty()) return fallback;
    const Tensor* t = constant(name);
    if (!t || t->dtype() != DataType::kFloat32 || t->numel() != 1) return std::nullopt;
    return t->data_as<float>()[0];
  }
};

// The single node reading `value`, by index, or -1.
int reader_of(const Graph& graph, const std::string& value, size_t after) {
  for (size_t i = after + 1; i < graph.nodes.size(); ++i)
    for (const auto& in : graph.nodes[i].inputs)
      if (in == value) return static_cast<int>(i);
  return -1;
}

Attribute make_attr(const std::string& name, AttributeType type) {
  Attribute a;
  a.name = name;
  a.type = type;
  return a;
}
Attribute int_attr(const std::string& name, int64_t v) {
  Attribute a = make_attr(name, AttributeType::kInt);
  a.i = v;
  return a;
}
Attribute float_attr(const std::string& name, float v) {
  Attribute a = make_attr(name, AttributeType::kFloat);
  a.f = v;
  return a;
}
Attribute string_attr(const std::string& name, const std::string& v) {
  Attribute a = make_attr(name, AttributeType::kString);
  a.s = v;
  return a;
}

int64_t attr_i(const Node& n, const std::string& name, int64_t fallback) {
  const Attribute* a = n.attribute(name);
  return a ? a->i : fallback;
}
float attr_f(const Node& n, const std::string& name, float fallback) {
  const Attribute* a = n.attribute(name);
  return a ? a->f : fallback;
}

// An activation the fused kernels take, with its parameters as FusedMatMul attributes; nothing when
// `node` is not one (or its parameters are not constants the pass can read).
std::optional<std::vector<Attribute>> activation_attrs(const Node& node, const Facts& facts, int64_t onnx_opset) {
  if (!is_onnx(node) || node.inputs.empty() || node.outputs.size() != 1) return std::nullopt;
  const std::string& op = node.op_type;
  std::vector<Attribute> attrs = {string_attr("activation", op)};
  if (op == "Relu" || op == "Sigmoid" || op == "Tanh") return attrs;
  if (op == "LeakyRelu") {
    attrs.push_back(float_attr("activation_alpha", attr_f(node, "alpha", 0.01f)));
    return attrs;
  }
  if (op == "Gelu") {
    const Attribute* a = node.attribute("approximate");
    const std::string approximate = a ? a->s : "none";
    if (approximate != "none" && approximate != "tanh") return std::nullopt;  // the kernel reports it
    attrs.push_back(string_attr("approximate", approximate));
    return attrs;
  }
  if (op == "Clip") {
    const float inf = std::numeric_limits<float>::infinity();
    std::optional<float> lo = -inf, hi = inf;
    if (onnx_opset < 11) {
      lo = attr_f(node, "min", -inf);
      hi = attr_f(node, "max", inf);
    } else {
      lo = facts.scalar(node.inputs.size() > 1 ? node.inputs[1] : "", -inf);
      hi = facts.scalar(node.inputs.size() > 2 ? node.inputs[2] : "", inf);
    }
    if (!lo || !hi) return std::nullopt;
    attrs.push_back(float_attr("activation_alpha", *lo));
    attrs.push_back(float_attr("activation_beta", *hi));
    return attrs;
  }
  return std::nullopt;
}

// The output's last dim N of MatMul/Gemm `node`, when B's shape says it.
std::optional<int64_t> output_cols(const Node& node, const Facts& facts) {
  auto b = facts.dims(node.inputs[1]);
  if (!b || b->size() < 2) return std::nullopt;
  if (node.op_type == "Gemm") return attr_i(node, "transB", 0) != 0 ? (*b)[0] : (*b)[1];
  return b->back();
}

}  // namespace

int fuse_linear(Graph& graph, const ParameterStore& store, int64_t onnx_opset) {
  const Facts facts(graph, store);
  std::vector<bool> removed(graph.nodes.size(), false);
  std::vector<std::pair<size_t, Node>> fused;  // replaces the node at that index
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    const Node& mm = graph.nodes[i];
    if (removed[i] || !is_onnx(mm) || (mm.op_type != "MatMul" && mm.op_type != "Gemm")) continue;
    if (mm.inputs.size() < 2 || mm.outputs.size() != 1 || mm.inputs[0].empty() || mm.inputs[1].empty()) continue;
    if (facts.dtype(mm.inputs[0]) != DataType::kFloat32 || facts.dtype(mm.inputs[1]) != DataType::kFloat32) continue;
    const bool gemm = mm.op_type == "Gemm";

    std::string value = mm.outputs[0];
    size_t last = i;
    std::string bias;
    std::optional<std::vector<Attribute>> activation;
    std::vector<size_t> swallowed;
    // [Add(y, bias)]: bias a 1-D float32 initializer of length N, on either side.
    if (facts.private_value(value)) {
      int j = reader_of(graph, value, last);
      if (j >= 0) {
        const Node& add = graph.nodes[static_cast<size_t>(j)];
        if (is_onnx(add) && add.op_type == "Add" && add.inputs.size() == 2 && add.outputs.size() == 1 &&
            add.inputs[0] != add.inputs[1]) {
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
    if (facts.private_value(value)) {
      int j = reader_of(graph, value, last);
      if (j >= 0) {
        const Node& act = graph.nodes[static_cast<size_t>(j)];
        activation = act.inputs.empty() || act.inputs[0] != value ? std::nullopt : activation_attrs(act, facts, onnx_opset);
        if (activation) {
          last = static_cast<size_t>(j);
          swallowed.push_back(last);
          value = act.outputs[0];
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
    node.attributes.push_back(string_attr("op", mm.op_type));
    if (gemm) {
      node.attributes.push_back(int_attr("transA", attr_i(mm, "transA", 0)));
      node.attributes.push_back(int_attr("transB", attr_i(mm, "transB", 0)));
      node.attributes.push_back(float_attr("alpha", attr_f(mm, "alpha", 1.0f)));
      node.attributes.push_back(float_attr("beta", attr_f(mm, "beta", 1.0f)));
    }
    node.attributes.push_back(int_attr("has_bias", bias.empty() ? 0 : 1));
    if (activation)
      for (auto& a : *activation) node.attributes.push_back(std::move(a));
    else
      node.attributes.push_back(string_attr("activation", ""));
    for (size_t s : swallowed) removed[s] = true;
    fused.emplace_back(i, std::move(node));
  }
  if (fused.empty()) return 0;
  // The fused node sits where the MatMul was: its inputs are all ready there.
  for (auto& [index, node] : fused) graph.nodes[index] = std::move(node);
  std::vector<Node> kept;
  kept.reserve(graph.nodes.size());
  for (size_t i = 0; i < graph.nodes.size(); ++i)
    if (!removed[i]) kept.push_back(std::move(graph.nodes[i]));
  graph.nodes = std::move(kept);
  return static_cast<int>(fused.size());
}

}  // namespace tunnx::ir
