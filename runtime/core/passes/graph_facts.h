// What the graph-rewrite passes (fuse_linear, fuse_gelu) know of a graph before they rewrite it:
// its initializers, value types and shapes, and how many nodes read each value.
#pragma once

#include <optional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <initializer_list>
#include <vector>

#include "runtime/core/graph.h"
#include "runtime/core/parameter_store.h"

namespace tunnx::ir {

bool is_onnx(const Node& node);  // the default domain ("" or "ai.onnx")
// An ai.onnx node `op` with `inputs` inputs (none empty) and one output: what a pattern's node must be.
bool is_onnx_op(const Node& node, const char* op, size_t inputs);
// Whether every attribute of `node` is one of `known` (or opset 1's memory hint consumed_inputs). A
// pass fuses only such nodes, so that a node with another attribute reaches its own kernel, which
// refuses it, instead of a fused node silently dropping it.
bool only_attributes(const Node& node, std::initializer_list<const char*> known);
// Whether a node of the main graph has one of the op types `ops` (any domain). A pass every pattern of
// which needs one of them returns at once without one, before it builds its GraphFacts: a pass over a
// graph of a few hundred nodes spent most of its time building them, and a session runs a dozen passes.
bool has_op_type(const Graph& graph, std::initializer_list<const char*> ops);

struct GraphFacts {
  const Graph& graph;
  const ParameterStore& store;
  std::unordered_map<std::string, const Initializer*> initializers;
  std::unordered_map<std::string, const TypeInfo*> types;
  std::unordered_map<std::string, int> readers;  // nodes (subgraphs included) that read each value
  std::unordered_set<std::string> outputs;
  // Tensors of the main graph's ONNX Constant nodes (`value`, `value_float`), by output name: torch
  // exports without constant folding keep GELU's 0.5, 1 and sqrt(2) there, not in initializers.
  std::unordered_map<std::string, const Tensor*> constant_nodes;
  std::unordered_map<std::string, Tensor> constant_floats;
  std::unordered_map<std::string, size_t> producer;  // main-graph node index of each value's producer

  // `enclosing`: for an If/Loop/Scan body, the graphs around it, innermost first; the initializers
  // and types of the values it reads from them count as its own where it does not define the name.
  GraphFacts(const Graph& g, const ParameterStore& s, const std::vector<const Graph*>& enclosing = {});

  const Tensor* constant(const std::string& name) const;  // the initializer's value, or null
  // The initializer's value, else the main graph's Constant node's, or null.
  const Tensor* constant_value(const std::string& name) const;
  // The values of a constant int64 of rank 0 or 1 (an initializer or a Constant node: axes, shapes), or nothing.
  std::optional<std::vector<int64_t>> constant_ints(const std::string& name) const;
  std::optional<DataType> dtype(const std::string& name) const;
  // Fixed dims of `name`, or nothing when any is unknown. An initializer that a graph input of the
  // same name may override is still taken as its initializer: a fed value must match its shape.
  std::optional<std::vector<int64_t>> dims(const std::string& name) const;
  // A value a rewrite may swallow: read by exactly one node and not returned by the graph.
  bool private_value(const std::string& name) const;
  // The scalar float32 initializer or Constant-node value `name` ("" means absent: `fallback`), or nothing.
  std::optional<float> scalar(const std::string& name, float fallback) const;
  // The main-graph node that makes `name`, or null (an input, an initializer, an outer value).
  const Node* produced_by(const std::string& name) const;
};

// Whether shape inference proves `a` and `b` have one shape: same rank, and at each position equal
// fixed sizes or one named symbol ("?" and unnamed dims prove nothing).
bool same_shape(const GraphFacts& facts, const std::string& a, const std::string& b);

// The first node after index `after` that reads `value`, by index, or -1.
int reader_of(const Graph& graph, const std::string& value, size_t after);

// What the pattern passes (fuse_gelu, fuse_hard_swish, fuse_layer_norm) ask while they walk a chain
// of values that one node each reads; their matchers derive from it.
class ChainWalker {
 public:
  ChainWalker(const Graph& graph, const GraphFacts& facts) : graph_(graph), facts_(facts) {}

  // The node (by index) after `after` that reads `value`, when that is its only reader and `value`
  // is not a graph output.
  std::optional<size_t> only_reader(const std::string& value, size_t after) const;
  size_t index_of(const Node& n) const { return static_cast<size_t>(&n - graph_.nodes.data()); }
  // Whether `name` is a scalar float32 constant within 1e-6 relative of `wanted`.
  bool constant_is(const std::string& name, double wanted) const;
  // For a two-input node with one operand the scalar `wanted`, the other operand.
  std::optional<std::string> operand_besides_constant(const Node& n, double wanted) const;
  // For a two-input node reading `v` once, its other operand ("" when it reads v twice or not at all).
  static std::string other_operand(const Node& n, const std::string& v);

 protected:
  const Graph& graph_;
  const GraphFacts& facts_;
};

// A rewrite's result: each new node takes the place of the node at its index (which the caller
// chose so its inputs are ready there), and the nodes marked in `removed` (the others it swallowed)
// leave the graph. Returns the number of new nodes.
int splice_nodes(Graph& graph, std::vector<std::pair<size_t, Node>> made, std::vector<bool> removed);

// A rewrite's result where a node may become several or none: node i stays where replaced[i] is
// empty, else gives way to the nodes listed there, in order (none removes it).
void replace_nodes(Graph& graph, std::vector<std::optional<std::vector<Node>>> replaced);

}  // namespace tunnx::ir
