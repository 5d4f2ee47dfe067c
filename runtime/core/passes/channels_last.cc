#include "runtime/core/passes/channels_last.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "runtime/core/ops/gradient.h"
#include "runtime/core/passes/fuse_linear.h"
#include "runtime/core/passes/fused_activation.h"
#include "runtime/core/passes/graph_facts.h"

namespace tunnx::ir {
namespace {

// [N, C, spatial...] -> [N, spatial..., C] and back, for a value of `rank` (3 to 5).
std::vector<int64_t> to_last(size_t rank) {
  std::vector<int64_t> perm = {0};
  for (size_t a = 2; a < rank; ++a) perm.push_back(static_cast<int64_t>(a));
  perm.push_back(1);
  return perm;
}

std::vector<int64_t> to_first(size_t rank) {
  std::vector<int64_t> perm = {0, static_cast<int64_t>(rank) - 1};
  for (size_t a = 1; a + 1 < rank; ++a) perm.push_back(static_cast<int64_t>(a));
  return perm;
}

// Where axis `a` (in [0, rank)) of a channels-first value lies in its channels-last twin.
int64_t twin_axis(int64_t a, size_t rank) { return a == 0 ? 0 : a == 1 ? static_cast<int64_t>(rank) - 1 : a - 1; }

std::optional<size_t> rank_of(const GraphFacts& facts, const std::string& name) {
  if (const Tensor* t = facts.constant(name)) return t->rank();
  auto it = facts.types.find(name);
  if (it == facts.types.end() || !it->second || !it->second->shape) return std::nullopt;
  return it->second->shape->rank();
}

// A 1-D or 2-D float32 Conv or FusedConv (not yet channels-last): the rank of its X, or 0.
size_t channels_last_conv_rank(const Node& node, const GraphFacts& facts) {
  const bool conv = is_onnx(node) && node.op_type == "Conv";
  const bool fused = node.domain == kTunnxDomain && node.op_type == "FusedConv";
  if ((!conv && !fused) || node.inputs.size() < 2 || node.outputs.size() != 1) return 0;
  if (fused && ops::node_int(node, "channels_last", 0) != 0) return 0;
  const std::optional<DataType> x_type = facts.dtype(node.inputs[0]);
  // X has W's rank (ONNX's Conv rule), so W's says it where inference lost X's.
  const std::optional<size_t> rank = rank_of(facts, node.inputs[1]);
  if (facts.dtype(node.inputs[1]) != DataType::kFloat32 || (x_type && *x_type != DataType::kFloat32) || !rank ||
      (*rank != 3 && *rank != 4))
    return 0;
  return *rank;
}

// A convolution oneDNN runs as 1-D: rank-3 X, or tf2onnx's 1-D convolution written as 2-D (X [N, C,
// L, 1], kernel [k, 1]: the unit dim is dropped, onednn/conv.cc). On NCW values it is as fast as on
// NWC ones, so it goes channels-last only where that costs no transpose in (see below).
bool one_dimensional(const Node& node, const GraphFacts& facts, size_t rank) {
  if (rank == 3) return true;
  const std::optional<std::vector<int64_t>> w = facts.dims(node.inputs[1]);
  auto x = facts.types.find(node.inputs[0]);
  if (!w || x == facts.types.end() || !x->second || !x->second->shape || x->second->shape->rank() != 4) return false;
  int unit = 0;  // spatial dims of size 1 read by a size-1 kernel (both: a 1x1 image, as SE blocks pool to)
  for (size_t d = 2; d < 4; ++d) {
    const Dim& image = x->second->shape->dims[d];
    unit += (*w)[d] == 1 && image.is_fixed() && image.value == 1;
  }
  return unit == 1;
}

// Ops that compute the same on channels-last values as on channels-first ones when every data
// operand is channels-last (or broadcasts the same way in both: see below).
bool is_layout_free_elementwise(const Node& node) {
  if (node.outputs.size() != 1) return false;
  if (node.domain == kTunnxDomain)  // passes/fuse_gelu, passes/fuse_hard_swish
    return (node.op_type == "Gelu" || node.op_type == "HardSwish") && node.inputs.size() == 1;
  if (!is_onnx(node)) return false;
  static const std::unordered_set<std::string> unary = {"Relu", "Sigmoid", "Tanh", "LeakyRelu", "HardSigmoid",
                                                        "HardSwish", "Gelu", "Erf", "Abs", "Neg"};
  static const std::unordered_set<std::string> binary = {"Add", "Mul", "Sub", "Div"};
  return (unary.count(node.op_type) && node.inputs.size() == 1) || (binary.count(node.op_type) && node.inputs.size() == 2);
}

// A Slice that keeps every element of a value of `rank` whose dims shape inference knows: starts 0,
// steps 1, ends past each dim (tf2onnx writes them around its 1-D convolutions).
bool is_identity_slice(const Node& node, const GraphFacts& facts) {
  if (!is_onnx(node) || node.op_type != "Slice" || node.inputs.size() < 3 || node.outputs.size() != 1 ||
      !node.attributes.empty())
    return false;
  auto x = facts.types.find(node.inputs[0]);
  if (x == facts.types.end() || !x->second || !x->second->shape) return false;
  const std::vector<Dim>& dims = x->second->shape->dims;
  const auto starts = facts.constant_ints(node.inputs[1]), ends = facts.constant_ints(node.inputs[2]);
  std::optional<std::vector<int64_t>> axes, steps;
  if (node.inputs.size() > 3 && !node.inputs[3].empty()) axes = facts.constant_ints(node.inputs[3]);
  if (node.inputs.size() > 4 && !node.inputs[4].empty()) steps = facts.constant_ints(node.inputs[4]);
  if (!starts || !ends || starts->size() != ends->size() || (node.inputs.size() > 3 && !node.inputs[3].empty() && !axes) ||
      (node.inputs.size() > 4 && !node.inputs[4].empty() && !steps))
    return false;
  for (size_t i = 0; i < starts->size(); ++i) {
    const int64_t rank = static_cast<int64_t>(dims.size());
    int64_t a = axes ? (i < axes->size() ? (*axes)[i] : -rank - 1) : static_cast<int64_t>(i);
    if (a < 0) a += rank;
    if (a < 0 || a >= rank || (*starts)[i] != 0 || (steps && (i >= steps->size() || (*steps)[i] != 1))) return false;
    const int64_t end = (*ends)[i];
    const bool past = end >= std::numeric_limits<int32_t>::max() ||
                      (dims[static_cast<size_t>(a)].is_fixed() && end >= dims[static_cast<size_t>(a)].value);
    if (!past) return false;
  }
  return true;
}

Node transpose(const std::string& name, const std::string& in, const std::string& out, const std::vector<int64_t>& perm) {
  return ops::make_node(name, "Transpose", {in}, out, {ops::attr("perm", perm)});
}

// A Constant node writing `value` to `output`.
Node constant(const std::string& name, const std::string& output, Tensor value) {
  return ops::make_node(name, "Constant", {}, output, {ops::attr_tensor("value", std::move(value))});
}

// A Resize (opset 11+) that scales only H and W by constant scales: the same on NHWC values with the
// scales reordered. Its NHWC scales, or nothing.
std::optional<std::vector<float>> nhwc_resize_scales(const Node& node, const GraphFacts& facts) {
  if (!is_onnx(node) || node.op_type != "Resize" || node.inputs.size() != 3 || node.outputs.size() != 1 ||
      node.attribute("axes") || ops::node_string(node, "coordinate_transformation_mode", "") == "tf_crop_and_resize")
    return std::nullopt;
  const Tensor* scales = facts.constant_value(node.inputs[2]);
  if (!scales || scales->dtype() != DataType::kFloat32 || scales->numel() != 4) return std::nullopt;
  const float* v = scales->data_as<float>();
  if (v[0] != 1.0f || v[1] != 1.0f) return std::nullopt;
  return std::vector<float>{v[0], v[2], v[3], v[1]};
}

// Every value the nodes (and their subgraphs, at any depth) read, into `read`.
void collect_reads(const std::vector<Node>& nodes, std::unordered_set<std::string>& read) {
  for (const auto& n : nodes) {
    for (const auto& in : n.inputs) read.insert(in);
    for (const auto& a : n.attributes)
      if (a.g) collect_reads(a.g->nodes, read);
  }
}

}  // namespace

int channels_last(Graph& graph, const ParameterStore& store, int64_t onnx_opset) {
  if (!has_op_type(graph, {"Conv", "FusedConv"})) return 0;
  const GraphFacts facts(graph, store);
  struct Twin {
    std::string name;
    size_t rank = 0;
  };
  std::unordered_map<std::string, Twin> twin_of;  // channels-first value -> its channels-last twin, made so far
  std::vector<Node> out;
  out.reserve(graph.nodes.size() * 2);
  int rewritten = 0;

  // A value that two transposes would make: `value` is a Transpose's output and its twin is one
  // transpose of that Transpose's input (`source`), by `perm`. When the perm moves only dims of size 1
  // the twin is a view (a Reshape to `view`), when it moves none it is `source` itself.
  struct Composed {
    std::string source;
    std::vector<int64_t> perm;
    std::optional<std::vector<int64_t>> view;
    bool identity = false;
  };
  // Each Transpose's input and perm, by its output (the loop below moves the nodes away).
  std::unordered_map<std::string, std::pair<std::string, std::vector<int64_t>>> transposes;
  for (const Node& n : graph.nodes)
    if (is_onnx_op(n, "Transpose", 1) && only_attributes(n, {"perm"}))
      transposes[n.outputs[0]] = {n.inputs[0], ops::node_ints(n, "perm")};
  auto composed = [&](const std::string& value, size_t rank) -> std::optional<Composed> {
    auto t = transposes.find(value);
    if (t == transposes.end() || t->second.second.size() != rank) return std::nullopt;
    const std::vector<int64_t>& p = t->second.second;
    Composed c;
    c.source = t->second.first;
    for (int64_t i : to_last(rank)) c.perm.push_back(p[static_cast<size_t>(i)]);
    c.identity = true;
    for (size_t i = 0; i < rank; ++i) c.identity = c.identity && c.perm[i] == static_cast<int64_t>(i);
    auto src = facts.types.find(c.source);
    if (c.identity || src == facts.types.end() || !src->second || !src->second->shape || src->second->shape->rank() != rank)
      return c;
    const std::vector<Dim>& d = src->second->shape->dims;
    auto unit = [&](int64_t a) { return d[static_cast<size_t>(a)].is_fixed() && d[static_cast<size_t>(a)].value == 1; };
    int64_t last_kept = -1;
    std::vector<int64_t> view;
    int unknown = 0;
    for (size_t i = 0; i < rank; ++i) {
      const int64_t a = c.perm[i];
      if (!unit(a)) {
        if (a < last_kept) return c;  // moves a dim of size above 1: a real transpose
        last_kept = a;
      }
      const Dim& dim = d[static_cast<size_t>(a)];
      if (a == static_cast<int64_t>(i)) view.push_back(0);  // Reshape's 0: the input's dim here
      else if (dim.is_fixed()) view.push_back(dim.value);
      else {
        view.push_back(-1);
        ++unknown;
      }
    }
    if (unknown <= 1) c.view = std::move(view);
    return c;
  };
  // The twin's type where `value`'s is known: its dims in channels-last order. Recorded with the
  // inferred types, so that a session knows the dims the channels-last kernels will see when it is
  // made (Kernel::prepare). The map's other entries do not move: facts' pointers into it stay valid.
  auto record_type = [&](const std::string& value, const std::string& twin_name, size_t rank) {
    auto it = facts.types.find(value);
    if (it == facts.types.end() || !it->second || !it->second->shape || it->second->shape->rank() != rank) return;
    TypeInfo type = *it->second;
    std::rotate(type.shape->dims.begin() + 1, type.shape->dims.begin() + 2, type.shape->dims.end());
    graph.inferred_types[twin_name] = std::move(type);
  };
  // The channels-last twin of `value` (rank 3 to 5), converting it where it is when no node made one.
  auto twin = [&](const std::string& value, size_t rank) {
    auto it = twin_of.find(value);
    if (it != twin_of.end()) return it->second.name;
    std::string name = value + kChannelsLastSuffix;
    if (std::optional<Composed> c = composed(value, rank); c && c->identity) {
      name = c->source;
    } else if (c && c->view) {
      out.push_back(constant(value + "/nhwc_shape", value + "/nhwc_shape", Tensor::from_vector<int64_t>({static_cast<int64_t>(rank)}, *c->view)));
      out.push_back(ops::make_node(value + "/to_nhwc", "Reshape", {c->source, value + "/nhwc_shape"}, name));
    } else if (c) {
      out.push_back(transpose(value + "/to_nhwc", c->source, name, c->perm));
    } else {
      out.push_back(transpose(value + "/to_nhwc", value, name, to_last(rank)));
    }
    if (name == value + kChannelsLastSuffix) record_type(value, name, rank);  // a new value (not a Transpose's input)
    twin_of[value] = {name, rank};
    return name;
  };
  // Whether `value`'s twin costs no copy: made already, or a view of a Transpose's input.
  auto free_twin = [&](const std::string& value, size_t rank) {
    if (twin_of.count(value)) return true;
    const std::optional<Composed> c = composed(value, rank);
    return c && (c->identity || c->view);
  };
  // Records `twin_name`, written by the node just added, as `value`'s twin, and adds the Transpose
  // that writes `value` itself for readers that want it channels-first (dropped below when none does).
  auto produced = [&](const std::string& value, const std::string& name, const std::string& twin_name, size_t rank) {
    record_type(value, twin_name, rank);
    twin_of[value] = {twin_name, rank};
    out.push_back(transpose(name + "/to_nchw", twin_name, value, to_first(rank)));
  };
  // The ReduceMean over a channels-last value's spatial axes (keepdims) standing for a GlobalAveragePool.
  auto global_mean = [&](const Node& node, const Twin& in) {
    std::vector<int64_t> axes;
    for (size_t a = 1; a + 1 < in.rank; ++a) axes.push_back(static_cast<int64_t>(a));
    Node pool;
    pool.name = node.name + kChannelsLastSuffix;
    pool.op_type = "ReduceMean";
    pool.inputs = {in.name};
    pool.outputs = {node.outputs[0] + kChannelsLastSuffix};
    pool.attributes = {ops::attr("keepdims", int64_t{1})};
    if (onnx_opset < 18) {
      pool.attributes.push_back(ops::attr("axes", axes));
    } else {  // axes moved to an input at 18
      out.push_back(constant(node.name + "/nhwc_axes", node.outputs[0] + "/nhwc_axes",
                             Tensor::from_vector<int64_t>({static_cast<int64_t>(axes.size())}, axes)));
      pool.inputs.push_back(out.back().outputs[0]);
    }
    out.push_back(std::move(pool));
    produced(node.outputs[0], node.name.empty() ? node.outputs[0] : node.name, node.outputs[0] + kChannelsLastSuffix, in.rank);
  };
  // A ReduceMean (keepdims) over the spatial axes of a channels-first value of `rank`.
  auto is_spatial_mean = [&](const Node& node, size_t rank) {
    if (node.op_type != "ReduceMean" || !only_attributes(node, {"axes", "keepdims", "noop_with_empty_axes"}) ||
        ops::node_int(node, "keepdims", 1) != 1 || ops::node_int(node, "noop_with_empty_axes", 0) != 0)
      return false;
    std::optional<std::vector<int64_t>> axes;
    if (onnx_opset < 18 && node.inputs.size() == 1 && node.attribute("axes")) axes = ops::node_ints(node, "axes");
    if (onnx_opset >= 18 && node.inputs.size() == 2 && !node.attribute("axes")) axes = facts.constant_ints(node.inputs[1]);
    if (!axes) return false;
    for (int64_t& a : *axes) a += a < 0 ? static_cast<int64_t>(rank) : 0;
    std::sort(axes->begin(), axes->end());
    std::vector<int64_t> spatial;
    for (size_t a = 2; a < rank; ++a) spatial.push_back(static_cast<int64_t>(a));
    return *axes == spatial;
  };
  // For a binary op with one operand a twin of `rank`: the other operand as the twin's layout reads
  // it, when it broadcasts the same way there: one element, or dims all 1 but the channels' (a
  // per-channel constant, viewed as [1, ..., 1, C]). Nothing otherwise.
  auto broadcast_operand = [&](const Node& node, const std::string& other, size_t rank) -> std::optional<std::string> {
    const std::optional<std::vector<int64_t>> d = facts.dims(other);
    if (!d || d->size() > rank) return std::nullopt;
    int64_t n = 1;
    for (int64_t v : *d) n *= v;
    if (n == 1) return other;
    if (d->size() != rank) return std::nullopt;
    for (size_t a = 0; a < rank; ++a)
      if (a != 1 && (*d)[a] != 1) return std::nullopt;
    std::vector<int64_t> shape(rank, 1);
    shape.back() = -1;
    const std::string name = other + "/nhwc_" + node.name;
    out.push_back(constant(name + "_shape", name + "_shape", Tensor::from_vector<int64_t>({static_cast<int64_t>(rank)}, shape)));
    out.push_back(ops::make_node(name, "Reshape", {other, name + "_shape"}, name));
    return name;
  };

  // A 2-D convolution of one group over a few channels (an image: gray, RGB, RGBA) whose input has
  // no twin that costs nothing: it reads the input as it lies (channels_first_source) instead of
  // through a Transpose, which its kernel can then skip (onednn/conv.cc).
  auto reads_image = [&](const Node& conv, size_t rank) {
    if (rank != 4 || free_twin(conv.inputs[0], rank) || ops::node_int(conv, "group", 1) != 1) return false;
    const std::optional<std::vector<int64_t>> w = facts.dims(conv.inputs[1]);
    return w && w->size() == 4 && (*w)[1] <= 4;
  };

  for (Node& node : graph.nodes) {
    if (const size_t rank = channels_last_conv_rank(node, facts);
        rank && (!one_dimensional(node, facts, rank) || free_twin(node.inputs[0], rank))) {
      Node conv = std::move(node);
      if (is_onnx(conv)) {  // a plain Conv becomes a FusedConv with nothing fused
        conv.op_type = "FusedConv";
        conv.domain = kTunnxDomain;
        conv.inputs.resize(8);
        conv.attributes.push_back(ops::attr("activation", std::string()));
      }
      conv.attributes.push_back(ops::attr("channels_last", int64_t{1}));
      if (reads_image(conv, rank))
        conv.attributes.push_back(ops::attr("channels_first_source", int64_t{1}));
      else
        conv.inputs[0] = twin(conv.inputs[0], rank);
      if (conv.inputs.size() > 7 && !conv.inputs[7].empty()) conv.inputs[7] = twin(conv.inputs[7], rank);
      const std::string y = conv.outputs[0], name = conv.name;
      conv.outputs[0] = y + kChannelsLastSuffix;
      out.push_back(std::move(conv));
      produced(y, name, y + kChannelsLastSuffix, rank);
      ++rewritten;
      continue;
    }
    const std::string first = node.inputs.empty() ? "" : node.inputs[0];
    auto first_twin = twin_of.find(first);
    if (first_twin == twin_of.end() || node.outputs.empty()) {
      // Binary ops whose second operand alone is a twin are handled below too.
      if (!(is_layout_free_elementwise(node) && node.inputs.size() == 2 && twin_of.count(node.inputs[1]))) {
        out.push_back(std::move(node));
        continue;
      }
    }
    const size_t rank = first_twin != twin_of.end() ? first_twin->second.rank : twin_of.at(node.inputs[1]).rank;
    const std::string& y = node.outputs[0];
    const std::string label = node.name.empty() ? y : node.name;

    // A Slice that keeps everything: its output is its input, twin included.
    if (is_identity_slice(node, facts) && first_twin != twin_of.end()) {
      const Twin in = first_twin->second;
      produced(y, label, in.name, in.rank);
      ++rewritten;
      continue;
    }
    // GlobalAveragePool / GlobalMaxPool: the mean or max over the spatial axes; a ReduceMean over
    // exactly those (keepdims) is the same mean.
    if (is_onnx(node) && ((node.op_type == "GlobalAveragePool" && node.inputs.size() == 1) || is_spatial_mean(node, rank)) &&
        node.outputs.size() == 1) {
      global_mean(node, first_twin->second);
      ++rewritten;
      continue;
    }
    // GlobalMaxPool (which passes over NaN, where ReduceMax gives NaN): com.tunnx:ChannelsLastPool.
    if (is_onnx(node) && node.op_type == "GlobalMaxPool" && node.inputs.size() == 1 && node.outputs.size() == 1) {
      Node pool = ops::make_node(label + kChannelsLastSuffix, "ChannelsLastPool", {first_twin->second.name}, y + kChannelsLastSuffix,
                                 {ops::attr("op", std::string("GlobalMaxPool"))});
      pool.domain = kTunnxDomain;
      out.push_back(std::move(pool));
      produced(y, label, y + kChannelsLastSuffix, rank);
      ++rewritten;
      continue;
    }
    // Squeeze of spatial axes: the twin's, a twin of lower rank (or, down to [N, C], the value itself).
    if (is_onnx(node) && node.op_type == "Squeeze" && node.outputs.size() == 1 && !node.inputs.empty()) {
      std::optional<std::vector<int64_t>> axes;
      if (onnx_opset >= 13) {
        if (node.inputs.size() == 2) axes = facts.constant_ints(node.inputs[1]);
      } else if (node.attribute("axes")) {
        axes = ops::node_ints(node, "axes");
      }
      bool spatial = axes && !axes->empty();
      std::vector<int64_t> twin_axes;
      for (int64_t a : axes ? *axes : std::vector<int64_t>{}) {
        if (a < 0) a += static_cast<int64_t>(rank);
        spatial = spatial && a >= 2 && a < static_cast<int64_t>(rank);
        twin_axes.push_back(twin_axis(a, rank));
      }
      if (spatial) {
        const size_t out_rank = rank - twin_axes.size();
        const std::string twin_y = out_rank >= 3 ? y + kChannelsLastSuffix : y;
        Node squeeze = ops::make_node(label + kChannelsLastSuffix, "Squeeze", {first_twin->second.name}, twin_y);
        if (onnx_opset >= 13) {
          out.push_back(constant(label + "/nhwc_axes", y + "/nhwc_axes",
                                 Tensor::from_vector<int64_t>({static_cast<int64_t>(twin_axes.size())}, twin_axes)));
          squeeze.inputs.push_back(out.back().outputs[0]);
        } else {
          squeeze.attributes.push_back(ops::attr("axes", twin_axes));
        }
        out.push_back(std::move(squeeze));
        if (out_rank >= 3) produced(y, label, twin_y, out_rank);
        ++rewritten;
        continue;
      }
    }
    // Layout-free ops on twins (a binary op's other operand a twin of the same rank, or one that
    // broadcasts the same way on the twin), Concat and Split along the channels, Resize of the
    // spatial dims, 2-D pools.
    std::vector<std::string> inputs = node.inputs;
    bool all_twinned = false;
    if (is_layout_free_elementwise(node)) {
      if (node.inputs.size() == 1) {
        all_twinned = true;
        inputs[0] = first_twin->second.name;
      } else {
        all_twinned = true;
        for (size_t i = 0; i < 2 && all_twinned; ++i) {
          auto t = twin_of.find(node.inputs[i]);
          if (t != twin_of.end() && t->second.rank == rank) {
            inputs[i] = t->second.name;
          } else if (std::optional<std::string> b = broadcast_operand(node, node.inputs[i], rank)) {
            inputs[i] = *b;
          } else {
            all_twinned = false;
          }
        }
      }
    }
    const int64_t channel_axis = 1, negative_channel_axis = 1 - static_cast<int64_t>(rank);
    const bool channel_concat = is_onnx(node) && node.op_type == "Concat" && node.outputs.size() == 1 &&
                                (ops::node_int(node, "axis", 0) == channel_axis || ops::node_int(node, "axis", 0) == negative_channel_axis);
    const bool channel_split = is_onnx(node) && node.op_type == "Split" && !node.inputs.empty() &&
                               (ops::node_int(node, "axis", 0) == channel_axis || ops::node_int(node, "axis", 0) == negative_channel_axis);
    if (channel_concat) {
      all_twinned = !node.inputs.empty();
      for (size_t i = 0; i < node.inputs.size(); ++i) {
        auto t = twin_of.find(node.inputs[i]);
        all_twinned = all_twinned && t != twin_of.end() && t->second.rank == rank;
        if (all_twinned) inputs[i] = t->second.name;
      }
    }
    if (channel_split) {
      all_twinned = true;
      inputs[0] = first_twin->second.name;
    }
    // A 2-D MaxPool (without Indices) or AveragePool: com.tunnx:ChannelsLastPool on the NHWC value.
    if (rank == 4 && is_onnx(node) && (node.op_type == "MaxPool" || node.op_type == "AveragePool") &&
        node.inputs.size() == 1 && node.outputs.size() == 1 && ops::node_ints(node, "kernel_shape").size() == 2) {
      Node pool = node;
      pool.name = node.name + kChannelsLastSuffix;
      pool.op_type = "ChannelsLastPool";
      pool.domain = kTunnxDomain;
      pool.attributes.push_back(ops::attr("op", node.op_type));
      pool.inputs = {first_twin->second.name};
      pool.outputs = {y + kChannelsLastSuffix};
      out.push_back(std::move(pool));
      produced(y, label, y + kChannelsLastSuffix, rank);
      ++rewritten;
      continue;
    }
    std::optional<std::vector<float>> resize_scales;
    if (!all_twinned && rank == 4 && first_twin != twin_of.end()) {
      resize_scales = nhwc_resize_scales(node, facts);
      all_twinned = resize_scales.has_value();
      if (all_twinned) inputs[0] = first_twin->second.name;
    }
    if (!all_twinned) {
      out.push_back(std::move(node));
      continue;
    }
    Node moved = node;
    moved.name = node.name + kChannelsLastSuffix;
    moved.inputs = inputs;
    if (resize_scales) {  // the scales for [N, H, W, C], from a Constant node made here
      out.push_back(constant(node.name + "/nhwc_scales", y + "/nhwc_scales", Tensor::from_vector<float>({4}, *resize_scales)));
      moved.inputs[2] = out.back().outputs[0];
    }
    if (channel_concat || channel_split)
      for (auto& a : moved.attributes)
        if (a.name == "axis") a.i = static_cast<int64_t>(rank) - 1;
    std::vector<std::string> outputs = moved.outputs;
    for (auto& o : moved.outputs)
      if (!o.empty()) o += kChannelsLastSuffix;
    out.push_back(std::move(moved));
    for (const auto& o : outputs)
      if (!o.empty()) produced(o, node.name.empty() ? o : node.name + ":" + o, o + kChannelsLastSuffix, rank);
    ++rewritten;
  }
  // Drop what nobody reads: the Transposes back to channels-first made here that no node wanted, and
  // then the pure ops (transposes, views, slices) that only fed what was dropped or rewritten.
  static const std::unordered_set<std::string> pure = {"Transpose", "Reshape", "Slice", "Squeeze", "Unsqueeze", "Constant"};
  for (bool dropped = true; dropped;) {
    dropped = false;
    std::unordered_set<std::string> read(graph.outputs.size());
    for (const auto& o : graph.outputs) read.insert(o.name);
    collect_reads(out, read);  // subgraphs read outer values by name
    std::vector<Node> kept;
    kept.reserve(out.size());
    for (auto& n : out) {
      bool used = false;
      for (const auto& o : n.outputs) used = used || read.count(o);
      if (!used && is_onnx(n) && pure.count(n.op_type)) {
        dropped = true;
        continue;
      }
      kept.push_back(std::move(n));
    }
    out = std::move(kept);
  }
  graph.nodes = std::move(out);
  return rewritten;
}

int fold_squeezed_conv_epilogues(Graph& graph, const ParameterStore& store, int64_t onnx_opset) {
  if (!has_op_type(graph, {"Squeeze"})) return 0;
  const GraphFacts facts(graph, store);
  std::vector<std::optional<std::vector<Node>>> replaced(graph.nodes.size());
  int folded = 0;
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    const Node& conv = graph.nodes[i];
    if (conv.domain != kTunnxDomain || conv.op_type != "FusedConv" || ops::node_int(conv, "channels_last", 0) == 0 ||
        ops::node_int(conv, "has_bn", 0) != 0 || ops::node_int(conv, "has_residual", 0) != 0 ||
        ops::node_string(conv, "activation", "") != "" || conv.inputs.size() > 8 || conv.inputs.size() < 2 ||
        conv.outputs.size() != 1 ||
        (conv.inputs.size() > 2 && !conv.inputs[2].empty()) || replaced[i])
      continue;
    const std::optional<std::vector<int64_t>> w = facts.dims(conv.inputs[1]);
    if (!w || w->empty()) continue;
    const int64_t channels = (*w)[0];
    // The Squeeze, then the Add of the per-channel constant, each the only reader of what it reads.
    const std::string& y = conv.outputs[0];
    const int s = reader_of(graph, y, i);
    if (s < 0 || !facts.private_value(y) || replaced[static_cast<size_t>(s)]) continue;
    const Node& squeeze = graph.nodes[static_cast<size_t>(s)];
    if (!is_onnx(squeeze) || squeeze.op_type != "Squeeze" || squeeze.inputs.empty() || squeeze.inputs[0] != y ||
        squeeze.outputs.size() != 1)
      continue;
    const std::string& squeezed = squeeze.outputs[0];
    const int a = reader_of(graph, squeezed, static_cast<size_t>(s));
    if (a < 0 || !facts.private_value(squeezed) || replaced[static_cast<size_t>(a)]) continue;
    const Node& add = graph.nodes[static_cast<size_t>(a)];
    if (!is_onnx_op(add, "Add", 2) || !only_attributes(add, {})) continue;
    const std::string& other = add.inputs[0] == squeezed ? add.inputs[1] : add.inputs[0];
    // The constant as channels_last viewed it: Reshape(K, [1, ..., 1, -1]) of a K with C elements, all
    // but one of its dims 1.
    const Node* view = facts.produced_by(other);
    if (!view || !is_onnx_op(*view, "Reshape", 2)) continue;
    const std::optional<std::vector<int64_t>> target = facts.constant_ints(view->inputs[1]);
    if (!target || target->empty() || (target->back() != -1 && target->back() != channels)) continue;
    if (std::any_of(target->begin(), target->end() - 1, [](int64_t d) { return d != 1; })) continue;
    const std::optional<std::vector<int64_t>> k = facts.dims(view->inputs[0]);
    auto k_maker = facts.producer.find(view->inputs[0]);  // an initializer, or made before the convolution
    if (!k || facts.dtype(view->inputs[0]) != DataType::kFloat32 || (k_maker != facts.producer.end() && k_maker->second > i))
      continue;
    int64_t numel = 1, non_unit = 0;
    for (int64_t d : *k) {
      numel *= d;
      non_unit += d != 1;
    }
    if (numel != channels || non_unit > 1) continue;
    std::optional<FusedActivation> act = fused_activation_after(graph, facts, add.outputs[0], static_cast<size_t>(a), onnx_opset);
    if (act && std::any_of(act->nodes.begin(), act->nodes.end(), [&](size_t n) { return replaced[n].has_value(); }))
      act.reset();
    const std::string result = act ? act->output : add.outputs[0];

    std::vector<Node> at_conv;
    const std::string bias = view->inputs[0] + "/bias_of_" + conv.name;
    at_conv.push_back(constant(bias + "_shape", bias + "_shape", Tensor::from_vector<int64_t>({1}, {-1})));
    at_conv.push_back(ops::make_node(bias, "Reshape", {view->inputs[0], bias + "_shape"}, bias));
    Node with = conv;
    with.inputs.resize(std::max<size_t>(with.inputs.size(), 3));
    with.inputs[2] = bias;
    std::erase_if(with.attributes, [](const Attribute& at) {
      return at.name == "activation" || at.name == "activation_alpha" || at.name == "activation_beta" || at.name == "approximate";
    });
    if (act)
      for (const Attribute& at : act->attrs) with.attributes.push_back(at);
    else
      with.attributes.push_back(ops::attr("activation", std::string()));
    at_conv.push_back(std::move(with));
    Node moved = squeeze;  // where it was (its axes may be made just before it), writing the chain's end
    moved.outputs[0] = result;
    replaced[i] = std::move(at_conv);
    replaced[static_cast<size_t>(s)] = std::vector<Node>{std::move(moved)};
    replaced[static_cast<size_t>(a)] = std::vector<Node>{};
    if (facts.private_value(other)) replaced[facts.producer.at(other)] = std::vector<Node>{};  // the view
    if (act)
      for (size_t n : act->nodes) replaced[n] = std::vector<Node>{};
    ++folded;
  }
  if (folded > 0) replace_nodes(graph, std::move(replaced));
  return folded;
}

}  // namespace tunnx::ir
