// CausalConvWithState (opset 27, runtime/cpu/kernels/causal_conv.cc) worked by hand: two channels,
// kernel 3, a past state that the first outputs read and that present_state carries on, bias and SiLU;
// and the errors for a weight or state of the wrong shape.
#include <gtest/gtest.h>

#include <cmath>

#include "tests/importer/model_builder.h"

namespace {

using namespace tunnx_test;
using tunnx::Model;
using tunnx::Session;
using tunnx::Tensor;

class CausalConvKernel : public TempDirTest {
 protected:
  Model model(const std::string& activation) {
    ModelBuilder b(27, 11);
    b.input("x", onnx_type_of<float>(), Dims{1, 2, 3});
    b.input("w", onnx_type_of<float>(), std::nullopt);  // negative tests feed other shapes
    b.input("bias", onnx_type_of<float>(), Dims{2});
    b.input("past", onnx_type_of<float>(), std::nullopt);
    auto& n = b.node("CausalConvWithState", {"x", "w", "bias", "past"}, {"y", "state"}, "cconv");
    attr_string(n, "activation", activation);
    b.output("y", onnx_type_of<float>(), std::nullopt);
    b.output("state", onnx_type_of<float>(), std::nullopt);
    return Model::load(b.save(path(activation + ".onnx")));
  }
  // Channel 0: x 1 2 3, past 10 20, weight [1, 0, 0] (reads two steps back), bias 0.
  // Channel 1: x 4 5 6, past 0 -1, weight [1, 1, 1] (a running sum of three), bias 0.5.
  const Tensor x = Tensor::from_vector<float>({1, 2, 3}, {1, 2, 3, 4, 5, 6});
  const Tensor w = Tensor::from_vector<float>({2, 1, 3}, {1, 0, 0, 1, 1, 1});
  const Tensor bias = Tensor::from_vector<float>({2}, {0, 0.5f});
  const Tensor past = Tensor::from_vector<float>({1, 2, 2}, {10, 20, 0, -1});
};

TEST_F(CausalConvKernel, ReadsThePastAndCarriesTheLastPositions) {
  auto out = Session(model("none")).run({{"x", x}, {"w", w}, {"bias", bias}, {"past", past}});
  // Channel 0 padded 10 20 1 2 3 -> 10 20 1; channel 1 padded 0 -1 4 5 6 -> 3 8 15, plus 0.5.
  EXPECT_EQ(values_of<float>(out.at("y").tensor()), (std::vector<float>{10, 20, 1, 3.5f, 8.5f, 15.5f}));
  EXPECT_EQ(out.at("state").tensor().dims(), (std::vector<int64_t>{1, 2, 2}));
  EXPECT_EQ(values_of<float>(out.at("state").tensor()), (std::vector<float>{2, 3, 5, 6}));
}

TEST_F(CausalConvKernel, SiluAppliesAfterTheBias) {
  auto out = Session(model("silu")).run({{"x", x}, {"w", w}, {"bias", bias}, {"past", past}});
  const std::vector<float> y = values_of<float>(out.at("y").tensor());
  const float expected[] = {10, 20, 1, 3.5f, 8.5f, 15.5f};
  ASSERT_EQ(y.size(), 6u);
  for (size_t i = 0; i < 6; ++i)
    EXPECT_NEAR(y[i], expected[i] / (1 + std::exp(-expected[i])), 1e-5) << "element " << i;
}

TEST_F(CausalConvKernel, ShapesItCannotTakeAreRefusedByName) {
  const tunnx::Error state = expect_error([&] {
    Session(model("none")).run({{"x", x}, {"w", w}, {"bias", bias}, {"past", Tensor::from_vector<float>({1, 2, 1}, {0, 0})}});
  });
  EXPECT_TRUE(contains(state.what(), "cconv")) << state.what();
  EXPECT_TRUE(contains(state.what(), "past_state must be [batch, channels, k - 1] = [1,2,2], got [1,2,1]"))
      << state.what();
  const tunnx::Error weight = expect_error([&] {
    Session(model("none")).run({{"x", x}, {"w", Tensor::from_vector<float>({2, 3}, {1, 0, 0, 1, 1, 1})},
                                {"bias", bias}, {"past", past}});
  });
  EXPECT_TRUE(contains(weight.what(), "weight must be [channels, 1, k]")) << weight.what();
}

}  // namespace
