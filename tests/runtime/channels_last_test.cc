// The channels_last pass (runtime/core/passes/channels_last.cc): where the FusedConv kernel prefers
// NHWC (oneDNN), 2-D convolutions read and write channels-last values, consecutive ones (through
// channel Split/Concat and same-shape elementwise ops) hand them over with no conversion between, a
// Transpose converts only at the edges, and every output equals level 0's.
#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include <gtest/gtest.h>

#include "runtime/core/kernel_registry.h"
#include "tests/importer/model_builder.h"

namespace {

using namespace tunnx_test;
using tunnx::DataType;
using tunnx::Model;
using tunnx::Session;
using tunnx::SessionOptions;
using tunnx::Tensor;

constexpr int32_t kF32 = onnx_type_of<float>();

bool prefers_channels_last() {
  const tunnx::KernelDef* def = tunnx::KernelRegistry::global().find("com.tunnx", "FusedConv", 1, tunnx::DeviceType::kCpu,
                                                                      {DataType::kFloat32}, nullptr);
  return def && def->prefers_channels_last;
}

class ChannelsLastTest : public TempDirTest {
 protected:
  std::vector<float> uniform(size_t n, float lo = -1.0f, float hi = 1.0f) { return tunnx_test::uniform(n, rng_, lo, hi); }

  // Conv k x k (pads k/2) from `in` (c_in channels) to `out` (c_out), with a bias.
  void conv(ModelBuilder& b, const std::string& in, const std::string& out, int64_t c_in, int64_t c_out, int64_t k,
            int64_t stride = 1) {
    b.initializer(float_tensor(out + ".w", {c_out, c_in, k, k}, uniform(static_cast<size_t>(c_out * c_in * k * k))));
    b.initializer(float_tensor(out + ".b", {c_out}, uniform(static_cast<size_t>(c_out))));
    auto& n = b.node("Conv", {in, out + ".w", out + ".b"}, {out}, out);
    attr_ints(n, "pads", {k / 2, k / 2, k / 2, k / 2});
    attr_ints(n, "strides", {stride, stride});
  }

  static Session session(const Model& model, int level) {
    SessionOptions options;
    options.optimization_level = level;
    return Session(model, options);
  }

  static void expect_near(const Tensor& got, const Tensor& want, const std::string& what) {
    tunnx_test::expect_near(got, want, what, 2e-5f, 2e-5f);
  }

  static int count(const Session& s, const std::string& op) {
    const auto& k = s.stats().kernels;
    return static_cast<int>(std::count_if(k.begin(), k.end(), [&](const auto& n) { return n.op_type == op; }));
  }

  Tensor input(const std::vector<int64_t>& dims) { return uniform_tensor(dims, rng_); }

  std::mt19937 rng_{3};
  int saved_ = 0;
};

// A C2f-like block (YOLOv8): conv -> SiLU -> Split on channels -> conv on one half -> Add with it ->
// Concat on channels -> conv; then a MaxPool and an AveragePool (com.tunnx:ChannelsLastPool) and a
// last conv. Transposes: one out for the graph output `cat`, one out at the end (c1 reads the 3-channel
// image as it lies).
TEST_F(ChannelsLastTest, ConsecutiveConvolutionsShareChannelsLastValues) {
  ModelBuilder b(17);
  b.input("x", kF32, Dims{2, 3, 12, 12});
  conv(b, "x", "c1", 3, 8, 3);
  b.node("Sigmoid", {"c1"}, {"s1"}, "sig");
  b.node("Mul", {"c1", "s1"}, {"a1"}, "silu");
  b.initializer(int64_tensor("halves", {2}, {4, 4}));
  auto& split = b.node("Split", {"a1", "halves"}, {"h0", "h1"}, "split");
  attr_int(split, "axis", 1);
  conv(b, "h1", "c2", 4, 4, 3);
  b.node("Relu", {"c2"}, {"r2"}, "relu");
  b.node("Add", {"r2", "h1"}, {"sum"}, "add");
  auto& cat = b.node("Concat", {"h0", "h1", "sum"}, {"cat"}, "concat");
  attr_int(cat, "axis", 1);
  conv(b, "cat", "c3", 12, 6, 1);
  auto& pool = b.node("MaxPool", {"c3"}, {"p"}, "pool");
  attr_ints(pool, "kernel_shape", {2, 2});
  attr_ints(pool, "strides", {2, 2});
  auto& average = b.node("AveragePool", {"p"}, {"a"}, "average");
  attr_ints(average, "kernel_shape", {3, 3});
  attr_ints(average, "pads", {1, 1, 1, 1});
  conv(b, "a", "c4", 6, 5, 3, 2);
  b.output("c4", kF32, Dims{2, 5, 3, 3});
  b.output("cat", kF32, Dims{2, 12, 12, 12});  // an NCHW graph output inside the region
  Model model = Model::load(b.save(path("c2f.onnx")));
  Session fused = session(model, 2), plain = session(model, 0);
  const tunnx::NamedValues in = {{"x", input({2, 3, 12, 12})}};
  for (int run = 0; run < 2; ++run) {
    auto got = fused.run(in), want = plain.run(in);
    expect_near(got.at("c4").tensor(), want.at("c4").tensor(), "c4");
    expect_near(got.at("cat").tensor(), want.at("cat").tensor(), "cat");
  }
  if (!prefers_channels_last()) GTEST_SKIP() << "the FusedConv kernel does not prefer channels-last here";
  EXPECT_EQ(count(fused, "FusedConv"), 4);
  EXPECT_EQ(count(fused, "Conv"), 0);
  EXPECT_EQ(count(fused, "ChannelsLastPool"), 2);
  EXPECT_EQ(count(fused, "Transpose"), 2);
}

// An upsampling Resize between convolutions (YOLOv8's neck) runs on NHWC values with its scales
// reordered; a Resize that scales the channels does not.
TEST_F(ChannelsLastTest, ResizeOfHeightAndWidthStaysChannelsLast) {
  for (bool scales_channels : {false, true}) {
    ModelBuilder b(17);
    b.input("x", kF32, Dims{1, 3, 5, 6});
    conv(b, "x", "c1", 3, 4, 3);
    b.initializer(float_tensor("scales", {4}, {1.0f, scales_channels ? 2.0f : 1.0f, 2.0f, 3.0f}));
    auto& resize = b.node("Resize", {"c1", "", "scales"}, {"up"}, "resize");
    attr_string(resize, "mode", "nearest");
    const int64_t channels = scales_channels ? 8 : 4;
    conv(b, "up", "c2", channels, 2, 3);
    b.output("c2", kF32, Dims{1, 2, 10, 18});
    Model model = Model::load(b.save(path("resize" + std::to_string(saved_++) + ".onnx")));
    Session fused = session(model, 2), plain = session(model, 0);
    const tunnx::NamedValues in = {{"x", input({1, 3, 5, 6})}};
    expect_near(fused.run(in).at("c2").tensor(), plain.run(in).at("c2").tensor(), "resize");
    if (!prefers_channels_last()) GTEST_SKIP() << "the FusedConv kernel does not prefer channels-last here";
    // Out at the end; scaling the channels, out of c1 and in and out of c2 (c1 reads x as it lies).
    EXPECT_EQ(count(fused, "Transpose"), scales_channels ? 3 : 1) << "scales channels: " << scales_channels;
  }
}

// A squeeze-excite block (MobileNetV3): GlobalAveragePool -> 1x1 conv -> HardSigmoid -> Mul with
// the block's input, broadcast over H and W; at opset 17 (axes attribute) and 18 (axes input). Its
// mean runs on the channels-last twin, and then the whole block as one SqueezeExcite
// (fuse_squeeze_excite_test.cc).
TEST_F(ChannelsLastTest, SqueezeExciteStaysChannelsLast) {
  for (int64_t opset : {17, 18}) {
    ModelBuilder b(opset);
    b.input("x", kF32, Dims{2, 3, 6, 5});
    conv(b, "x", "c1", 3, 8, 3);
    b.node("GlobalAveragePool", {"c1"}, {"pooled"}, "gap");
    conv(b, "pooled", "squeeze", 8, 8, 1);
    b.node("HardSigmoid", {"squeeze"}, {"gate"}, "gate");
    b.node("Mul", {"c1", "gate"}, {"excited"}, "mul");
    conv(b, "excited", "c2", 8, 4, 1);
    b.output("c2", kF32, Dims{2, 4, 6, 5});
    Model model = Model::load(b.save(path("se" + std::to_string(opset) + ".onnx")));
    Session fused = session(model, 2), plain = session(model, 0);
    const tunnx::NamedValues in = {{"x", input({2, 3, 6, 5})}};
    expect_near(fused.run(in).at("c2").tensor(), plain.run(in).at("c2").tensor(), "opset " + std::to_string(opset));
    if (!prefers_channels_last()) GTEST_SKIP() << "the FusedConv kernel does not prefer channels-last here";
    EXPECT_EQ(count(fused, "Transpose"), 1) << "opset " << opset;  // out only: c1 reads x as it lies
    EXPECT_EQ(count(fused, "SqueezeExcite"), 1) << "opset " << opset;
  }
}

// A 1-D convolution written as 2-D (tf2onnx's [N, C, L, 1] with a [k, 1] kernel) stays NCHW, where
// oneDNN runs it as 1-D.
TEST_F(ChannelsLastTest, OneDimensionalConvolutionWrittenAs2DStays) {
  ModelBuilder b(17);
  b.input("x", kF32, Dims{"N", 4, 9, 1});
  b.initializer(float_tensor("w", {6, 4, 3, 1}, uniform(72)));
  auto& c = b.node("Conv", {"x", "w"}, {"y"}, "conv");
  attr_ints(c, "pads", {1, 0, 1, 0});
  b.output("y", kF32, Dims{"N", 6, 9, 1});
  Model model = Model::load(b.save(path("conv1d.onnx")));
  Session fused = session(model, 2), plain = session(model, 0);
  const tunnx::NamedValues in = {{"x", input({2, 4, 9, 1})}};
  expect_near(fused.run(in).at("y").tensor(), plain.run(in).at("y").tensor(), "1-D");
  EXPECT_EQ(count(fused, "Transpose"), 0);
  EXPECT_EQ(count(fused, "Conv"), 1);
}

// An AveragePool whose last window reaches past the end pad (ceil_mode) runs on the reference kernel
// under the oneDNN one: ChannelsLastPool's reference moves the channels around it.
TEST_F(ChannelsLastTest, PoolOnTheReferencePathMatches) {
  ModelBuilder b(17);
  b.input("x", kF32, Dims{1, 3, 6, 7});
  conv(b, "x", "c", 3, 4, 3);
  auto& pool = b.node("AveragePool", {"c"}, {"p"}, "pool");
  attr_ints(pool, "kernel_shape", {3, 3});
  attr_ints(pool, "strides", {2, 2});
  attr_int(pool, "ceil_mode", 1);
  conv(b, "p", "y", 4, 2, 1);
  b.output("y", kF32, Dims{1, 2, 3, 3});
  Model model = Model::load(b.save(path("ceil.onnx")));
  Session fused = session(model, 2), plain = session(model, 0);
  const tunnx::NamedValues in = {{"x", input({1, 3, 6, 7})}};
  expect_near(fused.run(in).at("y").tensor(), plain.run(in).at("y").tensor(), "ceil_mode pool");
  if (!prefers_channels_last()) GTEST_SKIP() << "the FusedConv kernel does not prefer channels-last here";
  EXPECT_EQ(count(fused, "ChannelsLastPool"), 1);
}

// A residual from outside the region is converted once; a graph input read by a convolution too.
TEST_F(ChannelsLastTest, ResidualFromAnNchwValueIsConverted) {
  ModelBuilder b(17);
  b.input("x", kF32, Dims{1, 4, 7, 7});
  b.input("z", kF32, Dims{1, 4, 7, 7});
  conv(b, "x", "c", 4, 4, 3);
  b.node("Add", {"c", "z"}, {"s"}, "add");
  b.node("Relu", {"s"}, {"y"}, "relu");
  b.output("y", kF32, Dims{1, 4, 7, 7});
  Model model = Model::load(b.save(path("res.onnx")));
  Session fused = session(model, 2), plain = session(model, 0);
  const tunnx::NamedValues in = {{"x", input({1, 4, 7, 7})}, {"z", input({1, 4, 7, 7})}};
  expect_near(fused.run(in).at("y").tensor(), plain.run(in).at("y").tensor(), "y");
  if (!prefers_channels_last()) GTEST_SKIP() << "the FusedConv kernel does not prefer channels-last here";
  EXPECT_EQ(count(fused, "FusedConv"), 1);
  EXPECT_EQ(count(fused, "Transpose"), 2);  // z in, y out (the convolution reads x as it lies)
}

// A network's first layer reads the image as the model takes it (channels_first_source): 16 output
// channels on oneDNN's NCHW-reading kernel, whose nChw16c output is NHWC itself, and 32 (with a
// HardSwish and a residual) reordering the image inside the kernel instead; a convolution of 5 input
// channels, or of groups, reads through a Transpose as before.
TEST_F(ChannelsLastTest, FirstLayerReadsTheImageAsItLies) {
  for (const auto& [c_in, c_out, groups] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{
           {3, 16, 1}, {1, 16, 1}, {4, 32, 1}, {5, 16, 1}, {4, 16, 2}}) {
    const std::string what = std::to_string(c_in) + " -> " + std::to_string(c_out) + " in " + std::to_string(groups);
    ModelBuilder b(17);
    b.input("x", kF32, Dims{2, c_in, 17, 15});
    b.initializer(float_tensor("w", {c_out, c_in / groups, 3, 3}, uniform(static_cast<size_t>(c_out * c_in / groups * 9))));
    b.initializer(float_tensor("b", {c_out}, uniform(static_cast<size_t>(c_out))));
    auto& c = b.node("Conv", {"x", "w", "b"}, {"c"}, "conv");
    attr_ints(c, "pads", {1, 1, 1, 1});
    attr_ints(c, "strides", {2, 2});
    attr_int(c, "group", groups);
    b.input("z", kF32, Dims{2, c_out, 9, 8});
    b.node("Add", {"c", "z"}, {"s"}, "add");
    b.node("HardSwish", {"s"}, {"h"}, "hardswish");
    conv(b, "h", "y", c_out, 8, 1);
    b.output("y", kF32, Dims{2, 8, 9, 8});
    Model model = Model::load(b.save(path("first" + std::to_string(saved_++) + ".onnx")));
    Session fused = session(model, 2), plain = session(model, 0);
    const tunnx::NamedValues in = {{"x", input({2, c_in, 17, 15})}, {"z", input({2, c_out, 9, 8})}};
    for (int run = 0; run < 2; ++run)
      expect_near(fused.run(in).at("y").tensor(), plain.run(in).at("y").tensor(), what);
    if (!prefers_channels_last()) GTEST_SKIP() << "the FusedConv kernel does not prefer channels-last here";
    const bool as_it_lies = c_in <= 4 && groups == 1;
    EXPECT_EQ(count(fused, "Transpose"), as_it_lies ? 2 : 3) << what;  // z in, y out (and x in)
  }
}

// tf2onnx's 1-D convolution (magika): a [N, L, C] value made [N, C, L, 1] by Unsqueeze, an identity
// Slice and a Transpose, the convolution with a [k, 1] kernel, an identity Slice and a Squeeze back to
// [N, M, L'], a per-channel bias Add, an activation and GlobalMaxPool, squeezed to [N, M]. Channels-
// last, the transposes cancel: the convolution reads the [N, L, C] value through a view and
// everything after it runs on [N, L', M] values; no Transpose is left, and the bias Add (with an
// activation right after it) folds into the convolution through the Squeeze. A NaN input is passed
// over by the maximum at both levels (GlobalMaxPool's way, not ReduceMax's). At opsets 12 (Squeeze's
// axes an attribute) and 17.
TEST_F(ChannelsLastTest, OneDimensionalConvolutionBetweenTransposesRunsChannelsLast) {
  for (int variant = 0; variant < 3; ++variant) {
    const int64_t opset = variant == 0 ? 12 : 17;
    const bool scaled = variant != 2;  // else the activation follows the bias Add and folds with it
    ModelBuilder b(opset);
    const int64_t length = 11, channels = 5, filters = 6, k = 3;
    b.input("x", kF32, Dims{"N", length, channels});
    auto axes = [&](const std::string& name, std::vector<int64_t> v, onnx::NodeProto& node) {
      if (opset >= 13) {
        b.initializer(int64_tensor(name, {static_cast<int64_t>(v.size())}, v));
        node.add_input(name);
      } else {
        attr_ints(node, "axes", v);
      }
    };
    axes("unsqueeze_axes", {3}, b.node("Unsqueeze", {"x"}, {"x4"}, "unsqueeze"));
    b.initializer(int64_tensor("zeros", {4}, {0, 0, 0, 0}));
    b.initializer(int64_tensor("big", {4}, {1000000000, 1000000000, 1000000000, 1000000000}));
    b.initializer(int64_tensor("slice_axes", {4}, {0, 2, 1, 3}));
    b.node("Slice", {"x4", "zeros", "big", "slice_axes"}, {"x4s"}, "slice_in");
    auto& t = b.node("Transpose", {"x4s"}, {"xt"}, "to_nchw");
    attr_ints(t, "perm", {0, 2, 1, 3});
    b.initializer(float_tensor("w", {filters, channels, k, 1}, uniform(static_cast<size_t>(filters * channels * k))));
    auto& c = b.node("Conv", {"xt", "w"}, {"y4"}, "conv");
    attr_ints(c, "kernel_shape", {k, 1});
    b.initializer(int64_tensor("ends", {4}, {2147483647, 2147483647, 2147483647, 1}));
    b.initializer(int64_tensor("all_axes", {4}, {0, 1, 2, 3}));
    b.node("Slice", {"y4", "zeros", "ends", "all_axes"}, {"y4s"}, "slice_out");
    axes("squeeze_axes", {3}, b.node("Squeeze", {"y4s"}, {"y3"}, "squeeze"));
    b.initializer(float_tensor("bias", {1, filters, 1}, uniform(static_cast<size_t>(filters))));
    b.node("Add", {"y3", "bias"}, {"biased"}, "bias");
    if (scaled) {
      b.initializer(float_tensor("half", {}, {0.5f}));
      b.node("Mul", {"half", "biased"}, {"scaled"}, "scale");
    }
    b.node("Tanh", {scaled ? "scaled" : "biased"}, {"act"}, "act");
    b.node("GlobalMaxPool", {"act"}, {"pooled"}, "pool");
    axes("pooled_axes", {2}, b.node("Squeeze", {"pooled"}, {"y"}, "squeeze_out"));
    b.output("y", kF32, Dims{"N", filters});
    Model model = Model::load(b.save(path("conv1d_t" + std::to_string(variant) + ".onnx")));
    Session fused = session(model, 2), plain = session(model, 0);
    for (int64_t batch : {1, 3}) {
      Tensor x = input({batch, length, channels});
      x.mutable_data_as<float>()[4] = std::nanf("");  // a NaN reaches one filter's maximum in both
      const tunnx::NamedValues in = {{"x", x}};
      const Tensor got = fused.run(in).at("y").tensor(), want = plain.run(in).at("y").tensor();
      ASSERT_EQ(got.dims(), want.dims());
      for (int64_t i = 0; i < got.numel(); ++i) {
        const float g = got.data_as<float>()[i], w = want.data_as<float>()[i];
        if (std::isnan(w)) EXPECT_TRUE(std::isnan(g)) << "opset " << opset << " element " << i;
        else EXPECT_NEAR(g, w, 2e-5f) << "opset " << opset << " element " << i;
      }
    }
    if (!prefers_channels_last()) GTEST_SKIP() << "the FusedConv kernel does not prefer channels-last here";
    EXPECT_EQ(count(fused, "FusedConv"), 1) << "opset " << opset;
    EXPECT_EQ(count(fused, "Transpose"), 0) << "opset " << opset;
    EXPECT_EQ(count(fused, "ChannelsLastPool"), 1) << "opset " << opset;  // the GlobalMaxPool
    // The bias Add (and a Tanh right after it) became the convolution's bias and activation.
    EXPECT_EQ(count(fused, "Add"), 0) << "variant " << variant;
    EXPECT_EQ(count(fused, "Tanh"), scaled ? 1 : 0) << "variant " << variant;
  }
}

// A rank-3 Conv (1-D) whose input is a Transpose of [N, L, C] reads that value as it lies; its output,
// a graph output, is converted back once.
TEST_F(ChannelsLastTest, RankThreeConvolutionReadsTheTransposesInput) {
  ModelBuilder b(17);
  b.input("x", kF32, Dims{"N", 9, 4});
  auto& t = b.node("Transpose", {"x"}, {"xt"}, "to_ncw");
  attr_ints(t, "perm", {0, 2, 1});
  b.initializer(float_tensor("w", {5, 4, 3}, uniform(60)));
  b.initializer(float_tensor("b", {5}, uniform(5)));
  auto& c = b.node("Conv", {"xt", "w", "b"}, {"c"}, "conv");
  attr_ints(c, "pads", {1, 1});
  b.node("Relu", {"c"}, {"y"}, "relu");
  b.output("y", kF32, Dims{"N", 5, 9});
  Model model = Model::load(b.save(path("conv1d_rank3.onnx")));
  Session fused = session(model, 2), plain = session(model, 0);
  const tunnx::NamedValues in = {{"x", input({2, 9, 4})}};
  expect_near(fused.run(in).at("y").tensor(), plain.run(in).at("y").tensor(), "rank-3 conv");
  if (!prefers_channels_last()) GTEST_SKIP() << "the FusedConv kernel does not prefer channels-last here";
  EXPECT_EQ(count(fused, "FusedConv"), 1);
  EXPECT_EQ(count(fused, "Transpose"), 1);  // y out
}

// An empty batch through a channels-last region with a folded BatchNormalization, at level 2 as at
// level 0: empty outputs, no error (the reference kernels' per-image loops run zero times).
TEST_F(ChannelsLastTest, AnEmptyBatchGivesEmptyOutputs) {
  ModelBuilder b(17);
  b.input("x", kF32, Dims{"N", 3, 6, 6});
  conv(b, "x", "c1", 3, 4, 3);
  for (const char* name : {"scale", "shift", "mean", "var"})
    b.initializer(float_tensor(name, {4}, uniform(4, 0.5f, 1.5f)));
  b.node("BatchNormalization", {"c1", "scale", "shift", "mean", "var"}, {"n1"}, "bn");
  b.node("Relu", {"n1"}, {"r1"}, "relu");
  conv(b, "r1", "y", 4, 2, 1);
  b.output("y", kF32, Dims{"N", 2, 6, 6});
  Model model = Model::load(b.save(path("empty.onnx")));
  Session fused = session(model, 2), plain = session(model, 0);
  const tunnx::NamedValues in = {{"x", Tensor(DataType::kFloat32, {0, 3, 6, 6})}};
  EXPECT_EQ(fused.run(in).at("y").tensor().dims(), (std::vector<int64_t>{0, 2, 6, 6}));
  EXPECT_EQ(plain.run(in).at("y").tensor().dims(), (std::vector<int64_t>{0, 2, 6, 6}));
}

}  // namespace
