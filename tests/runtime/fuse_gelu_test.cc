// The GELU pass (runtime/core/passes/fuse_gelu.cc): the exact GELU spelled out as Div/Mul, Erf, Add
// and Mul nodes (how exporters wrote it before ONNX had Gelu) becomes one com.tunnx:Gelu node at
// optimization level 2, which fuse_linear folds into a preceding MatMul + bias; outputs match level
// 0 (the nodes as written). Chains that differ in a constant, or whose intermediates are read
// elsewhere, are left alone.
#include <cmath>
#include <numbers>
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
using tunnx::SessionOptions;
using tunnx::Tensor;

constexpr int32_t kF32 = onnx_type_of<float>();
constexpr int64_t M = 4, K = 6, N = 5;

// How the chain is written.
struct Spelling {
  std::string name;
  bool half_first = false;   // Mul(Mul(x, 0.5), 1 + erf) instead of Mul(Mul(x, 1 + erf), 0.5)
  bool half_of_sum = false;  // Mul(x, Mul(0.5, 1 + erf)) (torch's dynamo exporter)
  bool scale_by_mul = false;  // Mul(x, 1/sqrt 2) instead of Div(x, sqrt 2)
  bool swap_operands = false;  // constants first in Add and Mul
  float sqrt2 = static_cast<float>(std::numbers::sqrt2);
};

class FuseGeluTest : public TempDirTest {
 protected:
  std::vector<float> random_values(size_t n) {
    std::uniform_real_distribution<float> dist(-2.0f, 2.0f);
    std::vector<float> v(n);
    for (auto& x : v) x = dist(rng_);
    return v;
  }

  // Writes gelu(x) -> y with `s`'s spelling; the Erf node writes "erf".
  static void gelu(GraphBuilder& b, const Spelling& s, const std::string& x, const std::string& y) {
    b.initializer(float_tensor("scale", {}, {s.scale_by_mul ? 1.0f / s.sqrt2 : s.sqrt2}));
    b.initializer(float_tensor("one", {}, {1.0f}));
    b.initializer(float_tensor("half", {}, {0.5f}));
    auto ordered = [&](const std::string& value, const std::string& constant) {
      return s.swap_operands ? std::vector<std::string>{constant, value} : std::vector<std::string>{value, constant};
    };
    if (s.scale_by_mul) b.node("Mul", ordered(x, "scale"), {"scaled"}, "scale");
    else b.node("Div", {x, "scale"}, {"scaled"}, "scale");
    b.node("Erf", {"scaled"}, {"erf"}, "erf");
    b.node("Add", ordered("erf", "one"), {"one_plus"}, "add_one");
    if (s.half_of_sum) {
      b.node("Mul", ordered("one_plus", "half"), {"half_sum"}, "half");
      b.node("Mul", ordered(x, "half_sum"), {y}, "gelu");
    } else if (s.half_first) {
      b.node("Mul", ordered(x, "half"), {"half_x"}, "half");
      b.node("Mul", ordered("half_x", "one_plus"), {y}, "gelu");
    } else {
      b.node("Mul", ordered(x, "one_plus"), {"x_times"}, "times");
      b.node("Mul", ordered("x_times", "half"), {y}, "gelu");
    }
  }

  // MatMul(x, w) + bias -> gelu -> y (after_linear), or gelu(x) -> y.
  Model model(const Spelling& s, bool after_linear) {
    ModelBuilder b(17);
    b.input("x", kF32, Dims{M, K});
    std::string in = "x";
    if (after_linear) {
      b.initializer(float_tensor("w", {K, N}, random_values(K * N)));
      b.initializer(float_tensor("bias", {N}, random_values(N)));
      b.node("MatMul", {"x", "w"}, {"h"}, "mm");
      b.node("Add", {"h", "bias"}, {"z"}, "add");
      in = "z";
    }
    gelu(b, s, in, "y");
    b.output("y", kF32, after_linear ? Dims{M, N} : Dims{M, K});
    return Model::load(b.save(path("m" + std::to_string(saved_++) + ".onnx")));
  }

  static Session session(const Model& m, int level) {
    SessionOptions options;
    options.optimization_level = level;
    return Session(m, options);
  }

  static std::vector<std::string> ops(const Session& s) {
    std::vector<std::string> out;
    for (const auto& k : s.stats().kernels) out.push_back(k.op_type);
    return out;
  }

  void expect_same_outputs(const Model& m, const std::string& what) {
    Tensor x(DataType::kFloat32, {M, K});
    std::vector<float> v = random_values(M * K);
    std::copy(v.begin(), v.end(), x.mutable_data_as<float>());
    Tensor got = session(m, 2).run({{"x", x}}).at("y").tensor();
    Tensor want = session(m, 0).run({{"x", x}}).at("y").tensor();
    ASSERT_EQ(got.dims(), want.dims()) << what;
    for (int64_t i = 0; i < got.numel(); ++i) {
      const float g = got.data_as<float>()[i], w = want.data_as<float>()[i];
      EXPECT_LE(std::fabs(g - w), 1e-5f * std::fmax(std::fabs(g), std::fabs(w)) + 1e-6f) << what << " element " << i;
    }
  }

  std::mt19937 rng_{7};
  int saved_ = 0;
};

std::vector<Spelling> spellings() {
  return {{"torch", false, false, false, false},
          {"half first", true, false, false, false},
          {"dynamo", false, true, false, false},
          {"scale by 1/sqrt2", false, false, true, false},
          {"constants first", true, false, true, true},
          {"dynamo, constants first", false, true, false, true}};
}

TEST_F(FuseGeluTest, EverySpellingFusesIntoTheMatMul) {
  for (const Spelling& s : spellings()) {
    Model m = model(s, true);
    EXPECT_EQ(ops(session(m, 2)), std::vector<std::string>{"FusedMatMul"}) << s.name;
    EXPECT_EQ(ops(session(m, 0)).size(), 7u) << s.name;
    expect_same_outputs(m, s.name);
  }
}

TEST_F(FuseGeluTest, AGeluAloneBecomesOneNode) {
  for (const Spelling& s : spellings()) {
    Model m = model(s, false);
    Session fused = session(m, 2);
    ASSERT_EQ(ops(fused), std::vector<std::string>{"Gelu"}) << s.name;
    EXPECT_EQ(fused.stats().kernels[0].node, "erf+gelu") << s.name;
    expect_same_outputs(m, s.name);
  }
}

TEST_F(FuseGeluTest, OtherConstantsAreNotGelu) {
  Spelling s{"sqrt 3", false, false, false, false, std::sqrt(3.0f)};
  Model m = model(s, false);
  EXPECT_EQ(ops(session(m, 2)).size(), 5u);
  expect_same_outputs(m, s.name);
}

TEST_F(FuseGeluTest, AnIntermediateReadElsewhereKeepsTheNodes) {
  ModelBuilder b(17);
  b.input("x", kF32, Dims{M, K});
  gelu(b, spellings()[0], "x", "y");
  b.output("y", kF32, Dims{M, K});
  b.output("erf", kF32, Dims{M, K});  // the Erf's output is also returned
  Model m = Model::load(b.save(path("shared.onnx")));
  EXPECT_EQ(ops(session(m, 2)).size(), 5u);
  expect_same_outputs(m, "erf returned");
}

// The tanh form as JAX writes it (magika): the cube as Mul(x, Mul(x, Mul(0.044715, x))), the half
// before x; and with a Pow by 3 and x before the half. Both become one Gelu(approximate "tanh"),
// which runs after a MatMul fused into it; a wrong coefficient leaves the nodes.
TEST_F(FuseGeluTest, TheTanhFormBecomesOneNode) {
  for (int spelling = 0; spelling < 3; ++spelling) {
    const std::string what = spelling == 0 ? "JAX" : spelling == 1 ? "Pow" : "coefficient 0.05";
    ModelBuilder b(17);
    b.input("x", kF32, Dims{M, K});
    b.initializer(float_tensor("c", {}, {spelling == 2 ? 0.05f : 0.044715f}));
    b.initializer(float_tensor("k", {}, {static_cast<float>(std::sqrt(2.0 / std::numbers::pi))}));
    b.initializer(float_tensor("one", {}, {1.0f}));
    b.initializer(float_tensor("half", {}, {0.5f}));
    b.initializer(float_tensor("three", {}, {3.0f}));
    if (spelling == 1) {
      b.node("Pow", {"x", "three"}, {"x3"}, "pow");
      b.node("Mul", {"x3", "c"}, {"cube"}, "cube");
    } else {
      b.node("Mul", {"c", "x"}, {"cx"}, "cx");
      b.node("Mul", {"x", "cx"}, {"cx2"}, "cx2");
      b.node("Mul", {"x", "cx2"}, {"cube"}, "cube");
    }
    b.node("Add", {"x", "cube"}, {"inner"}, "inner");
    b.node("Mul", {"k", "inner"}, {"scaled"}, "scaled");
    b.node("Tanh", {"scaled"}, {"t"}, "tanh");
    b.node("Add", {"one", "t"}, {"one_plus"}, "one_plus");
    if (spelling == 1) {
      b.node("Mul", {"x", "one_plus"}, {"x_times"}, "x_times");
      b.node("Mul", {"x_times", "half"}, {"y"}, "gelu");
    } else {
      b.node("Mul", {"half", "one_plus"}, {"half_sum"}, "half_sum");
      b.node("Mul", {"x", "half_sum"}, {"y"}, "gelu");
    }
    b.output("y", kF32, Dims{M, K});
    Model m = Model::load(b.save(path("tanh" + std::to_string(spelling) + ".onnx")));
    Session fused = session(m, 2);
    if (spelling == 2) {
      EXPECT_GT(ops(fused).size(), 5u) << what;
    } else {
      ASSERT_EQ(ops(fused), std::vector<std::string>{"Gelu"}) << what;
      EXPECT_EQ(fused.stats().kernels[0].node, "tanh+gelu") << what;
    }
    expect_same_outputs(m, what);
  }
}

}  // namespace
