// com.microsoft:MultiHeadAttention, lowered to standard ops (runtime/core/passes/lower_contrib_ops.cc):
// packed QKV answers exactly as the same numbers given as separate query, key and value, and the
// combinations tunnx does not lower are refused by name when the session is made.
// tests/contrib_ops/check_contrib_ops.py compares every layout with ONNX Runtime.
#include <gtest/gtest.h>

#include <cmath>

#include "tests/importer/model_builder.h"

namespace {

using namespace tunnx_test;
using tunnx::Model;
using tunnx::Session;
using tunnx::Tensor;

class MultiHeadAttention : public TempDirTest {
 protected:
  static constexpr int64_t kB = 1, kS = 3, kN = 2, kH = 4, kD = kN * kH;

  // One MultiHeadAttention node (2 heads) reading `inputs` (graph inputs with `shapes`, "" for absent).
  fs::path model(const std::string& file, const std::vector<std::string>& inputs, const std::vector<Dims>& shapes,
                 const std::vector<std::string>& int_inputs = {}) {
    ModelBuilder b(17);
    b.add_opset("com.microsoft", 1);
    size_t next = 0;
    for (const auto& name : inputs) {
      if (name.empty()) continue;
      bool is_int = false;
      for (const auto& i : int_inputs) is_int = is_int || i == name;
      b.input(name, is_int ? onnx_type_of<int32_t>() : onnx_type_of<float>(), shapes.at(next++));
    }
    auto& n = b.node("MultiHeadAttention", inputs, {"y"}, "mha", "com.microsoft");
    attr_int(n, "num_heads", kN);
    b.output("y", onnx_type_of<float>(), Dims{kB, kS, kD});
    return b.save(path(file));
  }

  // [dims] of 0.1 * sin(seed + i): small, varied, reproducible.
  static Tensor values(const std::vector<int64_t>& dims, float seed) {
    int64_t count = 1;
    for (int64_t d : dims) count *= d;
    std::vector<float> v(static_cast<size_t>(count));
    for (size_t i = 0; i < v.size(); ++i) v[i] = 0.1f * std::sin(seed + static_cast<float>(i));
    return Tensor::from_vector<float>(dims, v);
  }
};

TEST_F(MultiHeadAttention, PackedQkvAnswersAsSeparateInputs) {
  const Tensor packed = values({kB, kS, kN, 3, kH}, 0.5f);
  // Query, key and value are packed[:, :, :, i, :] merged back to [B, S, D].
  std::vector<Tensor> parts;
  for (int64_t part = 0; part < 3; ++part) {
    std::vector<float> v;
    for (int64_t s = 0; s < kS; ++s)
      for (int64_t n = 0; n < kN; ++n)
        for (int64_t h = 0; h < kH; ++h) v.push_back(packed.data_as<float>()[((s * kN + n) * 3 + part) * kH + h]);
    parts.push_back(Tensor::from_vector<float>({kB, kS, kD}, v));
  }
  const Dims separate_shape{kB, kS, kD};
  auto packed_out = Session(Model::load(model("packed.onnx", {"qkv"}, {Dims{kB, kS, kN, 3, kH}})))
                        .run({{"qkv", packed}});
  auto separate_out = Session(Model::load(model("separate.onnx", {"q", "k", "v"},
                                                {separate_shape, separate_shape, separate_shape})))
                          .run({{"q", parts[0]}, {"k", parts[1]}, {"v", parts[2]}});
  const Tensor& a = packed_out.at("y").tensor();
  const Tensor& b = separate_out.at("y").tensor();
  ASSERT_EQ(a.dims(), (std::vector<int64_t>{kB, kS, kD}));
  ASSERT_EQ(a.dims(), b.dims());
  for (int64_t i = 0; i < kB * kS * kD; ++i) EXPECT_EQ(a.data_as<float>()[i], b.data_as<float>()[i]) << "element " << i;
}

TEST_F(MultiHeadAttention, WhatItCannotComputeIsRefusedByName) {
  const Dims query{kB, kS, kD}, packed_kv{kB, 5, kN, 2, kH};
  const tunnx::Error bias = expect_error([&] {
    Session(Model::load(model("bias.onnx", {"q", "kv", "", "bias"}, {query, packed_kv, Dims{3 * kD}})));
  });
  EXPECT_TRUE(contains(bias.what(), "mha")) << bias.what();
  EXPECT_TRUE(contains(bias.what(), "MultiHeadAttention")) << bias.what();
  EXPECT_TRUE(contains(bias.what(), "bias with packed KV is not supported (ONNX Runtime takes none)")) << bias.what();

  const Dims self{kB, kS, kD}, buffer{kB, kN, 8, kH};
  const tunnx::Error beams = expect_error([&] {
    Session(Model::load(model("beams.onnx", {"q", "k", "v", "", "", "", "pk", "pv", "len", "beams"},
                              {self, self, self, buffer, buffer, Dims{1}, Dims{kB, 1, 8}}, {"len", "beams"})));
  });
  EXPECT_TRUE(contains(beams.what(), "cache_indirection (beam search reading other beams' past keys) is not supported"))
      << beams.what();

  const tunnx::Error flat = expect_error([&] {
    Session(Model::load(model("flat.onnx", {"qkv"}, {Dims{kB, kS, 3 * kD}})));
  });
  EXPECT_TRUE(contains(flat.what(), "without key, query must be packed QKV [B, S, N, 3, H] (its rank is 3")) << flat.what();
}

}  // namespace
