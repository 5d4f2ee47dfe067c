// The planner (runtime/core/executor.cc) on graphs a rewrite may leave: a node that reads a value a
// later node of the same graph writes is refused, naming the node and the value, instead of running
// as if that input were absent (a Squeeze planned before the Constant holding its axes squeezed every
// unit dim, the batch included).
#include <string>

#include <gtest/gtest.h>

#include "runtime/core/executor.h"
#include "runtime/core/kernel_registry.h"
#include "runtime/core/parameter_store.h"

namespace {

using namespace tunnx;

ir::ValueInfo value(const std::string& name) {
  ir::ValueInfo v;
  v.name = name;
  v.type = ir::TypeInfo::tensor(DataType::kFloat32, Shape::of({2}));
  return v;
}

ir::Node node(const std::string& name, const std::string& op, const std::string& in, const std::string& out) {
  ir::Node n;
  n.name = name;
  n.op_type = op;
  n.inputs = {in};
  n.outputs = {out};
  return n;
}

GraphPlan plan(const ir::Graph& g, const ParameterStore& store) {
  PlanContext context;
  context.registry = &KernelRegistry::global();
  context.opsets = {{"", 17}};
  context.store = &store;
  return GraphPlan(g, context, nullptr);
}

TEST(GraphPlan, ANodeReadingAValueWrittenLaterIsRefused) {
  ir::Graph g;
  g.inputs = {value("x")};
  g.outputs = {value("b")};
  g.nodes = {node("second", "Relu", "a", "b"), node("first", "Neg", "x", "a")};
  ParameterStore store;
  try {
    plan(g, store);
    FAIL() << "planned a node before the node writing its input";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("reads 'a' before the node that writes it"), std::string::npos) << e.what();
    EXPECT_EQ(e.context().node, "second");
  }
  // In order, the same nodes plan and run.
  std::swap(g.nodes[0], g.nodes[1]);
  const GraphPlan ordered = plan(g, store);
  int64_t bytes = 0;
  const std::vector<Value> out = ordered.run({Value(Tensor::from_vector<float>({2}, {1, -2}))}, nullptr, bytes);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].tensor().data_as<float>()[0], 0.0f);
  EXPECT_EQ(out[0].tensor().data_as<float>()[1], 2.0f);
}

}  // namespace
