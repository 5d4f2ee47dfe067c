// LinearAttention (opset 27, runtime/cpu/kernels/linear_attention.cc) on two tokens of one head,
// worked by hand: the plain linear rule and gated_delta (decay, then the delta write), the state
// carried into present_state, and the errors for inputs the rule does not allow. The ONNX node tests
// (newer_onnx_conformance) cover grouped heads, per-dim decay and 16-bit types.
#include <gtest/gtest.h>

#include <cmath>

#include "tests/importer/model_builder.h"

namespace {

using namespace tunnx_test;
using tunnx::Model;
using tunnx::Session;
using tunnx::Tensor;

class LinearAttentionKernel : public TempDirTest {
 protected:
  // One node over q, k, v [1, 2, ...] (and decay, beta [1, 2, 1] when `rule` needs them).
  Model model(const std::string& rule, bool gated, bool delta) {
    ModelBuilder b(27, 11);
    b.input("q", onnx_type_of<float>(), Dims{1, 2, 2});
    b.input("k", onnx_type_of<float>(), std::nullopt);  // negative tests feed other shapes
    b.input("v", onnx_type_of<float>(), Dims{1, 2, 1});
    std::vector<std::string> inputs = {"q", "k", "v", ""};
    if (gated) b.input("decay", onnx_type_of<float>(), Dims{1, 2, 1});
    if (delta) b.input("beta", onnx_type_of<float>(), Dims{1, 2, 1});
    inputs.push_back(gated ? "decay" : "");
    inputs.push_back(delta ? "beta" : "");
    auto& n = b.node("LinearAttention", inputs, {"y", "state"}, "linattn");
    attr_int(n, "q_num_heads", 1);
    attr_int(n, "kv_num_heads", 1);
    attr_float(n, "scale", 1.0f);
    attr_string(n, "update_rule", rule);
    b.output("y", onnx_type_of<float>(), std::nullopt);
    b.output("state", onnx_type_of<float>(), std::nullopt);
    return Model::load(b.save(path(rule + ".onnx")));
  }
  // Token 0: q [1, 1], k [1, 2], v 3; token 1: q [2, 0], k [0, 1], v 1.
  const Tensor q = Tensor::from_vector<float>({1, 2, 2}, {1, 1, 2, 0});
  const Tensor k = Tensor::from_vector<float>({1, 2, 2}, {1, 2, 0, 1});
  const Tensor v = Tensor::from_vector<float>({1, 2, 1}, {3, 1});
};

TEST_F(LinearAttentionKernel, LinearRuleAccumulatesOuterProducts) {
  // S = [3, 6] after token 0 (o = 3 + 6), S = [3, 7] after token 1 (o = 2 * 3).
  auto out = Session(model("linear", false, false)).run({{"q", q}, {"k", k}, {"v", v}});
  EXPECT_EQ(values_of<float>(out.at("y").tensor()), (std::vector<float>{9, 6}));
  EXPECT_EQ(out.at("state").tensor().dims(), (std::vector<int64_t>{1, 1, 2, 1}));
  EXPECT_EQ(values_of<float>(out.at("state").tensor()), (std::vector<float>{3, 7}));
}

TEST_F(LinearAttentionKernel, GatedDeltaDecaysThenWritesTheCorrection) {
  // decay exp(g) = 0.5 and beta = 0.5 on both tokens.
  // Token 0: S = 0; write 0.5 * (3 - 0) = 1.5 -> S = [1.5, 3], o = 4.5.
  // Token 1: S = [0.75, 1.5]; S^T k = 1.5; write 0.5 * (1 - 1.5) = -0.25 -> S = [0.75, 1.25], o = 1.5.
  const float g = std::log(0.5f);
  const Tensor decay = Tensor::from_vector<float>({1, 2, 1}, {g, g});
  const Tensor beta = Tensor::from_vector<float>({1, 2, 1}, {0.5f, 0.5f});
  auto out = Session(model("gated_delta", true, true))
                 .run({{"q", q}, {"k", k}, {"v", v}, {"decay", decay}, {"beta", beta}});
  const std::vector<float> y = values_of<float>(out.at("y").tensor());
  const std::vector<float> state = values_of<float>(out.at("state").tensor());
  ASSERT_EQ(y.size(), 2u);
  EXPECT_NEAR(y[0], 4.5f, 1e-6);
  EXPECT_NEAR(y[1], 1.5f, 1e-6);
  ASSERT_EQ(state.size(), 2u);
  EXPECT_NEAR(state[0], 0.75f, 1e-6);
  EXPECT_NEAR(state[1], 1.25f, 1e-6);
}

TEST_F(LinearAttentionKernel, InputsTheRuleDoesNotAllowAreRefusedByName) {
  // The default rule (gated_delta) needs decay and beta.
  ModelBuilder b(27, 11);
  b.input("q", onnx_type_of<float>(), Dims{1, 2, 2});
  b.input("k", onnx_type_of<float>(), Dims{1, 2, 2});
  b.input("v", onnx_type_of<float>(), Dims{1, 2, 1});
  auto& n = b.node("LinearAttention", {"q", "k", "v"}, {"y"}, "linattn");
  attr_int(n, "q_num_heads", 1);
  attr_int(n, "kv_num_heads", 1);
  b.output("y", onnx_type_of<float>(), std::nullopt);
  const Model m = Model::load(b.save(path("m.onnx")));
  const tunnx::Error e = expect_error([&] { Session(m).run({{"q", q}, {"k", k}, {"v", v}}); });
  EXPECT_TRUE(contains(e.what(), "linattn")) << e.what();
  EXPECT_TRUE(contains(e.what(), "the update rule needs the decay input")) << e.what();

  // A key whose heads do not match the query's head size.
  const tunnx::Error shape = expect_error([&] {
    Session(model("linear", false, false))
        .run({{"q", q}, {"k", Tensor::from_vector<float>({1, 2, 3}, {1, 2, 3, 4, 5, 6})}, {"v", v}});
  });
  EXPECT_TRUE(contains(shape.what(), "key [1,2,3]")) << shape.what();
}

}  // namespace
