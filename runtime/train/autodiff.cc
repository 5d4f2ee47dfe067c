#include "runtime/train/autodiff.h"

#include <unordered_map>
#include <unordered_set>

#include "runtime/core/ops/gradient.h"
#include "runtime/core/passes/graph_facts.h"

namespace tunnx::train {
namespace {

int64_t opset_of(const ir::Node& node, const std::map<std::string, int64_t>& opsets) {
  auto it = opsets.find(node.domain == "ai.onnx" ? "" : node.domain);
  return it == opsets.end() ? 0 : it->second;
}

bool non_float_output(const ir::GraphFacts& facts, const std::string& value) {
  auto t = facts.dtype(value);
  return t && *t != DataType::kUndefined && !is_floating_point(*t);
}

std::string where(const ir::Node& node) {
  return "node '" + (node.name.empty() ? std::string("<unnamed>") : node.name) + "' (" +
         (node.domain.empty() ? "" : node.domain + ":") + node.op_type + ")";
}

}  // namespace

GradientGraph differentiate(ir::Graph& graph, const std::map<std::string, int64_t>& opsets,
                            const ParameterStore& store, const GradientRequest& request) {
  const ops::GradientRegistry& rules = ops::GradientRegistry::global();
  ir::GraphFacts facts(graph, store);
  if (request.seeds.size() != request.outputs.size())
    throw Error(ErrorCode::kInternal, "differentiate: one seed per output");

  // Forward: which values depend on a source through inputs a gradient can flow through.
  // `origin` remembers one source each depends on, for error messages.
  std::unordered_map<std::string, std::string> origin;
  for (const auto& s : request.sources) origin.emplace(s, s);
  const size_t forward_count = graph.nodes.size();
  std::vector<const ops::GradientRule*> node_rule(forward_count, nullptr);
  std::vector<bool> node_depends(forward_count, false);
  for (size_t n = 0; n < forward_count; ++n) {
    const ir::Node& node = graph.nodes[n];
    const ops::GradientRule* rule = rules.find(node.domain, node.op_type, opset_of(node, opsets));
    node_rule[n] = rule;
    std::string from;
    for (size_t i = 0; i < node.inputs.size() && from.empty(); ++i) {
      if (node.inputs[i].empty()) continue;
      auto it = origin.find(node.inputs[i]);
      if (it == origin.end()) continue;
      if (rule && !rule->differentiable(i)) continue;  // no rule: assume it may carry a gradient
      from = it->second;
    }
    if (from.empty()) continue;
    node_depends[n] = true;
    for (const auto& out : node.outputs)
      if (!out.empty() && !non_float_output(facts, out)) origin.emplace(out, from);
  }

  // Backward: which of those values an output needs.
  std::unordered_set<std::string> needed;
  for (const auto& out : request.outputs) {
    if (!origin.count(out)) continue;
    needed.insert(out);
  }
  std::vector<bool> on_path(forward_count, false);
  for (size_t n = forward_count; n-- > 0;) {
    if (!node_depends[n]) continue;
    const ir::Node& node = graph.nodes[n];
    bool feeds = false;
    for (const auto& out : node.outputs) feeds = feeds || (!out.empty() && needed.count(out));
    if (!feeds) continue;
    on_path[n] = true;
    const ops::GradientRule* rule = node_rule[n];
    if (!rule) {
      std::string source;
      for (const auto& in : node.inputs)
        if (!in.empty() && origin.count(in)) source = origin.at(in);
      throw Error(ErrorCode::kUnsupported,
                  "has no gradient rule at opset " + std::to_string(opset_of(node, opsets)) +
                      ", and it lies on the path from '" + source + "' to the loss",
                  {.node = node.name.empty() ? "<unnamed>" : node.name,
                   .op_type = (node.domain.empty() ? "" : node.domain + ":") + node.op_type});
    }
    for (size_t i = 0; i < node.inputs.size(); ++i)
      if (!node.inputs[i].empty() && rule->differentiable(i) && origin.count(node.inputs[i]))
        needed.insert(node.inputs[i]);
  }

  // Names for the backward values, unique against everything in the graph.
  std::unordered_set<std::string> taken;
  graph.visit([&taken](const ir::Graph& g, int) {
    for (const auto& node : g.nodes) {
      taken.insert(node.name);
      for (const auto& o : node.outputs) taken.insert(o);
    }
    for (const auto& v : g.inputs) taken.insert(v.name);
    for (const auto& i : g.initializers) taken.insert(i.name);
  });
  int64_t counter = 0;
  auto fresh = [&taken, &counter](const std::string& hint) {
    std::string name;
    do name = hint + "_" + std::to_string(counter++);
    while (taken.count(name));
    taken.insert(name);
    return name;
  };

  std::vector<ir::Node> backward;
  auto emit_node = [&backward](ir::Node node) { backward.push_back(std::move(node)); };

  // Gradient contributions per value, summed when a reader asks for them.
  std::unordered_map<std::string, std::vector<std::string>> contributions;
  auto gradient_of = [&](const std::string& value) -> std::string {
    auto it = contributions.find(value);
    if (it == contributions.end() || it->second.empty()) return "";
    std::vector<std::string>& parts = it->second;
    while (parts.size() > 1) {
      ir::Node add;
      add.op_type = "Add";
      add.name = fresh(value + "/grad/sum");
      add.inputs = {parts[parts.size() - 2], parts[parts.size() - 1]};
      add.outputs = {fresh(value + "/grad")};
      parts.pop_back();
      parts.back() = add.outputs[0];
      backward.push_back(std::move(add));
    }
    return parts[0];
  };

  for (size_t k = 0; k < request.outputs.size(); ++k) {
    const std::string& out = request.outputs[k];
    if (!needed.count(out)) continue;
    std::string seed = request.seeds[k];
    if (seed.empty()) {
      ir::Node ones;
      ones.op_type = "OnesLike";
      ones.domain = ops::kGradDomain;
      ones.name = fresh(out + "/grad/seed");
      ones.inputs = {out};
      ones.outputs = {fresh(out + "/grad")};
      seed = ones.outputs[0];
      backward.push_back(std::move(ones));
    }
    contributions[out].push_back(seed);
  }

  for (size_t n = forward_count; n-- > 0;) {
    if (!on_path[n]) continue;
    const ir::Node& node = graph.nodes[n];
    std::vector<std::string> output_grads;
    bool any = false;
    for (const auto& out : node.outputs) {
      output_grads.push_back(out.empty() ? "" : gradient_of(out));
      any = any || !output_grads.back().empty();
    }
    if (!any) continue;
    const ops::GradientRule& rule = *node_rule[n];
    std::vector<bool> wanted;
    for (size_t i = 0; i < node.inputs.size(); ++i)
      wanted.push_back(!node.inputs[i].empty() && rule.differentiable(i) && needed.count(node.inputs[i]) > 0);
    const auto onnx = opsets.find("");
    ops::GradientBuilder builder(node, opset_of(node, opsets), facts, std::move(output_grads), wanted, emit_node,
                                 fresh, onnx == opsets.end() ? -1 : onnx->second);
    try {
      if (rule.build) rule.build(builder);
    } catch (const Error& e) {
      throw e.with_context({.node = node.name.empty() ? "<unnamed>" : node.name, .op_type = node.op_type});
    }
    const auto& grads = builder.input_grads();
    for (size_t i = 0; i < node.inputs.size(); ++i) {
      if (!wanted[i]) continue;
      if (grads[i].empty())
        throw Error(ErrorCode::kInternal, where(node) + ": gradient rule did not set the gradient of input " +
                                              std::to_string(i));
      contributions[node.inputs[i]].push_back(grads[i]);
    }
  }

  GradientGraph result;
  for (const auto& s : request.sources) result.gradients.push_back(gradient_of(s));
  result.backward_nodes = backward.size();
  for (auto& node : backward) graph.nodes.push_back(std::move(node));
  return result;
}

}  // namespace tunnx::train
