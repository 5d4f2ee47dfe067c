#include "runtime/core/passes/fuse_hard_swish.h"

#include <algorithm>
#include <cmath>
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
  std::string x, y;
  bool swish = true;          // HardSwish; else HardSigmoid
  std::vector<size_t> nodes;  // every node it replaces; the last one is where the new node goes
};

class HardSwishMatcher : ChainWalker {
 public:
  HardSwishMatcher(const Graph& graph, const GraphFacts& facts, int64_t onnx_opset)
      : ChainWalker(graph, facts), onnx_opset_(onnx_opset) {}

  // Around a Clip(Add(x, 3), 0, 6).
  std::optional<Match> at_clip(size_t clip_index) const {
    const Node& clip = graph_.nodes[clip_index];
    if (!is_onnx(clip) || clip.op_type != "Clip" || clip.outputs.size() != 1 || clip.inputs.empty() ||
        clip.inputs[0].empty() || !bounds_are(clip, 0, 6))
      return std::nullopt;
    const Node* add = facts_.produced_by(clip.inputs[0]);
    if (!add || !facts_.private_value(clip.inputs[0]) || !is_onnx_op(*add, "Add", 2) || !only_attributes(*add, {}))
      return std::nullopt;
    std::optional<std::string> x = operand_besides_constant(*add, 3.0);
    // x is float32: it is added to a float32 constant.
    if (!x) return std::nullopt;
    Match m;
    m.x = *x;
    m.nodes = {index_of(*add), clip_index};
    const std::string& r = clip.outputs[0];
    std::optional<size_t> next = only_reader(r, clip_index);
    if (!next) return std::nullopt;
    const Node& n = graph_.nodes[*next];
    if (is_onnx_op(n, "Mul", 2) && other_operand(n, r) == m.x) {  // Mul(x, R), then / 6
      std::optional<size_t> scale = only_reader(n.outputs[0], *next);
      if (!scale || !is_sixth(graph_.nodes[*scale], n.outputs[0])) return std::nullopt;
      m.nodes.push_back(*next);
      m.nodes.push_back(*scale);
      m.y = graph_.nodes[*scale].outputs[0];
      return m;
    }
    if (!is_sixth(n, r)) return std::nullopt;  // R / 6: HardSigmoid, or HardSwish when x multiplies it
    m.nodes.push_back(*next);
    m.y = n.outputs[0];
    if (std::optional<size_t> times_x = only_reader(n.outputs[0], *next)) {
      const Node& mul = graph_.nodes[*times_x];
      if (is_onnx_op(mul, "Mul", 2) && other_operand(mul, n.outputs[0]) == m.x && only_attributes(mul, {})) {
        m.nodes.push_back(*times_x);
        m.y = mul.outputs[0];
        return m;
      }
    }
    m.swish = false;
    return m;
  }

  // Around a HardSigmoid(x) with alpha 1/6 and beta 0.5 that only Mul(x, .) reads.
  std::optional<Match> at_hard_sigmoid(size_t index) const {
    const Node& hs = graph_.nodes[index];
    if (!is_onnx_op(hs, "HardSigmoid", 1) || !only_attributes(hs, {"alpha", "beta"}) ||
        std::fabs(ops::node_float(hs, "alpha", 0.2f) - 1.0 / 6) > 1e-6 / 6 || ops::node_float(hs, "beta", 0.5f) != 0.5f ||
        (facts_.dtype(hs.inputs[0]) && facts_.dtype(hs.inputs[0]) != DataType::kFloat32))
      return std::nullopt;
    std::optional<size_t> next = only_reader(hs.outputs[0], index);
    if (!next) return std::nullopt;
    const Node& mul = graph_.nodes[*next];
    if (!is_onnx_op(mul, "Mul", 2) || other_operand(mul, hs.outputs[0]) != hs.inputs[0] || !only_attributes(mul, {}))
      return std::nullopt;
    return Match{hs.inputs[0], mul.outputs[0], true, {index, *next}};
  }

 private:
  bool bounds_are(const Node& clip, float lo, float hi) const {
    std::optional<float> min, max;
    if (onnx_opset_ < 11) {
      if (!only_attributes(clip, {"min", "max"}) || !clip.attribute("min") || !clip.attribute("max")) return false;
      min = ops::node_float(clip, "min", 0);
      max = ops::node_float(clip, "max", 0);
    } else {
      if (clip.inputs.size() != 3 || clip.inputs[1].empty() || clip.inputs[2].empty() || !clip.attributes.empty())
        return false;
      min = facts_.scalar(clip.inputs[1], 0);
      max = facts_.scalar(clip.inputs[2], 0);
    }
    return min && max && *min == lo && *max == hi;
  }

  // Div(v, 6) or Mul(v, 1/6) in either operand order.
  bool is_sixth(const Node& n, const std::string& v) const {
    if (!only_attributes(n, {})) return false;
    if (is_onnx_op(n, "Div", 2)) return n.inputs[0] == v && constant_is(n.inputs[1], 6.0);
    return is_onnx_op(n, "Mul", 2) && operand_besides_constant(n, 1.0 / 6) == v;
  }

  int64_t onnx_opset_;
};

}  // namespace

int fuse_hard_swish(Graph& graph, const ParameterStore& store, int64_t onnx_opset) {
  if (!has_op_type(graph, {"Clip", "HardSigmoid"})) return 0;
  const GraphFacts facts(graph, store);
  const HardSwishMatcher matcher(graph, facts, onnx_opset);
  std::vector<bool> removed(graph.nodes.size(), false);
  std::vector<std::pair<size_t, Node>> made;
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    const std::string& op = graph.nodes[i].op_type;
    std::optional<Match> m = op == "Clip" ? matcher.at_clip(i) : op == "HardSigmoid" ? matcher.at_hard_sigmoid(i) : std::nullopt;
    if (!m) continue;
    bool taken = false;
    for (size_t n : m->nodes) taken = taken || removed[n];
    if (taken) continue;
    std::sort(m->nodes.begin(), m->nodes.end());  // the last node: x and every input are ready there
    Node fused;
    fused.name = graph.nodes[i].name + (m->swish ? "+hardswish" : "+hardsigmoid");
    fused.inputs = {m->x};
    fused.outputs = {m->y};
    if (m->swish) {
      fused.op_type = "HardSwish";
      fused.domain = kTunnxDomain;
    } else {
      fused.op_type = "HardSigmoid";
      fused.attributes = {ops::attr("alpha", 1.0f / 6), ops::attr("beta", 0.5f)};
    }
    for (size_t n : m->nodes) removed[n] = true;
    made.emplace_back(m->nodes.back(), std::move(fused));
  }
  return splice_nodes(graph, std::move(made), std::move(removed));
}

}  // namespace tunnx::ir
