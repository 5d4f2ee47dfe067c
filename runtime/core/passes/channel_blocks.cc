#include "runtime/core/passes/channel_blocks.h"

#include <algorithm>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "tunnx/status.h"
#include "runtime/core/ops/gradient.h"
#include "runtime/core/passes/fuse_linear.h"
#include "runtime/core/passes/graph_facts.h"

namespace tunnx::ir {
namespace {

// The NCHW dims of a channels-last value (its type, recorded by channels_last, reads [N, spatial...,
// C]), an unknown batch taken as 1; nothing where another dim is unknown.
std::optional<std::vector<int64_t>> nchw_dims(const GraphFacts& facts, const std::string& name) {
  auto it = facts.types.find(name);
  if (it == facts.types.end() || !it->second || !it->second->shape) return std::nullopt;
  const std::vector<Dim>& dims = it->second->shape->dims;
  if (dims.size() < 3 || dims.size() > 5) return std::nullopt;
  std::vector<int64_t> nhwc;
  for (size_t d = 0; d < dims.size(); ++d) {
    if (!dims[d].is_fixed() && d > 0) return std::nullopt;
    nhwc.push_back(dims[d].is_fixed() ? dims[d].value : 1);
  }
  return ops::nchw_of_channels_last(nhwc);
}

}  // namespace

int channel_blocks(Graph& graph, const ParameterStore& store,
                   const std::function<int64_t(const Node&, const ops::ConvGeometry&, bool writes)>& block_for) {
  if (!block_for) return 0;
  const GraphFacts facts(graph, store);
  // The blocks in which each channels-last FusedConv reading a channels-last X reads it and writes
  // Y, by node index (0: none).
  std::vector<int64_t> reads(graph.nodes.size(), 0), writes(graph.nodes.size(), 0);
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    const Node& n = graph.nodes[i];
    if (n.domain != kTunnxDomain || n.op_type != "FusedConv" || n.inputs.size() < 2 || n.outputs.size() != 1) continue;
    const std::optional<ops::FusedConvAttrs> attrs = ops::fused_conv_attrs(n, nullptr);
    if (!attrs || !attrs->channels_last || attrs->channels_first_source) continue;
    const std::optional<std::vector<int64_t>> x = nchw_dims(facts, n.inputs[0]);
    const std::optional<std::vector<int64_t>> w = facts.dims(n.inputs[1]);
    if (!x || !w) continue;
    std::optional<ops::ConvGeometry> g;
    try {
      g = ops::conv_geometry(ops::parse_conv_attrs(n), *x, *w, false, nullptr);
    } catch (const Error&) {
      continue;  // the kernel reports it
    }
    if (!g) continue;
    reads[i] = block_for(n, *g, false);
    writes[i] = block_for(n, *g, true);
  }
  // The convolution that reads each value as its X and names a block for it.
  std::unordered_map<std::string, size_t> x_reader;
  for (size_t b = 0; b < graph.nodes.size(); ++b)
    if (reads[b] > 0) x_reader.emplace(graph.nodes[b].inputs[0], b);
  int handed = 0;
  for (size_t a = 0; a < graph.nodes.size(); ++a) {
    const int64_t block = writes[a];
    const std::string& y = graph.nodes[a].outputs.empty() ? std::string() : graph.nodes[a].outputs[0];
    auto it = block > 0 && facts.private_value(y) ? x_reader.find(y) : x_reader.end();  // one reader, no graph output
    if (it == x_reader.end() || it->second == a || reads[it->second] != block) continue;
    Node& reader = graph.nodes[it->second];
    if (std::find(reader.inputs.begin() + 1, reader.inputs.end(), y) != reader.inputs.end()) continue;  // Z too
    graph.nodes[a].attributes.push_back(ops::attr("y_channel_block", block));
    reader.attributes.push_back(ops::attr("x_channel_block", block));
    ++handed;
  }
  return handed;
}

}  // namespace tunnx::ir
