// The autodiff engine itself: paths, errors, accumulation of gradients from several readers.
#include <gtest/gtest.h>

#include "runtime/core/graph.h"
#include "runtime/core/ops/gradient.h"
#include "runtime/core/parameter_store.h"
#include "runtime/train/autodiff.h"

namespace {

using namespace tunnx;

ir::Node node(std::string name, std::string op, std::vector<std::string> in, std::vector<std::string> out) {
  ir::Node n;
  n.name = std::move(name);
  n.op_type = std::move(op);
  n.inputs = std::move(in);
  n.outputs = std::move(out);
  return n;
}

ir::ValueInfo input(const std::string& name) {
  ir::ValueInfo v;
  v.name = name;
  return v;
}

TEST(Autodiff, NodeWithoutRuleOnThePathIsAnErrorNamingIt) {
  ir::Graph g;
  g.inputs.push_back(input("x"));
  g.nodes.push_back(node("norm", "LpNormalization", {"x"}, {"y"}));
  ParameterStore store;
  train::GradientRequest request;
  request.sources = {"x"};
  request.outputs = {"y"};
  request.seeds = {""};
  try {
    train::differentiate(g, {{"", 17}}, store, request);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
    EXPECT_NE(std::string(e.what()).find("norm"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("LpNormalization"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("no gradient rule at opset 17"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("'x'"), std::string::npos) << e.what();
  }
}

TEST(Autodiff, NodeWithoutRuleOffThePathIsFine) {
  ir::Graph g;
  g.inputs.push_back(input("x"));
  g.nodes.push_back(node("norm", "LpNormalization", {"x"}, {"unused"}));
  g.nodes.push_back(node("id", "Identity", {"x"}, {"y"}));
  ParameterStore store;
  train::GradientRequest request;
  request.sources = {"x"};
  request.outputs = {"y"};
  request.seeds = {""};
  train::GradientGraph grads = train::differentiate(g, {{"", 17}}, store, request);
  ASSERT_EQ(grads.gradients.size(), 1u);
  EXPECT_FALSE(grads.gradients[0].empty());
}

TEST(Autodiff, SourceWithoutPathHasNoGradient) {
  ir::Graph g;
  g.inputs.push_back(input("x"));
  g.inputs.push_back(input("w"));
  g.nodes.push_back(node("id", "Identity", {"x"}, {"y"}));
  ParameterStore store;
  train::GradientRequest request;
  request.sources = {"x", "w"};
  request.outputs = {"y"};
  request.seeds = {""};
  train::GradientGraph grads = train::differentiate(g, {{"", 17}}, store, request);
  EXPECT_FALSE(grads.gradients[0].empty());
  EXPECT_TRUE(grads.gradients[1].empty());
}

}  // namespace
