#include "runtime/core/passes/lower_contrib_ops.h"

#include <cstdint>
#include <limits>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "runtime/core/ops/gradient.h"
#include "runtime/core/passes/fuse_linear.h"
#include "runtime/core/passes/graph_facts.h"
#include "tunnx/status.h"

namespace tunnx::ir {
namespace {

constexpr const char* kMicrosoft = "com.microsoft";

// Appends one contrib node's replacement, naming new values after the node's first output.
class Emitter {
 public:
  Emitter(const Node& node, std::vector<Node>& out) : node_(node), out_(out) {
    prefix_ = (node.name.empty() ? node.outputs.at(0) : node.name) + "/lowered";
  }

  std::string fresh() { return prefix_ + "/" + std::to_string(count_++); }

  // Adds `op` (ai.onnx unless `domain`) reading `inputs` into `output` (fresh when empty); returns it.
  std::string add(const std::string& op, std::vector<std::string> inputs, std::string output = "",
                  std::vector<Attribute> attrs = {}, const std::string& domain = "") {
    if (output.empty()) output = fresh();
    Node n = ops::make_node(prefix_ + "/" + op + std::to_string(count_++), op, std::move(inputs), output, std::move(attrs));
    n.domain = domain;
    out_.push_back(std::move(n));
    return output;
  }

  std::string constant(float value) {
    return add("Constant", {}, "", {ops::attr_tensor("value", Tensor::from_vector<float>({}, {value}))});
  }
  std::string constant(std::vector<int64_t> values, bool scalar = false) {
    const std::vector<int64_t> dims = scalar ? std::vector<int64_t>{} : std::vector<int64_t>{static_cast<int64_t>(values.size())};
    return add("Constant", {}, "", {ops::attr_tensor("value", Tensor::from_vector<int64_t>(dims, values))});
  }

  // x.shape[from:to] as a 1-D int64 tensor.
  std::string dims(const std::string& x, int64_t from, int64_t to) {
    return add("Slice", {add("Shape", {x}), constant(std::vector<int64_t>{from}), constant(std::vector<int64_t>{to})});
  }

  // Unsqueeze at `axes`: the attribute before opset 13, the input from 13.
  std::string unsqueeze(const std::string& x, const std::vector<int64_t>& axes, int64_t onnx_opset) {
    if (onnx_opset >= 13) return add("Unsqueeze", {x, constant(axes)});
    return add("Unsqueeze", {x}, "", {ops::attr("axes", axes)});
  }

  Error error(const std::string& what) const {
    return Error(ErrorCode::kUnsupported, what, {.node = node_.name.empty() ? "<unnamed>" : node_.name, .op_type = node_.op_type});
  }

 private:
  const Node& node_;
  std::vector<Node>& out_;
  std::string prefix_;
  int count_ = 0;
};

std::string input(const Node& n, size_t i) { return i < n.inputs.size() ? n.inputs[i] : ""; }
std::string output(const Node& n, size_t i) { return i < n.outputs.size() ? n.outputs[i] : ""; }

// y = activation(x) for FusedGemm's and FusedConv's activation names; `params` as ORT orders them
// (LeakyRelu alpha; HardSigmoid alpha, beta; Clip min, max), missing ones at the op's defaults.
void activation(Emitter& e, const std::string& kind, const std::vector<float>& params, const std::string& x,
                const std::string& y, int64_t onnx_opset) {
  auto param = [&](size_t i, float fallback) { return i < params.size() ? params[i] : fallback; };
  if (kind.empty()) e.add("Identity", {x}, y);
  else if (kind == "Relu" || kind == "Sigmoid" || kind == "Tanh") e.add(kind, {x}, y);
  else if (kind == "LeakyRelu") e.add("LeakyRelu", {x}, y, {ops::attr("alpha", param(0, 0.01f))});
  else if (kind == "HardSigmoid")
    e.add("HardSigmoid", {x}, y, {ops::attr("alpha", param(0, 0.2f)), ops::attr("beta", param(1, 0.5f))});
  else if (kind == "Clip") {
    const float lo = param(0, -std::numeric_limits<float>::infinity()), hi = param(1, std::numeric_limits<float>::infinity());
    if (onnx_opset >= 11) e.add("Clip", {x, e.constant(lo), e.constant(hi)}, y);
    else e.add("Clip", {x}, y, {ops::attr("min", lo), ops::attr("max", hi)});
  } else {
    throw e.error("activation '" + kind + "' is not one tunnx lowers (Relu, LeakyRelu, Sigmoid, Tanh, HardSigmoid, Clip)");
  }
}

// The attributes of `node` except `dropped`.
std::vector<Attribute> attributes_without(const Node& node, const std::vector<std::string>& dropped) {
  std::vector<Attribute> kept;
  for (const auto& a : node.attributes) {
    bool drop = false;
    for (const auto& d : dropped) drop = drop || a.name == d;
    if (!drop) kept.push_back(a);
  }
  return kept;
}

// (A - a_zp)(B - b_zp) * a_scale * b_scale [+ bias] into `y`.
void integer_product_to_float(Emitter& e, const std::string& a, const std::string& b, const std::string& a_scale,
                              const std::string& b_scale, const std::string& a_zp, const std::string& b_zp,
                              const std::string& bias, const std::string& y) {
  const std::string product = e.add("MatMulInteger", {a, b, a_zp, b_zp});
  const std::string as_float = e.add("Cast", {product}, "", {ops::attr("to", int64_t{1})});
  const std::string scale = e.add("Mul", {a_scale, b_scale});
  if (bias.empty()) {
    e.add("Mul", {as_float, scale}, y);
    return;
  }
  e.add("Add", {e.add("Mul", {as_float, scale}), bias}, y);
}

// [B, S, hidden] -> [B, heads, S, hidden / heads].
std::string split_heads(Emitter& e, const std::string& x, int64_t heads) {
  return e.add("Transpose", {e.add("Reshape", {x, e.constant({0, 0, heads, -1})})}, "",
               {ops::attr("perm", std::vector<int64_t>{0, 2, 1, 3})});
}

// What Attention and MultiHeadAttention share once Q, K, V are [B, H, S|T, D]: scores Q K^T * scale
// (the `scale` attribute, else 1/sqrt(D)) plus `attention_bias`, with mask_filter_value (-10000)
// added where `mask` (rank `mask_rank`: key lengths [B], or 0/1 [B, T] or [B, S, T]) hides a key;
// when unidirectional, a key after the query's position (`causal_offset` keys, the past, come first;
// T - S when empty) gets the lowest float instead, as ONNX Runtime's CPU kernels write it whatever
// mask_filter_value says. Softmax over the keys, times V, heads merged into `output` [B, S, H * Dv];
// `scores_output` (when named) is the scores before the softmax, [B, H, S, T].
struct Attend {
  std::string q, k, v, mask;
  std::optional<size_t> mask_rank;
  std::string attention_bias, causal_offset, output, scores_output;
};

void attend(const Node& n, Emitter& e, int64_t onnx_opset, const Attend& a) {
  std::string scale;
  if (const Attribute* s = n.attribute("scale"); s && s->f != 0.0f) {
    scale = e.constant(s->f);
  } else {
    const std::string d = e.add("Cast", {e.add("Gather", {e.add("Shape", {a.q}), e.constant({3}, true)})}, "",
                                {ops::attr("to", int64_t{1})});
    scale = e.add("Reciprocal", {e.add("Sqrt", {d})});
  }
  const std::string kt = e.add("Transpose", {a.k}, "", {ops::attr("perm", std::vector<int64_t>{0, 1, 3, 2})});
  std::string scores = e.add("Mul", {e.add("MatMul", {a.q, kt}), scale});
  if (!a.attention_bias.empty()) scores = e.add("Add", {scores, a.attention_bias});
  const float filter = ops::node_float(n, "mask_filter_value", -10000.0f);
  auto positions = [&](const std::string& of) {  // Range(0, of.shape[2]) and the length
    const std::string length = e.add("Gather", {e.add("Shape", {of}), e.constant({2}, true)});
    return std::make_pair(e.add("Range", {e.constant({0}, true), length, e.constant({1}, true)}), length);
  };
  if (!a.mask.empty()) {
    if (!a.mask_rank || *a.mask_rank < 1 || *a.mask_rank > 3)
      throw e.error("the mask must be declared as [B] key lengths, [B, T] or [B, S, T] (its rank is " +
                    (a.mask_rank ? std::to_string(*a.mask_rank) : std::string("unknown")) + ")");
    std::string visible;  // 1 where a key is seen, broadcast to [B, H, S, T]
    if (*a.mask_rank == 1) {
      const std::string keys = positions(a.k).first;
      const std::string lengths = e.unsqueeze(e.add("Cast", {a.mask}, "", {ops::attr("to", int64_t{7})}), {1}, onnx_opset);
      visible = e.add("Cast", {e.add("Less", {keys, lengths})}, "", {ops::attr("to", int64_t{1})});
      visible = e.unsqueeze(visible, {1, 2}, onnx_opset);
    } else {
      visible = e.add("Cast", {a.mask}, "", {ops::attr("to", int64_t{1})});
      visible = e.unsqueeze(visible, *a.mask_rank == 3 ? std::vector<int64_t>{1} : std::vector<int64_t>{1, 2}, onnx_opset);
    }
    const std::string hidden_keys = e.add("Sub", {e.constant(1.0f), visible});
    scores = e.add("Add", {scores, e.add("Mul", {hidden_keys, e.constant(filter)})});
  }
  if (ops::node_int(n, "unidirectional", 0) != 0) {
    const auto [keys, total] = positions(a.k);
    const auto [queries, count] = positions(a.q);
    const std::string offset = a.causal_offset.empty() ? e.add("Sub", {total, count}) : a.causal_offset;
    const std::string rows = e.unsqueeze(e.add("Add", {queries, offset}), {1}, onnx_opset);
    // ONNX Runtime's CPU kernels never mask the last query row. In self-attention (T = P + S) that row
    // sees every key anyway; in cross-attention it is what ONNX Runtime answers, so tunnx answers the same.
    const std::string last = e.add("Sub", {count, e.constant({1}, true)});
    const std::string not_last = e.unsqueeze(e.add("Less", {queries, last}), {1}, onnx_opset);
    const std::string later = e.add("And", {e.add("Greater", {keys, rows}), not_last});
    scores = e.add("Where", {later, e.constant(std::numeric_limits<float>::lowest()), scores});
  }
  if (!a.scores_output.empty()) e.add("Identity", {scores}, a.scores_output);
  const std::string probs = e.add("Softmax", {scores}, "", {ops::attr("axis", int64_t{-1})});
  const std::string merged = e.add("Transpose", {e.add("MatMul", {probs, a.v})}, "",
                                   {ops::attr("perm", std::vector<int64_t>{0, 2, 1, 3})});
  e.add("Reshape", {merged, e.constant({0, 0, -1})}, a.output);
}

int64_t num_heads(const Node& n, Emitter& e) {
  const int64_t heads = ops::node_int(n, "num_heads", 0);
  if (heads <= 0) throw e.error("num_heads must be positive");
  return heads;
}

// com.microsoft Attention: Q, K, V = input @ weights + bias split by qkv_hidden_sizes (equal thirds by
// default); K and V after `past` [2, B, H, P, D] when given (`present` is both, stacked); then attend.
void lower_attention(const Node& n, Emitter& e, int64_t onnx_opset, std::optional<size_t> mask_rank) {
  const int64_t heads = num_heads(n, e);
  if (ops::node_int(n, "do_rotary", 0) != 0) throw e.error("do_rotary is not supported");
  if (!input(n, 6).empty()) throw e.error("past_sequence_length is not supported");
  const std::vector<int64_t> sizes = ops::node_ints(n, "qkv_hidden_sizes", {});
  const std::string qkv = e.add("MatMul", {input(n, 0), input(n, 1)});
  const std::string projected = input(n, 2).empty() ? qkv : e.add("Add", {qkv, input(n, 2)});
  // The three parts along the last axis: [0, q), [q, q + k), [q + k, end).
  std::vector<std::string> parts;
  if (sizes.size() == 3) {
    const int64_t bounds[4] = {0, sizes[0], sizes[0] + sizes[1], sizes[0] + sizes[1] + sizes[2]};
    for (int i = 0; i < 3; ++i)
      parts.push_back(e.add("Slice", {projected, e.constant(std::vector<int64_t>{bounds[i]}),
                                      e.constant(std::vector<int64_t>{bounds[i + 1]}), e.constant(std::vector<int64_t>{-1})}));
  } else if (sizes.empty()) {
    // Equal thirds: [B, S, 3 * hidden] -> [B, S, 3, hidden], one Gather per part.
    const std::string thirds = e.add("Reshape", {projected, e.constant({0, 0, 3, -1})});
    for (int64_t i = 0; i < 3; ++i)
      parts.push_back(e.add("Gather", {thirds, e.constant({i}, true)}, "", {ops::attr("axis", int64_t{2})}));
  } else {
    throw e.error("qkv_hidden_sizes must have 3 values");
  }
  const std::string q = split_heads(e, parts[0], heads);
  std::string k = split_heads(e, parts[1], heads), v = split_heads(e, parts[2], heads);
  if (!input(n, 4).empty()) {
    const std::string past_k = e.add("Gather", {input(n, 4), e.constant({0}, true)}, "", {ops::attr("axis", int64_t{0})});
    const std::string past_v = e.add("Gather", {input(n, 4), e.constant({1}, true)}, "", {ops::attr("axis", int64_t{0})});
    k = e.add("Concat", {past_k, k}, "", {ops::attr("axis", int64_t{2})});
    v = e.add("Concat", {past_v, v}, "", {ops::attr("axis", int64_t{2})});
  }
  if (!output(n, 1).empty())
    e.add("Concat", {e.unsqueeze(k, {0}, onnx_opset), e.unsqueeze(v, {0}, onnx_opset)}, output(n, 1),
          {ops::attr("axis", int64_t{0})});
  attend(n, e, onnx_opset, {.q = q, .k = k, .v = v, .mask = input(n, 3), .mask_rank = mask_rank,
                            .attention_bias = input(n, 5), .causal_offset = "", .output = output(n, 0), .scores_output = ""});
}

// com.microsoft MultiHeadAttention. The ranks tell which layout Q, K, V come in:
//   separate    query [B, S, D], key [B, L, D], value [B, L, Dv]
//   packed QKV  query [B, S, N, 3, H], key and value absent
//   packed KV   query [B, S, D], key [B, L, N, 2, H], value absent
//   BNSH KV     query [B, S, D], key [B, N, L, H], value [B, N, L, Hv]: a cross-attention cache, used as is
// bias [D + D + Dv] adds to each part; with BNSH KV only its query part (ONNX Runtime ignores the rest),
// packed KV takes none. key_padding_mask [B] (or [3B + 2], whose first B are the key lengths), [B, T] or
// [B, S, T]. past_key / past_value [B, N, P, H] come before this step's keys; with past_sequence_length
// they are one buffer [B, N, M, H] whose first P rows are filled: this step's keys are written from row P
// and attention sees P + L of them. present_key / present_value are the keys and values attended (the
// buffer, M rows, when shared); qk the scores before the softmax. cache_indirection is refused by name.
struct MhaRanks {
  std::optional<size_t> query, key, value, mask;
};

void lower_multi_head_attention(const Node& n, Emitter& e, int64_t onnx_opset, const MhaRanks& rank) {
  const int64_t heads = num_heads(n, e);
  auto rank_text = [](std::optional<size_t> r) { return r ? std::to_string(*r) : std::string("unknown"); };
  const bool has_key = !input(n, 1).empty(), has_value = !input(n, 2).empty(), has_bias = !input(n, 3).empty();
  const bool has_past = !input(n, 6).empty() || !input(n, 7).empty(), shared_past = !input(n, 8).empty();
  if (!input(n, 9).empty())
    throw e.error("cache_indirection (beam search reading other beams' past keys) is not supported");
  for (size_t i = 10; i < n.inputs.size(); ++i)
    if (!n.inputs[i].empty()) throw e.error("input " + std::to_string(i) + " is not one MultiHeadAttention defines");
  if (has_past && (input(n, 6).empty() || input(n, 7).empty()))
    throw e.error("past_key and past_value must be given together");
  if (shared_past && !has_past) throw e.error("past_sequence_length needs past_key and past_value");
  auto gather = [&](const std::string& x, int64_t i, int64_t axis) {
    return e.add("Gather", {x, e.constant({i}, true)}, "", {ops::attr("axis", axis)});
  };
  auto to_bnsh = [&](const std::string& x) {  // [B, L, N, H] -> [B, N, L, H]
    return e.add("Transpose", {x}, "", {ops::attr("perm", std::vector<int64_t>{0, 2, 1, 3})});
  };
  std::string query = input(n, 0), key, value;  // [B, S|L, D] each, or key/value empty with k/v set
  std::string k, v;                              // [B, N, L, H]
  if (!has_key) {
    if (has_value) throw e.error("value is given without key");
    if (rank.query != 5)
      throw e.error("without key, query must be packed QKV [B, S, N, 3, H] (its rank is " + rank_text(rank.query) +
                    "; [B, S, 3 * D] is not a layout MultiHeadAttention takes)");
    auto unpack = [&](int64_t i) { return e.add("Reshape", {gather(query, i, 3), e.constant({0, 0, -1})}); };
    key = unpack(1);
    value = unpack(2);
    query = unpack(0);
  } else {
    if (rank.query && *rank.query != 3)
      throw e.error("query must be [B, S, D] when key is given (its rank is " + rank_text(rank.query) + ")");
    if (rank.key == 3) {
      if (!has_value) throw e.error("value is missing (only a packed KV key [B, L, N, 2, H] comes without value)");
      key = input(n, 1);
      value = input(n, 2);
    } else if (rank.key == 5) {
      if (has_value) throw e.error("value must be absent when key is packed KV [B, L, N, 2, H]");
      if (has_bias) throw e.error("bias with packed KV is not supported (ONNX Runtime takes none)");
      k = to_bnsh(gather(input(n, 1), 0, 3));
      v = to_bnsh(gather(input(n, 1), 1, 3));
    } else if (rank.key == 4) {
      if (rank.value != 4)
        throw e.error("value must be [B, N, L, Hv] when key is [B, N, L, H] (its rank is " + rank_text(rank.value) + ")");
      if (has_past)
        throw e.error("past_key/past_value with key and value already [B, N, L, H] are not supported "
                      "(ONNX Runtime refuses them too)");
      k = input(n, 1);
      v = input(n, 2);
    } else {
      throw e.error("key must be declared [B, L, D], [B, L, N, 2, H] or [B, N, L, H] (its rank is " +
                    rank_text(rank.key) + ")");
    }
  }
  if (has_bias) {
    // bias = [bq (D), bk (D), bv (Dv)], with D = query's last dim.
    const std::string d = e.dims(query, -1, INT64_MAX), two_d = e.add("Add", {d, d});
    auto part = [&](const std::string& from, const std::string& to) { return e.add("Slice", {input(n, 3), from, to}); };
    query = e.add("Add", {query, part(e.constant(std::vector<int64_t>{0}), d)});
    if (!key.empty()) {  // BNSH KV: ONNX Runtime adds the query's part only
      key = e.add("Add", {key, part(d, two_d)});
      value = e.add("Add", {value, part(two_d, e.constant(std::vector<int64_t>{INT64_MAX}))});
    }
  }
  const std::string q = split_heads(e, query, heads);
  if (!key.empty()) {
    k = split_heads(e, key, heads);
    v = split_heads(e, value, heads);
  }
  std::string past_length;  // [1], the keys before this step's
  const std::string zero = e.constant(std::vector<int64_t>{0}), seq_axis = e.constant(std::vector<int64_t>{2});
  if (shared_past) {
    past_length = e.add("Cast", {e.add("Reshape", {input(n, 8), e.constant(std::vector<int64_t>{1})})}, "",
                        {ops::attr("to", int64_t{7})});
    const std::string end = e.add("Add", {past_length, e.dims(k, 2, 3)});
    const std::string rest = e.constant(std::vector<int64_t>{INT64_MAX});
    // The buffer with rows [P, P + L) replaced (`present`); its first P + L rows attended.
    auto write = [&](const std::string& buffer, const std::string& now, const std::string& present) {
      const std::string before = e.add("Slice", {buffer, zero, past_length, seq_axis});
      const std::string after = e.add("Slice", {buffer, end, rest, seq_axis});
      const std::string full = e.add("Concat", {before, now, after}, present, {ops::attr("axis", int64_t{2})});
      return e.add("Slice", {full, zero, end, seq_axis});
    };
    k = write(input(n, 6), k, output(n, 1));
    v = write(input(n, 7), v, output(n, 2));
  } else {
    past_length = zero;
    if (has_past) {
      past_length = e.dims(input(n, 6), 2, 3);
      k = e.add("Concat", {input(n, 6), k}, "", {ops::attr("axis", int64_t{2})});
      v = e.add("Concat", {input(n, 7), v}, "", {ops::attr("axis", int64_t{2})});
    }
    if (!output(n, 1).empty()) e.add("Identity", {k}, output(n, 1));
    if (!output(n, 2).empty()) e.add("Identity", {v}, output(n, 2));
  }
  std::string mask = input(n, 4);
  if (!mask.empty() && rank.mask == 1)  // [B] or [3B + 2]: the first B are the key lengths
    mask = e.add("Slice", {mask, zero, e.dims(q, 0, 1)});
  attend(n, e, onnx_opset, {.q = q, .k = k, .v = v, .mask = mask, .mask_rank = rank.mask, .attention_bias = input(n, 5),
                            .causal_offset = past_length, .output = output(n, 0), .scores_output = output(n, 3)});
}

// The rank `graph` declares or inferred for `name`, if it knows it.
std::optional<size_t> rank_of(const Graph& graph, const std::string& name) {
  auto rank = [](const TypeInfo& t) -> std::optional<size_t> {
    if (t.kind != TypeInfo::Kind::kTensor || !t.shape) return std::nullopt;
    return t.shape->dims.size();
  };
  for (const auto* values : {&graph.inputs, &graph.value_infos, &graph.outputs})
    for (const auto& v : *values)
      if (v.name == name) return rank(v.type);
  if (auto it = graph.inferred_types.find(name); it != graph.inferred_types.end()) return rank(it->second);
  return std::nullopt;
}

// com.microsoft EmbedLayerNormalization: word + position (position_ids, or 0..S-1) [+ segment]
// embeddings of the ids, LayerNorm over the hidden axis with gamma, beta, epsilon; mask_index is the
// mask's row sums (its key lengths; zeros without a mask); embedding_sum the sum before the norm.
void lower_embed_layer_norm(const Node& n, Emitter& e, int64_t onnx_opset) {
  auto gather = [&](const std::string& table, const std::string& ids) { return e.add("Gather", {table, ids}); };
  std::string positions = input(n, 8);
  if (positions.empty()) {
    const std::string length = e.add("Gather", {e.add("Shape", {input(n, 0)}), e.constant({1}, true)});
    positions = e.unsqueeze(e.add("Range", {e.constant({0}, true), length, e.constant({1}, true)}), {0}, onnx_opset);
  }
  std::string sum = e.add("Add", {gather(input(n, 2), input(n, 0)), gather(input(n, 3), positions)});
  if (!input(n, 1).empty() && !input(n, 4).empty())
    sum = e.add("Add", {sum, gather(input(n, 4), input(n, 1))}, "");
  if (!output(n, 2).empty()) e.add("Identity", {sum}, output(n, 2));
  std::vector<std::string> norm_inputs = {sum, input(n, 5)};
  if (!input(n, 6).empty()) norm_inputs.push_back(input(n, 6));
  e.add("LayerNormalization", norm_inputs, output(n, 0),
        {ops::attr("axis", int64_t{-1}), ops::attr("epsilon", ops::node_float(n, "epsilon", 1e-12f))}, kTunnxDomain);
  if (output(n, 1).empty()) return;
  if (input(n, 7).empty()) {
    const std::string batch = e.add("Slice", {e.add("Shape", {input(n, 0)}), e.constant(std::vector<int64_t>{0}),
                                              e.constant(std::vector<int64_t>{1})});
    e.add("ConstantOfShape", {batch}, output(n, 1), {ops::attr_tensor("value", Tensor::from_vector<int32_t>({1}, {0}))});
    return;
  }
  const std::string mask = e.add("Cast", {input(n, 7)}, "", {ops::attr("to", int64_t{6})});
  if (onnx_opset >= 13) e.add("ReduceSum", {mask, e.constant(std::vector<int64_t>{1})}, output(n, 1), {ops::attr("keepdims", int64_t{0})});
  else e.add("ReduceSum", {mask}, output(n, 1), {ops::attr("axes", std::vector<int64_t>{1}), ops::attr("keepdims", int64_t{0})});
}

// Appends the replacement of `n` to `out`; false when `n` is not an op this pass lowers.
bool lower(const Node& n, const Graph& graph, int64_t onnx_opset, std::vector<Node>& out) {
  const bool microsoft = n.domain == kMicrosoft;
  const bool onnx_contrib_layer_norm = is_onnx(n) && n.op_type == "LayerNormalization" && onnx_opset < 17;
  if (!microsoft && !onnx_contrib_layer_norm) return false;
  const std::string& op = n.op_type;
  Emitter e(n, out);
  auto gelu = [&](const std::string& x, const std::string& approximate) {
    e.add("Gelu", {x}, output(n, 0), {ops::attr("approximate", approximate)}, kTunnxDomain);
  };
  if (op == "Gelu") {
    gelu(input(n, 0), "none");
  } else if (op == "FastGelu") {
    gelu(input(n, 1).empty() ? input(n, 0) : e.add("Add", {input(n, 0), input(n, 1)}), "tanh");
  } else if (op == "BiasGelu") {
    gelu(e.add("Add", {input(n, 0), input(n, 1)}), "none");
  } else if (op == "QuickGelu") {
    const std::string scaled = e.add("Mul", {input(n, 0), e.constant(ops::node_float(n, "alpha", 1.702f))});
    e.add("Mul", {input(n, 0), e.add("Sigmoid", {scaled})}, output(n, 0));
  } else if (op == "FusedGemm") {
    std::vector<Attribute> gemm = attributes_without(
        n, {"activation", "activation_alpha", "activation_beta", "activation_gamma", "leaky_relu_alpha"});
    std::vector<std::string> inputs = {input(n, 0), input(n, 1)};
    if (!input(n, 2).empty()) inputs.push_back(input(n, 2));
    const std::string product = e.add("Gemm", inputs, "", std::move(gemm));
    std::vector<float> params;
    for (const char* name : {"activation_alpha", "activation_beta"})
      if (const Attribute* a = n.attribute(name)) params.push_back(a->f);
    activation(e, ops::node_string(n, "activation", ""), params, product, output(n, 0), onnx_opset);
  } else if (op == "FusedConv") {
    std::vector<Attribute> conv = attributes_without(n, {"activation", "activation_params"});
    std::vector<std::string> inputs = {input(n, 0), input(n, 1)};
    if (!input(n, 2).empty()) inputs.push_back(input(n, 2));
    std::string y = e.add("Conv", inputs, "", std::move(conv));
    if (!input(n, 3).empty()) y = e.add("Add", {y, input(n, 3)});
    std::vector<float> params;
    if (const Attribute* a = n.attribute("activation_params")) params = a->floats;
    activation(e, ops::node_string(n, "activation", ""), params, y, output(n, 0), onnx_opset);
  } else if (op == "SkipLayerNormalization") {
    const bool has_bias = !input(n, 4).empty();
    std::string sum = e.add("Add", {input(n, 0), input(n, 1)}, has_bias ? "" : output(n, 3));
    if (has_bias) sum = e.add("Add", {sum, input(n, 4)}, output(n, 3));
    std::vector<std::string> inputs = {sum, input(n, 2)};
    if (!input(n, 3).empty()) inputs.push_back(input(n, 3));
    e.add("LayerNormalization", inputs, output(n, 0),
          {ops::attr("axis", int64_t{-1}), ops::attr("epsilon", ops::node_float(n, "epsilon", 1e-12f))}, kTunnxDomain);
    // Mean and inverse standard deviation, when the node names them: a second LayerNormalization's.
    if (!output(n, 1).empty() || !output(n, 2).empty()) {
      out.back().outputs = {output(n, 0), output(n, 1), output(n, 2)};
    }
  } else if (op == "LayerNormalization") {
    Node copy = n;
    copy.domain = kTunnxDomain;
    out.push_back(std::move(copy));
  } else if (op == "QuantizeLinear" || op == "DequantizeLinear") {
    // ONNX Runtime's quantizer writes these below opset 21 for int4/int16 (and uint4/uint16) data:
    // ONNX's own ops with those types, which tunnx's kernels take at every opset.
    Node copy = n;
    copy.domain.clear();
    out.push_back(std::move(copy));
  } else if (op == "Attention") {
    lower_attention(n, e, onnx_opset, input(n, 3).empty() ? std::nullopt : rank_of(graph, input(n, 3)));
  } else if (op == "MultiHeadAttention") {
    auto rank = [&](size_t i) { return input(n, i).empty() ? std::nullopt : rank_of(graph, input(n, i)); };
    lower_multi_head_attention(n, e, onnx_opset, {.query = rank(0), .key = rank(1), .value = rank(2), .mask = rank(4)});
  } else if (op == "EmbedLayerNormalization") {
    lower_embed_layer_norm(n, e, onnx_opset);
  } else if (op == "MatMulIntegerToFloat") {
    integer_product_to_float(e, input(n, 0), input(n, 1), input(n, 2), input(n, 3), input(n, 4), input(n, 5),
                             input(n, 6), output(n, 0));
  } else if (op == "DynamicQuantizeMatMul") {
    const std::string q = e.fresh(), scale = e.fresh(), zero_point = e.fresh();
    Node quantize = ops::make_node(e.fresh(), "DynamicQuantizeLinear", {input(n, 0)}, q);
    quantize.outputs = {q, scale, zero_point};
    out.push_back(std::move(quantize));
    integer_product_to_float(e, q, input(n, 1), scale, input(n, 2), zero_point, input(n, 3), input(n, 4), output(n, 0));
  } else {
    return false;  // a contrib op tunnx does not lower: planning names it
  }
  return true;
}

int lower_in(Graph& graph, int64_t onnx_opset) {
  int lowered = 0;
  std::vector<Node> nodes;
  nodes.reserve(graph.nodes.size());
  for (auto& n : graph.nodes) {
    for (auto& attr : n.attributes) {
      if (attr.g) lowered += lower_in(*attr.g, onnx_opset);
      for (auto& sub : attr.graphs) lowered += lower_in(*sub, onnx_opset);
    }
    if (lower(n, graph, onnx_opset, nodes)) ++lowered;  // appends nothing when it returns false
    else nodes.push_back(std::move(n));
  }
  graph.nodes = std::move(nodes);
  return lowered;
}

}  // namespace

int lower_contrib_ops(Graph& graph, int64_t onnx_opset) { return lower_in(graph, onnx_opset); }

}  // namespace tunnx::ir
