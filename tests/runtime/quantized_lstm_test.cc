// com.microsoft:DynamicQuantizeLSTM (runtime/cpu/kernels/quantized_lstm.cc): a hand-computed case
// (zero weights, so the gates are the biases) and the attributes and inputs it refuses, by name.
// tests/contrib_ops/check_contrib_ops.py compares it with ONNX Runtime on generated cases.
#include <gtest/gtest.h>

#include <cmath>

#include "tests/importer/model_builder.h"

namespace {

using namespace tunnx_test;
using tunnx::DataType;
using tunnx::Model;
using tunnx::Session;
using tunnx::Tensor;

class QuantizedLstm : public TempDirTest {
 protected:
  static constexpr int64_t kH = 2, kI = 3;

  // X [2, 1, 3] -> DynamicQuantizeLSTM(hidden 2) with zero int8 weights, biases `bias`, scales 0.01.
  fs::path model(const std::vector<float>& bias, const std::vector<std::string>& activations = {},
                 bool with_lengths = false) {
    ModelBuilder b(17);
    b.add_opset("com.microsoft", 1);
    b.input("x", onnx_type_of<float>(), Dims{2, 1, kI});
    b.initializer(raw_tensor<int8_t>("w", {1, kI, 4 * kH}, std::vector<int8_t>(kI * 4 * kH, 0)));
    b.initializer(raw_tensor<int8_t>("r", {1, kH, 4 * kH}, std::vector<int8_t>(kH * 4 * kH, 0)));
    b.initializer(float_tensor("b", {1, 8 * kH}, bias));
    b.initializer(int64_tensor("lens", {1}, {1}));
    b.initializer(float_tensor("scale", {1}, {0.01f}));
    b.initializer(raw_tensor<int8_t>("zero", {1}, {0}));
    auto& n = b.node("DynamicQuantizeLSTM", {"x", "w", "r", "b", with_lengths ? "lens" : "", "", "", "", "scale", "zero", "scale", "zero"},
                     {"y", "y_h"}, "qlstm", "com.microsoft");
    attr_int(n, "hidden_size", kH);
    if (!activations.empty()) attr_strings(n, "activations", activations);
    b.output("y", onnx_type_of<float>(), Dims{2, 1, 1, kH});
    b.output("y_h", onnx_type_of<float>(), Dims{1, 1, kH});
    return b.save(path("m.onnx"));
  }
  Tensor x() { return Tensor::from_vector<float>({2, 1, kI}, {0.5f, -1.0f, 2.0f, 0.25f, 0.0f, -0.75f}); }
};

TEST_F(QuantizedLstm, ZeroWeightsLeaveTheBiasesAsGates) {
  // Gates i, o, f, c for both hidden units: W bias + R bias.
  std::vector<float> bias = {0.5f, -0.5f, 1.0f, 2.0f, -1.0f, 0.0f, 0.3f, -0.7f, 0.1f, 0.1f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
  const Model m = Model::load(model(bias));
  auto out = Session(m).run({{"x", x()}});
  const Tensor& y = out.at("y").tensor();
  ASSERT_EQ(y.dims(), (std::vector<int64_t>{2, 1, 1, kH}));
  auto sig = [](double v) { return 1 / (1 + std::exp(-v)); };
  for (int64_t j = 0; j < kH; ++j) {
    const double i = sig(bias[j] + bias[8 + j]), o = sig(bias[2 + j] + bias[10 + j]);
    const double f = sig(bias[4 + j] + bias[12 + j]), g = std::tanh(bias[6 + j] + bias[14 + j]);
    double c = 0;
    for (int64_t t = 0; t < 2; ++t) {
      c = f * c + i * g;
      EXPECT_NEAR(y.data_as<float>()[t * kH + j], o * std::tanh(c), 1e-6) << "step " << t << ", unit " << j;
    }
  }
}

TEST_F(QuantizedLstm, WhatItCannotComputeIsRefusedByName) {
  const std::vector<float> bias(8 * kH, 0.0f);
  const tunnx::Error relu = expect_error([&] {
    Session(Model::load(model(bias, {"Relu", "Tanh", "Tanh"})));
  });
  EXPECT_TRUE(contains(relu.what(), "qlstm")) << relu.what();
  EXPECT_TRUE(contains(relu.what(), "activations other than Sigmoid, Tanh, Tanh are not supported, got Relu")) << relu.what();
  const Model short_lengths = Model::load(model(bias, {}, true));
  const tunnx::Error lengths = expect_error([&] { Session(short_lengths).run({{"x", x()}}); });
  EXPECT_TRUE(contains(lengths.what(), "sequence_lens shorter than the sequence (1 of 2) are not supported")) << lengths.what();
}

}  // namespace
