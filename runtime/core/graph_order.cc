#include "runtime/core/graph_order.h"

#include <queue>
#include <unordered_map>

#include "tunnx/status.h"

namespace tunnx::ir {
namespace {

Error node_error(const Node& node, const std::string& message) {
  return Error(ErrorCode::kInvalidModel, message,
               {.node = node.name.empty() ? "<unnamed>" : node.name, .op_type = node.op_type});
}

// Names used inside `graph` (and its subgraphs) that it does not define itself.
void collect_free_names(const Graph& graph, std::unordered_set<std::string>& free_names) {
  std::unordered_set<std::string> defined;
  for (const auto& v : graph.inputs) defined.insert(v.name);
  for (const auto& init : graph.initializers) defined.insert(init.name);
  for (const auto& node : graph.nodes)
    for (const auto& out : node.outputs) defined.insert(out);
  auto use = [&](const std::string& name) {
    if (!name.empty() && !defined.count(name)) free_names.insert(name);
  };
  for (const auto& node : graph.nodes) {
    for (const auto& in : node.inputs) use(in);
    for (const auto& name : implicit_inputs(node)) use(name);
  }
  for (const auto& out : graph.outputs) use(out.name);
}

}  // namespace

std::vector<std::string> implicit_inputs(const Node& node) {
  std::unordered_set<std::string> names;
  for (const auto& attr : node.attributes) {
    if (attr.g) collect_free_names(*attr.g, names);
    for (const auto& g : attr.graphs) collect_free_names(*g, names);
  }
  return {names.begin(), names.end()};
}

void sort_and_check(Graph& graph, const std::unordered_set<std::string>& outer_scope, NodeOrders* orders) {
  // Values available before any node runs.
  std::unordered_set<std::string> available;
  for (const auto& v : graph.inputs) available.insert(v.name);
  for (const auto& init : graph.initializers) available.insert(init.name);

  std::unordered_map<std::string, size_t> producer;
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    const Node& node = graph.nodes[i];
    if (node.op_type.empty()) throw node_error(node, "op_type is empty");
    for (const auto& out : node.outputs) {
      if (out.empty()) continue;
      auto [it, inserted] = producer.emplace(out, i);
      if (!inserted)
        throw node_error(node, "output '" + out + "' is already produced by " +
                                   graph.nodes[it->second].describe());
      if (available.count(out))
        throw node_error(node, "output '" + out + "' has the name of a graph input or initializer");
    }
  }

  // Dependencies: explicit inputs plus names the node's subgraphs read from this scope.
  std::vector<std::vector<size_t>> consumers(graph.nodes.size());
  std::vector<size_t> pending(graph.nodes.size(), 0);
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    const Node& node = graph.nodes[i];
    std::unordered_set<size_t> deps;
    auto depend = [&](const std::string& name, bool implicit) {
      if (name.empty() || available.count(name)) return;
      if (auto it = producer.find(name); it != producer.end()) {
        deps.insert(it->second);
      } else if (!outer_scope.count(name)) {
        throw node_error(node, std::string(implicit ? "a subgraph reads '" : "input '") + name +
                                   (implicit ? "', which is" : "' is") +
                                   " not produced by any node, graph input or initializer");
      }
    };
    for (const auto& in : node.inputs) depend(in, false);
    for (const auto& name : implicit_inputs(node)) depend(name, true);
    for (size_t d : deps) {
      if (d == i) throw node_error(node, "node consumes its own output (a cycle)");
      consumers[d].push_back(i);
      ++pending[i];
    }
  }

  // Kahn's algorithm; the min-heap keeps the file's order among ready nodes.
  std::priority_queue<size_t, std::vector<size_t>, std::greater<>> ready;
  for (size_t i = 0; i < graph.nodes.size(); ++i)
    if (pending[i] == 0) ready.push(i);
  std::vector<size_t> order;
  order.reserve(graph.nodes.size());
  while (!ready.empty()) {
    size_t i = ready.top();
    ready.pop();
    order.push_back(i);
    for (size_t c : consumers[i])
      if (--pending[c] == 0) ready.push(c);
  }
  if (order.size() != graph.nodes.size()) {
    for (size_t i = 0; i < graph.nodes.size(); ++i)
      if (pending[i] != 0) {
        const Node& node = graph.nodes[i];
        std::string via;
        for (const auto& in : node.inputs)
          if (auto it = producer.find(in); it != producer.end() && pending[it->second] != 0) {
            via = in;
            break;
          }
        throw node_error(node, "graph has a cycle" + (via.empty() ? std::string() : " through input '" + via + "'"));
      }
  }
  std::vector<Node> sorted;
  sorted.reserve(graph.nodes.size());
  for (size_t i : order) sorted.push_back(std::move(graph.nodes[i]));
  graph.nodes = std::move(sorted);

  for (const auto& out : graph.outputs)
    if (!available.count(out.name) && !producer.count(out.name) && !outer_scope.count(out.name))
      throw Error(ErrorCode::kInvalidModel,
                  "graph output '" + out.name + "' is not produced by any node, graph input or initializer",
                  {.tensor = out.name});

  // Subgraphs see everything this graph defines, plus what this graph sees.
  std::unordered_set<std::string> inner_scope = outer_scope;
  inner_scope.insert(available.begin(), available.end());
  for (const auto& [name, index] : producer) inner_scope.insert(name);
  for (auto& node : graph.nodes)
    for (auto& attr : node.attributes) {
      try {
        if (attr.g) sort_and_check(*attr.g, inner_scope, orders);
        for (auto& g : attr.graphs) sort_and_check(*g, inner_scope, orders);
      } catch (const Error& e) {
        // Name the outer node only when the inner error did not name one.
        if (!e.context().node.empty()) throw;
        throw e.with_context({.node = node.name, .op_type = node.op_type, .field = "attribute " + attr.name});
      }
    }
  if (orders) (*orders)[&graph] = std::move(order);
}

}  // namespace tunnx::ir
