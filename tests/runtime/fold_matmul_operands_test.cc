// The product-operand fold (runtime/core/passes/fold_matmul_operands.cc): transposes of an operand's
// last two dims and scalar scales (Constant nodes) on a product's output or operands become the
// product's transA / transB / alpha at optimization level 2, with level 0's outputs; what must stay
// (a scale held by an initializer, a transpose the graph returns, c / P) stays.
#include <cmath>
#include <random>
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

class FoldMatMulOperands : public TempDirTest {
 protected:
  Tensor random(const std::vector<int64_t>& dims) {
    Tensor t(tunnx::DataType::kFloat32, dims);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    for (int64_t i = 0; i < t.numel(); ++i) t.mutable_data_as<float>()[i] = dist(rng_);
    return t;
  }

  static void constant(ModelBuilder& b, const std::string& name, float value) {
    auto& c = b.node("Constant", {}, {name}, name);
    attr_tensor(c, "value", float_tensor("", {}, {value}));
  }

  // Runs `b`'s model at levels 0 and 2 on `inputs`; outputs must agree to float rounding. Returns the
  // number of FusedMatMul nodes level 2 planned.
  int compare(ModelBuilder& b, const tunnx::NamedValues& inputs) {
    const Model model = Model::load(b.save(path("m.onnx")));
    Session plain(model, {.optimization_level = 0}), folded(model, {.optimization_level = 2});
    const tunnx::NamedValues x = plain.run(inputs), y = folded.run(inputs);
    for (const auto& [name, v] : x) {
      const Tensor& a = v.tensor();
      const Tensor& c = y.at(name).tensor();
      EXPECT_EQ(a.dims(), c.dims()) << name;
      for (int64_t i = 0; i < a.numel(); ++i)
        EXPECT_NEAR(a.data_as<float>()[i], c.data_as<float>()[i], 1e-5) << name << "[" << i << "]";
    }
    int fused = 0;
    for (const auto& k : folded.stats().kernels) fused += k.op_type == "FusedMatMul" ? 1 : 0;
    return fused;
  }

  std::mt19937 rng_{11};
};

TEST_F(FoldMatMulOperands, AttentionScoresAndTheirGradientsFold) {
  // s = (q k^T) / 8 with k^T a swap of the last two dims; g = Div(dy, 8) read by dq = g k and
  // dk = g^T q (a transposed operand on each side).
  ModelBuilder b;
  b.input("q", kF32, Dims{2, 3, 5, 4});
  b.input("k", kF32, Dims{2, 3, 6, 4});
  b.input("dy", kF32, Dims{2, 3, 5, 6});
  constant(b, "eight", 8.0f);
  auto& kt = b.node("Transpose", {"k"}, {"kt"}, "kt");
  attr_ints(kt, "perm", {0, 1, 3, 2});
  b.node("MatMul", {"q", "kt"}, {"qk"}, "scores");
  b.node("Div", {"qk", "eight"}, {"s"}, "scale");
  b.node("Div", {"dy", "eight"}, {"g"}, "scale_grad");
  b.node("MatMul", {"g", "k"}, {"dq"}, "dq");
  auto& gt = b.node("Transpose", {"g"}, {"gt"}, "gt");
  attr_ints(gt, "perm", {0, 1, 3, 2});
  b.node("MatMul", {"gt", "q"}, {"dk"}, "dk");
  b.output("s", kF32, Dims{2, 3, 5, 6});
  b.output("dq", kF32, Dims{2, 3, 5, 4});
  b.output("dk", kF32, Dims{2, 3, 6, 4});
  // The Transpose of g folds into dk first; then only products read g, and Div(dy, 8) folds into both.
  EXPECT_EQ(compare(b, {{"q", random({2, 3, 5, 4})}, {"k", random({2, 3, 6, 4})}, {"dy", random({2, 3, 5, 6})}}), 3);
}

TEST_F(FoldMatMulOperands, AScaledOperandReadByProductsOnlyFolds) {
  ModelBuilder b;
  b.input("x", kF32, Dims{4, 3});
  b.input("w1", kF32, Dims{3, 5});
  b.input("w2", kF32, Dims{3, 2});
  constant(b, "half", 0.5f);
  b.node("Mul", {"half", "x"}, {"hx"}, "scale");
  b.node("MatMul", {"hx", "w1"}, {"y1"}, "p1");
  b.node("MatMul", {"hx", "w2"}, {"y2"}, "p2");
  b.output("y1", kF32, Dims{4, 5});
  b.output("y2", kF32, Dims{4, 2});
  EXPECT_EQ(compare(b, {{"x", random({4, 3})}, {"w1", random({3, 5})}, {"w2", random({3, 2})}}), 2);
}

TEST_F(FoldMatMulOperands, WhatMustStayStays) {
  ModelBuilder b;
  b.input("a", kF32, Dims{3, 4});
  b.input("bt", kF32, Dims{5, 4});
  b.initializer(float_tensor("scale", {}, {4.0f}));  // an initializer: a Parameter a caller may write
  constant(b, "two", 2.0f);
  auto& t = b.node("Transpose", {"bt"}, {"b"}, "t");
  attr_ints(t, "perm", {1, 0});
  b.node("MatMul", {"a", "b"}, {"p"}, "p");       // its B is returned: the Transpose stays
  b.node("Div", {"p", "scale"}, {"y"}, "div");    // by an initializer: stays
  b.node("MatMul", {"a", "b"}, {"q"}, "q");
  b.node("Div", {"two", "q"}, {"z"}, "inverse");  // c / P is no scale
  b.output("y", kF32, Dims{3, 5});
  b.output("z", kF32, Dims{3, 5});
  b.output("b", kF32, Dims{4, 5});
  EXPECT_EQ(compare(b, {{"a", random({3, 4})}, {"bt", random({5, 4})}}), 0);
}

}  // namespace
