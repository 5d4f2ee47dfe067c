// Weights kept in Constant nodes, as Paddle2ONNX and spox write every weight (issue 12, item 2): they
// load as Parameters and buffers (origin "constant node"), train, and save back as the Constant nodes
// they were, with their current values and where they stood in the graph.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "runtime/core/model_impl.h"
#include "tests/importer/model_builder.h"
#include "tunnx/tunnx.h"

namespace {

namespace fs = std::filesystem;
using namespace tunnx;
using tunnx_test::Dims;
using tunnx_test::ModelBuilder;
using tunnx_test::TempDirTest;

constexpr int32_t kFloat = onnx::TensorProto::FLOAT;

// y = (input @ W + B) * 0.5, with W a Constant's tensor, B a Constant's value_floats and 0.5 a rank-0
// Constant, in a file whose first node is a Relu that reads none of them.
fs::path constant_weight_model(const fs::path& path) {
  ModelBuilder b;
  b.input("input", kFloat, Dims{2, 4});
  b.node("Relu", {"input"}, {"r"}, "relu");
  tunnx_test::attr_tensor(b.node("Constant", {}, {"W"}, "w_node"), "value",
                          tunnx_test::float_tensor("W_value", {4, 3}, {1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1}));
  b.node("MatMul", {"r", "W"}, {"p"}, "matmul");
  tunnx_test::attr_floats(b.node("Constant", {}, {"B"}, "b_node"), "value_floats", {0.5f, -0.5f, 1.0f});
  b.node("Add", {"p", "B"}, {"q"}, "add");
  tunnx_test::attr_tensor(b.node("Constant", {}, {"half"}, "half_node"), "value",
                          tunnx_test::float_tensor("", {}, {0.5f}));
  b.node("Mul", {"q", "half"}, {"y"}, "mul");
  b.output("y", kFloat, Dims{2, 3});
  return b.save(path);
}

class ConstantNodeWeights : public TempDirTest {};

TEST_F(ConstantNodeWeights, LoadAsParametersWithTheirOrigin) {
  Model model = Model::load(constant_weight_model(path("m.onnx")));
  StateDict params = model.named_parameters();
  ASSERT_EQ(params.size(), 2u);
  EXPECT_EQ(params[0].first, "W");
  EXPECT_EQ(params[1].first, "B");
  EXPECT_TRUE(params[1].second.equals(Tensor::from_vector<float>({3}, {0.5f, -0.5f, 1.0f})));
  for (const auto& t : model.tensors()) {
    EXPECT_EQ(t.origin, TensorOrigin::kConstantNode) << t.name;
    EXPECT_STREQ(to_string(t.origin), "constant node");
  }
  EXPECT_EQ(model.state_dict().size(), 2u);
  // The file's structure as `tunnx check` shows it: three Constant nodes; the scalar stays a node.
  EXPECT_EQ(model.info().op_histogram.at("Constant"), 3);
  EXPECT_EQ(model.info().node_count, 7);
  const auto& g = model_impl(model).ir.graph;
  EXPECT_EQ(g.nodes.size(), 5u);
  EXPECT_EQ(g.initializers.size(), 2u);

  Session session(model);
  const Tensor x = Tensor::from_vector<float>({2, 4}, {1, 2, 3, 4, -1, -2, -3, -4});
  const Tensor y = session.run({{"input", x}}).at("y").tensor();
  EXPECT_TRUE(y.equals(Tensor::from_vector<float>({2, 3}, {2.75f, 2.75f, 4.0f, 0.25f, -0.25f, 0.5f})));
}

TEST_F(ConstantNodeWeights, TrainAndSaveBackAsConstantNodes) {
  Model model = Model::load(constant_weight_model(path("m.onnx")));
  TrainerOptions options;
  options.loss.kind = LossKind::kMse;
  options.optimizer.kind = OptimizerKind::kSgd;
  options.optimizer.lr = 0.1;
  options.threads = 1;
  Trainer trainer(model, options);
  const Tensor x = Tensor::from_vector<float>({2, 4}, {1, 2, 3, 4, 5, 6, 7, 8});
  const Tensor target = Tensor::from_vector<float>({2, 3}, {0, 0, 0, 0, 0, 0});
  const Tensor w_before = model.parameter("W").clone();
  for (int k = 0; k < 2; ++k) trainer.step({{"input", x}, {"target", target}});
  const Tensor w = model.parameter("W").clone(), b = model.parameter("B").clone();
  EXPECT_FALSE(w.equals(w_before));

  model.save(path("trained.onnx"));
  const onnx::ModelProto saved = tunnx_test::read_model_proto(path("trained.onnx"));
  const onnx::GraphProto& g = saved.graph();
  EXPECT_EQ(g.initializer_size(), 0);
  std::vector<std::string> order;
  for (const auto& n : g.node()) order.push_back(n.name());
  EXPECT_EQ(order, (std::vector<std::string>{"relu", "w_node", "matmul", "b_node", "add", "half_node", "mul"}));
  const onnx::AttributeProto& w_attr = g.node(1).attribute(0);
  EXPECT_EQ(w_attr.name(), "value");
  EXPECT_EQ(w_attr.t().name(), "W_value");
  EXPECT_EQ(g.node(3).attribute(0).name(), "value_floats");
  EXPECT_EQ(g.node(3).attribute(0).floats_size(), 3);

  Model reloaded = Model::load(path("trained.onnx"));
  EXPECT_TRUE(reloaded.parameter("W").equals(w));
  EXPECT_TRUE(reloaded.parameter("B").equals(b));
  EXPECT_EQ(reloaded.info().op_histogram, model.info().op_histogram);
}

// A weight in an If branch's Constant node is the branch's Parameter, and the branch still runs.
TEST_F(ConstantNodeWeights, InsideAnIfBranch) {
  ModelBuilder b;
  b.input("x", kFloat, Dims{3});
  b.input("flag", onnx::TensorProto::BOOL, Dims{});
  auto& node = b.node("If", {"flag"}, {"y"}, "if");
  onnx::GraphProto& then_branch = tunnx_test::attr_graph(node, "then_branch", "then");
  auto* c = then_branch.add_node();
  c->set_op_type("Constant");
  c->set_name("c");
  c->add_output("scale");
  tunnx_test::attr_tensor(*c, "value", tunnx_test::float_tensor("", {3}, {2.f, 3.f, 4.f}));
  auto* mul = then_branch.add_node();
  mul->set_op_type("Mul");
  mul->add_input("x");
  mul->add_input("scale");
  mul->add_output("then_y");
  *then_branch.add_output() = tunnx_test::value_info("then_y", kFloat, Dims{3});
  tunnx_test::attr_identity_graph(node, "else_branch", "else", "x", "else_y", Dims{3});
  b.output("y", kFloat, Dims{3});
  Model model = Model::load(b.save(path("if.onnx")));
  ASSERT_EQ(model.named_parameters().size(), 1u);
  EXPECT_EQ(model.named_parameters()[0].first, "scale");
  Session session(model);
  const Tensor y = session.run({{"x", Tensor::from_vector<float>({3}, {1, 1, -1})},
                                {"flag", Tensor::from_vector<bool>({}, {true})}})
                       .at("y")
                       .tensor();
  EXPECT_TRUE(y.equals(Tensor::from_vector<float>({3}, {2, 3, -4})));
  model.save(path("if2.onnx"));
  const onnx::ModelProto saved = tunnx_test::read_model_proto(path("if2.onnx"));
  const onnx::GraphProto& then_saved = saved.graph().node(0).attribute(0).g();
  ASSERT_EQ(then_saved.node_size(), 2);
  EXPECT_EQ(then_saved.node(0).op_type(), "Constant");
  EXPECT_EQ(then_saved.initializer_size(), 0);
}

}  // namespace
