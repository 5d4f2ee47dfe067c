#include "runtime/core/passes/fuse_linear.h"

#include <limits>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "runtime/core/ops/linear.h"
#include "runtime/core/passes/graph_facts.h"

namespace tunnx::ir {
namespace {

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

float attr_f(const Node& n, const std::string& name, float fallback) {
  const Attribute* a = n.attribute(name);
  return a ? a->f : fallback;
}

// An activation the fused kernels take, with its parameters as FusedMatMul attributes; nothing when
// `node` is not one (or its parameters are not constants the pass can read).
std::optional<std::vector<Attribute>> activation_attrs(const Node& node, const GraphFacts& facts, int64_t onnx_opset) {
  const bool gelu_made_here = node.domain == kTunnxDomain && node.op_type == "Gelu";  // by fuse_gelu
  if ((!is_onnx(node) && !gelu_made_here) || node.inputs.empty() || node.outputs.size() != 1) return std::nullopt;
  using Kind = ops::Activation::Kind;
  const std::string& op = node.op_type;
  const Attribute* approx = node.attribute("approximate");
  const std::string approximate = approx ? approx->s : "none";
  const std::optional<Kind> kind = op.empty() ? std::nullopt : ops::activation_kind(op, approximate);
  if (!kind) return std::nullopt;  // not one FusedMatMul takes (an unknown approximation: the op reports it)
  std::vector<Attribute> attrs = {string_attr("activation", op)};
  if (*kind == Kind::kLeakyRelu) attrs.push_back(float_attr("activation_alpha", attr_f(node, "alpha", 0.01f)));
  if (*kind == Kind::kGelu || *kind == Kind::kGeluTanh) attrs.push_back(string_attr("approximate", approximate));
  if (*kind == Kind::kClip) {
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
  }
  return attrs;
}

// Whether `node` is a MatMul with B transposed as fold_weight_transpose makes it: a FusedMatMul
// with nothing fused yet, which this pass extends as it would a MatMul.
bool is_bare_transposed_matmul(const Node& node) {
  if (node.domain != kTunnxDomain || node.op_type != "FusedMatMul") return false;
  const Attribute* op = node.attribute("op");
  const Attribute* act = node.attribute("activation");
  const Attribute* bias = node.attribute("has_bias");
  return op && op->s == "MatMul" && (!act || act->s.empty()) && (!bias || bias->i == 0) && node.inputs.size() == 2;
}

bool trans_b(const Node& node) {
  const Attribute* t = node.attribute("transB");
  return t && t->i != 0;
}

// The output's last dim N of MatMul/Gemm `node`, when B's shape says it.
std::optional<int64_t> output_cols(const Node& node, const GraphFacts& facts) {
  auto b = facts.dims(node.inputs[1]);
  if (!b || b->size() < 2) return std::nullopt;
  if (node.op_type == "Gemm" || trans_b(node)) return trans_b(node) ? (*b)[0] : (*b)[1];
  return b->back();
}

}  // namespace

int fuse_linear(Graph& graph, const ParameterStore& store, int64_t onnx_opset) {
  const GraphFacts facts(graph, store);
  std::vector<bool> removed(graph.nodes.size(), false);
  std::vector<std::pair<size_t, Node>> fused;  // replaces the node at that index
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    const Node& mm = graph.nodes[i];
    const bool transposed_matmul = is_bare_transposed_matmul(mm);
    if (removed[i] || (!transposed_matmul && (!is_onnx(mm) || (mm.op_type != "MatMul" && mm.op_type != "Gemm")))) continue;
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
    node.attributes.push_back(string_attr("op", transposed_matmul ? "MatMul" : mm.op_type));
    if (transposed_matmul) node.attributes.push_back(int_attr("transB", trans_b(mm) ? 1 : 0));
    if (gemm) {
      const ops::GemmAttrs g = ops::gemm_attrs(mm);
      node.attributes.push_back(int_attr("transA", g.trans_a ? 1 : 0));
      node.attributes.push_back(int_attr("transB", g.trans_b ? 1 : 0));
      node.attributes.push_back(float_attr("alpha", g.alpha));
      node.attributes.push_back(float_attr("beta", g.beta));
    }
    node.attributes.push_back(int_attr("has_bias", bias.empty() ? 0 : 1));
    if (activation)
      for (auto& a : *activation) node.attributes.push_back(std::move(a));
    else
      node.attributes.push_back(string_attr("activation", ""));
    for (size_t s : swallowed) removed[s] = true;
    fused.emplace_back(i, std::move(node));
  }
  // The fused node sits where the MatMul was: its inputs are all ready there.
  return splice_nodes(graph, std::move(fused), std::move(removed));
}

}  // namespace tunnx::ir
