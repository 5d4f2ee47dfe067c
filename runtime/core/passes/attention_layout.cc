#include "runtime/core/passes/attention_layout.h"

#include <optional>
#include <string>
#include <vector>

#include "runtime/core/ops/gradient.h"
#include "runtime/core/passes/graph_facts.h"

namespace tunnx::ir {
namespace {

bool is_swap_of_middle_dims(const Node& node) {
  return is_onnx_op(node, "Transpose", 1) && ops::node_ints(node, "perm") == std::vector<int64_t>{0, 2, 1, 3} &&
         only_attributes(node, {"perm"});
}

// The constant int64 shape of Reshape `node`, or nothing.
std::optional<std::vector<int64_t>> reshape_target(const Node& node, const GraphFacts& facts) {
  if (!is_onnx_op(node, "Reshape", 2) || !only_attributes(node, {"allowzero"})) return std::nullopt;
  const Tensor* shape = facts.constant(node.inputs[1]);
  if (!shape || shape->dtype() != DataType::kInt64 || shape->rank() != 1) return std::nullopt;
  return std::vector<int64_t>(shape->data_as<int64_t>(), shape->data_as<int64_t>() + shape->numel());
}

// One of Q, K, V as the exporter wrote it: [RotaryEmbedding <-] Transpose <- Reshape to [B, S, N, H].
struct Operand {
  std::string bsnh;           // the Reshape's output, [B, S, N, H]
  int64_t heads = 0;          // N
  size_t transpose = 0;       // node indices
  std::optional<size_t> rotary;
};

std::optional<Operand> operand(const std::string& value, const GraphFacts& facts) {
  if (!facts.private_value(value)) return std::nullopt;
  Operand op;
  const Node* node = facts.produced_by(value);
  if (node && is_onnx(*node) && node->op_type == "RotaryEmbedding" && node->outputs.size() == 1 &&
      !node->inputs.empty() && only_attributes(*node, {"interleaved", "rotary_embedding_dim"})) {
    op.rotary = facts.producer.at(value);
    if (!facts.private_value(node->inputs[0])) return std::nullopt;
    node = facts.produced_by(node->inputs[0]);
  }
  if (!node || !is_swap_of_middle_dims(*node)) return std::nullopt;
  op.transpose = facts.producer.at(node->outputs[0]);
  const Node* reshape = facts.produced_by(node->inputs[0]);
  if (!reshape) return std::nullopt;
  const std::optional<std::vector<int64_t>> target = reshape_target(*reshape, facts);
  if (!target || target->size() != 4 || (*target)[2] <= 0) return std::nullopt;
  op.bsnh = node->inputs[0];
  op.heads = (*target)[2];
  return op;
}

}  // namespace

int attention_heads_last(Graph& graph, const ParameterStore& store) {
  if (!has_op_type(graph, {"Attention"})) return 0;
  const GraphFacts facts(graph, store);
  // What each node index becomes: itself (not listed), nothing, or the nodes listed.
  std::vector<std::optional<std::vector<Node>>> replaced(graph.nodes.size());
  std::vector<std::pair<size_t, std::string>> rewired;  // final Reshapes and the 3-D Y they read
  int rewritten = 0;
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    const Node& attention = graph.nodes[i];
    const bool fused = attention.domain == "com.tunnx";  // passes/fuse_attention.h
    if ((!is_onnx(attention) && !fused) || attention.op_type != "Attention" || attention.inputs.size() < 3 ||
        attention.inputs.size() > 4 || attention.outputs.size() != 1 || attention.outputs[0].empty() ||
        attention.attribute("q_num_heads") || attention.attribute("kv_num_heads"))
      continue;
    std::vector<Operand> qkv;
    for (size_t s = 0; s < 3; ++s)
      if (std::optional<Operand> op = operand(attention.inputs[s], facts)) qkv.push_back(std::move(*op));
    if (qkv.size() != 3 || qkv[1].heads != qkv[2].heads) continue;
    // Y [B, N, S, Hv] -> Transpose -> Reshape to [B, S, N * Hv]: the Reshape reads the 3-D Y as is,
    // which holds the same values in the same order, unless a 0 in its shape copied dim 2 or 3.
    const std::string& y = attention.outputs[0];
    const int t = reader_of(graph, y, i);
    if (t < 0 || !facts.private_value(y) || !is_swap_of_middle_dims(graph.nodes[static_cast<size_t>(t)])) continue;
    const std::string& y_bsnh = graph.nodes[static_cast<size_t>(t)].outputs[0];
    const int r = reader_of(graph, y_bsnh, static_cast<size_t>(t));
    if (r < 0 || !facts.private_value(y_bsnh)) continue;
    const Node& final_reshape = graph.nodes[static_cast<size_t>(r)];
    const std::optional<std::vector<int64_t>> target = reshape_target(final_reshape, facts);
    if (!target || final_reshape.inputs[0] != y_bsnh) continue;
    bool copies_inner_dim = false;
    for (size_t d = 2; d < target->size(); ++d) copies_inner_dim |= (*target)[d] == 0;
    if (copies_inner_dim && ops::node_int(final_reshape, "allowzero", 0) == 0) continue;

    Node heads_last = attention;
    for (size_t s = 0; s < 3; ++s) {
      const Operand& op = qkv[s];
      const std::string bsd = op.bsnh + "/bsd" + std::to_string(s);
      std::vector<Node> view;
      view.push_back(ops::make_node(bsd + "_shape", "Constant", {}, bsd + "_shape",
                                    {ops::attr_tensor("value", Tensor::from_vector<int64_t>({3}, {0, 0, -1}))}));
      view.push_back(ops::make_node(bsd + "_view", "Reshape", {op.bsnh, bsd + "_shape"}, bsd, {}));
      replaced[op.transpose] = std::move(view);
      std::string input = bsd;
      if (op.rotary) {
        Node rotary = graph.nodes[*op.rotary];
        rotary.inputs[0] = bsd;
        rotary.outputs[0] += "/bsd";
        rotary.attributes.push_back(ops::attr("num_heads", op.heads));
        input = rotary.outputs[0];
        replaced[*op.rotary] = std::vector<Node>{std::move(rotary)};
      }
      heads_last.inputs[s] = input;
    }
    heads_last.attributes.push_back(ops::attr("q_num_heads", qkv[0].heads));
    heads_last.attributes.push_back(ops::attr("kv_num_heads", qkv[1].heads));
    heads_last.outputs[0] = y + "/bsd";
    rewired.emplace_back(static_cast<size_t>(r), heads_last.outputs[0]);
    replaced[i] = std::vector<Node>{std::move(heads_last)};
    replaced[static_cast<size_t>(t)] = std::vector<Node>{};
    ++rewritten;
  }
  for (const auto& [index, y3] : rewired) graph.nodes[index].inputs[0] = y3;
  replace_nodes(graph, std::move(replaced));
  return rewritten;
}

}  // namespace tunnx::ir
