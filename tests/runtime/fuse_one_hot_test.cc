// The one-hot embedding fusion (runtime/core/passes/fuse_one_hot.cc) and com.tunnx:OneHotMatMul:
// MatMul(Cast(Equal(X, iota), float), W) runs as one node at optimization level 2 and gives level 0's
// outputs exactly, out-of-range indices (zero rows) and a W holding infinities included; a chain whose
// one-hot is read elsewhere, or whose constant is not 0..K-1, is left alone.
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/importer/model_builder.h"

namespace {

using namespace tunnx_test;
using tunnx::Model;
using tunnx::Session;
using tunnx::SessionOptions;
using tunnx::Tensor;

constexpr int32_t kF32 = onnx_type_of<float>();
constexpr int64_t kClasses = 5, kWidth = 3;

class FuseOneHot : public TempDirTest {
 protected:
  // y = MatMul(Cast(Equal(x [n, 4, 1], c [1, 1, 5]), float), w [5, 3]); `also_return_one_hot` makes the
  // one-hot a graph output too (so the chain must stay).
  Model build(const std::vector<float>& w, std::vector<int32_t> classes, bool also_return_one_hot = false) {
    ModelBuilder b;
    b.input("x", onnx_type_of<int32_t>(), Dims{"n", 4, 1});
    b.initializer(raw_tensor<int32_t>("c", {1, 1, kClasses}, classes));
    b.initializer(float_tensor("w", {kClasses, kWidth}, w));
    b.node("Equal", {"x", "c"}, {"hit"}, "equal");
    auto& cast = b.node("Cast", {"hit"}, {"one_hot"}, "cast");
    attr_int(cast, "to", kF32);
    b.node("MatMul", {"one_hot", "w"}, {"y"}, "dense");
    b.output("y", kF32, Dims{"n", 4, kWidth});
    if (also_return_one_hot) b.output("one_hot", kF32, Dims{"n", 4, kClasses});
    return Model::load(b.save(path("m.onnx")));
  }

  static std::vector<float> weights() {
    std::vector<float> w(kClasses * kWidth);
    for (size_t i = 0; i < w.size(); ++i) w[i] = 0.25f * static_cast<float>(i) - 1.0f;
    return w;
  }

  // Level 2 against level 0 on indices in and out of range; returns whether level 2 fused the chain.
  bool expect_same_outputs(const Model& model) {
    const Tensor x = Tensor::from_vector<int32_t>({2, 4, 1}, {0, 4, 2, 7, -1, 3, 1, 5});
    Session plain(model, {.optimization_level = 0}), fused(model, {.optimization_level = 2});
    const Tensor a = plain.run({{"x", x}}).at("y").tensor(), b = fused.run({{"x", x}}).at("y").tensor();
    EXPECT_EQ(a.dims(), b.dims());
    for (int64_t i = 0; i < a.numel(); ++i) {
      const float u = a.data_as<float>()[i], v = b.data_as<float>()[i];
      EXPECT_TRUE(u == v || (std::isnan(u) && std::isnan(v))) << "element " << i << ": " << u << " vs " << v;
    }
    for (const auto& k : fused.stats().kernels)
      if (k.op_type == "OneHotMatMul") return true;
    return false;
  }
};

TEST_F(FuseOneHot, EmbeddingAsOneHotProductBecomesOneNode) {
  EXPECT_TRUE(expect_same_outputs(build(weights(), {0, 1, 2, 3, 4})));
}

TEST_F(FuseOneHot, NonFiniteWeightsGiveTheProductsNaNs) {
  std::vector<float> w = weights();
  w[2 * kWidth + 1] = std::numeric_limits<float>::infinity();  // 0 * inf is NaN in every other row
  EXPECT_TRUE(expect_same_outputs(build(w, {0, 1, 2, 3, 4})));
}

TEST_F(FuseOneHot, OtherChainsStayAsWritten) {
  EXPECT_FALSE(expect_same_outputs(build(weights(), {0, 1, 2, 4, 3})));                       // not 0..K-1
  EXPECT_FALSE(expect_same_outputs(build(weights(), {0, 1, 2, 3, 4}, /*also_return_one_hot=*/true)));
}

}  // namespace
