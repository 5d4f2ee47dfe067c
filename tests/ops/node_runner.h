// Runs one node of any domain and opset on the CPU kernels and returns all of its outputs: for op
// tests outside ai.onnx / com.tunnx (ai.onnx.ml) or with several outputs (StringSplit).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "runtime/core/executor.h"
#include "runtime/core/graph.h"
#include "runtime/core/kernel_registry.h"
#include "runtime/core/parameter_store.h"
#include "tests/ops/grad_check.h"  // error_of

namespace tunnx_test {

struct OneNode {
  // Every member has an initializer, so designated initializers may leave any out (-Wextra).
  std::string domain{};  // "" is ai.onnx
  int64_t opset = 1;
  std::string op_type{};
  std::vector<tunnx::Tensor> inputs{};  // fed as graph inputs i0, i1, ...
  std::vector<tunnx::ir::Attribute> attributes{};
  size_t num_outputs = 1;
};

// Plans and runs the node (named "node"); kernel and planning errors propagate as tunnx::Error.
inline std::vector<tunnx::Value> run_one_node(const OneNode& c) {
  using namespace tunnx;
  ir::Graph g;
  ir::Node n;
  n.name = "node";
  n.domain = c.domain;
  n.op_type = c.op_type;
  n.attributes = c.attributes;
  std::vector<Value> feeds;
  for (size_t i = 0; i < c.inputs.size(); ++i) {
    n.inputs.push_back("i" + std::to_string(i));
    g.inputs.emplace_back();
    g.inputs.back().name = n.inputs.back();
    feeds.emplace_back(c.inputs[i]);
  }
  for (size_t k = 0; k < c.num_outputs; ++k) {
    n.outputs.push_back("o" + std::to_string(k));
    g.outputs.emplace_back();
    g.outputs.back().name = n.outputs.back();
  }
  g.nodes.push_back(n);
  ParameterStore store;
  PlanContext context;
  context.registry = &KernelRegistry::global();
  context.opsets[""] = 20;
  context.opsets[c.domain] = c.opset;
  context.store = &store;
  GraphPlan plan(g, context, nullptr);
  int64_t bytes = 0;
  return plan.run(std::move(feeds), nullptr, bytes);
}

// Attributes the ops tests need beyond runtime/core/ops/gradient.h's attr().
inline tunnx::ir::Attribute strings_attr(const std::string& name, std::vector<std::string> values) {
  tunnx::ir::Attribute a;
  a.name = name;
  a.type = tunnx::ir::AttributeType::kStrings;
  a.strings = std::move(values);
  return a;
}
inline tunnx::ir::Attribute tensor_attr(const std::string& name, tunnx::Tensor value) {
  tunnx::ir::Attribute a;
  a.name = name;
  a.type = tunnx::ir::AttributeType::kTensor;
  a.t = std::move(value);
  return a;
}

}  // namespace tunnx_test
