// ConvTranspose through a Session (oneDNN's deconvolution where built with it): the output is the
// definition's, computed here directly; a W written by load_state_dict between runs is seen by the
// next run; a W fed as a graph input is read as given, run by run; an empty batch gives an empty
// output; SessionOptions::release_packed_originals frees W and keeps the bits. The random shapes and
// attributes against the reference kernel are in onednn_vs_reference_test.cc.
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "runtime/core/kernel_registry.h"
#include "tests/importer/model_builder.h"

namespace {

using namespace tunnx_test;
using tunnx::Model;
using tunnx::Session;
using tunnx::SessionOptions;
using tunnx::Tensor;

constexpr int32_t kF32 = onnx_type_of<float>();
// X [N, 4, 6, 6], W [4, 3, 3, 3] in 2 groups (M = 6), stride 2, pads 1, output_padding 1: Y [N, 6, 12, 12].
constexpr int64_t kIn = 4, kOutPerGroup = 3, kGroup = 2, kKernel = 3, kSize = 6, kStride = 2, kPad = 1;
constexpr int64_t kOut = kOutPerGroup * kGroup, kOutSize = kStride * (kSize - 1) + 1 + kKernel - 2 * kPad;
const std::vector<int64_t> kWeightDims = {kIn, kOutPerGroup, kKernel, kKernel};

std::vector<float> uniform(size_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

Tensor random(const std::vector<int64_t>& dims, std::mt19937& rng) {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return Tensor::from_vector<float>(dims, uniform(static_cast<size_t>(n), rng));
}

// Y as ONNX defines it: every input value adds its kernel, scaled, into the output at stride steps
// (positions past the pads dropped), plus B. x [N, C, H, W], w [C, M/G, k, k], b [M].
Tensor direct(const Tensor& x, const Tensor& w, const Tensor& b) {
  const int64_t n = x.dims()[0], cg = kIn / kGroup;
  std::vector<double> y(static_cast<size_t>(n * kOut * kOutSize * kOutSize));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t oc = 0; oc < kOut; ++oc)
      for (int64_t p = 0; p < kOutSize * kOutSize; ++p)
        y[static_cast<size_t>((i * kOut + oc) * kOutSize * kOutSize + p)] = b.data_as<float>()[oc];
  for (int64_t i = 0; i < n; ++i)
    for (int64_t ic = 0; ic < kIn; ++ic)
      for (int64_t iy = 0; iy < kSize; ++iy)
        for (int64_t ix = 0; ix < kSize; ++ix) {
          const double v = x.data_as<float>()[((i * kIn + ic) * kSize + iy) * kSize + ix];
          for (int64_t m = 0; m < kOutPerGroup; ++m)
            for (int64_t ky = 0; ky < kKernel; ++ky)
              for (int64_t kx = 0; kx < kKernel; ++kx) {
                const int64_t oy = iy * kStride - kPad + ky, ox = ix * kStride - kPad + kx;
                if (oy < 0 || oy >= kOutSize || ox < 0 || ox >= kOutSize) continue;
                const int64_t oc = ic / cg * kOutPerGroup + m;
                y[static_cast<size_t>(((i * kOut + oc) * kOutSize + oy) * kOutSize + ox)] +=
                    v * w.data_as<float>()[((ic * kOutPerGroup + m) * kKernel + ky) * kKernel + kx];
              }
        }
  return Tensor::from_vector<float>({n, kOut, kOutSize, kOutSize}, std::vector<float>(y.begin(), y.end()));
}

class OnednnConvTransposeTest : public TempDirTest {
 protected:
  // y = ConvTranspose(x, w, b) in `group` groups: W [in, out_per_group, 3, 3] and B initializers, or W
  // a graph input (`fed_weights`); x [batch, in, 6, 6].
  Model model(bool fed_weights, int64_t in = kIn, int64_t out_per_group = kOutPerGroup, int64_t group = kGroup) {
    const std::vector<int64_t> w_dims = {in, out_per_group, kKernel, kKernel};
    ModelBuilder b;
    b.input("x", kF32, Dims{"batch", in, kSize, kSize});
    if (fed_weights) b.input("w", kF32, Dims(w_dims.begin(), w_dims.end()));
    else b.initializer(float_tensor("w", w_dims, uniform(static_cast<size_t>(in * out_per_group * kKernel * kKernel), rng_)));
    b.initializer(float_tensor("b", {out_per_group * group}, uniform(static_cast<size_t>(out_per_group * group), rng_)));
    auto& n = b.node("ConvTranspose", {"x", "w", "b"}, {"y"}, "deconv");
    attr_ints(n, "kernel_shape", {kKernel, kKernel});
    attr_ints(n, "strides", {kStride, kStride});
    attr_ints(n, "pads", {kPad, kPad, kPad, kPad});
    attr_ints(n, "output_padding", {1, 1});
    attr_int(n, "group", group);
    b.output("y", kF32, Dims{"batch", out_per_group * group, kOutSize, kOutSize});
    return Model::load(b.save(path(fed_weights ? "fed.onnx" : "deconv.onnx")));
  }

  static SessionOptions options(bool release = false) {
    SessionOptions o;
    o.threads = 2;
    o.release_packed_originals = release;
    return o;
  }

  void expect_near(const Tensor& got, const Tensor& want, const std::string& what) {
    ASSERT_EQ(got.dims(), want.dims()) << what;
    for (int64_t i = 0; i < got.numel(); ++i)
      ASSERT_NEAR(got.data_as<float>()[i], want.data_as<float>()[i], 1e-4) << what << " element " << i;
  }

  std::mt19937 rng_{5};
};

TEST_F(OnednnConvTransposeTest, FollowsWeightsWrittenBetweenRuns) {
  Model m = model(false);
  Session session(m, options());
  const Tensor x = random({2, kIn, kSize, kSize}, rng_);
  for (int run = 0; run < 2; ++run)
    expect_near(session.run({{"x", x}}).at("y").tensor(), direct(x, m.parameter("w"), m.parameter("b")),
                "run " + std::to_string(run));
  for (int write = 0; write < 3; ++write) {
    m.load_state_dict({{"w", random(kWeightDims, rng_)}}, /*strict=*/false);
    expect_near(session.run({{"x", x}}).at("y").tensor(), direct(x, m.parameter("w"), m.parameter("b")),
                "after load_state_dict " + std::to_string(write));
  }
  const Tensor empty = session.run({{"x", Tensor(tunnx::DataType::kFloat32, {0, kIn, kSize, kSize})}}).at("y").tensor();
  EXPECT_EQ(empty.dims(), (std::vector<int64_t>{0, kOut, kOutSize, kOutSize}));
}

TEST_F(OnednnConvTransposeTest, ReadsWeightsFedAsAnInput) {
  Model m = model(true);
  Session session(m, options());
  for (int run = 0; run < 3; ++run) {
    const Tensor x = random({1 + run, kIn, kSize, kSize}, rng_), w = random(kWeightDims, rng_);
    expect_near(session.run({{"x", x}, {"w", w}}).at("y").tensor(), direct(x, w, m.parameter("b")),
                "run " + std::to_string(run));
  }
}

// 16 channels in and out: oneDNN packs W into a layout of its own, a copy the session may keep alone.
TEST_F(OnednnConvTransposeTest, ReleasedWeightsGiveTheSameBits) {
  constexpr int64_t kChannels = 16;
  Model kept = model(false, kChannels, kChannels, 1);
  Session plain(kept, options());
  Session releasing(kept, options(true));
  for (int64_t batch : {1, 2, 0, 3}) {  // batch 0: the reference kernel, with W restored from the copy
    const Tensor x = random({batch, kChannels, kSize, kSize}, rng_);
    EXPECT_TRUE(releasing.run({{"x", x}}).at("y").tensor().equals(plain.run({{"x", x}}).at("y").tensor()))
        << "batch " << batch;
  }
  const tunnx::KernelDef* def = tunnx::KernelRegistry::global().find(
      "", "ConvTranspose", 11, tunnx::DeviceType::kCpu, {tunnx::DataType::kFloat32, tunnx::DataType::kFloat32}, nullptr);
  if (def && def->name == "cpu/onednn/ConvTranspose") {
    EXPECT_EQ(releasing.stats().released_initializers, 1);
  }
}

}  // namespace
