// MatMulInteger and QLinearMatMul keep a constant B centered (and interleaved for the AVX-512BW
// product) across runs: a B or zero point written between runs (load_state_dict) is seen by the
// next run, which then equals a new session's on the same model; a B fed as an input is read as fed.
// DynamicQuantizeLSTM's kept weights likewise.
#include <algorithm>
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

// A constant 2-D B against a uint8 A takes the AVX-512 VNNI product where the CPU has it (B as int8,
// the zero points' terms after): the wrapping 32-bit sums of (a - za)(b - zb), for int8 and uint8 B,
// zero points per row of A and per column of B, a batched A, and sums past 2^31.
TEST_F(IntegerWeightsTest, AConstantBMatchesTheSixtyFourBitSums) {
  struct Case {
    int64_t batch, M, K, N;
    bool b_signed;
    int fill;  // -1: random; else every A and B value this (255: sums past 2^31)
  };
  for (const Case& c : {Case{2, 9, 41, 70, false, -1}, Case{1, 5, 64, 33, true, -1}, Case{1, 1, 40000, 3, false, 255}}) {
    SCOPED_TRACE(std::to_string(c.batch) + "x" + std::to_string(c.M) + "x" + std::to_string(c.K) + "x" +
                 std::to_string(c.N) + (c.b_signed ? " int8 B" : " uint8 B"));
    std::vector<uint8_t> av = c.fill < 0 ? bytes(static_cast<size_t>(c.batch * c.M * c.K), rng_)
                                         : std::vector<uint8_t>(static_cast<size_t>(c.batch * c.M * c.K), static_cast<uint8_t>(c.fill));
    std::vector<uint8_t> bv = c.fill < 0 ? bytes(static_cast<size_t>(c.K * c.N), rng_)
                                         : std::vector<uint8_t>(static_cast<size_t>(c.K * c.N), static_cast<uint8_t>(c.fill));
    std::vector<uint8_t> a_zp = bytes(static_cast<size_t>(c.M), rng_), b_zp = bytes(static_cast<size_t>(c.N), rng_);
    if (c.fill >= 0) std::fill(a_zp.begin(), a_zp.end(), 0), std::fill(b_zp.begin(), b_zp.end(), 0);
    ModelBuilder b(17);
    b.input("a", onnx_type_of<uint8_t>(), Dims{c.batch, c.M, c.K});
    b.input("a_zp", onnx_type_of<uint8_t>(), Dims{c.M});
    if (c.b_signed) {
      b.initializer(raw_tensor<int8_t>("b", {c.K, c.N}, std::vector<int8_t>(bv.begin(), bv.end())));
      b.initializer(raw_tensor<int8_t>("b_zp", {c.N}, std::vector<int8_t>(b_zp.begin(), b_zp.end())));
    } else {
      b.initializer(raw_tensor<uint8_t>("b", {c.K, c.N}, bv));
      b.initializer(raw_tensor<uint8_t>("b_zp", {c.N}, b_zp));
    }
    b.node("MatMulInteger", {"a", "b", "a_zp", "b_zp"}, {"y"}, "mm");
    b.output("y", onnx_type_of<int32_t>(), Dims{c.batch, c.M, c.N});
    Model model = Model::load(b.save(path("mmi_const" + std::to_string(saved_++) + ".onnx")));
    Session session(model);
    const Tensor y = session.run({{"a", uint8_tensor({c.batch, c.M, c.K}, av)}, {"a_zp", uint8_tensor({c.M}, a_zp)}})
                         .at("y").tensor();
    auto b_at = [&](int64_t i) -> int64_t { return c.b_signed ? static_cast<int8_t>(bv[static_cast<size_t>(i)]) : bv[static_cast<size_t>(i)]; };
    auto bz_at = [&](int64_t j) -> int64_t { return c.b_signed ? static_cast<int8_t>(b_zp[static_cast<size_t>(j)]) : b_zp[static_cast<size_t>(j)]; };
    for (int64_t n = 0; n < c.batch; ++n)
      for (int64_t i = 0; i < c.M; ++i)
        for (int64_t j = 0; j < c.N; ++j) {
          int64_t sum = 0;
          for (int64_t k = 0; k < c.K; ++k)
            sum += (int64_t{av[static_cast<size_t>((n * c.M + i) * c.K + k)]} - a_zp[static_cast<size_t>(i)]) *
                   (b_at(k * c.N + j) - bz_at(j));
          ASSERT_EQ(y.data_as<int32_t>()[(n * c.M + i) * c.N + j], static_cast<int32_t>(static_cast<uint32_t>(sum)))
              << n << ", " << i << ", " << j;
        }
  }
}

// An int8 A against the same kind of constant B: the int16 path, B centered afresh (the kept copy holds
// only the VNNI form where the CPU has it).
TEST_F(IntegerWeightsTest, AnInt8AAgainstAConstantBMatchesTheSums) {
  const int64_t M = 3, K = 21, N = 18;
  std::vector<uint8_t> au = bytes(static_cast<size_t>(M * K), rng_), bu = bytes(static_cast<size_t>(K * N), rng_);
  const std::vector<int8_t> av(au.begin(), au.end()), bv(bu.begin(), bu.end());
  ModelBuilder b(17);
  b.input("a", onnx_type_of<int8_t>(), Dims{M, K});
  b.initializer(raw_tensor<int8_t>("b", {K, N}, bv));
  b.initializer(raw_tensor<int8_t>("b_zp", {}, {-3}));
  b.node("MatMulInteger", {"a", "b", "", "b_zp"}, {"y"}, "mm");
  b.output("y", onnx_type_of<int32_t>(), Dims{M, N});
  Model model = Model::load(b.save(path("mmi_int8.onnx")));
  Tensor a = Tensor::uninitialized(DataType::kInt8, {M, K});
  std::copy(av.begin(), av.end(), a.mutable_data_as<int8_t>());
  Session session(model);
  for (int run = 0; run < 2; ++run) {
    const Tensor y = session.run({{"a", a}}).at("y").tensor();
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) {
        int64_t sum = 0;
        for (int64_t k = 0; k < K; ++k) sum += int64_t{av[static_cast<size_t>(i * K + k)]} * (bv[static_cast<size_t>(k * N + j)] + 3);
        ASSERT_EQ(y.data_as<int32_t>()[i * N + j], static_cast<int32_t>(sum)) << run << ": " << i << ", " << j;
      }
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
