#include "runtime/core/passes/fuse_squeeze_excite.h"

#include <algorithm>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "runtime/core/ops/conv_pool.h"
#include "runtime/core/ops/gradient.h"
#include "runtime/core/ops/linear.h"
#include "runtime/core/passes/fuse_linear.h"
#include "runtime/core/passes/fused_activation.h"
#include "runtime/core/passes/graph_facts.h"

namespace tunnx::ir {
namespace {

struct Layer {
  std::string w, b, a;  // the weight, the convolution's bias, the Add's constant ("" when absent)
  int64_t in = 0, out = 0;  // Ci, Co
  std::string activation, approximate = "none";
  float alpha = 0, beta = 0;
  bool closed = false;  // its activation is set: nothing more joins it
};

struct Match {
  std::string x, y;
  bool channels_last = false;
  size_t rank = 0;  // X's, once known (shape inference, the mean's axes or the first layer's W)
  std::vector<Layer> layers;
  std::vector<size_t> nodes;  // every node it replaces; the Mul (where the new node goes) is the last
};

class SqueezeExciteMatcher : ChainWalker {
 public:
  SqueezeExciteMatcher(const Graph& graph, const GraphFacts& facts, int64_t onnx_opset)
      : ChainWalker(graph, facts), onnx_opset_(onnx_opset) {}

  std::optional<Match> at_mean(size_t index) const {
    const Node& mean = graph_.nodes[index];
    if (!is_onnx(mean) || mean.inputs.empty() || mean.inputs[0].empty() || mean.outputs.size() != 1) return std::nullopt;
    Match m;
    m.x = mean.inputs[0];
    // Shape inference may not know X (Debian's ONNX infers opsets up to 17): the axes or the first
    // layer's W then tell the rank, and the kernel checks the dtype.
    m.rank = rank_of(m.x).value_or(0);
    if ((m.rank && (m.rank < 3 || m.rank > 5)) || (facts_.dtype(m.x) && facts_.dtype(m.x) != DataType::kFloat32))
      return std::nullopt;
    if (mean.op_type == "GlobalAveragePool") {
      if (mean.inputs.size() != 1 || !mean.attributes.empty()) return std::nullopt;
    } else if (mean.op_type == "ReduceMean") {
      if (!only_attributes(mean, {"axes", "keepdims", "noop_with_empty_axes"}) || ops::node_int(mean, "keepdims", 1) != 1 ||
          ops::node_int(mean, "noop_with_empty_axes", 0) != 0)
        return std::nullopt;
      std::optional<std::vector<int64_t>> axes;
      if (onnx_opset_ < 18) {
        if (mean.inputs.size() != 1 || !mean.attribute("axes")) return std::nullopt;
        axes = ops::node_ints(mean, "axes");
      } else {
        if (mean.inputs.size() != 2 || mean.attribute("axes")) return std::nullopt;
        axes = facts_.constant_ints(mean.inputs[1]);
      }
      if (!axes || axes->empty()) return std::nullopt;
      for (int64_t& a : *axes) {
        if (a < 0 && !m.rank) return std::nullopt;
        a += a < 0 ? static_cast<int64_t>(m.rank) : 0;
      }
      std::sort(axes->begin(), axes->end());
      // The spatial axes of [N, C, ...] are 2 .. rank - 1, those of [N, ..., C] 1 .. rank - 2: for
      // ranks 3 to 5 no two of the six lists agree.
      bool found = false;
      for (size_t r = 3; r <= 5 && !found; ++r) {
        if (m.rank && r != m.rank) continue;
        std::vector<int64_t> first, last;
        for (size_t a = 2; a < r; ++a) first.push_back(static_cast<int64_t>(a));
        for (size_t a = 1; a + 1 < r; ++a) last.push_back(static_cast<int64_t>(a));
        found = *axes == first || *axes == last;
        if (found) {
          m.rank = r;
          m.channels_last = *axes == last;
        }
      }
      if (!found) return std::nullopt;
      // The axes' Constant node (channels_last writes one from opset 18), where only the mean reads it.
      const Node* axes_maker = mean.inputs.size() > 1 ? facts_.produced_by(mean.inputs[1]) : nullptr;
      if (axes_maker && is_onnx(*axes_maker) && axes_maker->op_type == "Constant" && facts_.private_value(mean.inputs[1]))
        m.nodes.push_back(index_of(*axes_maker));
    } else {
      return std::nullopt;
    }
    m.nodes.push_back(index);
    std::string v = mean.outputs[0];
    size_t at = index;
    int64_t channels = -1;  // of v, once a layer states it
    while (true) {
      // An activation, SiLU (two readers of v) included.
      if (!m.layers.empty() && !m.layers.back().closed) {
        if (std::optional<FusedActivation> act = fused_activation_after(graph_, facts_, v, at, onnx_opset_)) {
          Node spelled;  // the attributes as a fused node carries them, read back through the table
          spelled.attributes = act->attrs;
          if (!close_with(m.layers.back(), spelled)) return std::nullopt;
          for (size_t n : act->nodes) m.nodes.push_back(n);
          at = *std::max_element(act->nodes.begin(), act->nodes.end());
          v = act->output;
          continue;
        }
      }
      const std::optional<size_t> next = only_reader(v, at);
      if (!next) return std::nullopt;
      const Node& n = graph_.nodes[*next];
      if (is_onnx_op(n, "Mul", 2) && only_attributes(n, {}) && other_operand(n, v) == m.x) {
        if (m.layers.empty() || channels < 0 || channels != m.layers.front().in) return std::nullopt;
        if (const std::optional<std::vector<int64_t>> x = facts_.dims(m.x);
            x && (x->size() != m.rank || (*x)[m.channels_last ? m.rank - 1 : 1] != channels))
          return std::nullopt;
        m.nodes.push_back(*next);
        m.y = n.outputs[0];
        return m;
      }
      if (std::optional<Layer> layer = convolution(n, v, m)) {
        if (channels >= 0 && layer->in != channels) return std::nullopt;
        channels = layer->out;
        m.layers.push_back(std::move(*layer));
      } else if (is_onnx_op(n, "Add", 2) && only_attributes(n, {}) && !m.layers.empty() && !m.layers.back().closed &&
                 m.layers.back().a.empty()) {
        const std::string other = other_operand(n, v);
        if (!adds_per_channel(other, channels, m.rank, m.channels_last)) return std::nullopt;
        std::optional<std::string> source = per_channel_constant(other, channels, m);
        if (!source) return std::nullopt;
        m.layers.back().a = *source;
      } else {
        return std::nullopt;
      }
      m.nodes.push_back(*next);
      at = *next;
      v = n.outputs[0];
    }
  }

 private:
  std::optional<size_t> rank_of(const std::string& name) const {
    auto it = facts_.types.find(name);
    if (it == facts_.types.end() || !it->second || it->second->kind != TypeInfo::Kind::kTensor || !it->second->shape)
      return std::nullopt;
    return it->second->shape->rank();
  }

  // Sets the layer's activation from a fused node's activation attributes; false for one the table
  // does not take.
  static bool close_with(Layer& layer, const Node& spelled) {
    const std::optional<ops::Activation> act = ops::fused_activation(spelled, nullptr);
    if (!act) return false;
    layer.activation = ops::node_string(spelled, "activation", "");
    layer.approximate = ops::node_string(spelled, "approximate", "none");
    layer.alpha = act->alpha;
    layer.beta = act->beta;
    layer.closed = act->kind != ops::Activation::Kind::kNone;
    return true;
  }

  // A 1x1 convolution of one group and no pads reading `v` (a 1x1 image: the mean's), with nothing
  // fused into it but an activation: a matrix-vector product.
  // With a residual Z fused in (fuse_conv takes Add(conv, Z) where Z has the output's shape, as a
  // [1, C, 1, 1] bias has at batch 1), Z must be a per-channel constant: it is the layer's A.
  std::optional<Layer> convolution(const Node& n, const std::string& v, Match& m) const {
    const bool channels_last = m.channels_last;
    const bool fused = n.domain == kTunnxDomain && n.op_type == "FusedConv";
    if ((!fused && !(is_onnx(n) && n.op_type == "Conv")) || n.outputs.size() != 1 || n.inputs.size() < 2 ||
        n.inputs[0] != v || n.inputs[1].empty())
      return std::nullopt;
    static const std::initializer_list<const char*> conv_attrs = {"auto_pad", "dilations", "group", "kernel_shape",
                                                                  "pads", "strides"};
    if (fused) {
      if (!only_attributes(n, {"auto_pad", "dilations", "group", "kernel_shape", "pads", "strides", "activation",
                               "activation_alpha", "activation_beta", "approximate", "channels_last", "has_bn",
                               "has_residual", "residual_after_activation", "epsilon"}) ||
          ops::node_int(n, "has_bn", 0) != 0 || (ops::node_int(n, "channels_last", 0) != 0) != channels_last)
        return std::nullopt;
      for (size_t i = 3; i < n.inputs.size(); ++i)  // BN's and the affine maps' absent, Z below
        if (!n.inputs[i].empty() && i != 7) return std::nullopt;
    } else if (channels_last || !only_attributes(n, conv_attrs) || n.inputs.size() > 3) {
      return std::nullopt;
    }
    if (ops::node_int(n, "group", 1) != 1) return std::nullopt;
    for (int64_t p : ops::node_ints(n, "pads"))
      if (p != 0) return std::nullopt;
    const std::optional<std::vector<int64_t>> w = facts_.dims(n.inputs[1]);
    if (!w || w->size() < 3 || w->size() > 5 || (m.rank && w->size() != m.rank) ||
        facts_.dtype(n.inputs[1]) != DataType::kFloat32)
      return std::nullopt;
    m.rank = w->size();  // X has W's rank (ONNX's Conv rule)
    for (size_t d = 2; d < m.rank; ++d)
      if ((*w)[d] != 1) return std::nullopt;
    Layer layer;
    layer.w = n.inputs[1];
    layer.b = n.inputs.size() > 2 ? n.inputs[2] : "";
    layer.out = (*w)[0];
    layer.in = (*w)[1];
    if (!layer.b.empty()) {
      const std::optional<std::vector<int64_t>> b = facts_.dims(layer.b);
      if (!b || *b != std::vector<int64_t>{layer.out} || facts_.dtype(layer.b) != DataType::kFloat32) return std::nullopt;
    }
    if (fused && !close_with(layer, n)) return std::nullopt;
    if (fused && ops::node_int(n, "has_residual", 0) != 0) {
      // Z after the activation comes after it here too only when there is none.
      if (n.inputs.size() < 8 || (ops::node_int(n, "residual_after_activation", 0) != 0 && layer.closed))
        return std::nullopt;
      std::optional<std::string> z = per_channel_constant(n.inputs[7], layer.out, m);
      if (!z) return std::nullopt;
      layer.a = *z;
    } else if (fused && n.inputs.size() > 7 && !n.inputs[7].empty()) {
      return std::nullopt;
    }
    return layer;
  }

  // The dims of `name` where shape inference lost them but a Reshape to a constant shape states them
  // (channels_last's views of per-channel constants).
  std::optional<std::vector<int64_t>> seen_dims(const std::string& name) const {
    if (std::optional<std::vector<int64_t>> d = facts_.dims(name)) return d;
    const Node* r = facts_.produced_by(name);
    if (!r || !is_onnx_op(*r, "Reshape", 2)) return std::nullopt;
    std::optional<std::vector<int64_t>> shape = facts_.constant_ints(r->inputs[1]);
    const std::optional<std::vector<int64_t>> in = seen_dims(r->inputs[0]);
    if (!shape || !in) return std::nullopt;
    int64_t numel = 1, known = 1, unknown = 0;
    for (int64_t d : *in) numel *= d;
    for (int64_t d : *shape) {
      if (d == 0) return std::nullopt;
      if (d == -1) ++unknown;
      else known *= d;
    }
    if (unknown > 1 || known == 0 || numel % known != 0) return std::nullopt;
    for (int64_t& d : *shape)
      if (d == -1) d = numel / known;
    return shape;
  }

  // The constant, of `channels` values or one, that `value` holds as one value per channel: a float32
  // constant, or one through Reshapes (Paddle reshapes its biases to [1, C, 1, 1]) and Transposes of
  // values with at most one dim above 1 (channels_last's views and twins of them), none of which
  // changes the values' flat order. Those nodes join the match as far as only the chain reads them.
  std::optional<std::string> per_channel_constant(const std::string& value, int64_t channels, Match& m) const {
    if (value.empty() || channels <= 0) return std::nullopt;
    std::vector<const Node*> chain;
    std::string source = value;
    while (!facts_.constant_value(source)) {
      const Node* p = facts_.produced_by(source);
      if (!p || chain.size() >= 4) return std::nullopt;
      if (is_onnx_op(*p, "Transpose", 1) && only_attributes(*p, {"perm"})) {
        const std::optional<std::vector<int64_t>> in = seen_dims(p->inputs[0]);
        if (!in || std::count_if(in->begin(), in->end(), [](int64_t d) { return d != 1; }) > 1) return std::nullopt;
      } else if (!is_onnx_op(*p, "Reshape", 2) || !only_attributes(*p, {"allowzero"})) {
        return std::nullopt;
      }
      chain.push_back(p);
      source = p->inputs[0];
    }
    const Tensor* values = facts_.constant_value(source);
    if (values->dtype() != DataType::kFloat32 || (values->numel() != channels && values->numel() != 1)) return std::nullopt;
    std::string read = value;
    for (const Node* p : chain) {
      if (!facts_.private_value(read)) break;
      m.nodes.push_back(index_of(*p));
      for (size_t i = 1; i < p->inputs.size(); ++i) {  // a Reshape's shape, from a Constant node of its own
        const Node* shape_maker = facts_.produced_by(p->inputs[i]);
        if (shape_maker && facts_.private_value(p->inputs[i]) && is_onnx(*shape_maker) && shape_maker->op_type == "Constant")
          m.nodes.push_back(index_of(*shape_maker));
      }
      read = p->inputs[0];
    }
    return source;
  }

  // Whether Add(v, other), v [N, Co, 1...] or [N, 1..., Co], adds one value per channel: other's dims
  // (right-aligned, as broadcasting reads them) all 1 but the channels', or a single value.
  bool adds_per_channel(const std::string& other, int64_t channels, size_t rank, bool channels_last) const {
    const std::optional<std::vector<int64_t>> dims = seen_dims(other);
    if (!dims || dims->size() > rank) return false;
    int64_t numel = 1;
    for (int64_t d : *dims) numel *= d;
    if (numel == 1) return true;
    const size_t axis = channels_last ? rank - 1 : 1, offset = rank - dims->size();
    return numel == channels && axis >= offset && (*dims)[axis - offset] == channels;
  }

  int64_t onnx_opset_;
};

}  // namespace

int fuse_squeeze_excite(Graph& graph, const ParameterStore& store, int64_t onnx_opset) {
  if (!has_op_type(graph, {"ReduceMean", "GlobalAveragePool"})) return 0;
  const GraphFacts facts(graph, store);
  const SqueezeExciteMatcher matcher(graph, facts, onnx_opset);
  std::vector<std::optional<std::vector<Node>>> replaced(graph.nodes.size());
  int made = 0;
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    std::optional<Match> m = matcher.at_mean(i);
    if (!m || std::any_of(m->nodes.begin(), m->nodes.end(), [&](size_t n) { return replaced[n].has_value(); }))
      continue;
    const Node& mul = graph.nodes[m->nodes.back()];
    Node se;
    se.name = (mul.name.empty() ? m->y : mul.name) + "+se";
    se.op_type = "SqueezeExcite";
    se.domain = kTunnxDomain;
    se.inputs = {m->x};
    se.outputs = {m->y};
    std::vector<std::string> activations, approximates;
    std::vector<float> alphas, betas;
    for (const Layer& l : m->layers) {
      se.inputs.insert(se.inputs.end(), {l.w, l.b, l.a});
      activations.push_back(l.activation);
      approximates.push_back(l.approximate);
      alphas.push_back(l.alpha);
      betas.push_back(l.beta);
    }
    se.attributes = {ops::attr("channels_last", int64_t{m->channels_last ? 1 : 0}), ops::attr("activations", activations),
                     ops::attr("approximates", approximates), ops::attr("activation_alphas", alphas),
                     ops::attr("activation_betas", betas)};
    for (size_t n : m->nodes) replaced[n] = std::vector<Node>{};
    replaced[m->nodes.back()] = std::vector<Node>{std::move(se)};
    ++made;
  }
  if (made > 0) replace_nodes(graph, std::move(replaced));
  return made;
}

}  // namespace tunnx::ir
