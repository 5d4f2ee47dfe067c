// Attention (opset 23+, runtime/cpu/kernels/attention.cc) on small cases against a direct double
// computation: grouped-query heads with a past key/value cache and causal masking aligned to the
// past, a boolean mask that rules out a whole row (zero output, not NaN), and the errors for inputs
// it cannot take. The ONNX node tests (newer_onnx_conformance) cover the attribute variants.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "tests/importer/model_builder.h"

namespace {

using namespace tunnx_test;
using tunnx::DataType;
using tunnx::Model;
using tunnx::Session;
using tunnx::Tensor;

class AttentionKernel : public TempDirTest {
 protected:
  Tensor random(const std::vector<int64_t>& dims) {
    Tensor t(DataType::kFloat32, dims);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    for (int64_t i = 0; i < t.numel(); ++i) t.mutable_data_as<float>()[i] = dist(rng_);
    return t;
  }
  std::mt19937 rng_{11};
};

TEST_F(AttentionKernel, GroupedHeadsWithPastAndCausalMaskMatchADirectComputation) {
  const int64_t B = 2, Hq = 4, Hkv = 2, Sq = 3, Sp = 2, D = 5, T = Sp + Sq;
  const Tensor q = random({B, Hq, Sq, D}), k = random({B, Hkv, Sq, D}), v = random({B, Hkv, Sq, D});
  const Tensor pk = random({B, Hkv, Sp, D}), pv = random({B, Hkv, Sp, D});
  ModelBuilder b(23, 10);
  for (const auto& [name, t] : std::vector<std::pair<std::string, Tensor>>{{"q", q}, {"k", k}, {"v", v}, {"pk", pk}, {"pv", pv}})
    b.input(name, onnx_type_of<float>(), Dims(t.dims().begin(), t.dims().end()));
  attr_int(b.node("Attention", {"q", "k", "v", "", "pk", "pv"}, {"y", "present_k", "present_v"}, "attn"), "is_causal", 1);
  b.output("y", onnx_type_of<float>(), std::nullopt);
  b.output("present_k", onnx_type_of<float>(), std::nullopt);
  b.output("present_v", onnx_type_of<float>(), std::nullopt);
  const Model model = Model::load(b.save(path("m.onnx")));
  auto out = Session(model).run({{"q", q}, {"k", k}, {"v", v}, {"pk", pk}, {"pv", pv}});
  const Tensor& y = out.at("y").tensor();
  ASSERT_EQ(y.dims(), (std::vector<int64_t>{B, Hq, Sq, D}));
  ASSERT_EQ(out.at("present_k").tensor().dims(), (std::vector<int64_t>{B, Hkv, T, D}));

  auto at = [](const Tensor& t, std::vector<int64_t> i) {
    int64_t flat = 0;
    for (size_t d = 0; d < i.size(); ++d) flat = flat * t.dims()[d] + i[d];
    return static_cast<double>(t.data_as<float>()[flat]);
  };
  auto key = [&](int64_t bi, int64_t h, int64_t j, int64_t d) { return j < Sp ? at(pk, {bi, h, j, d}) : at(k, {bi, h, j - Sp, d}); };
  auto value = [&](int64_t bi, int64_t h, int64_t j, int64_t d) { return j < Sp ? at(pv, {bi, h, j, d}) : at(v, {bi, h, j - Sp, d}); };
  double worst = 0;
  for (int64_t bi = 0; bi < B; ++bi)
    for (int64_t h = 0; h < Hq; ++h)
      for (int64_t i = 0; i < Sq; ++i) {
        const int64_t kvh = h / (Hq / Hkv);  // heads 0,1 read kv head 0; 2,3 read 1
        std::vector<double> p(T, 0.0);
        double sum = 0;
        for (int64_t j = 0; j <= i + Sp; ++j) {  // causal, offset by the past
          double dot = 0;
          for (int64_t d = 0; d < D; ++d) dot += at(q, {bi, h, i, d}) * key(bi, kvh, j, d);
          p[j] = std::exp(dot / std::sqrt(static_cast<double>(D)));
          sum += p[j];
        }
        for (int64_t d = 0; d < D; ++d) {
          double expected = 0;
          for (int64_t j = 0; j < T; ++j) expected += p[j] / sum * value(bi, kvh, j, d);
          worst = std::max(worst, std::abs(expected - at(y, {bi, h, i, d})));
        }
      }
  EXPECT_LT(worst, 1e-5);
  EXPECT_EQ(at(out.at("present_k").tensor(), {1, 1, 0, 3}), at(pk, {1, 1, 0, 3}));
  EXPECT_EQ(at(out.at("present_k").tensor(), {1, 1, Sp + 2, 4}), at(k, {1, 1, 2, 4}));
}

TEST_F(AttentionKernel, RowWithNoAllowedKeyIsZeroAndQkOutputModes) {
  const Tensor q = random({1, 2, 6}), k = random({1, 3, 6}), v = random({1, 3, 6});
  Tensor mask(DataType::kBool, {2, 3});
  const bool allowed[] = {true, false, true, false, false, false};  // query 1 sees no key
  for (int i = 0; i < 6; ++i) mask.mutable_data_as<bool>()[i] = allowed[i];
  ModelBuilder b(23, 10);
  b.input("q", onnx_type_of<float>(), Dims{1, 2, 6});
  b.input("k", onnx_type_of<float>(), Dims{1, 3, 6});
  b.input("v", onnx_type_of<float>(), Dims{1, 3, 6});
  b.input("m", onnx_type_of<bool>(), Dims{2, 3});
  auto& n = b.node("Attention", {"q", "k", "v", "m"}, {"y", "", "", "probs"}, "attn");
  attr_int(n, "q_num_heads", 2);
  attr_int(n, "kv_num_heads", 2);
  attr_int(n, "qk_matmul_output_mode", 3);
  b.output("y", onnx_type_of<float>(), std::nullopt);
  b.output("probs", onnx_type_of<float>(), std::nullopt);
  const Model model = Model::load(b.save(path("m.onnx")));
  auto out = Session(model).run({{"q", q}, {"k", k}, {"v", v}, {"m", mask}});
  const Tensor& y = out.at("y").tensor();
  const Tensor& probs = out.at("probs").tensor();
  ASSERT_EQ(y.dims(), (std::vector<int64_t>{1, 2, 6}));
  ASSERT_EQ(probs.dims(), (std::vector<int64_t>{1, 2, 2, 3}));
  for (int64_t c = 0; c < 6; ++c) EXPECT_EQ(y.data_as<float>()[6 + c], 0.0f) << "query 1, column " << c;
  for (int64_t h = 0; h < 2; ++h) {
    const float* row0 = probs.data_as<float>() + h * 6;
    EXPECT_EQ(row0[1], 0.0f);
    EXPECT_NEAR(row0[0] + row0[2], 1.0f, 1e-6);
    for (int j = 0; j < 3; ++j) EXPECT_EQ(row0[3 + j], 0.0f);
  }
}

TEST_F(AttentionKernel, InputsItCannotTakeAreRefusedByName) {
  ModelBuilder b(23, 10);
  b.input("q", onnx_type_of<float>(), Dims{1, 2, 6});
  b.input("k", onnx_type_of<float>(), Dims{1, 3, 6});
  b.input("v", onnx_type_of<float>(), Dims{1, 3, 6});
  b.node("Attention", {"q", "k", "v"}, {"y"}, "attn");
  b.output("y", onnx_type_of<float>(), std::nullopt);
  const Model model = Model::load(b.save(path("m.onnx")));
  const tunnx::Error e = expect_error([&] {
    Session(model).run({{"q", random({1, 2, 6})}, {"k", random({1, 3, 6})}, {"v", random({1, 3, 6})}});
  });
  EXPECT_TRUE(contains(e.what(), "attn")) << e.what();
  EXPECT_TRUE(contains(e.what(), "3-D inputs need q_num_heads and kv_num_heads")) << e.what();
}

}  // namespace
