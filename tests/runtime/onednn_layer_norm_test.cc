// The oneDNN LayerNormalization fast path (runtime/cpu/onednn/layer_norm.cc) against a
// double-precision layer norm: every axis, with and without B; the reference kernel keeps the cases
// the fast path leaves (Mean/InvStdDev outputs). The ONNX conformance cases run both.
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "runtime/core/kernel_registry.h"
#include "tests/importer/model_builder.h"

namespace {

using namespace tunnx_test;
using tunnx::DataType;
using tunnx::Model;
using tunnx::Session;
using tunnx::Tensor;

bool have_onednn() {
  const tunnx::KernelDef* def = tunnx::KernelRegistry::global().find(
      "", "LayerNormalization", 17, tunnx::DeviceType::kCpu, {DataType::kFloat32}, nullptr);
  return def && def->name == "cpu/onednn/LayerNormalization";
}

class OnednnLayerNormTest : public TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    if (!have_onednn()) GTEST_SKIP() << "built without oneDNN";
  }

  std::vector<float> random_values(int64_t n) {
    std::uniform_real_distribution<float> dist(-3.0f, 3.0f);
    std::vector<float> v(static_cast<size_t>(n));
    for (auto& x : v) x = dist(rng_);
    return v;
  }

  std::mt19937 rng_{5};
  int saved_ = 0;
};

TEST_F(OnednnLayerNormTest, EveryAxisMatchesDoublePrecision) {
  const std::vector<int64_t> dims = {2, 3, 4, 8};
  const float epsilon = 1e-3f;
  for (int64_t axis = -4; axis < 4; ++axis)
    for (bool with_bias : {false, true}) {
      const size_t a = static_cast<size_t>(axis < 0 ? axis + 4 : axis);
      int64_t outer = 1, inner = 1;
      for (size_t i = 0; i < dims.size(); ++i) (i < a ? outer : inner) *= dims[i];
      std::vector<int64_t> norm_dims(dims.begin() + static_cast<long>(a), dims.end());
      const std::vector<float> xs = random_values(outer * inner), scale = random_values(inner),
                               bias = random_values(inner);
      ModelBuilder b(17);
      b.input("x", onnx_type_of<float>(), Dims(dims.begin(), dims.end()));
      b.initializer(float_tensor("scale", norm_dims, scale));
      std::vector<std::string> inputs = {"x", "scale"};
      if (with_bias) {
        b.initializer(float_tensor("bias", norm_dims, bias));
        inputs.push_back("bias");
      }
      auto& n = b.node("LayerNormalization", inputs, {"y"}, "ln");
      attr_int(n, "axis", axis);
      attr_float(n, "epsilon", epsilon);
      b.output("y", onnx_type_of<float>(), Dims(dims.begin(), dims.end()));
      Model model = Model::load(b.save(path("m" + std::to_string(saved_++) + ".onnx")));
      Session session(model);
      const std::string what = "axis " + std::to_string(axis) + (with_bias ? " with B" : "");
      EXPECT_EQ(session.stats().kernels[0].kernel, "cpu/onednn/LayerNormalization") << what;
      Tensor x = Tensor::from_vector<float>(dims, xs);
      Tensor y = session.run({{"x", x}}).at("y").tensor();
      int bad = 0;
      for (int64_t o = 0; o < outer && bad < 5; ++o) {
        double mean = 0, var = 0;
        for (int64_t i = 0; i < inner; ++i) mean += xs[static_cast<size_t>(o * inner + i)];
        mean /= static_cast<double>(inner);
        for (int64_t i = 0; i < inner; ++i) var += std::pow(xs[static_cast<size_t>(o * inner + i)] - mean, 2);
        var /= static_cast<double>(inner);
        for (int64_t i = 0; i < inner; ++i) {
          const size_t at = static_cast<size_t>(o * inner + i);
          const double want = (xs[at] - mean) / std::sqrt(var + epsilon) * scale[static_cast<size_t>(i)] +
                              (with_bias ? bias[static_cast<size_t>(i)] : 0.0);
          if (!(std::fabs(y.data_as<float>()[at] - want) <= 1e-5 + 1e-5 * std::fabs(want))) {
            ADD_FAILURE() << what << ": element " << at << " is " << y.data_as<float>()[at] << ", expected " << want;
            ++bad;
          }
        }
      }
    }
}

TEST_F(OnednnLayerNormTest, MeanAndInvStdDevOutputsStayOnTheReferenceKernel) {
  ModelBuilder b(17);
  b.input("x", onnx_type_of<float>(), Dims{2, 4});
  b.initializer(float_tensor("scale", {4}, {1, 1, 1, 1}));
  b.node("LayerNormalization", {"x", "scale"}, {"y", "mean", "inv_std"}, "ln");
  b.output("y", onnx_type_of<float>(), Dims{2, 4});
  b.output("mean", onnx_type_of<float>(), Dims{2, 1});
  b.output("inv_std", onnx_type_of<float>(), Dims{2, 1});
  Model model = Model::load(b.save(path("stats.onnx")));
  Session session(model);
  auto out = session.run({{"x", Tensor::from_vector<float>({2, 4}, {1, 2, 3, 4, 2, 2, 2, 2})}});
  EXPECT_EQ(values_of<float>(out.at("mean").tensor()), (std::vector<float>{2.5f, 2.0f}));
  EXPECT_NEAR(out.at("inv_std").tensor().data_as<float>()[0], 1.0 / std::sqrt(1.25 + 1e-5), 1e-5);
  EXPECT_NEAR(out.at("y").tensor().data_as<float>()[0], -1.5 / std::sqrt(1.25 + 1e-5), 1e-5);
}

}  // namespace
