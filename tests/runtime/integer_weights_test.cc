// MatMulInteger and QLinearMatMul keep a constant B centered (and interleaved for the AVX-512BW
// product) across runs: a B or zero point written between runs (load_state_dict) is seen by the
// next run, which then equals a new session's on the same model; a B fed as an input is read as fed.
// DynamicQuantizeLSTM's kept weights likewise.
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/importer/model_builder.h"

namespace {

using namespace tunnx_test;
using tunnx::DataType;
using tunnx::Model;
using tunnx::Session;
using tunnx::Tensor;

std::vector<uint8_t> bytes(size_t n, std::mt19937& rng) {
  std::uniform_int_distribution<int> d(0, 255);
  std::vector<uint8_t> v(n);
  for (auto& x : v) x = static_cast<uint8_t>(d(rng));
  return v;
}

Tensor uint8_tensor(const std::vector<int64_t>& dims, const std::vector<uint8_t>& values) {
  Tensor t = Tensor::uninitialized(DataType::kUInt8, dims);
  std::copy(values.begin(), values.end(), t.mutable_data_as<uint8_t>());
  return t;
}

class IntegerWeightsTest : public TempDirTest {
 protected:
  // Y = MatMulInteger(A, B, a_zp, b_zp), B [K, N] and its zero points (per column) initializers.
  Model matmul_integer(int64_t M, int64_t K, int64_t N) {
    ModelBuilder b(17);
    b.input("a", onnx_type_of<uint8_t>(), Dims{M, K});
    b.initializer(raw_tensor<uint8_t>("b", {K, N}, bytes(static_cast<size_t>(K * N), rng_)));
    b.initializer(raw_tensor<uint8_t>("a_zp", {}, {7}));
    b.initializer(raw_tensor<uint8_t>("b_zp", {N}, bytes(static_cast<size_t>(N), rng_)));
    b.node("MatMulInteger", {"a", "b", "a_zp", "b_zp"}, {"y"}, "mm");
    b.output("y", onnx_type_of<int32_t>(), Dims{M, N});
    return Model::load(b.save(path("mmi" + std::to_string(saved_++) + ".onnx")));
  }

  std::mt19937 rng_{5};
  int saved_ = 0;
};

TEST_F(IntegerWeightsTest, WrittenWeightsAndZeroPointsAreSeen) {
  // 70 columns: two of the product's 64-column blocks; K odd: a half pair.
  const int64_t M = 9, K = 41, N = 70;
  Model model = matmul_integer(M, K, N);
  Session session(model);
  const tunnx::NamedValues in = {{"a", uint8_tensor({M, K}, bytes(static_cast<size_t>(M * K), rng_))}};
  const Tensor before = session.run(in).at("y").tensor().clone();
  EXPECT_TRUE(before.equals(Session(model).run(in).at("y").tensor()));
  for (const char* name : {"b", "b_zp"}) {
    const int64_t n = std::string(name) == "b" ? K * N : N;
    tunnx::StateDict changed;
    changed.emplace_back(name, uint8_tensor(std::string(name) == "b" ? std::vector<int64_t>{K, N} : std::vector<int64_t>{N},
                                            bytes(static_cast<size_t>(n), rng_)));
    model.load_state_dict(changed, /*strict=*/false);
    const Tensor after = session.run(in).at("y").tensor().clone();
    EXPECT_FALSE(after.equals(before)) << name;
    EXPECT_TRUE(after.equals(Session(model).run(in).at("y").tensor())) << "after writing " << name;
  }
}

// DynamicQuantizeLSTM keeps W's and R's per-direction forms (R packed for VNNI where the CPU has
// it) across runs: R, W or R's scale written between runs is seen by the next run.
TEST_F(IntegerWeightsTest, TheQuantizedLstmSeesWrittenWeightsAndScales) {
  const int64_t S = 5, I = 6, H = 9;  // 4H = 36 columns: three 16-column panels, K = 9 not a multiple of 4
  auto int8_bytes = [&](size_t n) {
    std::vector<uint8_t> u = bytes(n, rng_);
    return std::vector<int8_t>(u.begin(), u.end());
  };
  ModelBuilder b(17);
  b.add_opset("com.microsoft", 1);
  b.input("x", onnx_type_of<float>(), Dims{S, 1, I});
  b.initializer(raw_tensor<int8_t>("w", {2, I, 4 * H}, int8_bytes(static_cast<size_t>(2 * I * 4 * H))));
  b.initializer(raw_tensor<int8_t>("r", {2, H, 4 * H}, int8_bytes(static_cast<size_t>(2 * H * 4 * H))));
  b.initializer(float_tensor("w_scale", {2}, {0.02f, 0.03f}));
  b.initializer(raw_tensor<int8_t>("w_zero", {2}, {0, 3}));
  b.initializer(float_tensor("r_scale", {2}, {0.01f, 0.015f}));
  b.initializer(raw_tensor<int8_t>("r_zero", {2}, {-2, 0}));
  auto& n = b.node("DynamicQuantizeLSTM", {"x", "w", "r", "", "", "", "", "", "w_scale", "w_zero", "r_scale", "r_zero"},
                   {"y"}, "lstm");
  n.set_domain("com.microsoft");
  attr_int(n, "hidden_size", H);
  attr_string(n, "direction", "bidirectional");
  b.output("y", onnx_type_of<float>(), Dims{S, 2, 1, H});
  Model model = Model::load(b.save(path("lstm.onnx")));
  Session session(model);
  Tensor x = Tensor::uninitialized(DataType::kFloat32, {S, 1, I});
  std::uniform_real_distribution<float> u(-2.0f, 2.0f);
  for (int64_t i = 0; i < x.numel(); ++i) x.mutable_data_as<float>()[i] = u(rng_);
  const tunnx::NamedValues in = {{"x", x}};
  const Tensor before = session.run(in).at("y").tensor().clone();
  EXPECT_TRUE(before.equals(session.run(in).at("y").tensor()));  // the kept forms give the same bits
  for (const char* name : {"r", "w", "r_scale"}) {
    tunnx::StateDict changed;
    const std::string which(name);
    if (which == "r_scale") changed.emplace_back(name, Tensor::from_vector<float>({2}, {0.02f, 0.005f}));
    else {
      const std::vector<int8_t> v = int8_bytes(static_cast<size_t>(2 * (which == "r" ? H : I) * 4 * H));
      Tensor t = Tensor::uninitialized(DataType::kInt8, {2, which == "r" ? H : I, 4 * H});
      std::copy(v.begin(), v.end(), t.mutable_data_as<int8_t>());
      changed.emplace_back(name, t);
    }
    const Tensor previous = session.run(in).at("y").tensor().clone();
    model.load_state_dict(changed, /*strict=*/false);
    const Tensor after = session.run(in).at("y").tensor().clone();
    EXPECT_FALSE(after.equals(previous)) << name;
    EXPECT_TRUE(after.equals(Session(model).run(in).at("y").tensor())) << "after writing " << name;
  }
}

}  // namespace
