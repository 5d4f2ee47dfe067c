#include "runtime/core/passes/inline_functions.h"

#include <unordered_map>

#include "tunnx/status.h"

namespace tunnx::ir {
namespace {

constexpr int kMaxDepth = 32;

const Function* find_function(const std::vector<Function>& functions, const Node& node) {
  for (const auto& f : functions)
    if (f.name == node.op_type && f.domain == node.domain) return &f;
  return nullptr;
}

using Renames = std::unordered_map<std::string, std::string>;

void rename_in(Graph& graph, const Renames& renames);

void rename_node(Node& node, const Renames& renames) {
  auto rename = [&renames](std::string& name) {
    if (auto it = renames.find(name); it != renames.end()) name = it->second;
  };
  for (auto& in : node.inputs) rename(in);
  for (auto& out : node.outputs) rename(out);
  for (auto& attr : node.attributes) {
    if (attr.g) rename_in(*attr.g, renames);
    for (auto& g : attr.graphs) rename_in(*g, renames);
  }
}

// Subgraphs inside a function body may read the body's values from their outer scope.
void rename_in(Graph& graph, const Renames& renames) {
  for (auto& node : graph.nodes) rename_node(node, renames);
  for (auto& out : graph.outputs)
    if (auto it = renames.find(out.name); it != renames.end()) out.name = it->second;
}

// The body of `fn` as called by `call`, with names and attributes bound.
std::vector<Node> expand(const Function& fn, const Node& call, int call_index) {
  std::string prefix = (call.name.empty() ? fn.name + "_" + std::to_string(call_index) : call.name) + "/";
  Renames renames;
  for (size_t i = 0; i < fn.inputs.size(); ++i) renames[fn.inputs[i]] = i < call.inputs.size() ? call.inputs[i] : "";
  for (size_t i = 0; i < fn.outputs.size(); ++i)
    renames[fn.outputs[i]] = i < call.outputs.size() ? call.outputs[i] : prefix + fn.outputs[i];
  for (const auto& node : fn.nodes)
    for (const auto& out : node.outputs)
      if (!out.empty() && !renames.count(out)) renames[out] = prefix + out;

  std::vector<Node> body;
  for (const auto& original : fn.nodes) {
    Node node = original;
    node.name = prefix + (node.name.empty() ? node.op_type : node.name);
    std::vector<Attribute> bound;
    for (auto& attr : node.attributes) {
      if (attr.ref_attr_name.empty()) {
        if (attr.g) attr.g = std::make_shared<Graph>(deep_copy(*attr.g));
        for (auto& g : attr.graphs) g = std::make_shared<Graph>(deep_copy(*g));
        bound.push_back(std::move(attr));
        continue;
      }
      // Take the caller's attribute under this node's name; absent means the op's default.
      if (const Attribute* given = call.attribute(attr.ref_attr_name)) {
        Attribute copy = *given;
        copy.name = attr.name;
        bound.push_back(std::move(copy));
      }
    }
    node.attributes = std::move(bound);
    rename_node(node, renames);
    body.push_back(std::move(node));
  }
  return body;
}

bool inline_once(Graph& graph, const std::vector<Function>& functions, int& counter) {
  bool changed = false;
  std::vector<Node> nodes;
  for (auto& node : graph.nodes) {
    for (auto& attr : node.attributes) {
      if (attr.g) changed |= inline_once(*attr.g, functions, counter);
      for (auto& g : attr.graphs) changed |= inline_once(*g, functions, counter);
    }
    if (const Function* fn = find_function(functions, node)) {
      for (auto& n : expand(*fn, node, counter++)) nodes.push_back(std::move(n));
      changed = true;
    } else {
      nodes.push_back(std::move(node));
    }
  }
  graph.nodes = std::move(nodes);
  return changed;
}

}  // namespace

Graph deep_copy(const Graph& graph) {
  Graph copy = graph;
  for (auto& node : copy.nodes)
    for (auto& attr : node.attributes) {
      if (attr.g) attr.g = std::make_shared<Graph>(deep_copy(*attr.g));
      for (auto& g : attr.graphs) g = std::make_shared<Graph>(deep_copy(*g));
    }
  return copy;
}

void inline_functions(Graph& graph, const std::vector<Function>& functions) {
  if (functions.empty()) return;
  int counter = 0;
  for (int depth = 0; inline_once(graph, functions, counter); ++depth)
    if (depth == kMaxDepth)
      throw Error(ErrorCode::kInvalidModel, "model-local functions call each other more than " +
                                                std::to_string(kMaxDepth) + " levels deep (recursion?)");
}

}  // namespace tunnx::ir
