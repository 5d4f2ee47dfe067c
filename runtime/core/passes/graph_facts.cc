#include "runtime/core/passes/graph_facts.h"

#include <cmath>

namespace tunnx::ir {

bool is_onnx(const Node& node) { return node.domain.empty() || node.domain == "ai.onnx"; }

bool is_onnx_op(const Node& node, const char* op, size_t inputs) {
  if (!is_onnx(node) || node.op_type != op || node.inputs.size() != inputs || node.outputs.size() != 1) return false;
  for (const auto& in : node.inputs)
    if (in.empty()) return false;
  return true;
}

bool only_attributes(const Node& node, std::initializer_list<const char*> known) {
  for (const Attribute& a : node.attributes) {
    bool ok = a.name == "consumed_inputs";
    for (const char* name : known) ok = ok || a.name == name;
    if (!ok) return false;
  }
  return true;
}

bool has_op_type(const Graph& graph, std::initializer_list<const char*> ops) {
  for (const Node& node : graph.nodes)
    for (const char* op : ops)
      if (node.op_type == op) return true;
  return false;
}

GraphFacts::GraphFacts(const Graph& g, const ParameterStore& s, const std::vector<const Graph*>& enclosing)
    : graph(g), store(s) {
  // Sized up front: growing the tables rehashed every key several times over.
  initializers.reserve(g.initializers.size());
  types.reserve(g.inferred_types.size() + g.value_infos.size() + g.inputs.size() + g.outputs.size());
  producer.reserve(g.nodes.size() + g.nodes.size() / 2);
  readers.reserve(g.nodes.size() * 2);
  for (const auto& init : g.initializers) initializers[init.name] = &init;
  for (const auto& [name, t] : g.inferred_types) types[name] = &t;
  for (const auto& v : g.value_infos) types[v.name] = &v.type;
  for (const auto& v : g.inputs) types[v.name] = &v.type;
  for (const auto& v : g.outputs) {
    types[v.name] = &v.type;
    outputs.insert(v.name);
  }
  std::unordered_set<std::string> defined;  // names a body defines, which hide an enclosing graph's
  if (!enclosing.empty()) {
    for (const auto& v : g.inputs) defined.insert(v.name);
    for (const auto& node : g.nodes) defined.insert(node.outputs.begin(), node.outputs.end());
  }
  for (const Graph* outer : enclosing) {
    for (const auto& init : outer->initializers)
      if (!defined.count(init.name)) initializers.emplace(init.name, &init);
    for (const auto& [name, t] : outer->inferred_types)
      if (!defined.count(name)) types.emplace(name, &t);
    for (const auto& v : outer->inputs)
      if (!defined.count(v.name)) types.emplace(v.name, &v.type);
  }
  for (const auto& node : g.nodes) {
    if (!is_onnx(node) || node.op_type != "Constant" || node.outputs.size() != 1) continue;
    if (const Attribute* v = node.attribute("value"); v && v->type == AttributeType::kTensor)
      constant_nodes[node.outputs[0]] = &v->t;
    else if (const Attribute* f = node.attribute("value_float"); f && f->type == AttributeType::kFloat)
      constant_floats[node.outputs[0]] = Tensor::from_vector<float>({}, {f->f});
  }
  for (const auto& [name, t] : constant_floats) constant_nodes[name] = &t;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    for (const auto& out : g.nodes[i].outputs)
      if (!out.empty()) producer[out] = i;
  g.visit([this](const Graph& sub, int) {
    for (const auto& node : sub.nodes)
      for (const auto& in : node.inputs)
        if (!in.empty()) ++readers[in];
    for (const auto& v : sub.outputs)
      if (&sub != &graph) ++readers[v.name];  // a subgraph returning an outer value reads it
  });
}

std::optional<std::vector<int64_t>> GraphFacts::constant_ints(const std::string& name) const {
  const Tensor* t = constant_value(name);
  if (!t || t->dtype() != DataType::kInt64 || t->rank() > 1) return std::nullopt;
  return std::vector<int64_t>(t->data_as<int64_t>(), t->data_as<int64_t>() + t->numel());
}

const Tensor* GraphFacts::constant(const std::string& name) const {
  auto it = initializers.find(name);
  return it == initializers.end() ? nullptr : &store.at(it->second->store_key).value;
}

std::optional<DataType> GraphFacts::dtype(const std::string& name) const {
  if (const Tensor* t = constant(name)) return t->dtype();
  auto it = types.find(name);
  if (it == types.end() || it->second->kind != TypeInfo::Kind::kTensor) return std::nullopt;
  return it->second->elem_type;
}

std::optional<std::vector<int64_t>> GraphFacts::dims(const std::string& name) const {
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

bool GraphFacts::private_value(const std::string& name) const {
  auto it = readers.find(name);
  return !outputs.count(name) && it != readers.end() && it->second == 1;
}

const Tensor* GraphFacts::constant_value(const std::string& name) const {
  if (const Tensor* t = constant(name)) return t;
  auto it = constant_nodes.find(name);
  return it == constant_nodes.end() ? nullptr : it->second;
}

std::optional<float> GraphFacts::scalar(const std::string& name, float fallback) const {
  if (name.empty()) return fallback;
  const Tensor* t = constant_value(name);
  if (!t || t->dtype() != DataType::kFloat32 || t->numel() != 1) return std::nullopt;
  return t->data_as<float>()[0];
}

const Node* GraphFacts::produced_by(const std::string& name) const {
  auto it = producer.find(name);
  return it == producer.end() ? nullptr : &graph.nodes[it->second];
}

std::optional<size_t> ChainWalker::only_reader(const std::string& value, size_t after) const {
  if (!facts_.private_value(value)) return std::nullopt;
  const int j = reader_of(graph_, value, after);
  return j < 0 ? std::nullopt : std::optional<size_t>(static_cast<size_t>(j));
}

bool ChainWalker::constant_is(const std::string& name, double wanted) const {
  const std::optional<float> v = name.empty() ? std::nullopt : facts_.scalar(name, 0);
  return v && std::fabs(*v - wanted) <= 1e-6 * std::fabs(wanted);
}

std::optional<std::string> ChainWalker::operand_besides_constant(const Node& n, double wanted) const {
  if (constant_is(n.inputs[1], wanted)) return n.inputs[0];
  if (constant_is(n.inputs[0], wanted)) return n.inputs[1];
  return std::nullopt;
}

std::string ChainWalker::other_operand(const Node& n, const std::string& v) {
  if (n.inputs[0] == n.inputs[1]) return "";
  if (n.inputs[0] == v) return n.inputs[1];
  return n.inputs[1] == v ? n.inputs[0] : "";
}

bool same_shape(const GraphFacts& facts, const std::string& a, const std::string& b) {
  auto ta = facts.types.find(a), tb = facts.types.find(b);
  if (ta == facts.types.end() || tb == facts.types.end() || !ta->second || !tb->second) return false;
  const std::optional<Shape>& sa = ta->second->shape;
  const std::optional<Shape>& sb = tb->second->shape;
  if (!sa || !sb || sa->rank() != sb->rank()) return false;
  for (size_t i = 0; i < sa->rank(); ++i) {
    const Dim &da = sa->dims[i], &db = sb->dims[i];
    const bool fixed_equal = da.is_fixed() && db.is_fixed() && da.value == db.value;
    const bool symbol_equal = da.is_named() && db.is_named() && da.symbol == db.symbol;
    if (!fixed_equal && !symbol_equal) return false;
  }
  return true;
}

int reader_of(const Graph& graph, const std::string& value, size_t after) {
  for (size_t i = after + 1; i < graph.nodes.size(); ++i)
    for (const auto& in : graph.nodes[i].inputs)
      if (in == value) return static_cast<int>(i);
  return -1;
}

int splice_nodes(Graph& graph, std::vector<std::pair<size_t, Node>> made, std::vector<bool> removed) {
  for (auto& [index, node] : made) {
    graph.nodes[index] = std::move(node);
    removed[index] = false;
  }
  std::vector<Node> kept;
  kept.reserve(graph.nodes.size());
  for (size_t i = 0; i < graph.nodes.size(); ++i)
    if (!removed[i]) kept.push_back(std::move(graph.nodes[i]));
  graph.nodes = std::move(kept);
  return static_cast<int>(made.size());
}

void replace_nodes(Graph& graph, std::vector<std::optional<std::vector<Node>>> replaced) {
  std::vector<Node> nodes;
  nodes.reserve(graph.nodes.size());
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    if (i >= replaced.size() || !replaced[i]) nodes.push_back(std::move(graph.nodes[i]));
    else
      for (Node& n : *replaced[i]) nodes.push_back(std::move(n));
  }
  graph.nodes = std::move(nodes);
}

}  // namespace tunnx::ir
