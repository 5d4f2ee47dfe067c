// The channel_blocks pass (runtime/core/passes/channel_blocks.cc): a value one channels-last
// FusedConv writes and only another reads, as its X, is handed over in the block both kernels name
// (KernelDef::channel_block_for), and nothing else is: graph outputs, values with a second reader or
// read as a residual too, convolutions whose blocks differ or whose shapes are unknown.
#include <optional>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "runtime/core/graph.h"
#include "runtime/core/ops/conv_pool.h"
#include "runtime/core/ops/gradient.h"
#include "runtime/core/parameter_store.h"
#include "runtime/core/passes/channel_blocks.h"

namespace {

using namespace tunnx;

ir::TypeInfo tensor_type(const std::vector<Dim>& dims) { return ir::TypeInfo::tensor(DataType::kFloat32, Shape(dims)); }

// A channels-last 3x3 FusedConv from `x` to `y` with weight `w` (its type [out, in, 3, 3] recorded).
ir::Node conv(ir::Graph& g, const std::string& name, const std::string& x, const std::string& y, int64_t in, int64_t out,
              const std::string& activation = "") {
  const std::string w = name + ".w";
  g.inferred_types[w] = tensor_type({Dim::fixed(out), Dim::fixed(in), Dim::fixed(3), Dim::fixed(3)});
  return ir::Node{name,
                  "FusedConv",
                  "com.tunnx",
                  {x, w},
                  {y},
                  {ops::attr("kernel_shape", std::vector<int64_t>{3, 3}), ops::attr("pads", std::vector<int64_t>{1, 1, 1, 1}),
                   ops::attr("channels_last", int64_t{1}), ops::attr("activation", activation)},
                  ""};
}

void set_nhwc(ir::Graph& g, const std::string& value, Dim batch, int64_t side, int64_t channels) {
  g.inferred_types[value] = tensor_type({batch, Dim::fixed(side), Dim::fixed(side), Dim::fixed(channels)});
}

ir::ValueInfo output(const std::string& name, ir::TypeInfo type) {
  ir::ValueInfo v;
  v.name = name;
  v.type = std::move(type);
  return v;
}

int64_t attribute(const ir::Node& n, const char* name) {
  const ir::Attribute* a = n.attribute(name);
  return a ? a->i : 0;
}

// 16 for 3x3 convolutions of 16+ channels on 8x8 images or larger; writing, only without an
// activation but Relu (as the oneDNN kernel says for Winograd's).
int64_t block_for(const ir::Node& n, const ops::ConvGeometry& g, bool writes) {
  if (g.kernel != std::vector<int64_t>{3, 3} || g.in_channels % 16 || g.out_channels % 16 || g.grid[0] < 8) return 0;
  const ir::Attribute* act = n.attribute("activation");
  if (writes && act && !act->s.empty() && act->s != "Relu") return 0;
  return 16;
}

TEST(ChannelBlocks, HandsOnlyPrivateValuesBetweenConvolutionsThatTakeTheBlock) {
  ir::Graph g;
  const Dim n = Dim::symbolic("N");  // an unknown batch does not matter
  for (const char* v : {"x", "a", "b", "c", "d"}) set_nhwc(g, v, n, 16, 32);
  set_nhwc(g, "e", n, 16, 24);  // 24 channels: not whole blocks
  set_nhwc(g, "f", n, 4, 32);   // too small for the block
  g.nodes.push_back(conv(g, "c1", "x", "a", 32, 32, "Relu"));  // a: c2's alone -> handed
  g.nodes.push_back(conv(g, "c2", "a", "b", 32, 32, "Silu"));  // writes b with SiLU: no block
  g.nodes.push_back(conv(g, "c3", "b", "c", 32, 32));          // c: read by c4 and c5
  g.nodes.push_back(conv(g, "c4", "c", "d", 32, 32));          // d: a graph output
  g.nodes.push_back(conv(g, "c5", "c", "e", 32, 24));
  g.nodes.push_back(conv(g, "c6", "d", "y6", 32, 32));
  g.outputs.push_back(output("d", g.inferred_types["d"]));
  g.outputs.push_back(output("e", g.inferred_types["e"]));
  g.outputs.push_back(output("y6", g.inferred_types["d"]));
  const ParameterStore store;
  EXPECT_EQ(ir::channel_blocks(g, store, block_for), 1);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    EXPECT_EQ(attribute(g.nodes[i], "y_channel_block"), i == 0 ? 16 : 0) << g.nodes[i].name;
    EXPECT_EQ(attribute(g.nodes[i], "x_channel_block"), i == 1 ? 16 : 0) << g.nodes[i].name;
  }
  // Every FusedConv so marked still parses (ops/conv_pool.h checks the blocks).
  for (const ir::Node& node : g.nodes) EXPECT_TRUE(ops::fused_conv_attrs(node, nullptr).has_value()) << node.name;
}

TEST(ChannelBlocks, LeavesResidualsUnknownShapesAndNoKernelAlone) {
  ir::Graph g;
  set_nhwc(g, "x", Dim::fixed(1), 16, 32);
  set_nhwc(g, "a", Dim::fixed(1), 16, 32);
  g.nodes.push_back(conv(g, "c1", "x", "a", 32, 32));
  ir::Node reader = conv(g, "c2", "a", "b", 32, 32);  // reads a as X and as its residual Z
  reader.inputs.insert(reader.inputs.end(), {"", "", "", "", "", "a"});
  reader.attributes.push_back(ops::attr("has_residual", int64_t{1}));
  g.nodes.push_back(reader);
  g.nodes.push_back(conv(g, "c3", "b", "c", 32, 32));  // b's dims unknown
  g.nodes.push_back(conv(g, "c4", "c", "d", 32, 32));
  g.outputs.push_back(output("d", tensor_type({})));
  const ParameterStore store;
  EXPECT_EQ(ir::channel_blocks(g, store, block_for), 0);
  EXPECT_EQ(ir::channel_blocks(g, store, nullptr), 0);  // a kernel that names no block
}

}  // namespace
