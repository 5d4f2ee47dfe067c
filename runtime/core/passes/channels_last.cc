#include "runtime/core/passes/channels_last.h"

#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "runtime/core/ops/gradient.h"
#include "runtime/core/passes/fuse_linear.h"
#include "runtime/core/passes/graph_facts.h"

namespace tunnx::ir {
namespace {

const std::vector<int64_t> kToNhwc = {0, 2, 3, 1};
const std::vector<int64_t> kToNchw = {0, 3, 1, 2};

std::optional<size_t> rank_of(const GraphFacts& facts, const std::string& name) {
  if (const Tensor* t = facts.constant(name)) return t->rank();
  auto it = facts.types.find(name);
  if (it == facts.types.end() || !it->second || !it->second->shape) return std::nullopt;
  return it->second->shape->rank();
}

bool is_2d_conv(const Node& node, const GraphFacts& facts) {
  const bool conv = is_onnx(node) && node.op_type == "Conv";
  const bool fused = node.domain == kTunnxDomain && node.op_type == "FusedConv";
  if ((!conv && !fused) || node.inputs.size() < 2 || node.outputs.size() != 1) return false;
  if (fused && ops::node_int(node, "channels_last", 0) != 0) return false;
  const std::optional<DataType> x_type = facts.dtype(node.inputs[0]);
  // X has W's rank (ONNX's Conv rule), so W's says it where inference lost X's.
  if (facts.dtype(node.inputs[1]) != DataType::kFloat32 || (x_type && *x_type != DataType::kFloat32) ||
      rank_of(facts, node.inputs[1]) != 4u)
    return false;
  // A 1-D convolution written as 2-D (tf2onnx: X [N, C, L, 1], kernel [k, 1]) runs as 1-D on NCHW
  // values, 2-3x faster than any 2-D kernel (onednn/conv.cc): it stays.
  const std::optional<std::vector<int64_t>> w = facts.dims(node.inputs[1]);
  auto x = facts.types.find(node.inputs[0]);
  if (w && x != facts.types.end() && x->second && x->second->shape && x->second->shape->rank() == 4) {
    int unit = 0;  // spatial dims of size 1 read by a size-1 kernel (both: a 1x1 image, as SE blocks pool to)
    for (size_t d = 2; d < 4; ++d) {
      const Dim& image = x->second->shape->dims[d];
      unit += (*w)[d] == 1 && image.is_fixed() && image.value == 1;
    }
    if (unit == 1) return false;
  }
  return true;
}

// Ops that compute the same on NHWC values as on NCHW ones when every data operand is NHWC.
bool is_layout_free_elementwise(const Node& node) {
  if (!is_onnx(node) || node.outputs.size() != 1) return false;
  static const std::unordered_set<std::string> unary = {"Relu", "Sigmoid", "Tanh", "LeakyRelu", "HardSigmoid", "HardSwish"};
  static const std::unordered_set<std::string> binary = {"Add", "Mul", "Sub", "Div"};
  return (unary.count(node.op_type) && node.inputs.size() == 1) || (binary.count(node.op_type) && node.inputs.size() == 2);
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
  const Tensor* scales = facts.constant(node.inputs[2]);
  if (!scales) {
    auto it = facts.constant_nodes.find(node.inputs[2]);
    if (it != facts.constant_nodes.end()) scales = it->second;
  }
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
  const GraphFacts facts(graph, store);
  std::unordered_map<std::string, std::string> nhwc_of;  // NCHW value -> its NHWC twin, made so far
  std::vector<Node> out;
  out.reserve(graph.nodes.size() * 2);
  int rewritten = 0;
  // The NHWC twin of `value`, converting it where it is (a Transpose) when no node made one.
  auto nhwc = [&](const std::string& value) {
    auto it = nhwc_of.find(value);
    if (it != nhwc_of.end()) return it->second;
    const std::string twin = value + "/nhwc";
    out.push_back(transpose(value + "/to_nhwc", value, twin, kToNhwc));
    nhwc_of.emplace(value, twin);
    return twin;
  };
  // Records "<value>/nhwc", written by the node just added, as `value`'s NHWC twin, and adds the
  // Transpose that writes `value` itself for readers that want NCHW (dropped below when none does).
  auto produced = [&](const std::string& value, const std::string& name) {
    const std::string twin = value + "/nhwc";
    nhwc_of.emplace(value, twin);
    out.push_back(transpose(name + "/to_nchw", twin, value, kToNchw));
  };

  for (Node& node : graph.nodes) {
    if (is_2d_conv(node, facts)) {
      Node conv = std::move(node);
      if (is_onnx(conv)) {  // a plain Conv becomes a FusedConv with nothing fused
        conv.op_type = "FusedConv";
        conv.domain = kTunnxDomain;
        conv.inputs.resize(8);
        conv.attributes.push_back(ops::attr("activation", std::string()));
      }
      conv.attributes.push_back(ops::attr("channels_last", int64_t{1}));
      conv.inputs[0] = nhwc(conv.inputs[0]);
      if (conv.inputs.size() > 7 && !conv.inputs[7].empty()) conv.inputs[7] = nhwc(conv.inputs[7]);
      const std::string y = conv.outputs[0], name = conv.name;
      conv.outputs[0] = y + "/nhwc";
      out.push_back(std::move(conv));
      produced(y, name);
      ++rewritten;
      continue;
    }
    // Layout-free ops whose operands all have NHWC twins already (only rank-4 values have them).
    bool all_twinned = false;
    if (is_layout_free_elementwise(node)) {
      all_twinned = nhwc_of.count(node.inputs[0]) > 0;
      // Both operands rank-4 NHWC twins: broadcasting lines their dims up the same way in either
      // layout (an SE block's [N, C, 1, 1] x [N, C, H, W] is [N, 1, 1, C] x [N, H, W, C]).
      if (node.inputs.size() == 2) all_twinned = all_twinned && nhwc_of.count(node.inputs[1]) > 0;
    }
    const bool channel_concat = is_onnx(node) && node.op_type == "Concat" && node.outputs.size() == 1 &&
                                (ops::node_int(node, "axis", 0) == 1 || ops::node_int(node, "axis", 0) == -3);
    const bool channel_split = is_onnx(node) && node.op_type == "Split" && !node.inputs.empty() &&
                               (ops::node_int(node, "axis", 0) == 1 || ops::node_int(node, "axis", 0) == -3);
    if (channel_concat) {
      all_twinned = !node.inputs.empty();
      for (const auto& in : node.inputs) all_twinned = all_twinned && nhwc_of.count(in) > 0;
    }
    if (channel_split) all_twinned = nhwc_of.count(node.inputs[0]) > 0;
    // GlobalAveragePool: the mean over H and W, a ReduceMean over axes 1 and 2 of the NHWC value.
    if (is_onnx(node) && node.op_type == "GlobalAveragePool" && node.inputs.size() == 1 && node.outputs.size() == 1 &&
        nhwc_of.count(node.inputs[0])) {
      Node mean;
      mean.name = node.name + "/nhwc";
      mean.op_type = "ReduceMean";
      mean.inputs = {nhwc_of.at(node.inputs[0])};
      mean.outputs = {node.outputs[0] + "/nhwc"};
      mean.attributes = {ops::attr("keepdims", int64_t{1})};
      if (onnx_opset < 18) {
        mean.attributes.push_back(ops::attr("axes", std::vector<int64_t>{1, 2}));
      } else {  // axes moved to an input at 18
        out.push_back(constant(node.name + "/nhwc_axes", node.outputs[0] + "/nhwc_axes", Tensor::from_vector<int64_t>({2}, {1, 2})));
        mean.inputs.push_back(out.back().outputs[0]);
      }
      out.push_back(std::move(mean));
      produced(node.outputs[0], node.name.empty() ? node.outputs[0] : node.name);
      ++rewritten;
      continue;
    }
    // A 2-D MaxPool (without Indices) or AveragePool: com.tunnx:ChannelsLastPool on the NHWC value.
    if (is_onnx(node) && (node.op_type == "MaxPool" || node.op_type == "AveragePool") && node.inputs.size() == 1 &&
        node.outputs.size() == 1 && nhwc_of.count(node.inputs[0]) && ops::node_ints(node, "kernel_shape").size() == 2) {
      Node pool = node;
      pool.name = node.name + "/nhwc";
      pool.op_type = "ChannelsLastPool";
      pool.domain = kTunnxDomain;
      pool.attributes.push_back(ops::attr("op", node.op_type));
      pool.inputs = {nhwc_of.at(node.inputs[0])};
      pool.outputs = {node.outputs[0] + "/nhwc"};
      out.push_back(std::move(pool));
      produced(node.outputs[0], node.name.empty() ? node.outputs[0] : node.name);
      ++rewritten;
      continue;
    }
    std::optional<std::vector<float>> resize_scales;
    if (!all_twinned && nhwc_of.count(node.inputs.empty() ? "" : node.inputs[0])) {
      resize_scales = nhwc_resize_scales(node, facts);
      all_twinned = resize_scales.has_value();
    }
    if (!all_twinned) {
      out.push_back(std::move(node));
      continue;
    }
    Node twin = node;
    twin.name = node.name + "/nhwc";
    for (size_t i = 0; i < twin.inputs.size(); ++i)
      if (!((channel_split || resize_scales) && i > 0)) twin.inputs[i] = nhwc_of.at(twin.inputs[i]);
    if (resize_scales) {  // the scales for [N, H, W, C], from a Constant node made here
      out.push_back(constant(node.name + "/nhwc_scales", node.outputs[0] + "/nhwc_scales",
                             Tensor::from_vector<float>({4}, *resize_scales)));
      twin.inputs[2] = out.back().outputs[0];
    }
    if (channel_concat || channel_split)
      for (auto& a : twin.attributes)
        if (a.name == "axis") a.i = 3;
    std::vector<std::string> outputs = twin.outputs;
    for (auto& o : twin.outputs)
      if (!o.empty()) o += "/nhwc";
    out.push_back(std::move(twin));
    for (const auto& o : outputs)
      if (!o.empty()) produced(o, node.name.empty() ? o : node.name + ":" + o);
    ++rewritten;
  }
  // Drop the Transposes (made here) whose output nobody reads: the NCHW values only NHWC nodes used.
  std::unordered_set<std::string> read(graph.outputs.size());
  for (const auto& o : graph.outputs) read.insert(o.name);
  collect_reads(out, read);  // subgraphs read outer values by name
  std::vector<Node> kept;
  kept.reserve(out.size());
  for (auto& n : out) {
    const bool made_here = n.op_type == "Transpose" && n.name.size() > 8 && n.name.rfind("/to_nchw") == n.name.size() - 8;
    if (made_here && !read.count(n.outputs[0])) continue;
    kept.push_back(std::move(n));
  }
  graph.nodes = std::move(kept);
  return rewritten;
}

}  // namespace tunnx::ir
