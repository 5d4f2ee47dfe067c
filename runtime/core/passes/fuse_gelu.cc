#include "runtime/core/passes/fuse_gelu.h"

#include <algorithm>
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
class GeluMatcher : ChainWalker {
 public:
  GeluMatcher(const Graph& graph, const GraphFacts& facts) : ChainWalker(graph, facts) {}

  struct Match {
    std::string x, y;
    std::vector<size_t> nodes;  // every node of the chain; the last one is where Gelu goes
  };

  std::optional<Match> at(size_t erf_index) const {
    const Node& erf = graph_.nodes[erf_index];
    if (!is_onnx_op(erf, "Erf", 1)) return std::nullopt;
    Match m;
    // S(x): Div(x, sqrt 2) or Mul(x, 1/sqrt 2), read only by the Erf.
    const Node* scale = produced(erf.inputs[0]);
    if (!scale || !facts_.private_value(erf.inputs[0])) return std::nullopt;
    if (is_onnx_op(*scale, "Div", 2) && constant_is(scale->inputs[1], std::numbers::sqrt2)) {
      m.x = scale->inputs[0];
    } else if (is_onnx_op(*scale, "Mul", 2)) {
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
    if (!add || !is_onnx_op(graph_.nodes[*add], "Add", 2)) return std::nullopt;
    if (operand_besides_constant(graph_.nodes[*add], 1.0) != erf.outputs[0]) return std::nullopt;
    m.nodes.push_back(*add);
    const std::string& one_plus = graph_.nodes[*add].outputs[0];

    // Mul(one_plus, other): other is x (then Mul(., 0.5) follows) or Mul(x, 0.5) (then this is y).
    std::optional<size_t> mul = only_reader(one_plus, *add);
    if (!mul || !is_onnx_op(graph_.nodes[*mul], "Mul", 2)) return std::nullopt;
    const Node& product = graph_.nodes[*mul];
    if (product.inputs[0] == product.inputs[1]) return std::nullopt;
    const std::string& other = product.inputs[0] == one_plus ? product.inputs[1] : product.inputs[0];
    if (constant_is(other, 0.5)) {  // Mul(x, Mul(0.5, one_plus)): torch's dynamo exporter
      std::optional<size_t> times_x = only_reader(product.outputs[0], *mul);
      if (!times_x || !is_onnx_op(graph_.nodes[*times_x], "Mul", 2)) return std::nullopt;
      const Node& last = graph_.nodes[*times_x];
      const std::string& x = last.inputs[0] == product.outputs[0] ? last.inputs[1] : last.inputs[0];
      if (x != m.x || last.inputs[0] == last.inputs[1]) return std::nullopt;
      m.nodes.push_back(*mul);
      m.nodes.push_back(*times_x);
      m.y = last.outputs[0];
    } else if (other == m.x) {
      std::optional<size_t> half = only_reader(product.outputs[0], *mul);
      if (!half || !is_onnx_op(graph_.nodes[*half], "Mul", 2) ||
          operand_besides_constant(graph_.nodes[*half], 0.5) != product.outputs[0])
        return std::nullopt;
      m.nodes.push_back(*mul);
      m.nodes.push_back(*half);
      m.y = graph_.nodes[*half].outputs[0];
    } else {
      const Node* half_x = produced(other);
      if (!half_x || !facts_.private_value(other) || !is_onnx_op(*half_x, "Mul", 2) ||
          operand_besides_constant(*half_x, 0.5) != m.x)
        return std::nullopt;
      m.nodes.push_back(index_of(*half_x));
      m.nodes.push_back(*mul);
      m.y = product.outputs[0];
    }
    return m;
  }

  // The tanh form, 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), around each Tanh node, as JAX
  // (magika) and older torch exporters spell it: the cube as products of x and constants (or a Pow
  // by 3), the outer half and x multiplied in either order.
  std::optional<Match> at_tanh(size_t tanh_index) const {
    const Node& tanh = graph_.nodes[tanh_index];
    if (!is_onnx_op(tanh, "Tanh", 1)) return std::nullopt;
    Match m;
    // sqrt(2/pi) * s, read only by the Tanh.
    const Node* scaled = produced(tanh.inputs[0]);
    if (!scaled || !facts_.private_value(tanh.inputs[0]) || !is_onnx_op(*scaled, "Mul", 2)) return std::nullopt;
    std::optional<std::string> sum = operand_besides_constant(*scaled, std::sqrt(2.0 / std::numbers::pi));
    const Node* add = sum ? produced(*sum) : nullptr;
    if (!add || !facts_.private_value(*sum) || !is_onnx_op(*add, "Add", 2)) return std::nullopt;
    // s = x + 0.044715 x^3: one operand is x, the other the cube of it.
    for (int side = 0; side < 2 && m.x.empty(); ++side) {
      const std::string& x = add->inputs[static_cast<size_t>(side)];
      const std::string& cube = add->inputs[static_cast<size_t>(1 - side)];
      std::vector<size_t> cube_nodes;
      std::optional<Term> t = term(cube, x, cube_nodes);
      if (t && t->power == 3 && near(static_cast<float>(t->coef), 0.044715) && facts_.private_value(cube)) {
        m.x = x;
        m.nodes = std::move(cube_nodes);
      }
    }
    if (m.x.empty()) return std::nullopt;
    std::optional<DataType> dtype = facts_.dtype(m.x);
    if (dtype && !is_floating_point(*dtype)) return std::nullopt;
    m.nodes.push_back(index_of(*add));
    m.nodes.push_back(index_of(*scaled));
    m.nodes.push_back(tanh_index);
    // 1 + tanh, then times 0.5 and times x, in either order.
    std::optional<size_t> one_plus = only_reader(tanh.outputs[0], tanh_index);
    if (!one_plus || operand_besides_constant(graph_.nodes[*one_plus], 1.0) != tanh.outputs[0] ||
        !is_onnx_op(graph_.nodes[*one_plus], "Add", 2))
      return std::nullopt;
    m.nodes.push_back(*one_plus);
    std::string value = graph_.nodes[*one_plus].outputs[0];
    bool half = false, times_x = false;
    size_t last = *one_plus;
    while (!(half && times_x)) {
      std::optional<size_t> next = only_reader(value, last);
      if (!next || !is_onnx_op(graph_.nodes[*next], "Mul", 2)) return std::nullopt;
      const Node& mul = graph_.nodes[*next];
      if (mul.inputs[0] == mul.inputs[1]) return std::nullopt;
      const std::string& other = mul.inputs[0] == value ? mul.inputs[1] : mul.inputs[0];
      if (!half && constant_is(other, 0.5)) half = true;
      else if (!times_x && other == m.x) times_x = true;
      else return std::nullopt;
      m.nodes.push_back(*next);
      value = mul.outputs[0];
      last = *next;
    }
    m.y = value;
    return m;
  }

 private:
  // A product of constants and powers of one value: coef * x^power.
  struct Term {
    double coef = 1;
    int power = 0;
  };

  // `value` as coef * x^power, from Mul nodes of constants and x and Pow(., 3)s whose results only
  // this product reads (their indices into `nodes`); nothing for anything else.
  std::optional<Term> term(const std::string& value, const std::string& x, std::vector<size_t>& nodes) const {
    if (value == x) return Term{1, 1};
    if (std::optional<float> c = facts_.scalar(value, 0); c && !value.empty()) return Term{*c, 0};
    const Node* n = produced(value);
    if (!n || !facts_.private_value(value)) return std::nullopt;
    if (is_onnx_op(*n, "Mul", 2)) {
      std::optional<Term> a = term(n->inputs[0], x, nodes);
      std::optional<Term> b = a ? term(n->inputs[1], x, nodes) : std::nullopt;
      if (!b) return std::nullopt;
      nodes.push_back(index_of(*n));
      return Term{a->coef * b->coef, a->power + b->power};
    }
    if (is_onnx_op(*n, "Pow", 2) && constant_is(n->inputs[1], 3.0)) {
      std::optional<Term> base = term(n->inputs[0], x, nodes);
      if (!base) return std::nullopt;
      nodes.push_back(index_of(*n));
      return Term{base->coef * base->coef * base->coef, base->power * 3};
    }
    return std::nullopt;
  }



  const Node* produced(const std::string& value) const { return facts_.produced_by(value); }
};

}  // namespace

int fuse_gelu(Graph& graph, const ParameterStore& store) {
  if (!has_op_type(graph, {"Erf", "Tanh"})) return 0;
  const GraphFacts facts(graph, store);
  const GeluMatcher matcher(graph, facts);
  std::vector<bool> removed(graph.nodes.size(), false);
  std::vector<std::pair<size_t, Node>> made;
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    const bool erf = graph.nodes[i].op_type == "Erf";
    if (!erf && graph.nodes[i].op_type != "Tanh") continue;
    std::optional<GeluMatcher::Match> m = erf ? matcher.at(i) : matcher.at_tanh(i);
    if (!m) continue;
    bool taken = false;
    for (size_t n : m->nodes) taken = taken || removed[n];
    if (taken) continue;
    Node gelu;
    gelu.name = graph.nodes[i].name + "+gelu";
    std::sort(m->nodes.begin(), m->nodes.end());  // the last node: x and every input are ready there
    gelu.op_type = "Gelu";
    gelu.domain = kTunnxDomain;
    gelu.inputs = {m->x};
    gelu.outputs = {m->y};
    Attribute approximate;
    approximate.name = "approximate";
    approximate.type = AttributeType::kString;
    approximate.s = erf ? "none" : "tanh";
    gelu.attributes.push_back(approximate);
    for (size_t n : m->nodes) removed[n] = true;
    made.emplace_back(m->nodes.back(), std::move(gelu));
  }
  return splice_nodes(graph, std::move(made), std::move(removed));
}

}  // namespace tunnx::ir
