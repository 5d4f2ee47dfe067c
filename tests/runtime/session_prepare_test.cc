// Kernels made ready when the session is (Kernel::prepare, SessionOptions::expected_dims): where the
// input dims are known then, the convolutions' primitives are built and their weights packed (with
// their BatchNormalization folded in) before the first run; the outputs are those of a session that
// builds them at its first run, and of level 0, whatever the batch later runs bring.
#include <cmath>
#include <map>
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
using tunnx::NamedValues;
using tunnx::Session;
using tunnx::SessionOptions;
using tunnx::Tensor;

constexpr int32_t kF32 = onnx_type_of<float>();

bool onednn_convolutions() {
  const tunnx::KernelDef* def = tunnx::KernelRegistry::global().find("com.tunnx", "FusedConv", 1, tunnx::DeviceType::kCpu,
                                                                      {DataType::kFloat32}, nullptr);
  return def && def->name.rfind("cpu/onednn/", 0) == 0;
}

class SessionPrepareTest : public TempDirTest {
 protected:
  std::vector<float> uniform(size_t n, float lo = -1.0f, float hi = 1.0f) { return tunnx_test::uniform(n, rng_, lo, hi); }

  // conv 3x3 -> BatchNormalization -> Relu -> conv 1x1 (16 channels: blocked layouts on AVX-512) ->
  // residual Add -> depthwise conv 3x3 -> GlobalAveragePool -> Gemm, on an input of `batch` dims.
  Model model(const Dims& input, const std::string& file) {
    ModelBuilder b(17);
    b.input("x", kF32, input);
    b.initializer(float_tensor("w1", {16, 3, 3, 3}, uniform(16 * 27)));
    b.initializer(float_tensor("b1", {16}, uniform(16)));
    auto& c1 = b.node("Conv", {"x", "w1", "b1"}, {"c1"}, "c1");
    attr_ints(c1, "pads", {1, 1, 1, 1});
    b.initializer(float_tensor("scale", {16}, uniform(16, 0.5f, 1.5f)));
    b.initializer(float_tensor("shift", {16}, uniform(16)));
    b.initializer(float_tensor("mean", {16}, uniform(16)));
    b.initializer(float_tensor("var", {16}, uniform(16, 0.5f, 2.0f)));
    b.node("BatchNormalization", {"c1", "scale", "shift", "mean", "var"}, {"bn"}, "bn");
    b.node("Relu", {"bn"}, {"r"}, "relu");
    b.initializer(float_tensor("w2", {16, 16, 1, 1}, uniform(256)));
    b.node("Conv", {"r", "w2"}, {"c2"}, "c2");
    b.node("Add", {"c2", "r"}, {"s"}, "add");
    b.initializer(float_tensor("w3", {16, 1, 3, 3}, uniform(144)));
    auto& c3 = b.node("Conv", {"s", "w3"}, {"c3"}, "c3");
    attr_ints(c3, "pads", {1, 1, 1, 1});
    attr_int(c3, "group", 16);
    b.node("GlobalAveragePool", {"c3"}, {"g"}, "gap");
    b.initializer(int64_tensor("flat", {2}, {0, 16}));
    b.node("Reshape", {"g", "flat"}, {"f"}, "flatten");
    b.initializer(float_tensor("fc", {10, 16}, uniform(160)));
    auto& fc = b.node("Gemm", {"f", "fc"}, {"y"}, "fc");
    attr_int(fc, "transB", 1);
    b.output("y", kF32, Dims{input[0], 10});
    return Model::load(b.save(path(file)));
  }

  Tensor input(const std::vector<int64_t>& dims) { return uniform_tensor(dims, rng_); }

  static void expect_near(const Tensor& got, const Tensor& want, const std::string& what) {
    tunnx_test::expect_near(got, want, what, 2e-5f, 2e-5f);
  }

  std::mt19937 rng_{11};
};

TEST_F(SessionPrepareTest, ExpectedDimsPrepareTheConvolutionsAndChangeNoOutput) {
  const Model m = model(Dims{"N", 3, 12, 10}, "dynamic.onnx");
  const Session plain(m, {.optimization_level = 0});
  const Session unprepared(m, {.threads = 1});
  EXPECT_EQ(unprepared.stats().prepared_nodes, 0);  // nothing says what N will be
  const std::map<std::string, int64_t> named = tunnx::dims_named_by(m, {{"x", input({2, 3, 12, 10})}, {"other", input({5})}});
  EXPECT_EQ(named, (std::map<std::string, int64_t>{{"N", 2}}));
  for (int threads : {1, 2}) {
    for (bool release : {false, true}) {
      SessionOptions options;
      options.threads = threads;
      options.release_packed_originals = release;
      options.expected_dims = {{"N", 2}};
      const Session prepared(m, options);
      const std::string what = std::to_string(threads) + " threads" + (release ? ", originals released" : "");
      if (onednn_convolutions()) {
        EXPECT_GE(prepared.stats().prepared_nodes, 3) << what;  // the three convolutions
      }
      // The expected batch, then another one (its first run builds its own primitives), then the first again.
      for (int64_t batch : {2, 3, 2}) {
        const NamedValues in = {{"x", input({batch, 3, 12, 10})}};
        const Tensor want = plain.run(in).at("y").tensor();
        expect_near(prepared.run(in).at("y").tensor(), want, what + ", batch " + std::to_string(batch));
        expect_near(unprepared.run(in).at("y").tensor(), want, "unprepared, batch " + std::to_string(batch));
      }
    }
  }
}

TEST_F(SessionPrepareTest, FixedInputDimsNeedNoExpectedDims) {
  const Model m = model(Dims{2, 3, 9, 9}, "fixed.onnx");
  const Session prepared(m, {.threads = 2}), plain(m, {.optimization_level = 0});
  if (onednn_convolutions()) {
    EXPECT_GE(prepared.stats().prepared_nodes, 3);
  }
  const NamedValues in = {{"x", input({2, 3, 9, 9})}};
  expect_near(prepared.run(in).at("y").tensor(), plain.run(in).at("y").tensor(), "fixed dims");
  // A weight written after the session was made is seen: its packed copy is made again.
  Model writable = model(Dims{2, 3, 9, 9}, "written.onnx");
  const Session before_write(writable, {.threads = 1});
  Tensor w = writable.parameter("w2");
  for (int64_t i = 0; i < w.numel(); ++i) w.mutable_data_as<float>()[i] *= -2.0f;
  const Session reference(writable, {.optimization_level = 0});
  expect_near(before_write.run(in).at("y").tensor(), reference.run(in).at("y").tensor(), "after a write");
}

// Free dims without names ("?", as Paddle2ONNX writes them) are beyond expected_dims; the dims runs
// feed (SessionOptions::expected_input_dims) fix them through shape inference, and the session
// prepares the convolutions. Runs of those dims and of others give level 0's outputs.
TEST_F(SessionPrepareTest, ExpectedInputDimsFixUnnamedDims) {
  const Model m = model(Dims{kUnknownDim, 3, kUnknownDim, 10}, "unnamed.onnx");
  const Session plain(m, {.optimization_level = 0});
  const NamedValues expected = {{"x", input({2, 3, 12, 10})}};
  EXPECT_EQ(tunnx::input_dims_of(expected), (std::map<std::string, std::vector<int64_t>>{{"x", {2, 3, 12, 10}}}));
  EXPECT_TRUE(tunnx::dims_named_by(m, expected).empty());
  const Session unprepared(m, {.threads = 2, .expected_dims = tunnx::dims_named_by(m, expected)});
  EXPECT_EQ(unprepared.stats().prepared_nodes, 0);
  for (int threads : {1, 2}) {
    SessionOptions options;
    options.threads = threads;
    options.expected_input_dims = tunnx::input_dims_of(expected);
    const Session prepared(m, options);
    const std::string what = std::to_string(threads) + " threads";
    if (onednn_convolutions()) {
      EXPECT_GE(prepared.stats().prepared_nodes, 3) << what;  // the three convolutions
    }
    for (int64_t height : {12, 7, 12}) {
      const NamedValues in = {{"x", input({2, 3, height, 10})}};
      expect_near(prepared.run(in).at("y").tensor(), plain.run(in).at("y").tensor(), what + ", height " + std::to_string(height));
    }
  }
}

// ONNX's inference names the batch after a Resize anew (unk__N) though the Resize scales it by 1:
// the importer renames it back to the input's (YOLOv8n's neck), so a session told the batch prepares
// the convolution after the upsampling too, and its outputs are level 0's.
TEST_F(SessionPrepareTest, TheBatchAfterAnUpsamplingIsKnown) {
  ModelBuilder b(17);
  b.input("x", kF32, Dims{"N", 16, 6, 6});
  b.initializer(float_tensor("scales", {4}, {1.0f, 1.0f, 2.0f, 2.0f}));
  auto& up = b.node("Resize", {"x", "", "scales"}, {"u"}, "upsample");
  attr_string(up, "mode", "nearest");
  b.initializer(float_tensor("w", {16, 16, 3, 3}, uniform(16 * 16 * 9)));
  auto& conv = b.node("Conv", {"u", "w"}, {"c"}, "conv");
  attr_ints(conv, "pads", {1, 1, 1, 1});
  b.node("Relu", {"c"}, {"y"}, "relu");
  b.output("y", kF32, Dims{"N", 16, 12, 12});
  const Model m = Model::load(b.save(path("upsampled.onnx")));
  const Session plain(m, {.optimization_level = 0});
  const Session prepared(m, {.threads = 2, .expected_dims = {{"N", 2}}});
  if (onednn_convolutions()) {
    EXPECT_GE(prepared.stats().prepared_nodes, 1);  // the convolution after the Resize
  }
  const NamedValues in = {{"x", input({2, 16, 6, 6})}};
  expect_near(prepared.run(in).at("y").tensor(), plain.run(in).at("y").tensor(), "after the upsampling");
}

}  // namespace
