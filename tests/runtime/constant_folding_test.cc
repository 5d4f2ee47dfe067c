// Constant folding that keeps Parameters (runtime/core/executor.h, FoldedOutputs): nodes computed from
// initializers and Constant nodes alone run once and later runs reuse their outputs, which gives the
// same outputs as running them every time (optimization level 0 has no fusions, but folding is the
// executor's: the check is against values computed here by hand); a write to a source Parameter is
// seen by the next run; Constant nodes in If bodies count as constants of the body; nodes that draw
// random numbers or that the graph returns are not folded.
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/importer/model_builder.h"

namespace {

using namespace tunnx_test;
using tunnx::Model;
using tunnx::Session;
using tunnx::Tensor;

constexpr int32_t kF32 = onnx_type_of<float>();

class ConstantFolding : public TempDirTest {};

// y = x + Slice(w, 1:3) * 2 with w a Parameter; the Slice and the Mul (and its Constant) are folded.
Model sliced_weight_model(const std::filesystem::path& file) {
  ModelBuilder b;
  b.input("x", kF32, Dims{"n", 2});
  b.initializer(float_tensor("w", {4}, {1.f, 2.f, 3.f, 4.f}));
  b.initializer(int64_tensor("starts", {1}, {1}));
  b.initializer(int64_tensor("ends", {1}, {3}));
  auto& two = b.node("Constant", {}, {"two"}, "two");
  attr_tensor(two, "value", float_tensor("", {}, {2.f}));
  b.node("Slice", {"w", "starts", "ends"}, {"ws"}, "slice");
  b.node("Mul", {"ws", "two"}, {"w2"}, "scale");
  b.node("Add", {"x", "w2"}, {"y"}, "add");
  b.output("y", kF32, Dims{"n", 2});
  return Model::load(b.save(file));
}

TEST_F(ConstantFolding, FoldedNodesFollowWritesToTheirParameter) {
  Model model = sliced_weight_model(path("m.onnx"));
  Session session(model);
  const Tensor x = Tensor::from_vector<float>({1, 2}, {10.f, 20.f});
  for (int run = 0; run < 2; ++run)
    EXPECT_EQ(values_of<float>(session.run({{"x", x}}).at("y").tensor()), (std::vector<float>{14.f, 26.f}));
  EXPECT_EQ(session.stats().folded_nodes, 3);  // the Constant, the Slice and the Mul; not the Add

  Tensor w = model.parameter("w");
  w.mutable_data_as<float>()[1] = -1.f;  // a write bumps the version: the folded nodes run again
  EXPECT_EQ(values_of<float>(session.run({{"x", x}}).at("y").tensor()), (std::vector<float>{8.f, 26.f}));
  EXPECT_EQ(values_of<float>(session.run({{"x", x}}).at("y").tensor()), (std::vector<float>{8.f, 26.f}));
  // The Parameter is still one: listed, and saved with its current value.
  bool listed = false;
  for (const auto& [name, t] : model.named_parameters()) listed = listed || name == "w";
  EXPECT_TRUE(listed);
}

TEST_F(ConstantFolding, AFedInitializerIsNoConstant) {
  // w is also a graph input: a caller may override it, so nothing that reads it is folded.
  ModelBuilder b;
  b.input("x", kF32, Dims{2});
  b.input("w", kF32, Dims{2});
  b.initializer(float_tensor("w", {2}, {1.f, 2.f}));
  b.node("Neg", {"w"}, {"nw"}, "neg");
  b.node("Add", {"x", "nw"}, {"y"}, "add");
  b.output("y", kF32, Dims{2});
  Model model = Model::load(b.save(path("m.onnx")));
  Session session(model);
  const Tensor x = Tensor::from_vector<float>({2}, {0.f, 0.f});
  EXPECT_EQ(values_of<float>(session.run({{"x", x}}).at("y").tensor()), (std::vector<float>{-1.f, -2.f}));
  EXPECT_EQ(values_of<float>(session.run({{"x", x}, {"w", Tensor::from_vector<float>({2}, {5.f, 6.f})}}).at("y").tensor()),
            (std::vector<float>{-5.f, -6.f}));
  // Unfed again: the initializer, not the last run's value.
  EXPECT_EQ(values_of<float>(session.run({{"x", x}}).at("y").tensor()), (std::vector<float>{-1.f, -2.f}));
  EXPECT_EQ(session.stats().folded_nodes, 0);
}

TEST_F(ConstantFolding, RandomAndReturnedNodesRunEveryTime) {
  ModelBuilder b;
  b.input("x", kF32, Dims{3});
  auto& r = b.node("RandomUniform", {}, {"r"}, "random");
  attr_ints(r, "shape", {3});
  b.initializer(float_tensor("w", {3}, {1.f, 2.f, 3.f}));
  b.node("Neg", {"w"}, {"nw"}, "neg");  // returned: a caller could write into a kept tensor
  b.node("Add", {"x", "r"}, {"y"}, "add");
  b.output("y", kF32, Dims{3});
  b.output("nw", kF32, Dims{3});
  Model model = Model::load(b.save(path("m.onnx")));
  Session session(model);
  const Tensor x = Tensor::from_vector<float>({3}, {0.f, 0.f, 0.f});
  const std::vector<float> first = values_of<float>(session.run({{"x", x}}).at("y").tensor());
  const std::vector<float> second = values_of<float>(session.run({{"x", x}}).at("y").tensor());
  EXPECT_NE(first, second);
  EXPECT_EQ(session.stats().folded_nodes, 0);
}

TEST_F(ConstantFolding, ConstantNodesOfAnIfBodyAreTheBodysConstants) {
  // then: y = x * Reshape(c, [3]) with c a Constant node of the body; else: y = x.
  ModelBuilder b;
  b.input("x", kF32, Dims{3});
  b.input("flag", onnx_type_of<bool>(), Dims{});
  b.initializer(int64_tensor("shape", {1}, {3}));
  auto& node = b.node("If", {"flag"}, {"y"}, "if");
  onnx::GraphProto& then_branch = attr_graph(node, "then_branch", "then");
  auto* c = then_branch.add_node();
  c->set_op_type("Constant");
  c->set_name("c");
  c->add_output("c");
  attr_tensor(*c, "value", float_tensor("", {1, 3}, {2.f, 3.f, 4.f}));
  auto* reshape = then_branch.add_node();
  reshape->set_op_type("Reshape");
  reshape->set_name("reshape");
  reshape->add_input("c");
  reshape->add_input("shape");
  reshape->add_output("c3");
  auto* mul = then_branch.add_node();
  mul->set_op_type("Mul");
  mul->set_name("mul");
  mul->add_input("x");
  mul->add_input("c3");
  mul->add_output("then_y");
  *then_branch.add_output() = value_info("then_y", kF32, Dims{3});
  attr_identity_graph(node, "else_branch", "else", "x", "else_y", Dims{3});
  b.output("y", kF32, Dims{3});
  Model model = Model::load(b.save(path("m.onnx")));
  Session session(model);
  const Tensor x = Tensor::from_vector<float>({3}, {1.f, 1.f, -1.f});
  const Tensor yes = Tensor::from_vector<bool>({}, {true});
  for (int run = 0; run < 2; ++run)
    EXPECT_EQ(values_of<float>(session.run({{"x", x}, {"flag", yes}}).at("y").tensor()),
              (std::vector<float>{2.f, 3.f, -4.f}));
  // The Reshape of the body's Constant weight (an initializer of the body since load).
  EXPECT_EQ(session.stats().folded_nodes, 1);
}

}  // namespace
