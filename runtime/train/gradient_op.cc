#include "runtime/train/gradient_op.h"

#include "runtime/core/graph_order.h"
#include "runtime/train/autodiff.h"

namespace tunnx::train {

int lower_gradient_ops(ir::Graph& graph, const std::map<std::string, int64_t>& opsets, const ParameterStore& store) {
  int lowered = 0;
  for (size_t n = 0; n < graph.nodes.size(); ++n) {
    if (graph.nodes[n].domain != kPreviewTrainingDomain || graph.nodes[n].op_type != "Gradient") continue;
    const ir::Node node = graph.nodes[n];
    const ir::Attribute* xs = node.attribute("xs");
    const ir::Attribute* y = node.attribute("y");
    auto fail = [&node](const std::string& message) {
      return Error(ErrorCode::kInvalidModel, message,
                   {.node = node.name.empty() ? "<unnamed>" : node.name, .op_type = "Gradient"});
    };
    if (!xs || !y || y->s.empty()) throw fail("needs the attributes xs and y");
    if (xs->strings.size() != node.outputs.size())
      throw fail("has " + std::to_string(node.outputs.size()) + " outputs for " + std::to_string(xs->strings.size()) +
                 " names in xs");
    graph.nodes.erase(graph.nodes.begin() + static_cast<std::ptrdiff_t>(n));
    GradientRequest request;
    request.sources = xs->strings;
    request.outputs = {y->s};
    request.seeds = {""};
    GradientGraph grads = differentiate(graph, opsets, store, request);
    for (size_t i = 0; i < node.outputs.size(); ++i) {
      if (node.outputs[i].empty()) continue;
      ir::Node identity;
      identity.op_type = grads.gradients[i].empty() ? "ZerosLike" : "Identity";
      identity.domain = grads.gradients[i].empty() ? "com.tunnx" : "";
      identity.name = node.name + "/" + node.outputs[i];
      identity.inputs = {grads.gradients[i].empty() ? xs->strings[i] : grads.gradients[i]};
      identity.outputs = {node.outputs[i]};
      graph.nodes.push_back(std::move(identity));
    }
    ++lowered;
    --n;
  }
  if (lowered) ir::sort_and_check(graph);
  return lowered;
}

}  // namespace tunnx::train
