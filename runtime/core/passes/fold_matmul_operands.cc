#include "runtime/core/passes/fold_matmul_operands.h"

#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "runtime/core/ops/gradient.h"
#include "runtime/core/ops/linear.h"
#include "runtime/core/passes/fuse_linear.h"
#include "runtime/core/passes/graph_facts.h"

namespace tunnx::ir {
namespace {

// A product the pass may change, with what it will have.
struct Product {
  size_t index = 0;
  bool fused = false;  // already a FusedMatMul (op "MatMul")
  bool plain = true;   // no bias and no activation: an output scale may fold in
  bool trans_a = false, trans_b = false;
  float alpha = 1;
  std::vector<std::string> inputs, outputs;
  bool changed = false;
};

bool swaps_last_two(const Node& node) {
  const Attribute* perm = node.attribute("perm");
  if (!perm || perm->ints.size() < 2) return false;
  const size_t r = perm->ints.size();
  for (size_t i = 0; i + 2 < r; ++i)
    if (perm->ints[i] != static_cast<int64_t>(i)) return false;
  return perm->ints[r - 2] == static_cast<int64_t>(r - 1) && perm->ints[r - 1] == static_cast<int64_t>(r - 2);
}

}  // namespace

int fold_matmul_operands(Graph& graph, const ParameterStore& store) {
  if (!has_op_type(graph, {"MatMul", "FusedMatMul"})) return 0;
  const GraphFacts facts(graph, store);
  // A value's dtype: stated or inferred, else its producer's first input's when the producer keeps
  // the dtype (autodiff's values have no inferred type): the ONNX ops below, and every com.tunnx
  // gradient op but CastLike (gradient_ops.md: output 0 has the dtype of dY or X, input 0).
  std::unordered_map<std::string, std::optional<DataType>> dtypes;
  auto dtype_of = [&](auto& self, const std::string& v, int depth) -> std::optional<DataType> {
    if (std::optional<DataType> t = facts.dtype(v)) return t;
    auto known = dtypes.find(v);
    if (known != dtypes.end()) return known->second;
    std::optional<DataType> t;
    const Node* n = facts.produced_by(v);
    static const char* const kKeepDtype[] = {"Transpose", "Reshape", "Identity", "Squeeze", "Unsqueeze", "Flatten",
                                             "Neg", "Add", "Sub", "Mul", "Div", "MatMul", "Gemm", "FusedMatMul",
                                             "Softmax", "SoftmaxGrad", "ElementwiseGrad", "Scale", "SumToShape",
                                             "Relu", "Sigmoid", "Tanh", "Gelu", "Concat", "Slice", "Expand"};
    if (n && depth < 64 && !n->inputs.empty() && !n->inputs[0].empty() && n->outputs[0] == v) {
      bool keeps = n->domain == kTunnxDomain && n->op_type != "CastLike";
      for (const char* op : kKeepDtype) keeps = keeps || (is_onnx(*n) && n->op_type == op);
      if (keeps) t = self(self, n->inputs[0], depth + 1);
    }
    dtypes[v] = t;
    return t;
  };
  auto is_f32 = [&](const std::string& v) { return dtype_of(dtype_of, v, 0) == DataType::kFloat32; };
  // A float32 scalar held by a Constant node (not an initializer: a caller may write a Parameter).
  auto constant_scalar = [&](const std::string& v) -> std::optional<float> {
    return facts.initializers.count(v) ? std::nullopt : facts.scalar(v, 0.0f);
  };
  // For Mul(X, c), Mul(c, X), Div(X, c) with c a Constant-node scalar: X and the factor.
  auto scaling = [&](const Node& n) -> std::optional<std::pair<std::string, float>> {
    if (is_onnx_op(n, "Div", 2)) {
      const std::optional<float> c = constant_scalar(n.inputs[1]);
      if (c && *c != 0) return std::make_pair(n.inputs[0], 1.0f / *c);
    } else if (is_onnx_op(n, "Mul", 2)) {
      for (size_t side = 0; side < 2; ++side)
        if (const std::optional<float> c = constant_scalar(n.inputs[side])) return std::make_pair(n.inputs[1 - side], *c);
    }
    return std::nullopt;
  };

  std::vector<Product> products;
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    const Node& n = graph.nodes[i];
    Product p;
    p.index = i;
    if (is_onnx_op(n, "MatMul", 2)) {
      if (!is_f32(n.inputs[0]) || !is_f32(n.inputs[1])) continue;
    } else if (n.domain == kTunnxDomain && n.op_type == "FusedMatMul" && n.outputs.size() == 1) {
      const Attribute* op = n.attribute("op");
      if (!op || op->s != "MatMul" || n.inputs.size() < 2) continue;
      const ops::GemmAttrs g = ops::gemm_attrs(n);
      const Attribute* bias = n.attribute("has_bias");
      const Attribute* act = n.attribute("activation");
      p.fused = true;
      p.plain = (!bias || bias->i == 0) && (!act || act->s.empty());
      p.trans_a = g.trans_a;
      p.trans_b = g.trans_b;
      p.alpha = g.alpha;
    } else {
      continue;
    }
    p.inputs = n.inputs;
    p.outputs = n.outputs;
    products.push_back(std::move(p));
  }

  std::vector<bool> removed(graph.nodes.size(), false);
  int rewrites = 0;
  // Transposes of an operand's last two dims.
  for (Product& p : products)
    for (size_t side = 0; side < 2; ++side) {
      const std::string v = p.inputs[side];
      const Node* t = facts.produced_by(v);
      // Private: only this product reads it, so no other product has folded it already.
      if (!t || !is_onnx_op(*t, "Transpose", 1) || !swaps_last_two(*t) || !facts.private_value(v)) continue;
      p.inputs[side] = t->inputs[0];
      (side == 0 ? p.trans_a : p.trans_b) = !(side == 0 ? p.trans_a : p.trans_b);
      removed[facts.producer.at(v)] = true;
      p.changed = true;
      ++rewrites;
    }
  // A scale of the output.
  for (Product& p : products) {
    if (!p.plain || !facts.private_value(p.outputs[0])) continue;
    const int reader = reader_of(graph, p.outputs[0], p.index);
    if (reader < 0 || removed[static_cast<size_t>(reader)]) continue;
    const Node& s = graph.nodes[static_cast<size_t>(reader)];
    const auto scaled = scaling(s);
    if (!scaled || scaled->first != p.outputs[0] || s.outputs.size() != 1) continue;
    p.alpha *= scaled->second;
    p.outputs = s.outputs;
    removed[static_cast<size_t>(reader)] = true;
    p.changed = true;
    ++rewrites;
  }
  // A scale of an operand that only products read.
  std::unordered_map<std::string, std::vector<std::pair<size_t, size_t>>> product_reads;  // value -> (product, side)
  for (size_t k = 0; k < products.size(); ++k)
    for (size_t side = 0; side < 2; ++side) product_reads[products[k].inputs[side]].emplace_back(k, side);
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    const Node& s = graph.nodes[i];
    if (removed[i] || s.outputs.size() != 1) continue;
    const auto scaled = scaling(s);
    if (!scaled) continue;
    const std::string& v = s.outputs[0];
    auto reads = product_reads.find(v);
    auto count = facts.readers.find(v);
    if (reads == product_reads.end() || count == facts.readers.end() || facts.outputs.count(v) ||
        count->second != static_cast<int>(reads->second.size()))
      continue;
    bool once_each = true;  // a product reading v as both operands would need the factor squared
    for (size_t a = 0; a < reads->second.size(); ++a)
      for (size_t b = a + 1; b < reads->second.size(); ++b) once_each = once_each && reads->second[a].first != reads->second[b].first;
    if (!once_each) continue;
    for (const auto& [k, side] : reads->second) {
      products[k].inputs[side] = scaled->first;
      products[k].alpha *= scaled->second;
      products[k].changed = true;
    }
    removed[i] = true;
    ++rewrites;
  }

  std::vector<std::pair<size_t, Node>> made;
  for (Product& p : products) {
    if (!p.changed) continue;
    Node node = graph.nodes[p.index];
    node.inputs = p.inputs;
    node.outputs = p.outputs;
    if (!p.fused) {
      node.name += "+folded";
      node.op_type = "FusedMatMul";
      node.domain = kTunnxDomain;
      node.attributes = {ops::attr("op", std::string("MatMul")), ops::attr("has_bias", int64_t{0}),
                         ops::attr("activation", std::string())};
    }
    std::erase_if(node.attributes, [](const Attribute& a) { return a.name == "transA" || a.name == "transB" || a.name == "alpha"; });
    if (p.trans_a) node.attributes.push_back(ops::attr("transA", int64_t{1}));
    if (p.trans_b) node.attributes.push_back(ops::attr("transB", int64_t{1}));
    if (p.alpha != 1.0f) node.attributes.push_back(ops::attr("alpha", p.alpha));
    made.emplace_back(p.index, std::move(node));
  }
  splice_nodes(graph, std::move(made), std::move(removed));
  return rewrites;
}

}  // namespace tunnx::ir
