// The oneDNN Softmax fast path (runtime/cpu/onednn/softmax.cc) against a double-precision softmax:
// every axis (negative too) at opset 13, the coerced-2-D rows of opset 11, large logits, and the
// reference kernel kept for other dtypes. The ONNX conformance cases run it too.
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
  const tunnx::KernelDef* def =
      tunnx::KernelRegistry::global().find("", "Softmax", 13, tunnx::DeviceType::kCpu, {DataType::kFloat32}, nullptr);
  return def && def->name == "cpu/onednn/Softmax";
}

// Softmax of x over the elements that share every index but those in [first, last) dims.
std::vector<double> expected_softmax(const Tensor& x, size_t first, size_t last) {
  const auto& d = x.dims();
  int64_t outer = 1, len = 1, inner = 1;
  for (size_t i = 0; i < d.size(); ++i) (i < first ? outer : i < last ? len : inner) *= d[i];
  std::vector<double> y(static_cast<size_t>(x.numel()));
  const float* p = x.data_as<float>();
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t in = 0; in < inner; ++in) {
      double max = -INFINITY, sum = 0;
      for (int64_t l = 0; l < len; ++l) max = std::fmax(max, p[(o * len + l) * inner + in]);
      for (int64_t l = 0; l < len; ++l) sum += std::exp(p[(o * len + l) * inner + in] - max);
      for (int64_t l = 0; l < len; ++l) {
        const size_t at = static_cast<size_t>((o * len + l) * inner + in);
        y[at] = std::exp(p[at] - max) / sum;
      }
    }
  return y;
}

class OnednnSoftmaxTest : public TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    if (!have_onednn()) GTEST_SKIP() << "built without oneDNN";
  }

  Tensor run(const Tensor& x, int64_t opset, int64_t axis, std::string* kernel = nullptr) {
    ModelBuilder b(opset);
    Dims dims(x.dims().begin(), x.dims().end());
    b.input("x", onnx_type_of<float>(), dims);
    attr_int(b.node("Softmax", {"x"}, {"y"}, "softmax"), "axis", axis);
    b.output("y", onnx_type_of<float>(), dims);
    Model model = Model::load(b.save(path("m" + std::to_string(saved_++) + ".onnx")));
    Session session(model);
    if (kernel) *kernel = session.stats().kernels[0].kernel;
    return session.run({{"x", x}}).at("y").tensor();
  }

  Tensor random(const std::vector<int64_t>& dims, float scale) {
    Tensor t(DataType::kFloat32, dims);
    std::uniform_real_distribution<float> dist(-scale, scale);
    for (int64_t i = 0; i < t.numel(); ++i) t.mutable_data_as<float>()[i] = dist(rng_);
    return t;
  }

  static void expect_close(const Tensor& y, const std::vector<double>& want, const std::string& what) {
    ASSERT_EQ(static_cast<size_t>(y.numel()), want.size()) << what;
    int bad = 0;
    for (size_t i = 0; i < want.size() && bad < 5; ++i)
      if (!(std::fabs(y.data_as<float>()[i] - want[i]) <= 1e-6 + 1e-5 * want[i])) {
        ADD_FAILURE() << what << ": element " << i << " is " << y.data_as<float>()[i] << ", expected " << want[i];
        ++bad;
      }
  }

  std::mt19937 rng_{11};
  int saved_ = 0;
};

TEST_F(OnednnSoftmaxTest, EveryAxisAtOpset13) {
  const std::vector<int64_t> dims = {3, 1, 17, 8};
  for (int64_t axis = -4; axis < 4; ++axis) {
    Tensor x = random(dims, 4.0f);
    std::string kernel;
    Tensor y = run(x, 13, axis, &kernel);
    EXPECT_EQ(kernel, "cpu/onednn/Softmax");
    const size_t a = static_cast<size_t>(axis < 0 ? axis + 4 : axis);
    expect_close(y, expected_softmax(x, a, a + 1), "axis " + std::to_string(axis));
  }
}

TEST_F(OnednnSoftmaxTest, CoercedRowsBeforeOpset13) {
  const std::vector<int64_t> dims = {2, 3, 5, 7};
  for (int64_t axis : {0, 1, 2, 3, 4, -1, -3}) {
    Tensor x = random(dims, 4.0f);
    const size_t a = static_cast<size_t>(axis < 0 ? axis + 4 : axis);
    expect_close(run(x, 11, axis), expected_softmax(x, a, 4), "opset 11 axis " + std::to_string(axis));
  }
}

// An axis with many values after it runs the row-combining path (YOLOv8's box decoder: softmax over
// the 16 bins of [batch, 16, 4, anchors]); column blocks of 512 with a partial last one.
TEST_F(OnednnSoftmaxTest, AxisWithManyValuesAfterIt) {
  for (const std::vector<int64_t>& dims : {std::vector<int64_t>{2, 16, 4, 1100}, std::vector<int64_t>{3, 5, 17}}) {
    Tensor x = random(dims, 30.0f);
    expect_close(run(x, 13, 1), expected_softmax(x, 1, 2), "axis 1 of " + std::to_string(dims.size()) + "-D");
  }
}

TEST_F(OnednnSoftmaxTest, LargeLogitsStayFinite) {
  Tensor x = random({4, 1000}, 1000.0f);
  Tensor y = run(x, 13, -1);
  expect_close(y, expected_softmax(x, 1, 2), "logits up to 1000");
}

TEST_F(OnednnSoftmaxTest, AxisOutOfRangeIsTheReferenceKernelsError) {
  Tensor x = random({2, 3}, 1.0f);
  tunnx::Error e = expect_error([&] { run(x, 13, 2); });
  EXPECT_TRUE(contains(e.what(), "axis")) << e.what();
  EXPECT_TRUE(contains(e.what(), "softmax")) << e.what();
}

}  // namespace
