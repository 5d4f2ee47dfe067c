#include "runtime/core/passes/fuse_gelu.h"

#include <cmath>
#include <numbers>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "runtime/core/passes/fuse_linear.h"
#include "runtime/core/passes/graph_facts.h"

namespace tunnx::ir {
namespace {

bool near(float value, double wanted) { return std::fabs(value - wanted) <= 1e-6 * std::fabs(wanted); }

// Finds GELU chains around each Erf node.
class GeluMatcher {
 public:
  GeluMatcher(const Graph& graph, const GraphFacts& facts) : graph_(graph), facts_(facts) {
    for (size_t i = 0; i < graph.nodes.size(); ++i)
      for (const auto& out : graph.nodes[i].outputs)
        if (!out.empty()) producer_[out] = i;
  }

  struct Match {
    std::string x, y;
    std::vector<size_t> nodes;  // every node of the chain; the last one is where Gelu goes
  };

  std::optional<Match> at(size_t erf_index) const {
    const Node& erf = graph_.nodes[erf_index];
    if (!is_op(erf, "Erf", 1)) return std::nullopt;
    Match m;
    // S(x): Div(x, sqrt 2) or Mul(x, 1/sqrt 2), read only by the Erf.
    const Node* scale = produced(erf.inputs[0]);
    if (!scale || !facts_.private_value(erf.inputs[0])) return std::nullopt;
    if (is_op(*scale, "Div", 2) && constant_is(scale->inputs[1], std::numbers::sqrt2)) {
      m.x = scale->inputs[0];
    } else if (is_op(*scale, "Mul", 2)) {
      std::optional<std::string> other = operand_besides_constant(*scale, 1 / std::numbers::sqrt2);
      if (!other) return std::nullopt;
      m.x = *other;
    } else {
      return std::nullopt;
    }
    std::optional<DataType> dtype = facts_.dtype(m.x);
    if (!dtype || !is_floating_point(*dtype)) return std::nullopt;
    m.nodes = {index_of(*scale), erf_index};

    // Add(Erf, 1)
    std::optional<size_t> add = only_reader(erf.outputs[0], erf_index);
    if (!add || !is_op(graph_.nodes[*add], "Add", 2)) return std::nullopt;
    if (operand_besides_constant(graph_.nodes[*add], 1.0) != erf.outputs[0]) return std::nullopt;
    m.nodes.push_back(*add);
    const std::string& one_plus = graph_.nodes[*add].outputs[0];

    // Mul(one_plus, other): other is x (then Mul(., 0.5) follows) or Mul(x, 0.5) (then this is y).
    std::optional<size_t> mul = only_reader(one_plus, *add);
    if (!mul || !is_op(graph_.nodes[*mul], "Mul", 2)) return std::nullopt;
    const Node& product = graph_.nodes[*mul];
    if (product.inputs[0] == product.inputs[1]) return std::nullopt;
    const std::string& other = product.inputs[0] == one_plus ? product.inputs[1] : product.inputs[0];
    if (constant_is(other, 0.5)) {  // Mul(x, Mul(0.5, one_plus)): torch's dynamo exporter
      std::optional<size_t> times_x = only_reader(product.outputs[0], *mul);
      if (!times_x || !is_op(graph_.nodes[*times_x], "Mul", 2)) return std::nullopt;
      const Node& last = graph_.nodes[*times_x];
      const std::string& x = last.inputs[0] == product.outputs[0] ? last.inputs[1] : last.inputs[0];
      if (x != m.x || last.inputs[0] == last.inputs[1]) return std::nullopt;
      m.nodes.push_back(*mul);
      m.nodes.push_back(*times_x);
      m.y = last.outputs[0];
    } else if (other == m.x) {
      std::optional<size_t> half = only_reader(product.outputs[0], *mul);
      if (!half || !is_op(graph_.nodes[*half], "Mul", 2) ||
          operand_besides_constant(graph_.nodes[*half], 0.5) != product.outputs[0])
        return std::nullopt;
      m.nodes.push_back(*mul);
      m.nodes.push_back(*half);
      m.y = graph_.nodes[*half].outputs[0];
    } else {
      const Node* half_x = produced(other);
      if (!half_x || !facts_.private_value(other) || !is_op(*half_x, "Mul", 2) ||
          operand_besides_constant(*half_x, 0.5) != m.x)
        return std::nullopt;
      m.nodes.push_back(index_of(*half_x));
      m.nodes.push_back(*mul);
      m.y = product.outputs[0];
    }
    return m;
  }

 private:
  // An ai.onnx node `op` with `inputs` inputs (none empty) and one output.
  static bool is_op(const Node& n, const char* op, size_t inputs) {
    if (!is_onnx(n) || n.op_type != op || n.inputs.size() != inputs || n.outputs.size() != 1) return false;
    for (const auto& in : n.inputs)
      if (in.empty()) return false;
    return true;
  }

  bool constant_is(const std::string& name, double wanted) const {
    if (name.empty()) return false;
    std::optional<float> v = facts_.scalar(name, 0);
    return v && near(*v, wanted);
  }

  // For a two-input node with one operand the scalar `wanted`, the other operand.
  std::optional<std::string> operand_besides_constant(const Node& n, double wanted) const {
    if (constant_is(n.inputs[1], wanted)) return n.inputs[0];
    if (constant_is(n.inputs[0], wanted)) return n.inputs[1];
    return std::nullopt;
  }

  const Node* produced(const std::string& value) const {
    auto it = producer_.find(value);
    return it == producer_.end() ? nullptr : &graph_.nodes[it->second];
  }
  size_t index_of(const Node& n) const { return static_cast<size_t>(&n - graph_.nodes.data()); }

  // The one node reading `value` when nothing else does and it is not a graph output.
  std::optional<size_t> only_reader(const std::string& value, size_t after) const {
    if (!facts_.private_value(value)) return std::nullopt;
    int j = reader_of(graph_, value, after);
    return j < 0 ? std::nullopt : std::optional<size_t>(static_cast<size_t>(j));
  }

  const Graph& graph_;
  const GraphFacts& facts_;
  std::unordered_map<std::string, size_t> producer_;
};

}  // namespace

int fuse_gelu(Graph& graph, const ParameterStore& store) {
  const GraphFacts facts(graph, store);
  const GeluMatcher matcher(graph, facts);
  std::vector<bool> removed(graph.nodes.size(), false);
  std::vector<std::pair<size_t, Node>> made;
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    if (graph.nodes[i].op_type != "Erf") continue;
    std::optional<GeluMatcher::Match> m = matcher.at(i);
    if (!m) continue;
    bool taken = false;
    for (size_t n : m->nodes) taken = taken || removed[n];
    if (taken) continue;
    Node gelu;
    gelu.name = graph.nodes[i].name + "+gelu";
    gelu.op_type = "Gelu";
    gelu.domain = kTunnxDomain;
    gelu.inputs = {m->x};
    gelu.outputs = {m->y};
    Attribute approximate;
    approximate.name = "approximate";
    approximate.type = AttributeType::kString;
    approximate.s = "none";
    gelu.attributes.push_back(approximate);
    for (size_t n : m->nodes) removed[n] = true;
    made.emplace_back(m->nodes.back(), std::move(gelu));  // the last node: x and every input are ready there
  }
  return splice_nodes(graph, std::move(made), std::move(removed));
}

}  // namespace tunnx::ir
