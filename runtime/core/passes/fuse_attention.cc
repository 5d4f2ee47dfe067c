#include "runtime/core/passes/fuse_attention.h"

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "runtime/core/ops/gradient.h"
#include "runtime/core/passes/fuse_linear.h"
#include "runtime/core/passes/graph_facts.h"

namespace tunnx::ir {
namespace {

const Shape* shape_of(const GraphFacts& facts, const std::string& name) {
  auto it = facts.types.find(name);
  if (it == facts.types.end() || !it->second || !it->second->shape) return nullptr;
  return &*it->second->shape;
}

// Shape inference proves the two sizes equal: both fixed and equal, or one named symbol.
bool same_size(const Dim& a, const Dim& b) {
  return (a.is_fixed() && b.is_fixed() && a.value == b.value) || (a.is_named() && b.is_named() && a.symbol == b.symbol);
}

bool is_transpose(const Node& node, const std::vector<int64_t>& perm) {
  return is_onnx_op(node, "Transpose", 1) && only_attributes(node, {"perm"}) && ops::node_ints(node, "perm") == perm;
}

// The node making `value` when only the next node of the chain reads it, or null.
const Node* private_producer(const GraphFacts& facts, const std::string& value) {
  return facts.private_value(value) ? facts.produced_by(value) : nullptr;
}

// One chain the pass rewrites, by node index.
struct Chain {
  size_t scores = 0, softmax = 0, context = 0;
  std::optional<size_t> scale, mask_add;
  std::string q, kt, v, mask;
  std::string scale_value;  // c
  bool scale_divides = false;
};

// The chain whose Softmax is node `i`, or nothing.
std::optional<Chain> match(const Graph& graph, const GraphFacts& facts, size_t i, int64_t onnx_opset) {
  const Node& softmax = graph.nodes[i];
  if (!is_onnx_op(softmax, "Softmax", 1) || !only_attributes(softmax, {"axis"})) return std::nullopt;
  const int64_t axis = ops::node_int(softmax, "axis", onnx_opset >= 13 ? -1 : 1);
  if (axis != -1 && axis != 3) return std::nullopt;  // before 13, axis 3 of a 4-D input is the last axis too
  Chain c;
  c.softmax = i;
  const std::string& p = softmax.outputs[0];
  const int r = reader_of(graph, p, i);
  if (r < 0 || !facts.private_value(p)) return std::nullopt;
  const Node& context = graph.nodes[static_cast<size_t>(r)];
  if (!is_onnx_op(context, "MatMul", 2) || context.inputs[0] != p || context.inputs[1] == p) return std::nullopt;
  c.context = static_cast<size_t>(r);
  c.v = context.inputs[1];

  std::string s = softmax.inputs[0];
  const Node* node = private_producer(facts, s);
  if (node && is_onnx_op(*node, "Add", 2) && only_attributes(*node, {})) {
    // The operand the scores come through is the one a product (or its scale) makes.
    for (size_t side = 0; side < 2; ++side) {
      const Node* from = private_producer(facts, node->inputs[side]);
      if (!from || (from->op_type != "MatMul" && from->op_type != "Div" && from->op_type != "Mul") || !is_onnx(*from))
        continue;
      c.mask_add = facts.producer.at(s);
      c.mask = node->inputs[1 - side];
      s = node->inputs[side];
      break;
    }
    if (!c.mask_add) return std::nullopt;
    node = private_producer(facts, s);
  }
  if (node && (is_onnx_op(*node, "Div", 2) || is_onnx_op(*node, "Mul", 2)) && only_attributes(*node, {})) {
    const bool divides = node->op_type == "Div";
    for (size_t side = divides ? 1 : 0; side < 2; ++side) {
      if (!facts.scalar(node->inputs[side], 0.0f) || facts.dtype(node->inputs[side]) != DataType::kFloat32) continue;
      c.scale = facts.producer.at(s);
      c.scale_value = node->inputs[side];
      c.scale_divides = divides;
      s = node->inputs[1 - side];
      break;
    }
    if (!c.scale) return std::nullopt;
    node = private_producer(facts, s);
  }
  if (!node || !is_onnx_op(*node, "MatMul", 2)) return std::nullopt;
  c.scores = facts.producer.at(s);
  c.q = node->inputs[0];
  c.kt = node->inputs[1];

  // Q [B, N, S, H], Kt [B, N, H, T], V [B, N, T, Hv], all float32: what Attention's 4-D form takes,
  // with no broadcasting the products did and Attention would not.
  const Shape *q = shape_of(facts, c.q), *kt = shape_of(facts, c.kt), *v = shape_of(facts, c.v);
  if (!q || !kt || !v || q->rank() != 4 || kt->rank() != 4 || v->rank() != 4) return std::nullopt;
  for (const std::string* name : {&c.q, &c.kt, &c.v})
    if (facts.dtype(*name) != DataType::kFloat32) return std::nullopt;
  for (size_t d = 0; d < 2; ++d)
    if (!same_size(q->dims[d], kt->dims[d]) || !same_size(q->dims[d], v->dims[d])) return std::nullopt;
  if (!same_size(q->dims[3], kt->dims[2]) || !same_size(kt->dims[3], v->dims[2])) return std::nullopt;
  if (c.mask_add) {
    // Each mask dim 1 or the scores' own: the Add broadcast the mask, never the scores.
    const Shape* m = shape_of(facts, c.mask);
    if (!m || m->rank() > 4 || facts.dtype(c.mask) != DataType::kFloat32) return std::nullopt;
    const Dim* scores[4] = {&q->dims[0], &q->dims[1], &q->dims[2], &kt->dims[3]};
    for (size_t d = 0; d < m->rank(); ++d) {
      const Dim& md = m->dims[d];
      if (!(md.is_fixed() && md.value == 1) && !same_size(md, *scores[4 - m->rank() + d])) return std::nullopt;
    }
  }
  return c;
}

}  // namespace

int fuse_attention(Graph& graph, const ParameterStore& store, int64_t onnx_opset) {
  if (!has_op_type(graph, {"Softmax"})) return 0;
  const GraphFacts facts(graph, store);
  // What each node index becomes: itself (not listed), nothing, or the nodes listed.
  std::vector<std::optional<std::vector<Node>>> replaced(graph.nodes.size());
  int rewritten = 0;
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    std::optional<Chain> c = match(graph, facts, i, onnx_opset);
    if (!c) continue;
    bool taken = false;  // a node another chain already rewrote
    for (size_t n : {c->scores, c->softmax, c->context}) taken |= replaced[n].has_value();
    if (taken) continue;
    const std::string& y = graph.nodes[c->context].outputs[0];
    const std::string base = graph.nodes[c->context].name.empty() ? y : graph.nodes[c->context].name;
    std::vector<Node> at_context;  // in the context product's place, the Attention last

    // K from Kt.
    std::string k;
    const Node* kt_node = private_producer(facts, c->kt);
    if (kt_node && is_transpose(*kt_node, {0, 2, 3, 1}) && !replaced[facts.producer.at(c->kt)]) {
      k = c->kt + "/bnth";
      replaced[facts.producer.at(c->kt)] = std::vector<Node>{
          ops::make_node(kt_node->name + "/bnth", "Transpose", {kt_node->inputs[0]}, k, {ops::attr("perm", std::vector<int64_t>{0, 2, 1, 3})})};
    } else if (kt_node && is_transpose(*kt_node, {0, 1, 3, 2}) && !replaced[facts.producer.at(c->kt)]) {
      k = kt_node->inputs[0];
      replaced[facts.producer.at(c->kt)] = std::vector<Node>{};
    } else {
      k = c->kt + "/bnth";
      at_context.push_back(ops::make_node(base + "/key", "Transpose", {c->kt}, k, {ops::attr("perm", std::vector<int64_t>{0, 1, 3, 2})}));
    }

    // Q' = Q scaled, before Q's Reshape -> Transpose where the exporter wrote those.
    std::string q = c->q;
    if (c->scale) {
      const Node& scale = graph.nodes[*c->scale];
      const Node* transpose = private_producer(facts, c->q);
      const Node* reshape = transpose && is_transpose(*transpose, {0, 2, 1, 3}) ? private_producer(facts, transpose->inputs[0]) : nullptr;
      auto scaled = [&](const std::string& operand, const std::string& by, const std::string& out) {
        Node n = ops::make_node(base + "/scale", scale.op_type, {operand, by}, out);
        if (!c->scale_divides && scale.inputs[0] == c->scale_value) std::swap(n.inputs[0], n.inputs[1]);
        return n;
      };
      const size_t reshape_at = reshape ? facts.producer.at(transpose->inputs[0]) : 0;
      // c must exist there. A Constant node that exporters put just before the scale, later than Q's
      // Reshape, is copied there.
      auto c_maker = facts.producer.find(c->scale_value);
      const bool c_ready = c_maker == facts.producer.end() || c_maker->second < reshape_at;
      const Node* constant = c_ready ? nullptr : &graph.nodes[c_maker->second];
      const bool c_copyable = constant && is_onnx(*constant) && constant->op_type == "Constant" && constant->inputs.empty();
      if (reshape && is_onnx_op(*reshape, "Reshape", 2) && !replaced[reshape_at] && (c_ready || c_copyable)) {
        std::vector<Node> at_reshape;  // [c's copy,] the scale, the Reshape reading it
        std::string by = c->scale_value;
        if (!c_ready) {
          Node copy = *constant;
          copy.name += "/early";
          by = copy.outputs[0] = c->scale_value + "/early";
          at_reshape.push_back(std::move(copy));
        }
        Node view = *reshape;
        view.inputs[0] = reshape->inputs[0] + "/scaled";
        at_reshape.push_back(scaled(reshape->inputs[0], by, view.inputs[0]));
        at_reshape.push_back(std::move(view));
        replaced[reshape_at] = std::move(at_reshape);
      } else {
        q = c->q + "/scaled";
        at_context.push_back(scaled(c->q, c->scale_value, q));
      }
      replaced[*c->scale] = std::vector<Node>{};
    }

    std::vector<std::string> inputs = {q, k, c->v};
    if (c->mask_add) {
      inputs.push_back(c->mask);
      replaced[*c->mask_add] = std::vector<Node>{};
    }
    Node attention = ops::make_node(base + "/attention", "Attention", inputs, y, {ops::attr("scale", 1.0f)});
    attention.domain = kTunnxDomain;
    at_context.push_back(std::move(attention));
    replaced[c->scores] = std::vector<Node>{};
    replaced[c->softmax] = std::vector<Node>{};
    replaced[c->context] = std::move(at_context);
    ++rewritten;
  }
  replace_nodes(graph, std::move(replaced));
  return rewritten;
}

}  // namespace tunnx::ir
