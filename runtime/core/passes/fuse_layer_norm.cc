#include "runtime/core/passes/fuse_layer_norm.h"

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "runtime/core/ops/gradient.h"
#include "runtime/core/passes/fuse_linear.h"
#include "runtime/core/passes/graph_facts.h"

namespace tunnx::ir {
namespace {

struct Match {
  std::string x, scale, bias, y;
  float epsilon = 0;
  std::vector<size_t> nodes;  // every node it replaces
};

class LayerNormMatcher : ChainWalker {
 public:
  LayerNormMatcher(const Graph& graph, const GraphFacts& facts, int64_t onnx_opset)
      : ChainWalker(graph, facts), onnx_opset_(onnx_opset) {}

  std::optional<Match> at_sub(size_t sub_index) const {
    const Node& sub = graph_.nodes[sub_index];
    if (!is_onnx_op(sub, "Sub", 2) || !only_attributes(sub, {})) return std::nullopt;
    Match m;
    m.x = sub.inputs[0];
    if (facts_.dtype(m.x) != DataType::kFloat32) return std::nullopt;
    const Node* mean = facts_.produced_by(sub.inputs[1]);
    if (!mean || !facts_.private_value(sub.inputs[1]) || !is_mean_over_last_axis(*mean, m.x, m.x)) return std::nullopt;
    m.nodes = {index_of(*mean), sub_index};

    // d feeds the square and the division, and nothing else (Mul(d, d) reads it twice).
    const std::string& d = sub.outputs[0];
    const int first = reader_of(graph_, d, sub_index);
    const int second = first < 0 ? -1 : reader_of(graph_, d, static_cast<size_t>(first));
    if (second < 0) return std::nullopt;
    const Node& square = graph_.nodes[static_cast<size_t>(first)];
    const bool by_pow = is_onnx_op(square, "Pow", 2) && square.inputs[0] == d && constant_is(square.inputs[1], 2.0);
    const bool by_mul = is_onnx_op(square, "Mul", 2) && square.inputs[0] == d && square.inputs[1] == d;
    auto readers = facts_.readers.find(d);
    if ((!by_pow && !by_mul) || !only_attributes(square, {}) || facts_.outputs.count(d) ||
        readers == facts_.readers.end() || readers->second != (by_mul ? 3 : 2))
      return std::nullopt;
    m.nodes.push_back(static_cast<size_t>(first));

    std::optional<size_t> variance = only_reader(square.outputs[0], static_cast<size_t>(first));
    if (!variance || !is_mean_over_last_axis(graph_.nodes[*variance], square.outputs[0], m.x)) return std::nullopt;
    m.nodes.push_back(*variance);
    std::optional<size_t> plus_eps = only_reader(graph_.nodes[*variance].outputs[0], *variance);
    if (!plus_eps || !is_onnx_op(graph_.nodes[*plus_eps], "Add", 2)) return std::nullopt;
    const Node& add = graph_.nodes[*plus_eps];
    const std::string& var = graph_.nodes[*variance].outputs[0];
    const std::string& eps = add.inputs[0] == var ? add.inputs[1] : add.inputs[0];
    std::optional<float> epsilon = eps == var ? std::nullopt : facts_.scalar(eps, 0);
    if (!epsilon || !only_attributes(add, {})) return std::nullopt;
    m.epsilon = *epsilon;
    m.nodes.push_back(*plus_eps);
    std::optional<size_t> sqrt = only_reader(add.outputs[0], *plus_eps);
    if (!sqrt || !is_onnx_op(graph_.nodes[*sqrt], "Sqrt", 1)) return std::nullopt;
    m.nodes.push_back(*sqrt);
    std::optional<size_t> div = only_reader(graph_.nodes[*sqrt].outputs[0], *sqrt);
    const Node* divide = div ? &graph_.nodes[*div] : nullptr;
    if (!divide || *div != static_cast<size_t>(second) || !is_onnx_op(*divide, "Div", 2) || divide->inputs[0] != d ||
        !only_attributes(*divide, {}))
      return std::nullopt;
    m.nodes.push_back(*div);

    // Times scale [C], then (optionally) plus bias [C].
    std::optional<size_t> times = only_reader(divide->outputs[0], *div);
    if (!times || !is_onnx_op(graph_.nodes[*times], "Mul", 2)) return std::nullopt;
    const Node& mul = graph_.nodes[*times];
    m.scale = other_operand(mul, divide->outputs[0]);
    const int64_t channels = m.scale.empty() ? 0 : vector_size(m.scale).value_or(0);
    // C is x's last dim where shape inference knows it; where it does not (Paddle2ONNX's models
    // defeat ONNX's inference), a scale of more than one element leaves x's last dim C or 1, and 1
    // (normalizing single elements) is refused by the kernel with a message, never computed wrongly.
    const std::optional<int64_t> x_channels = last_dim(m.x);
    if (channels < 1 || (x_channels ? *x_channels != channels : channels < 2) || !only_attributes(mul, {}))
      return std::nullopt;
    m.nodes.push_back(*times);
    m.y = mul.outputs[0];
    if (std::optional<size_t> plus = only_reader(mul.outputs[0], *times)) {
      const Node& bias_add = graph_.nodes[*plus];
      if (is_onnx_op(bias_add, "Add", 2) && only_attributes(bias_add, {})) {
        const std::string bias = other_operand(bias_add, mul.outputs[0]);
        if (!bias.empty() && vector_size(bias) == channels) {
          m.bias = bias;
          m.nodes.push_back(*plus);
          m.y = bias_add.outputs[0];
        }
      }
    }
    return m;
  }

 private:
  // The fixed last dim of `name` as shape inference (or the value itself) knows it.
  std::optional<int64_t> last_dim(const std::string& name) const {
    if (const Tensor* t = facts_.constant(name)) return t->rank() ? std::optional<int64_t>(t->dims().back()) : std::nullopt;
    auto it = facts_.types.find(name);
    if (it == facts_.types.end() || !it->second->shape || it->second->shape->dims.empty()) return std::nullopt;
    const Dim& last = it->second->shape->dims.back();
    return last.is_fixed() ? std::optional<int64_t>(last.value) : std::nullopt;
  }

  std::optional<size_t> rank(const std::string& name) const {
    auto it = facts_.types.find(name);
    if (it == facts_.types.end() || !it->second->shape) return std::nullopt;
    return it->second->shape->dims.size();
  }

  // ReduceMean(input) over the last axis alone, keeping it; `input` has the rank of `x`.
  bool is_mean_over_last_axis(const Node& n, const std::string& input, const std::string& x) const {
    if (!is_onnx(n) || n.op_type != "ReduceMean" || n.outputs.size() != 1 || n.inputs.empty() || n.inputs[0] != input)
      return false;
    if (!only_attributes(n, {"axes", "keepdims", "noop_with_empty_axes"})) return false;
    if (ops::node_int(n, "keepdims", 1) != 1 || ops::node_int(n, "noop_with_empty_axes", 0) != 0) return false;
    std::vector<int64_t> axes;
    if (onnx_opset_ < 18) {
      if (n.inputs.size() != 1 || !n.attribute("axes")) return false;
      axes = n.attribute("axes")->ints;
    } else {
      const Tensor* t = n.inputs.size() == 2 ? facts_.constant_value(n.inputs[1]) : nullptr;
      if (!t || t->dtype() != DataType::kInt64 || t->numel() != 1) return false;
      axes = {t->data_as<int64_t>()[0]};
    }
    if (axes.size() != 1) return false;
    if (axes[0] == -1) return true;
    const std::optional<size_t> r = rank(x);
    return r && axes[0] == static_cast<int64_t>(*r) - 1;
  }

  // C, for a float32 value of dims [C] (an initializer, a Constant node's, or as shape inference knows it).
  std::optional<int64_t> vector_size(const std::string& name) const {
    const Tensor* t = facts_.constant_value(name);
    const std::optional<std::vector<int64_t>> dims = t ? std::optional<std::vector<int64_t>>(t->dims()) : facts_.dims(name);
    const std::optional<DataType> dtype = t ? std::optional<DataType>(t->dtype()) : facts_.dtype(name);
    if (!dims || dims->size() != 1 || dtype != DataType::kFloat32) return std::nullopt;
    return (*dims)[0];
  }

  int64_t onnx_opset_;
};

}  // namespace

int fuse_layer_norm(Graph& graph, const ParameterStore& store, int64_t onnx_opset) {
  if (!has_op_type(graph, {"ReduceMean"})) return 0;
  const GraphFacts facts(graph, store);
  const LayerNormMatcher matcher(graph, facts, onnx_opset);
  std::vector<bool> removed(graph.nodes.size(), false);
  std::vector<std::pair<size_t, Node>> made;
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    if (graph.nodes[i].op_type != "Sub") continue;
    std::optional<Match> m = matcher.at_sub(i);
    if (!m) continue;
    bool taken = false;
    size_t last = 0;
    for (size_t n : m->nodes) {
      taken = taken || removed[n];
      last = std::max(last, n);
    }
    if (taken) continue;
    Node norm;
    norm.name = graph.nodes[i].name + "+layernorm";
    norm.op_type = "LayerNormalization";
    norm.domain = kTunnxDomain;
    norm.inputs = {m->x, m->scale};
    if (!m->bias.empty()) norm.inputs.push_back(m->bias);
    norm.outputs = {m->y};
    norm.attributes = {ops::attr("axis", int64_t{-1}), ops::attr("epsilon", m->epsilon)};
    for (size_t n : m->nodes) removed[n] = true;
    made.emplace_back(last, std::move(norm));  // the last node: x, scale and bias are ready there
  }
  return splice_nodes(graph, std::move(made), std::move(removed));
}

}  // namespace tunnx::ir
