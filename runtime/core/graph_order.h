// Structural checks and topological order for a Graph: every input is defined before use, every
// name is produced once, there is no cycle. The importer runs this on every file; passes that edit a
// graph (autodiff, LoRA) run it again on what they built.
#pragma once

#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "runtime/core/graph.h"

namespace tunnx::ir {

// Sorts graph.nodes topologically, keeping the file's order where the data allows (stable), and
// checks subgraphs the same way. `outer_scope` holds names visible from enclosing graphs.
// Throws Error(kInvalidModel) naming the node and the value.
// When `orders` is given, records for every graph it sorted (this one and subgraphs) the new order
// of its nodes as indices into the order they had.
using NodeOrders = std::unordered_map<const Graph*, std::vector<size_t>>;
void sort_and_check(Graph& graph, const std::unordered_set<std::string>& outer_scope = {},
                    NodeOrders* orders = nullptr);

// Names a node reads from enclosing scopes through its subgraphs (If/Loop/Scan bodies).
std::vector<std::string> implicit_inputs(const Node& node);

}  // namespace tunnx::ir
