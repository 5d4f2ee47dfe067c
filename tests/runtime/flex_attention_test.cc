// FlexAttention (ai.onnx.preview opset 1, runtime/cpu/kernels/attention.cc) on one query over two
// keys, worked by hand: plain, with a score_mod graph (Neg) and a prob_mod graph (Mul by 2) that each
// run once on the whole [B, H, L, S] tensor; and the errors for a modifier graph or inputs it cannot
// take. The ONNX node tests cover grouped heads, masks written as -inf and the 16-bit types.
#include <gtest/gtest.h>

#include <cmath>

#include "tests/importer/model_builder.h"

namespace {

using namespace tunnx_test;
using tunnx::Model;
using tunnx::Session;
using tunnx::Tensor;

class FlexAttentionKernel : public TempDirTest {
 protected:
  // A FlexAttention node with scale 1 and the modifier graphs asked for (score_mod: Neg of its first input).
  Model model(bool score_mod, bool prob_mod, int score_mod_inputs = 1) {
    ModelBuilder b(26, 11);
    b.add_opset("ai.onnx.preview", 1);
    b.input("q", onnx_type_of<float>(), std::nullopt);
    b.input("k", onnx_type_of<float>(), Dims{1, 1, 2, 1});
    b.input("v", onnx_type_of<float>(), Dims{1, 1, 2, 1});
    auto& n = b.node("FlexAttention", {"q", "k", "v"}, {"y"}, "flex", "ai.onnx.preview");
    attr_float(n, "scale", 1.0f);
    if (score_mod) {
      GraphBuilder g(attr_graph(n, "score_mod", "negate"));
      for (int i = 0; i < score_mod_inputs; ++i)
        g.input("scores" + std::to_string(i), onnx_type_of<float>(), kNoShape);
      g.node("Neg", {"scores0"}, {"out"});
      g.output("out", onnx_type_of<float>(), kNoShape);
    }
    if (prob_mod) {
      GraphBuilder g(attr_graph(n, "prob_mod", "double"));
      g.input("probs", onnx_type_of<float>(), kNoShape);
      g.initializer(float_tensor("two", {}, {2.0f}));
      g.node("Mul", {"probs", "two"}, {"out"});
      g.output("out", onnx_type_of<float>(), kNoShape);
    }
    b.output("y", onnx_type_of<float>(), std::nullopt);
    return Model::load(b.save(path("m.onnx")));
  }
  float run(const Model& m) {
    auto out = Session(m).run({{"q", q}, {"k", k}, {"v", v}});
    const Tensor& y = out.at("y").tensor();
    EXPECT_EQ(y.dims(), (std::vector<int64_t>{1, 1, 1, 1}));
    return y.data_as<float>()[0];
  }
  // Scores [0, ln 3]: probabilities [1/4, 3/4] over values [4, 8].
  const Tensor q = Tensor::from_vector<float>({1, 1, 1, 1}, {1});
  const Tensor k = Tensor::from_vector<float>({1, 1, 2, 1}, {0, std::log(3.0f)});
  const Tensor v = Tensor::from_vector<float>({1, 1, 2, 1}, {4, 8});
};

TEST_F(FlexAttentionKernel, ModifierGraphsRunOnScoresAndProbabilities) {
  EXPECT_NEAR(run(model(false, false)), 7.0f, 1e-5);  // 4/4 + 8 * 3/4
  EXPECT_NEAR(run(model(true, false)), 5.0f, 1e-5);   // scores [0, -ln 3]: 4 * 3/4 + 8/4
  EXPECT_NEAR(run(model(false, true)), 14.0f, 1e-5);  // probabilities doubled
  EXPECT_NEAR(run(model(true, true)), 10.0f, 1e-5);
}

TEST_F(FlexAttentionKernel, WhatItCannotTakeIsRefusedByName) {
  const Model two_inputs = model(true, false, 2);
  const tunnx::Error graph = expect_error([&] { Session s(two_inputs); });
  EXPECT_TRUE(contains(graph.what(), "flex")) << graph.what();
  EXPECT_TRUE(contains(graph.what(), "score_mod must take one input and give one output, got 2 and 1"))
      << graph.what();

  const Model plain = model(false, false);
  const tunnx::Error rank = expect_error([&] {
    Session(plain).run({{"q", Tensor::from_vector<float>({1, 1, 1}, {1})}, {"k", k}, {"v", v}});
  });
  EXPECT_TRUE(contains(rank.what(), "Q, K and V must be 4-D [batch, heads, seq, head_size], got [1,1,1]"))
      << rank.what();
}

}  // namespace
