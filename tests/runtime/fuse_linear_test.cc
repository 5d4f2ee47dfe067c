// The fusion pass (runtime/core/passes/fuse_linear.cc) and the FusedMatMul kernels: at optimization
// level 2 MatMul -> Add(bias) -> activation and Gemm -> activation run as one com.tunnx FusedMatMul
// node and give level 0's outputs; a chain whose intermediate value is a graph output or has a second
// reader is left alone.
#include <cmath>
#include <functional>
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
using tunnx::SessionOptions;
using tunnx::Tensor;

constexpr int32_t kF32 = onnx_type_of<float>();

bool have_onednn() {
  const tunnx::KernelDef* def = tunnx::KernelRegistry::global().find("", "MatMul", 13, tunnx::DeviceType::kCpu,
                                                                      {DataType::kFloat32, DataType::kFloat32}, nullptr);
  return def && def->name == "cpu/onednn/MatMul";
}

std::vector<float> random_values(size_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

struct Activation {
  std::string op;
  std::function<void(GraphBuilder&, onnx::NodeProto&)> setup;  // attributes, bound initializers
};

std::vector<Activation> activations() {
  return {
      {"Relu", [](GraphBuilder&, onnx::NodeProto&) {}},
      {"LeakyRelu", [](GraphBuilder&, onnx::NodeProto& n) { attr_float(n, "alpha", 0.2f); }},
      {"Clip",
       [](GraphBuilder& b, onnx::NodeProto& n) {
         b.initializer(float_tensor("lo", {}, {-0.5f}));
         b.initializer(float_tensor("hi", {}, {0.75f}));
         n.add_input("lo");
         n.add_input("hi");
       }},
      // lo > hi: every element becomes hi; oneDNN's clip does not say so, so the reference kernel runs
      {"Clip",
       [](GraphBuilder& b, onnx::NodeProto& n) {
         b.initializer(float_tensor("lo", {}, {0.5f}));
         b.initializer(float_tensor("hi", {}, {-0.25f}));
         n.add_input("lo");
         n.add_input("hi");
       }},
      {"Sigmoid", [](GraphBuilder&, onnx::NodeProto&) {}},
      {"Tanh", [](GraphBuilder&, onnx::NodeProto&) {}},
      {"Gelu", [](GraphBuilder&, onnx::NodeProto&) {}},
      {"Gelu", [](GraphBuilder&, onnx::NodeProto& n) { attr_string(n, "approximate", "tanh"); }},
  };
}

class FuseLinearTest : public TempDirTest {
 protected:
  static constexpr int64_t M = 5, K = 7, N = 6;

  // MatMul(x, w) -> Add(bias) -> act -> y, or Gemm(x, w, c; transB) -> act -> y.
  Model chain(bool gemm, const Activation& act) {
    ModelBuilder b(20);
    b.input("x", kF32, Dims{M, K});
    if (gemm) {
      b.initializer(float_tensor("w", {N, K}, random_values(N * K, rng_)));
      b.initializer(float_tensor("c", {N}, random_values(N, rng_)));
      auto& g = b.node("Gemm", {"x", "w", "c"}, {"h"}, "gemm");
      attr_int(g, "transB", 1);
      attr_float(g, "alpha", 0.5f);
      auto& a = b.node(act.op, {"h"}, {"y"}, "act");
      act.setup(b, a);
    } else {
      b.initializer(float_tensor("w", {K, N}, random_values(K * N, rng_)));
      b.initializer(float_tensor("bias", {N}, random_values(N, rng_)));
      b.node("MatMul", {"x", "w"}, {"h"}, "mm");
      b.node("Add", {"h", "bias"}, {"z"}, "add");
      auto& a = b.node(act.op, {"z"}, {"y"}, "act");
      act.setup(b, a);
    }
    b.output("y", kF32, Dims{M, N});
    return Model::load(b.save(path("m" + std::to_string(saved_++) + ".onnx")));
  }

  static Session session(const Model& model, int level) {
    SessionOptions options;
    options.optimization_level = level;
    return Session(model, options);
  }

  Tensor input() {
    Tensor x(DataType::kFloat32, {M, K});
    std::vector<float> v = random_values(M * K, rng_);
    std::copy(v.begin(), v.end(), x.mutable_data_as<float>());
    return x;
  }

  static void expect_near(const Tensor& got, const Tensor& want, const std::string& what) {
    ASSERT_EQ(got.dims(), want.dims()) << what;
    for (int64_t i = 0; i < got.numel(); ++i) {
      const float g = got.data_as<float>()[i], w = want.data_as<float>()[i];
      EXPECT_LE(std::fabs(g - w), 1e-5f * std::fmax(std::fabs(g), std::fabs(w)) + 1e-6f) << what << " element " << i;
    }
  }

  std::mt19937 rng_{42};
  int saved_ = 0;
};

std::vector<std::string> kernels_of(const Session& s) {
  std::vector<std::string> out;
  for (const auto& k : s.stats().kernels) out.push_back(k.node + ":" + k.op_type + ":" + k.kernel);
  return out;
}

TEST_F(FuseLinearTest, EveryActivationFusesAndMatchesLevelZero) {
  const std::string fused_kernel = have_onednn() ? "cpu/onednn/FusedMatMul" : "cpu/reference/FusedMatMul";
  for (bool gemm : {false, true})
    for (const auto& act : activations()) {
      const std::string what = std::string(gemm ? "Gemm" : "MatMul") + "->" + act.op;
      Model model = chain(gemm, act);
      Session fused = session(model, 2), plain = session(model, 0);
      const std::string first = gemm ? "gemm" : "mm";
      EXPECT_EQ(kernels_of(fused), std::vector<std::string>{first + "+fused:FusedMatMul:" + fused_kernel}) << what;
      EXPECT_EQ(plain.stats().kernels.size(), gemm ? 2u : 3u) << what;
      EXPECT_EQ(plain.stats().kernels[0].op_type, gemm ? "Gemm" : "MatMul") << what;
      EXPECT_EQ(plain.stats().kernels.back().op_type, act.op) << what;
      Tensor x = input();
      expect_near(fused.run({{"x", x}}).at("y").tensor(), plain.run({{"x", x}}).at("y").tensor(), what);
    }
}

// MatMul(x, Transpose(W)) -> Add(bias) -> act, as torch exports a Linear without constant folding:
// fold_weight_transpose makes one product that reads W as it lies and fuse_linear folds the rest in;
// on a 3-D x (oneDNN's 1x1-convolution path with W packed transposed) and on a 2-D x. A Transpose
// with another reader stays.
TEST_F(FuseLinearTest, TransposedWeightFoldsIntoOneProduct) {
  const std::string fused_kernel = have_onednn() ? "cpu/onednn/FusedMatMul" : "cpu/reference/FusedMatMul";
  for (const std::vector<int64_t>& x_dims : {std::vector<int64_t>{2, M, K}, std::vector<int64_t>{M, K}})
    for (bool shared : {false, true}) {
      const std::string what = "x rank " + std::to_string(x_dims.size()) + (shared ? ", W^T also an output" : "");
      ModelBuilder b(17);
      b.input("x", kF32, Dims(x_dims.begin(), x_dims.end()));
      b.initializer(float_tensor("w", {N, K}, random_values(N * K, rng_)));
      b.initializer(float_tensor("bias", {N}, random_values(N, rng_)));
      auto& t = b.node("Transpose", {"w"}, {"wt"}, "t");
      attr_ints(t, "perm", {1, 0});
      b.node("MatMul", {"x", "wt"}, {"h"}, "mm");
      b.node("Add", {"h", "bias"}, {"z"}, "add");
      b.node("Relu", {"z"}, {"y"}, "act");
      std::vector<int64_t> y_dims = x_dims;
      y_dims.back() = N;
      b.output("y", kF32, Dims(y_dims.begin(), y_dims.end()));
      if (shared) b.output("wt", kF32, Dims{K, N});
      Model model = Model::load(b.save(path("t" + std::to_string(saved_++) + ".onnx")));
      Session fused = session(model, 2), plain = session(model, 0);
      if (shared)
        EXPECT_EQ(fused.stats().kernels.size(), 2u) << what;  // Transpose, and MatMul+Add+Relu fused
      else
        EXPECT_EQ(kernels_of(fused), std::vector<std::string>{"mm+wt+fused:FusedMatMul:" + fused_kernel}) << what;
      Tensor x(DataType::kFloat32, x_dims);
      const std::vector<float> v = random_values(static_cast<size_t>(x.numel()), rng_);
      std::copy(v.begin(), v.end(), x.mutable_data_as<float>());
      for (int run = 0; run < 2; ++run)  // the second run reads the packed copy
        expect_near(fused.run({{"x", x}}).at("y").tensor(), plain.run({{"x", x}}).at("y").tensor(), what);
    }
}

TEST_F(FuseLinearTest, LevelOneLeavesTheGraphAlone) {
  Model model = chain(false, activations()[0]);
  EXPECT_EQ(session(model, 1).stats().kernels.size(), 3u);
}

TEST_F(FuseLinearTest, ReferenceKernelIsRegistered) {
  // The oneDNN kernel's fallback (it runs the Clip lo > hi case above).
  const tunnx::KernelDef* def =
      tunnx::KernelRegistry::global().find_reference("com.tunnx", "FusedMatMul", 1, tunnx::DeviceType::kCpu);
  ASSERT_NE(def, nullptr);
  EXPECT_EQ(def->name, "cpu/reference/FusedMatMul");
}

TEST_F(FuseLinearTest, IntermediateThatIsAGraphOutputIsNotFused) {
  ModelBuilder b(17);
  b.input("x", kF32, Dims{M, K});
  b.initializer(float_tensor("w", {K, N}, random_values(K * N, rng_)));
  b.node("MatMul", {"x", "w"}, {"h"}, "mm");
  b.node("Relu", {"h"}, {"y"}, "act");
  b.output("y", kF32, Dims{M, N});
  b.output("h", kF32, Dims{M, N});
  Model model = Model::load(b.save(path("m.onnx")));
  Session s = session(model, 2);
  ASSERT_EQ(s.stats().kernels.size(), 2u);
  EXPECT_EQ(s.stats().kernels[0].op_type, "MatMul");
  Tensor x = input();
  auto got = s.run({{"x", x}});
  auto want = session(model, 0).run({{"x", x}});
  expect_near(got.at("y").tensor(), want.at("y").tensor(), "y");
  expect_near(got.at("h").tensor(), want.at("h").tensor(), "h");
}

TEST_F(FuseLinearTest, IntermediateWithTwoReadersIsNotFused) {
  ModelBuilder b(17);
  b.input("x", kF32, Dims{M, K});
  b.initializer(float_tensor("w", {K, N}, random_values(K * N, rng_)));
  b.initializer(float_tensor("bias", {N}, random_values(N, rng_)));
  b.node("MatMul", {"x", "w"}, {"h"}, "mm");
  b.node("Add", {"h", "bias"}, {"z"}, "add");
  b.node("Relu", {"z"}, {"r"}, "act");
  b.node("Sigmoid", {"z"}, {"s"}, "other");  // a second reader of z: MatMul+Add fuse, Relu stays
  b.node("Add", {"r", "s"}, {"y"}, "sum");
  b.output("y", kF32, Dims{M, N});
  Model model = Model::load(b.save(path("m.onnx")));
  Session s = session(model, 2);
  std::vector<std::string> ops;
  for (const auto& k : s.stats().kernels) ops.push_back(k.node + ":" + k.op_type);
  EXPECT_EQ(ops, (std::vector<std::string>{"mm+fused:FusedMatMul", "act:Relu", "other:Sigmoid", "sum:Add"}));
  Tensor x = input();
  expect_near(s.run({{"x", x}}).at("y").tensor(), session(model, 0).run({{"x", x}}).at("y").tensor(), "y");

  // And a MatMul output with two readers is not fused at all.
  ModelBuilder c(17);
  c.input("x", kF32, Dims{M, K});
  c.initializer(float_tensor("w", {K, N}, random_values(K * N, rng_)));
  c.node("MatMul", {"x", "w"}, {"h"}, "mm");
  c.node("Relu", {"h"}, {"r"}, "act");
  c.node("Add", {"r", "h"}, {"y"}, "sum");
  c.output("y", kF32, Dims{M, N});
  Model model2 = Model::load(c.save(path("m2.onnx")));
  EXPECT_EQ(session(model2, 2).stats().kernels.size(), 3u);
}

}  // namespace

// A residual Add after the product (bias, activation) and SwiGLU's Mul of two products fold in as
// FusedMatMul's binary (Y = act(P + bias) + R or * R), R of the output's shape, also when R is
// computed after the product and under a symbolic batch; an operand that broadcasts stays an Add.
TEST_F(FuseLinearTest, ResidualAndGateFoldInAsBinary) {
  const std::string fused_kernel = have_onednn() ? "cpu/onednn/FusedMatMul" : "cpu/reference/FusedMatMul";
  for (const bool symbolic : {false, true}) {
    const DimSpec batch = symbolic ? DimSpec("B") : DimSpec(3);
    ModelBuilder b(17);
    b.input("x", kF32, Dims{batch, M, K});
    b.input("res", kF32, Dims{batch, M, N});
    b.input("row", kF32, Dims{1, N});
    for (const char* w : {"w1", "wg", "wu", "w3"}) b.initializer(float_tensor(w, {K, N}, random_values(K * N, rng_)));
    b.initializer(float_tensor("bias", {N}, random_values(N, rng_)));
    // Residual: MatMul -> Add(bias) -> Add(res).
    b.node("MatMul", {"x", "w1"}, {"h1"}, "mm1");
    b.node("Add", {"h1", "bias"}, {"z1"}, "add_bias");
    b.node("Add", {"res", "z1"}, {"y1"}, "add_res");
    // SwiGLU: SiLU(x wg) * (x wu), the up product made after the gate's activation.
    b.node("MatMul", {"x", "wg"}, {"g"}, "mm_gate");
    b.node("Sigmoid", {"g"}, {"gs"}, "sig");
    b.node("Mul", {"g", "gs"}, {"silu"}, "silu");
    b.node("MatMul", {"x", "wu"}, {"u"}, "mm_up");
    b.node("Mul", {"silu", "u"}, {"y2"}, "gate");
    // An operand that broadcasts ([1, N]) is not the binary.
    b.node("MatMul", {"x", "w3"}, {"h3"}, "mm3");
    b.node("Add", {"h3", "row"}, {"y3"}, "add_row");
    for (const char* y : {"y1", "y2", "y3"}) b.output(y, kF32, Dims{batch, M, N});
    Model model = Model::load(b.save(path("binary" + std::to_string(saved_++) + ".onnx")));
    Session fused = session(model, 2), plain = session(model, 0);
    EXPECT_EQ(kernels_of(fused), (std::vector<std::string>{"mm1+fused:FusedMatMul:" + fused_kernel,
                                                           "mm_up:MatMul:" + std::string(have_onednn() ? "cpu/onednn/MatMul" : "cpu/reference/MatMul"),
                                                           "mm_gate+fused:FusedMatMul:" + fused_kernel,
                                                           "mm3:MatMul:" + std::string(have_onednn() ? "cpu/onednn/MatMul" : "cpu/reference/MatMul"),
                                                           "add_row:Add:cpu/reference/Add"}))
        << (symbolic ? "symbolic batch" : "fixed batch");
    tunnx::NamedValues in;
    for (const auto& [name, dims] : std::vector<std::pair<std::string, std::vector<int64_t>>>{
             {"x", {3, M, K}}, {"res", {3, M, N}}, {"row", {1, N}}}) {
      Tensor t(DataType::kFloat32, dims);
      const std::vector<float> v = random_values(static_cast<size_t>(t.numel()), rng_);
      std::copy(v.begin(), v.end(), t.mutable_data_as<float>());
      in.emplace(name, t);
    }
    for (int run = 0; run < 2; ++run) {
      auto got = fused.run(in), want = plain.run(in);
      for (const char* y : {"y1", "y2", "y3"}) expect_near(got.at(y).tensor(), want.at(y).tensor(), y);
    }
  }
}
