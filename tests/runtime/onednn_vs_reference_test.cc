// Every oneDNN kernel against the reference kernel registered for the same op, on random shapes with
// edge sizes (1, odd, K up to 1024+): both are built from the registry for one node and run on the
// same inputs, kernel by kernel, with constant weights (the convolution path) and fed ones (matmul).
// Fixed seed: a failure names the case, and rerunning gives the same case.
#include <algorithm>
#include <cmath>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "runtime/core/graph.h"
#include "runtime/core/kernel.h"
#include "runtime/core/kernel_registry.h"

namespace {

using tunnx::DataType;
using tunnx::DeviceType;
using tunnx::Kernel;
using tunnx::KernelContext;
using tunnx::KernelDef;
using tunnx::KernelInit;
using tunnx::KernelRegistry;
using tunnx::Tensor;
using tunnx::Value;
namespace ir = tunnx::ir;

ir::Attribute int_attr(const std::string& name, int64_t v) {
  ir::Attribute a;
  a.name = name;
  a.type = ir::AttributeType::kInt;
  a.i = v;
  return a;
}
ir::Attribute ints_attr(const std::string& name, std::vector<int64_t> v) {
  ir::Attribute a;
  a.name = name;
  a.type = ir::AttributeType::kInts;
  a.ints = std::move(v);
  return a;
}

int64_t product_of(const std::vector<int64_t>& v) {
  int64_t p = 1;
  for (int64_t d : v) p *= d;
  return p;
}

ir::Attribute float_attr(const std::string& name, float v) {
  ir::Attribute a;
  a.name = name;
  a.type = ir::AttributeType::kFloat;
  a.f = v;
  return a;
}
ir::Attribute string_attr(const std::string& name, const std::string& v) {
  ir::Attribute a;
  a.name = name;
  a.type = ir::AttributeType::kString;
  a.s = v;
  return a;
}

// One node's two kernels, the oneDNN one and the reference one, and a way to run either.
class KernelPair {
 public:
  // `constant[i]`: input i is an initializer (the kernels may keep a packed copy of it).
  KernelPair(ir::Node node, int64_t opset, const std::vector<Tensor>& inputs, const std::vector<bool>& constant)
      : node_(std::move(node)), inputs_(inputs) {
    std::vector<DataType> types;
    std::vector<const Tensor*> constants;
    for (size_t i = 0; i < inputs_.size(); ++i) {
      types.push_back(inputs_[i].defined() ? inputs_[i].dtype() : DataType::kUndefined);
      constants.push_back(i < constant.size() && constant[i] ? &inputs_[i] : nullptr);
    }
    const KernelRegistry& registry = KernelRegistry::global();
    const KernelDef* fast = registry.find(node_.domain, node_.op_type, opset, DeviceType::kCpu, types, nullptr);
    const KernelDef* reference = registry.find_reference(node_.domain, node_.op_type, opset, DeviceType::kCpu);
    if (!fast || !reference || fast->name.rfind("cpu/onednn/", 0) != 0 || reference->priority != 0) return;
    fast_name_ = fast->name;
    fast_ = fast->factory(KernelInit(node_, opset, types, {}, constants));
    reference_ = reference->factory(KernelInit(node_, opset, types, {}, constants));
  }

  bool ready() const { return fast_ && reference_; }
  const std::string& fast_name() const { return fast_name_; }
  Tensor run_fast(size_t output = 0) const { return run(*fast_, output); }
  Tensor run_reference(size_t output = 0) const { return run(*reference_, output); }

 private:
  Tensor run(const Kernel& kernel, size_t output) const {
    std::vector<Value> values;
    for (const Tensor& t : inputs_) values.push_back(t.defined() ? Value(t) : Value());
    std::vector<const Value*> in;
    for (const Value& v : values) in.push_back(v.is_none() ? nullptr : &v);
    std::vector<Value> out(node_.outputs.size());
    int64_t bytes = 0;
    KernelContext ctx(node_, in, out, std::vector<bool>(node_.outputs.size(), true), bytes, nullptr);
    kernel.run(ctx);
    return out[output].tensor();
  }

  ir::Node node_;
  std::vector<Tensor> inputs_;
  std::string fast_name_;
  std::unique_ptr<Kernel> fast_, reference_;
};

class OnednnVsReference : public ::testing::Test {
 protected:
  void SetUp() override {
    const KernelDef* def = KernelRegistry::global().find("", "MatMul", 13, DeviceType::kCpu,
                                                          {DataType::kFloat32, DataType::kFloat32}, nullptr);
    if (!def || def->name != "cpu/onednn/MatMul") GTEST_SKIP() << "built without oneDNN";
  }

  Tensor random(const std::vector<int64_t>& dims) {
    Tensor t(DataType::kFloat32, dims);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    for (int64_t i = 0; i < t.numel(); ++i) t.mutable_data_as<float>()[i] = dist(rng_);
    return t;
  }
  int64_t pick(const std::vector<int64_t>& sizes) { return sizes[rng_() % sizes.size()]; }
  // Up to 4 random dims, at most 100,000 elements (the reference kernels are the slow side).
  std::vector<int64_t> random_dims() {
    std::vector<int64_t> dims;
    const int rank = 1 + static_cast<int>(rng_() % 4);
    int64_t count = 1;
    for (int i = 0; i < rank; ++i) {
      dims.push_back(count * 65 > 100000 ? pick({1, 2, 3}) : pick({1, 2, 3, 7, 16, 65}));
      count *= dims.back();
    }
    return dims;
  }
  // A FusedMatMul of M x K by a constant B [K, N] (stored [N, K] with `tb`), as Gemm or MatMul, with
  // or without a bias, activation `act` ("Clip" bounded to [-0.5, 0.5]) and binary operand `binary`
  // ("" for none), checked against the reference.
  void expect_constant_weight_product_agrees(int64_t M, int64_t K, int64_t N, bool gemm, bool tb, bool bias,
                                             const std::string& act, const std::string& binary) {
    ir::Node node{"fused", "FusedMatMul", "com.tunnx", {"a", "b"}, {"y"}, {}, ""};
    std::vector<Tensor> inputs = {random({M, K}), random(tb ? std::vector<int64_t>{N, K} : std::vector<int64_t>{K, N})};
    node.attributes = {string_attr("op", gemm ? "Gemm" : "MatMul"), int_attr("has_bias", bias),
                       string_attr("activation", act), int_attr("transB", tb)};
    if (act == "Clip") {
      node.attributes.push_back(float_attr("activation_alpha", -0.5f));
      node.attributes.push_back(float_attr("activation_beta", 0.5f));
    }
    if (gemm) {
      node.inputs.push_back("");
      inputs.push_back(Tensor());
    }
    if (bias) {
      node.inputs.push_back("bias");
      inputs.push_back(random({N}));
    }
    add_binary_operand(node, inputs, binary, M, N);
    std::vector<bool> constants(inputs.size(), false);
    constants[1] = true;
    KernelPair pair(node, 1, inputs, constants);
    expect_agree(pair,
                 std::string("FusedMatMul ") + (gemm ? "Gemm" : "MatMul") + " M=" + std::to_string(M) +
                     " K=" + std::to_string(K) + " N=" + std::to_string(N) + (tb ? " transB" : "") +
                     (bias ? " bias" : "") + " " + act + (binary.empty() ? "" : " " + binary + " R"),
                 static_cast<double>(K));
  }

  bool coin() { return rng_() % 2 == 0; }

  // FusedMatMul's last input R [M, N] and its `binary` attribute, unless `binary` is "" (none).
  void add_binary_operand(ir::Node& node, std::vector<Tensor>& inputs, const std::string& binary, int64_t M, int64_t N) {
    if (binary.empty()) return;
    node.inputs.push_back("r");
    inputs.push_back(random({M, N}));
    node.attributes.push_back(string_attr("binary", binary));
  }

  // Runs both kernels and compares: float sums of K terms may differ by ~K ulps of their magnitude.
  void expect_agree(const KernelPair& pair, const std::string& what, double K = 1, size_t output = 0) {
    ASSERT_TRUE(pair.ready()) << what << ": no oneDNN/reference kernel pair";
    const Tensor fast = pair.run_fast(output), reference = pair.run_reference(output);
    ASSERT_EQ(fast.dims(), reference.dims()) << what;
    const double atol = 2e-6 * std::sqrt(K) + 1e-6;
    int bad = 0;
    for (int64_t i = 0; i < fast.numel() && bad < 3; ++i) {
      const double f = fast.data_as<float>()[i], r = reference.data_as<float>()[i];
      if (std::isnan(f) && std::isnan(r)) continue;  // a NaN where the reference has one agrees
      if (!(std::fabs(f - r) <= atol + 1e-5 * std::fabs(r))) {
        ADD_FAILURE() << what << " (" << pair.fast_name() << "): element " << i << " is " << f << ", reference " << r;
        ++bad;
      }
    }
  }

  // Every element of `got` within `relative` of the largest magnitude in `want`.
  static void expect_within_scale(const Tensor& got, const Tensor& want, float relative, const std::string& what) {
    ASSERT_EQ(got.dims(), want.dims()) << what;
    float scale = 0, worst = 0;
    for (int64_t i = 0; i < want.numel(); ++i) {
      scale = std::max(scale, std::fabs(want.data_as<float>()[i]));
      worst = std::max(worst, std::fabs(got.data_as<float>()[i] - want.data_as<float>()[i]));
    }
    EXPECT_LE(worst, relative * scale) << what;
  }

  std::mt19937 rng_{2024};
};

const std::vector<int64_t> kRows = {1, 2, 3, 7, 16, 33, 64, 129};
const std::vector<int64_t> kDepth = {1, 3, 8, 17, 64, 255, 1024, 1031};
const std::vector<int64_t> kCols = {1, 5, 8, 31, 64, 100};

TEST_F(OnednnVsReference, MatMul) {
  for (int c = 0; c < 60; ++c) {
    const int64_t M = pick(kRows), K = pick(kDepth), N = pick(kCols);
    const bool batched = coin(), constant = coin();
    std::vector<int64_t> ad = {M, K};
    if (batched) ad.insert(ad.begin(), pick({1, 2, 3}));
    ir::Node node{"mm", "MatMul", "", {"a", "b"}, {"y"}, {}, ""};
    KernelPair pair(node, 13, {random(ad), random({K, N})}, {false, constant});
    expect_agree(pair, "MatMul " + tunnx::dims_to_string(ad) + " x [" + std::to_string(K) + "," + std::to_string(N) +
                           "]" + (constant ? " constant B" : ""), static_cast<double>(K));
  }
}

TEST_F(OnednnVsReference, Gemm) {
  for (int c = 0; c < 60; ++c) {
    const int64_t M = pick(kRows), K = pick(kDepth), N = pick(kCols);
    const bool ta = coin(), tb = coin(), constant = coin();
    const float alpha = coin() ? 1.0f : 0.5f, beta = coin() ? 1.0f : -2.0f;
    const int c_kind = static_cast<int>(rng_() % 4);  // none, [N], [M, N], [M, 1]
    std::vector<Tensor> inputs = {random(ta ? std::vector<int64_t>{K, M} : std::vector<int64_t>{M, K}),
                                  random(tb ? std::vector<int64_t>{N, K} : std::vector<int64_t>{K, N})};
    ir::Node node{"gemm", "Gemm", "", {"a", "b"}, {"y"}, {}, ""};
    if (c_kind) {
      node.inputs.push_back("c");
      inputs.push_back(random(c_kind == 1 ? std::vector<int64_t>{N} : c_kind == 2 ? std::vector<int64_t>{M, N}
                                                                              : std::vector<int64_t>{M, 1}));
    }
    node.attributes = {int_attr("transA", ta), int_attr("transB", tb), float_attr("alpha", alpha),
                       float_attr("beta", beta)};
    KernelPair pair(node, 13, inputs, {false, constant, constant});
    expect_agree(pair,
                 "Gemm M=" + std::to_string(M) + " K=" + std::to_string(K) + " N=" + std::to_string(N) +
                     " transA=" + std::to_string(ta) + " transB=" + std::to_string(tb) + " alpha=" +
                     std::to_string(alpha) + " beta=" + std::to_string(beta) + " C kind " + std::to_string(c_kind) +
                     (constant ? " constant B" : ""),
                 static_cast<double>(K));
  }
}

TEST_F(OnednnVsReference, FusedMatMul) {
  const std::vector<std::vector<ir::Attribute>> activations = {
      {string_attr("activation", "")},
      {string_attr("activation", "Relu")},
      {string_attr("activation", "LeakyRelu"), float_attr("activation_alpha", 0.1f)},
      {string_attr("activation", "Clip"), float_attr("activation_alpha", -0.5f), float_attr("activation_beta", 0.5f)},
      {string_attr("activation", "Sigmoid")},
      {string_attr("activation", "Tanh")},
      {string_attr("activation", "Gelu"), string_attr("approximate", "none")},
      {string_attr("activation", "Gelu"), string_attr("approximate", "tanh")},
  };
  for (int c = 0; c < 60; ++c) {
    const int64_t M = pick(kRows), K = pick(kDepth), N = pick(kCols);
    const bool gemm = coin(), constant = coin(), tb = gemm && coin();
    const auto& act = activations[rng_() % activations.size()];
    ir::Node node{"fused", "FusedMatMul", "com.tunnx", {"a", "b"}, {"y"}, {}, ""};
    std::vector<Tensor> inputs = {random({M, K}), random(tb ? std::vector<int64_t>{N, K} : std::vector<int64_t>{K, N})};
    node.attributes = {string_attr("op", gemm ? "Gemm" : "MatMul"), int_attr("has_bias", 1)};
    if (gemm) {
      node.inputs.push_back("c");
      inputs.push_back(random({N}));
      node.attributes.push_back(int_attr("transB", tb));
    }
    node.inputs.push_back("bias");
    inputs.push_back(random({N}));
    for (const auto& a : act) node.attributes.push_back(a);
    // A third of the cases add or multiply an [M, N] operand last (a residual, SwiGLU's gate).
    const std::string binary = std::vector<std::string>{"", "Add", "Mul"}[rng_() % 3];
    add_binary_operand(node, inputs, binary, M, N);
    std::vector<bool> constants(inputs.size(), constant);
    constants[0] = false;
    if (!binary.empty()) constants.back() = false;
    KernelPair pair(node, 1, inputs, constants);
    expect_agree(pair,
                 std::string("FusedMatMul ") + (gemm ? "Gemm" : "MatMul") + " M=" + std::to_string(M) +
                     " K=" + std::to_string(K) + " N=" + std::to_string(N) + " " + act[0].s +
                     (binary.empty() ? "" : " " + binary + " R") + (constant ? " constant B" : ""),
                 static_cast<double>(K));
  }
}

// A few rows times a constant B (panel_linear.h): every row count up to past its limit, depths that
// leave a remainder of its unrolled loop, column counts around its 16-wide panels (the last one
// padded), weights large enough to be split among threads, both ways a weight lies, with a bias, an
// activation or a residual.
TEST_F(OnednnVsReference, FewRowsTimesConstantWeights) {
  for (int c = 0; c < 80; ++c) {
    const int64_t M = pick({1, 2, 3, 4, 5}), K = pick({1, 3, 17, 64, 1031}), N = pick({1, 15, 16, 17, 33, 100, 1000});
    const bool gemm = coin(), tb = coin(), bias = coin();
    const std::string act = std::vector<std::string>{"", "Relu", "HardSwish"}[rng_() % 3];
    const std::string binary = std::vector<std::string>{"", "", "Add"}[rng_() % 3];
    expect_constant_weight_product_agrees(M, K, N, gemm, tb, bias, act, binary);
  }
}

// More rows times a constant B (panel_gemm of panel_linear.h on AVX-512 from 96 to 256 rows, oneDNN
// elsewhere): row counts around its 8-row tiles and its limits, depths around its 256-step slices, column
// counts around its 48-column groups (the last one partial, several per thread), both ways a weight
// lies, with a bias, each activation it applies itself or leaves to oneDNN, and a residual or gate.
TEST_F(OnednnVsReference, ManyRowsTimesConstantWeights) {
  for (int c = 0; c < 60; ++c) {
    const int64_t M = pick({5, 15, 95, 96, 97, 128, 250, 256, 257});
    const int64_t K = pick({1, 7, 255, 256, 257, 768}), N = pick({1, 16, 47, 48, 49, 100, 300, 770});
    const bool gemm = coin(), tb = coin(), bias = coin();
    const std::string act = std::vector<std::string>{"", "Relu", "Gelu", "HardSwish", "Clip", "Sigmoid"}[rng_() % 6];
    const std::string binary = std::vector<std::string>{"", "Add", "Mul"}[rng_() % 3];
    expect_constant_weight_product_agrees(M, K, N, gemm, tb, bias, act, binary);
  }
}

// LSTM and GRU (linear_before_reset either way) in every direction, with and without bias, initial
// state and full-length sequence_lens; every output compared.
TEST_F(OnednnVsReference, RecurrentLayers) {
  for (int c = 0; c < 80; ++c) {
    const bool lstm = c % 2 == 0;
    const int64_t G = lstm ? 4 : 3;
    const int64_t T = pick({1, 2, 5}), N = pick({1, 3}), I = pick({1, 7, 16}), H = pick({1, 5, 16, 33});
    const std::string direction = c / 2 % 3 == 0 ? "forward" : c / 2 % 3 == 1 ? "reverse" : "bidirectional";
    const int64_t D = direction == "bidirectional" ? 2 : 1;
    const bool bias = coin(), initial = coin(), lens = coin() && coin(), constant = coin();
    const bool linear_before_reset = !lstm && coin();
    ir::Node node{"rnn", lstm ? "LSTM" : "GRU", "", {"x", "w", "r", bias ? "b" : ""}, {"y", "y_h"},
                  {string_attr("direction", direction), int_attr("hidden_size", H)}, ""};
    if (lstm) node.outputs.push_back("y_c");
    if (linear_before_reset) node.attributes.push_back(int_attr("linear_before_reset", 1));
    std::vector<Tensor> inputs = {random({T, N, I}), random({D, G * H, I}), random({D, G * H, H}),
                                  bias ? random({D, 2 * G * H}) : Tensor()};
    if (lens || initial) {
      node.inputs.push_back(lens ? "lens" : "");
      inputs.push_back(lens ? Tensor::from_vector<int32_t>({N}, std::vector<int32_t>(static_cast<size_t>(N), static_cast<int32_t>(T)))
                            : Tensor());
    }
    if (initial) {
      node.inputs.push_back("h0");
      inputs.push_back(random({D, N, H}));
      if (lstm) {
        node.inputs.push_back("c0");
        inputs.push_back(random({D, N, H}));
      }
    }
    KernelPair pair(node, 14, inputs, {false, constant, constant, constant});
    const std::string what = node.op_type + " " + direction + " T=" + std::to_string(T) + " N=" + std::to_string(N) +
                             " I=" + std::to_string(I) + " H=" + std::to_string(H) + (bias ? " bias" : "") +
                             (initial ? " initial state" : "") + (lens ? " sequence_lens" : "") +
                             (linear_before_reset ? " linear_before_reset" : "") + (constant ? " constant weights" : "");
    for (size_t output = 0; output < node.outputs.size(); ++output)
      expect_agree(pair, what + " output " + std::to_string(output), static_cast<double>(I + H) * T, output);
  }
}

// FusedMatMul op "MatMul" with folded operands (passes/fold_matmul_operands.h): batched A and B read
// with their last two dims swapped, and alpha, against the reference's explicit transposes.
TEST_F(OnednnVsReference, FusedMatMulTransposedOperandsAndAlpha) {
  for (int c = 0; c < 40; ++c) {
    const int64_t M = pick(kRows), K = pick({1, 3, 17, 64}), N = pick(kCols), batch = pick({1, 2, 3});
    const bool ta = coin(), tb = coin(), batched_b = coin();
    const float alpha = coin() ? 1.0f : 0.125f;
    std::vector<int64_t> ad = ta ? std::vector<int64_t>{batch, K, M} : std::vector<int64_t>{batch, M, K};
    std::vector<int64_t> bd = tb ? std::vector<int64_t>{N, K} : std::vector<int64_t>{K, N};
    if (batched_b) bd.insert(bd.begin(), batch);
    ir::Node node{"fused", "FusedMatMul", "com.tunnx", {"a", "b"}, {"y"},
                  {string_attr("op", "MatMul"), int_attr("has_bias", 0), string_attr("activation", ""),
                   int_attr("transA", ta), int_attr("transB", tb), float_attr("alpha", alpha)}, ""};
    KernelPair pair(node, 1, {random(ad), random(bd)}, {false, false});
    expect_agree(pair,
                 "FusedMatMul A " + tunnx::dims_to_string(ad) + (ta ? " transA" : "") + " B " + tunnx::dims_to_string(bd) +
                     (tb ? " transB" : "") + " alpha " + std::to_string(alpha),
                 static_cast<double>(K));
  }
}

TEST_F(OnednnVsReference, Softmax) {
  for (int c = 0; c < 40; ++c) {
    const std::vector<int64_t> dims = random_dims();
    const int rank = static_cast<int>(dims.size());
    const int64_t opset = coin() ? 13 : 11;
    const int64_t axis = static_cast<int64_t>(rng_() % static_cast<unsigned>(rank)) - (coin() ? rank : 0);
    ir::Node node{"softmax", "Softmax", "", {"x"}, {"y"}, {int_attr("axis", axis)}, ""};
    KernelPair pair(node, opset, {random(dims)}, {false});
    expect_agree(pair, "Softmax " + tunnx::dims_to_string(dims) + " axis " + std::to_string(axis) + " opset " +
                           std::to_string(opset));
  }
}

// Large enough for the reorder (16,384 elements and up), ranks 2-6 with size-1 dims that collapse,
// every kind of perm: random, reversed (no attribute), negative entries, identity.
TEST_F(OnednnVsReference, Transpose) {
  for (int c = 0; c < 60; ++c) {
    std::vector<int64_t> dims;
    const int rank = 2 + static_cast<int>(rng_() % 5);
    do {
      dims.clear();
      for (int i = 0; i < rank; ++i) dims.push_back(pick({1, 2, 3, 7, 16, 33, 65, 130, 257}));
    } while (product_of(dims) < (1 << 14) || product_of(dims) > 600000);
    std::vector<int64_t> perm(static_cast<size_t>(rank));
    for (int i = 0; i < rank; ++i) perm[static_cast<size_t>(i)] = i;
    const int kind = static_cast<int>(rng_() % 4);  // 0, 1: shuffled, 2: no attribute, 3: identity
    if (kind < 2) std::shuffle(perm.begin(), perm.end(), rng_);
    if (kind == 1) perm[0] -= rank;
    ir::Node node{"transpose", "Transpose", "", {"x"}, {"y"}, {}, ""};
    if (kind != 2) node.attributes.push_back(ints_attr("perm", perm));
    KernelPair pair(node, 13, {random(dims)}, {false});
    expect_agree(pair, "Transpose " + tunnx::dims_to_string(dims) +
                           (kind == 2 ? std::string(" reversed") : " perm " + tunnx::dims_to_string(perm)));
  }
}

TEST_F(OnednnVsReference, GeluAndItsGradient) {
  for (int c = 0; c < 24; ++c) {
    const std::vector<int64_t> dims = random_dims();
    const std::string approximate = coin() ? "none" : "tanh";
    // Inputs over [-4, 4), where both branches of the tails matter.
    Tensor x = random(dims), dy = random(dims);
    for (int64_t i = 0; i < x.numel(); ++i) x.mutable_data_as<float>()[i] *= 4;
    const std::string what = tunnx::dims_to_string(dims) + " approximate " + approximate;
    for (const char* domain : {"", "com.tunnx"}) {
      ir::Node node{"gelu", "Gelu", domain, {"x"}, {"y"}, {string_attr("approximate", approximate)}, ""};
      expect_agree(KernelPair(node, *domain ? 1 : 20, {x}, {false}), std::string("Gelu ") + domain + " " + what);
    }
    ir::Node grad{"gelu_grad", "ElementwiseGrad", "com.tunnx", {"dy", "x"}, {"dx"},
                  {string_attr("op", "Gelu"), string_attr("approximate", approximate)}, ""};
    expect_agree(KernelPair(grad, 1, {dy, x}, {false, false}), "ElementwiseGrad Gelu " + what);
  }
}

TEST_F(OnednnVsReference, Conv) {
  for (int c = 0; c < 60; ++c) {
    const int nd = 1 + static_cast<int>(rng_() % 3);
    const int64_t group = pick({1, 1, 2, 3});
    const bool depthwise = coin() && coin();
    const int64_t in_c = depthwise ? group * 1 : group * pick({1, 2, 5});
    const int64_t out_c = depthwise ? group : group * pick({1, 3, 8});
    std::vector<int64_t> x_dims = {pick({1, 2}), in_c}, w_dims = {out_c, in_c / group}, kernel, strides, dilations, pads;
    for (int d = 0; d < nd; ++d) {
      const int64_t k = pick({1, 2, 3});
      kernel.push_back(k);
      strides.push_back(pick({1, 1, 2, 3}));
      dilations.push_back(pick({1, 1, 2}));
      x_dims.push_back((k - 1) * dilations.back() + 1 + pick({0, 1, 4, 9}));
      w_dims.push_back(k);
    }
    for (int side = 0; side < 2; ++side)
      for (int d = 0; d < nd; ++d) pads.push_back(pick({0, 0, 1, 2}));
    std::vector<ir::Attribute> attrs = {ints_attr("kernel_shape", kernel), ints_attr("strides", strides),
                                        ints_attr("dilations", dilations), int_attr("group", group)};
    const int auto_pad = static_cast<int>(rng_() % 4);
    if (auto_pad == 0) attrs.push_back(ints_attr("pads", pads));
    if (auto_pad == 1) attrs.push_back(string_attr("auto_pad", "SAME_UPPER"));
    if (auto_pad == 2) attrs.push_back(string_attr("auto_pad", "SAME_LOWER"));
    if (auto_pad == 3) attrs.push_back(string_attr("auto_pad", "VALID"));
    const bool with_bias = coin(), constant = coin();
    ir::Node node{"conv", "Conv", "", {"x", "w"}, {"y"}, attrs, ""};
    std::vector<Tensor> inputs = {random(x_dims), random(w_dims)};
    if (with_bias) {
      node.inputs.push_back("b");
      inputs.push_back(random({out_c}));
    }
    KernelPair pair(node, 11, inputs, {false, constant, false});
    const std::string what = "Conv x " + tunnx::dims_to_string(x_dims) + " w " + tunnx::dims_to_string(w_dims) +
                             " strides " + tunnx::dims_to_string(strides) + " dilations " +
                             tunnx::dims_to_string(dilations) + " pads " + tunnx::dims_to_string(pads) + " auto_pad " +
                             std::to_string(auto_pad) + (constant ? " (constant W)" : "");
    expect_agree(pair, what, static_cast<double>(w_dims[1] * product_of(kernel)));
  }
  // A 1-D convolution written as 2-D with a trailing size-1 dim (tf2onnx), in either position.
  for (const bool trailing : {true, false}) {
    const std::vector<int64_t> x_dims = trailing ? std::vector<int64_t>{2, 8, 40, 1} : std::vector<int64_t>{2, 8, 1, 40};
    const std::vector<int64_t> w_dims = trailing ? std::vector<int64_t>{16, 8, 5, 1} : std::vector<int64_t>{16, 8, 1, 5};
    ir::Node node{"conv", "Conv", "", {"x", "w"}, {"y"}, {ints_attr("kernel_shape", {w_dims[2], w_dims[3]})}, ""};
    expect_agree(KernelPair(node, 11, {random(x_dims), random(w_dims)}, {false, true}),
                 "Conv x " + tunnx::dims_to_string(x_dims), 40);
  }
  // Weights either side of the 128 Ki floats that tunnx's own loops move into the primitive's layout
  // (blocked_reorder.h; past that, oneDNN's reorder), fed (reordered every run) and constant (once).
  for (const int64_t out_c : {200, 240}) {  // 200 x 64 x 3 x 3 = 115,200 floats; 240 x ... = 138,240
    for (const bool constant : {false, true}) {
      const std::vector<int64_t> x_dims = {1, 64, 9, 9}, w_dims = {out_c, 64, 3, 3};
      ir::Node node{"conv", "Conv", "", {"x", "w"}, {"y"}, {ints_attr("kernel_shape", {3, 3})}, ""};
      expect_agree(KernelPair(node, 11, {random(x_dims), random(w_dims)}, {false, constant}),
                   "Conv w " + tunnx::dims_to_string(w_dims) + (constant ? " (constant W)" : " (fed W)"), 64 * 9);
    }
  }
}

// ConvTranspose: 1-D to 3-D, groups (one input and output channel per group too), strides 1-3,
// dilations, asymmetric pads with output_padding, output_shape (smaller than the full size, or larger:
// a negative begin pad, which the reference takes), SAME_UPPER / SAME_LOWER, with and without B,
// constant and fed W; then an empty batch, and a constant W written between runs.
TEST_F(OnednnVsReference, ConvTranspose) {
  for (int c = 0; c < 100; ++c) {
    const int nd = 1 + static_cast<int>(rng_() % 3);
    const int64_t group = pick({1, 1, 2, 3});
    const bool depthwise = coin() && coin();
    const int64_t in_c = depthwise ? group : group * pick({1, 2, 5});
    const int64_t out_per_group = depthwise ? 1 : pick({1, 3, 8});
    std::vector<int64_t> x_dims = {pick({1, 2}), in_c}, w_dims = {in_c, out_per_group}, kernel, strides, dilations,
                         out_pad, pads(2 * static_cast<size_t>(nd)), full;
    for (int d = 0; d < nd; ++d) {
      const int64_t k = pick({1, 2, 3}), s = pick({1, 1, 2, 3}), dil = pick({1, 1, 2}), extent = (k - 1) * dil + 1;
      kernel.push_back(k);
      strides.push_back(s);
      dilations.push_back(dil);
      out_pad.push_back(static_cast<int64_t>(rng_() % static_cast<unsigned>(std::max(s, dil))));  // below both, as ONNX asks
      x_dims.push_back(pick({1, 2, 5, 9}));
      w_dims.push_back(k);
      // Each pad at most half the extent: the output keeps a position.
      pads[static_cast<size_t>(d)] = std::min<int64_t>(pick({0, 0, 1, 2}), (extent - 1) / 2);
      pads[static_cast<size_t>(d + nd)] = std::min<int64_t>(pick({0, 1, 2}), (extent - 1) / 2);
      full.push_back(s * (x_dims.back() - 1) + extent);
    }
    std::vector<ir::Attribute> attrs = {ints_attr("kernel_shape", kernel), ints_attr("strides", strides),
                                        ints_attr("dilations", dilations), int_attr("group", group)};
    const int mode = static_cast<int>(rng_() % 4);
    std::string how;
    if (mode == 0) {
      attrs.push_back(ints_attr("pads", pads));
      attrs.push_back(ints_attr("output_padding", out_pad));
      how = "pads " + tunnx::dims_to_string(pads) + " output_padding " + tunnx::dims_to_string(out_pad);
    } else if (mode == 1) {
      std::vector<int64_t> shape;
      for (int64_t f : full) shape.push_back(std::max<int64_t>(1, f + pick({-2, -1, 0, 0, 1})));
      attrs.push_back(ints_attr("output_shape", shape));
      how = "output_shape " + tunnx::dims_to_string(shape);
    } else {
      how = mode == 2 ? "SAME_UPPER" : "SAME_LOWER";
      attrs.push_back(string_attr("auto_pad", how));
    }
    const bool with_bias = coin(), constant = coin();
    ir::Node node{"deconv", "ConvTranspose", "", {"x", "w"}, {"y"}, attrs, ""};
    std::vector<Tensor> inputs = {random(x_dims), random(w_dims)};
    if (with_bias) {
      node.inputs.push_back("b");
      inputs.push_back(random({group * out_per_group}));
    }
    KernelPair pair(node, 11, inputs, {false, constant, constant});
    const std::string what = "ConvTranspose x " + tunnx::dims_to_string(x_dims) + " w " + tunnx::dims_to_string(w_dims) +
                             " group " + std::to_string(group) + " strides " + tunnx::dims_to_string(strides) +
                             " dilations " + tunnx::dims_to_string(dilations) + " " + how + (with_bias ? " with B" : "") +
                             (constant ? " (constant W)" : "");
    expect_agree(pair, what, static_cast<double>(in_c / group * product_of(kernel)));
  }

  // Few output channels and enough work for gemm:jit on NCHW values (smaller products run the
  // reference kernel: see kGemmJitWork in conv_transpose.cc).
  {
    ir::Node node{"deconv", "ConvTranspose", "", {"x", "w", "b"}, {"y"},
                  {ints_attr("strides", {2, 2}), ints_attr("pads", {2, 2, 2, 2})}, ""};
    KernelPair large(node, 11, {random({1, 64, 96, 96}), random({64, 4, 5, 5}), random({4})}, {false, true, true});
    expect_agree(large, "ConvTranspose 64 -> 4 channels at 96x96", 64 * 25);
  }

  // An empty batch gives an empty output.
  ir::Node node{"deconv", "ConvTranspose", "", {"x", "w", "b"}, {"y"}, {ints_attr("strides", {2, 2})}, ""};
  KernelPair empty(node, 11, {random({0, 4, 5, 5}), random({4, 3, 2, 2}), random({3})}, {false, true, true});
  expect_agree(empty, "ConvTranspose of an empty batch");
  EXPECT_EQ(empty.run_fast().dims(), (std::vector<int64_t>{0, 3, 10, 10}));

  // A constant W written between runs (Tensor::mutable_data bumps its version): every run sees the
  // values it holds, once after a single write (its copy is remade) and after writes before every run
  // (read as it lies).
  Tensor w = random({8, 6, 3, 3});
  node.attributes.push_back(int_attr("group", 2));
  KernelPair written(node, 11, {random({2, 8, 7, 7}), w, random({12})}, {false, true, true});
  for (int run = 0; run < 5; ++run) {
    expect_agree(written, "ConvTranspose after " + std::to_string(run) + " writes to W", 36);
    float* values = w.mutable_data_as<float>();
    for (int64_t i = 0; i < w.numel(); ++i) values[i] = -values[i] * 0.5f + 0.25f;
  }
}

TEST_F(OnednnVsReference, MaxPoolAndAveragePool) {
  int fast = 0;
  for (int c = 0; c < 80; ++c) {
    const int nd = 1 + static_cast<int>(rng_() % 3);
    const bool max = coin();
    std::vector<int64_t> x_dims = {pick({1, 2}), pick({1, 3, 16})}, kernel, strides, dilations, pads;
    for (int d = 0; d < nd; ++d) {
      kernel.push_back(pick({1, 2, 3}));
      strides.push_back(pick({1, 2, 3}));
      dilations.push_back(max ? pick({1, 1, 2}) : 1);
      x_dims.push_back((kernel.back() - 1) * dilations.back() + 1 + pick({0, 1, 4, 9}));
    }
    for (int side = 0; side < 2; ++side)
      for (int d = 0; d < nd; ++d) pads.push_back(std::min<int64_t>(pick({0, 0, 1}), kernel[static_cast<size_t>(d)] - 1));
    std::vector<ir::Attribute> attrs = {ints_attr("kernel_shape", kernel), ints_attr("strides", strides)};
    if (max) attrs.push_back(ints_attr("dilations", dilations));
    const int auto_pad = static_cast<int>(rng_() % 3);
    if (auto_pad == 0) attrs.push_back(ints_attr("pads", pads));
    if (auto_pad == 1) attrs.push_back(string_attr("auto_pad", "SAME_UPPER"));
    const bool ceil = auto_pad == 0 && coin();
    if (ceil) attrs.push_back(int_attr("ceil_mode", 1));
    const bool include_pad = !max && coin();
    if (include_pad) attrs.push_back(int_attr("count_include_pad", 1));
    ir::Node node{"pool", max ? "MaxPool" : "AveragePool", "", {"x"}, {"y"}, attrs, ""};
    KernelPair pair(node, 12, {random(x_dims)}, {false});
    expect_agree(pair, node.op_type + " x " + tunnx::dims_to_string(x_dims) + " kernel " + tunnx::dims_to_string(kernel) +
                           " strides " + tunnx::dims_to_string(strides) + " dilations " + tunnx::dims_to_string(dilations) +
                           " pads " + tunnx::dims_to_string(pads) + " auto_pad " + std::to_string(auto_pad) +
                           (ceil ? " ceil" : "") + (include_pad ? " count_include_pad" : ""));
    fast += pair.ready();
  }
  EXPECT_GT(fast, 0);
}

// [N, spatial..., C] float32 values laid out channel-blocked ([N, C / block, spatial..., block]),
// the dims unchanged: what FusedConv's x_channel_block and y_channel_block mean.
Tensor channel_blocked(const Tensor& nhwc, int64_t block) {
  const std::vector<int64_t>& d = nhwc.dims();
  const int64_t batch = d[0], channels = d.back(), pixels = nhwc.numel() / (batch * channels);
  Tensor out(DataType::kFloat32, d);
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t p = 0; p < pixels; ++p)
      for (int64_t c = 0; c < channels; ++c)
        out.mutable_data_as<float>()[((n * (channels / block) + c / block) * pixels + p) * block + c % block] =
            nhwc.data_as<float>()[(n * pixels + p) * channels + c];
  return out;
}

// FusedConv handing channel-blocked tensors (runtime/core/passes/channel_blocks.h): X read and Y
// written as nChw16c or nChw8c, either or both, by the oneDNN kernel (Winograd-sized 3x3, a small 3x3
// and a 1x1 that run direct) and by the reference kernel, both agreeing with the same convolution on
// channels-last tensors, whose layout the test moves with its own loop; with a Relu, with and without
// a residual (channels-last whatever Y's block), at batch 1 and 2.
TEST_F(OnednnVsReference, ChannelBlockedFusedConv) {
  struct Case {
    int64_t batch, in_c, out_c, side, k, block;
    bool residual;
  };
  const std::vector<Case> cases = {{1, 32, 48, 16, 3, 16, false}, {2, 32, 32, 20, 3, 16, true},
                                   {1, 16, 32, 9, 3, 8, true},     {2, 48, 16, 14, 1, 16, false}};
  for (const Case& c : cases)
    for (const auto& [x_block, y_block] : {std::pair<int64_t, int64_t>{c.block, 0}, {0, c.block}, {c.block, c.block}}) {
      std::vector<ir::Attribute> attrs = {ints_attr("kernel_shape", {c.k, c.k}),
                                          ints_attr("pads", {c.k / 2, c.k / 2, c.k / 2, c.k / 2}),
                                          int_attr("channels_last", 1), string_attr("activation", "Relu"),
                                          int_attr("has_residual", c.residual ? 1 : 0)};
      // X, W, B, four absent batch-norm inputs, Z (absent without a residual).
      ir::Node plain{"fused", "FusedConv", "com.tunnx", {"x", "w", "b", "", "", "", "", c.residual ? "z" : ""}, {"y"},
                     attrs, ""};
      std::vector<Tensor> inputs = {random({c.batch, c.side, c.side, c.in_c}), random({c.out_c, c.in_c, c.k, c.k}),
                                    random({c.out_c}), Tensor(), Tensor(), Tensor(), Tensor(),
                                    c.residual ? random({c.batch, c.side, c.side, c.out_c}) : Tensor()};
      ir::Node blocked = plain;
      if (x_block) blocked.attributes.push_back(int_attr("x_channel_block", x_block));
      if (y_block) blocked.attributes.push_back(int_attr("y_channel_block", y_block));
      std::vector<Tensor> blocked_inputs = inputs;
      if (x_block) blocked_inputs[0] = channel_blocked(inputs[0], x_block);
      const std::vector<bool> constant = {false, true, true};
      Tensor want = KernelPair(plain, 1, inputs, constant).run_reference();
      if (y_block) want = channel_blocked(want, y_block);
      const KernelPair pair(blocked, 1, blocked_inputs, constant);
      ASSERT_TRUE(pair.ready());
      const std::string what = std::to_string(c.in_c) + " -> " + std::to_string(c.out_c) + " at " +
                               std::to_string(c.side) + "x" + std::to_string(c.side) + ", k " + std::to_string(c.k) +
                               ", batch " + std::to_string(c.batch) + ", x block " + std::to_string(x_block) +
                               ", y block " + std::to_string(y_block) + (c.residual ? ", residual" : "");
      for (const bool fast : {true, false}) {
        // Winograd's F(4x4, 3x3) rounds more than a direct sum: up to ~3.5e-5 of the scale.
        expect_within_scale(fast ? pair.run_fast() : pair.run_reference(), want, 1e-4f,
                            what + (fast ? " (oneDNN)" : " (reference)"));
      }
    }
}

// A Winograd-sized FusedConv (3x3, 32+ channels, 14x14+) with a residual on channels-last tensors:
// the oneDNN kernel adds Z as the output leaves the Winograd kernel's blocked layout, before or after
// the activation (residual_on_reorder in conv.cc); with and without B, at batch 1 and 2, threads as
// the test runs.
TEST_F(OnednnVsReference, WinogradFusedConvWithResidual) {
  struct Case {
    int64_t batch, in_c, out_c, side;
  };
  const std::vector<std::string> activations = {"", "Relu", "Silu", "Sigmoid", "LeakyRelu"};
  int c = 0;
  for (const Case& shape : {Case{1, 32, 32, 14}, Case{2, 48, 64, 20}, Case{1, 64, 32, 17}})
    for (const std::string& act : activations)
      for (const bool after : {false, true}) {
        const bool with_bias = ++c % 3 != 0;
        std::vector<ir::Attribute> attrs = {ints_attr("kernel_shape", {3, 3}), ints_attr("pads", {1, 1, 1, 1}),
                                            int_attr("channels_last", 1), string_attr("activation", act),
                                            int_attr("has_residual", 1),
                                            int_attr("residual_after_activation", after ? 1 : 0)};
        if (act == "LeakyRelu") attrs.push_back(float_attr("activation_alpha", 0.1f));
        ir::Node node{"fused", "FusedConv", "com.tunnx", {"x", "w", with_bias ? "b" : "", "", "", "", "", "z"}, {"y"},
                      attrs, ""};
        const std::vector<int64_t> y_dims = {shape.batch, shape.side, shape.side, shape.out_c};
        std::vector<Tensor> inputs = {random({shape.batch, shape.side, shape.side, shape.in_c}),
                                      random({shape.out_c, shape.in_c, 3, 3}),
                                      with_bias ? random({shape.out_c}) : Tensor(),
                                      Tensor(), Tensor(), Tensor(), Tensor(), random(y_dims)};
        const KernelPair pair(node, 1, inputs, {false, true, true});
        ASSERT_TRUE(pair.ready());
        const std::string what = std::to_string(shape.in_c) + " -> " + std::to_string(shape.out_c) + " at " +
                                 std::to_string(shape.side) + "x" + std::to_string(shape.side) + ", batch " +
                                 std::to_string(shape.batch) + ", " + (act.empty() ? "no activation" : act) +
                                 (after ? ", residual after it" : ", residual before it") + (with_bias ? ", B" : "");
        const Tensor want = pair.run_reference();
        // Winograd's F(4x4, 3x3) rounds more than a direct sum.
        for (int run = 0; run < 2; ++run) expect_within_scale(pair.run_fast(), want, 1e-4f, what);
      }
}

// A pointwise FusedConv on channels-last tensors, which the oneDNN kernel runs as a matmul over the
// rows from 256 rows on (build_as_product in conv.cc), as brgconv_1x1 below: 1-D to 3-D images with
// sizes of one, batches of 1-3, channel
// counts around the 16- and 64-wide blocks, with and without B, with a folded BatchNormalization, a
// residual before or after the activation, the four affine inputs, and the activations its post-ops
// carry; W constant (packed once) and fed.
TEST_F(OnednnVsReference, PointwiseChannelsLastFusedConv) {
  const std::vector<std::string> activations = {"", "Relu", "Sigmoid", "HardSwish", "Silu", "Gelu", "LeakyRelu"};
  for (int c = 0; c < 64; ++c) {
    const int nd = 1 + static_cast<int>(rng_() % 3);
    const int64_t batch = pick({1, 2, 3}), in_c = pick({1, 3, 16, 33, 64}), out_c = pick({1, 8, 17, 64, 80});
    std::vector<int64_t> x_dims = {batch}, y_dims = {batch}, kernel, ones;
    for (int d = 0; d < nd; ++d) {
      // Rows (batch x image) either side of the 256 from which the kernel takes the matmul.
      const int64_t side = nd == 1 ? pick({1, 40, 300, 300}) : nd == 2 ? pick({1, 5, 17, 24, 24}) : pick({1, 4, 7, 7});
      x_dims.push_back(side);
      y_dims.push_back(side);
      kernel.push_back(1);
      ones.push_back(1);
    }
    x_dims.push_back(in_c);
    y_dims.push_back(out_c);
    std::vector<int64_t> w_dims = {out_c, in_c};
    w_dims.insert(w_dims.end(), ones.begin(), ones.end());
    const bool with_bias = coin(), bn = coin(), residual = coin() && coin(), after = coin(), affine = coin() && coin();
    const bool constant_w = c % 4 != 3;
    const std::string act = activations[static_cast<size_t>(c) % activations.size()];
    std::vector<ir::Attribute> attrs = {ints_attr("kernel_shape", kernel), int_attr("channels_last", 1),
                                        string_attr("activation", act), int_attr("has_bn", bn ? 1 : 0),
                                        int_attr("has_residual", residual ? 1 : 0),
                                        int_attr("residual_after_activation", residual && after ? 1 : 0)};
    if (act == "LeakyRelu") attrs.push_back(float_attr("activation_alpha", 0.1f));
    // X, W, B, the batch norm's scale, bias, mean and variance, Z, then the four affine inputs.
    ir::Node node{"fused", "FusedConv", "com.tunnx", {"x", "w", with_bias ? "b" : ""}, {"y"}, attrs, ""};
    std::vector<Tensor> inputs = {random(x_dims), random(w_dims), with_bias ? random({out_c}) : Tensor()};
    for (const char* name : {"s", "t", "m", "v"}) {
      node.inputs.push_back(bn ? name : "");
      Tensor stat = bn ? random({out_c}) : Tensor();
      if (bn && std::string(name) == "v")
        for (int64_t i = 0; i < out_c; ++i) stat.mutable_data_as<float>()[i] = 0.5f + std::fabs(stat.data_as<float>()[i]);
      inputs.push_back(stat);
    }
    node.inputs.push_back(residual ? "z" : "");
    inputs.push_back(residual ? random(y_dims) : Tensor());
    if (affine)
      for (const char* name : {"a0", "a1", "a2", "a3"}) {
        node.inputs.push_back(name);
        inputs.push_back(random({1}));
      }
    std::vector<bool> constant(inputs.size(), true);
    constant[0] = false;
    constant[1] = constant_w;
    if (residual) constant[7] = false;
    const KernelPair pair(node, 1, inputs, constant);
    const std::string what = "pointwise FusedConv x " + tunnx::dims_to_string(x_dims) + " -> " +
                             std::to_string(out_c) + (with_bias ? ", B" : "") + (bn ? ", batch norm" : "") +
                             (residual ? (after ? ", residual after" : ", residual before") : "") +
                             (affine ? ", affine" : "") + ", " + (act.empty() ? "no activation" : act) +
                             (constant_w ? "" : ", fed W");
    expect_agree(pair, what, static_cast<double>(in_c));
    expect_agree(pair, what + " (again)", static_cast<double>(in_c));  // the packed weights reused
  }
}

// com.tunnx:ChannelsLastPool with op MaxPool (max_pool_channels_last's vector loops): channels
// around the 16-wide vectors, windows with pads, dilations, ceil_mode and auto_pad, batches of two,
// and NaNs where a window starts and further in, against the reference (which moves the channels
// around the plain MaxPool).
TEST_F(OnednnVsReference, ChannelsLastMaxPool) {
  for (int c = 0; c < 60; ++c) {
    std::vector<int64_t> kernel, strides, dilations, pads;
    std::vector<int64_t> x_dims = {pick({1, 2})};
    for (int d = 0; d < 2; ++d) {
      kernel.push_back(pick({1, 2, 3, 5}));
      strides.push_back(pick({1, 2}));
      dilations.push_back(pick({1, 1, 2}));
      x_dims.push_back((kernel.back() - 1) * dilations.back() + 1 + pick({0, 1, 4, 9}));
    }
    x_dims.push_back(pick({1, 5, 16, 33, 64}));
    for (int side = 0; side < 2; ++side)
      for (int d = 0; d < 2; ++d) pads.push_back(std::min<int64_t>(pick({0, 1, 2}), kernel[static_cast<size_t>(d)] - 1));
    std::vector<ir::Attribute> attrs = {string_attr("op", "MaxPool"), ints_attr("kernel_shape", kernel),
                                        ints_attr("strides", strides), ints_attr("dilations", dilations)};
    const int auto_pad = static_cast<int>(rng_() % 3);
    if (auto_pad == 0) attrs.push_back(ints_attr("pads", pads));
    if (auto_pad == 1) attrs.push_back(string_attr("auto_pad", "SAME_UPPER"));
    const bool ceil = auto_pad == 0 && coin();
    if (ceil) attrs.push_back(int_attr("ceil_mode", 1));
    Tensor x = random(x_dims);
    if (coin()) {  // NaNs: the first element, and one further in
      x.mutable_data_as<float>()[0] = std::numeric_limits<float>::quiet_NaN();
      x.mutable_data_as<float>()[x.numel() / 2] = std::numeric_limits<float>::quiet_NaN();
    }
    ir::Node node{"pool", "ChannelsLastPool", "com.tunnx", {"x"}, {"y"}, attrs, ""};
    KernelPair pair(node, 1, {x}, {false});
    expect_agree(pair, "ChannelsLastPool MaxPool x " + tunnx::dims_to_string(x_dims) + " kernel " +
                           tunnx::dims_to_string(kernel) + " strides " + tunnx::dims_to_string(strides) + " dilations " +
                           tunnx::dims_to_string(dilations) + " pads " + tunnx::dims_to_string(pads) + " auto_pad " +
                           std::to_string(auto_pad) + (ceil ? " ceil" : ""));
  }
}

TEST_F(OnednnVsReference, Activations) {
  struct Case {
    const char* op;
    int64_t opset;
    std::vector<ir::Attribute> attrs;
  };
  const std::vector<Case> cases = {
      {"Relu", 14, {}},        {"LeakyRelu", 16, {float_attr("alpha", 0.2f)}}, {"LeakyRelu", 6, {}},
      {"Elu", 6, {float_attr("alpha", 0.7f)}}, {"Tanh", 13, {}}, {"Sigmoid", 13, {}},
      {"Exp", 13, {}},         {"Abs", 13, {}},        {"HardSwish", 14, {}},
  };
  for (const Case& c : cases)
    for (int k = 0; k < 4; ++k) {
      const std::vector<int64_t> dims = random_dims();
      Tensor x = random(dims);
      // Spread over [-12, 12) with the tails and zero present.
      for (int64_t i = 0; i < x.numel(); ++i) x.mutable_data_as<float>()[i] *= 12;
      x.mutable_data_as<float>()[0] = 0;
      if (x.numel() > 2) x.mutable_data_as<float>()[1] = -30, x.mutable_data_as<float>()[2] = 30;
      ir::Node node{"act", c.op, "", {"x"}, {"y"}, c.attrs, ""};
      expect_agree(KernelPair(node, c.opset, {x}, {false}), std::string(c.op) + " " + tunnx::dims_to_string(dims));
    }
}

TEST_F(OnednnVsReference, LayerNormalization) {
  for (int c = 0; c < 40; ++c) {
    const std::vector<int64_t> dims = random_dims();
    const int rank = static_cast<int>(dims.size());
    const int64_t axis = static_cast<int64_t>(rng_() % static_cast<unsigned>(rank));
    const std::vector<int64_t> norm(dims.begin() + axis, dims.end());
    const bool with_bias = coin();
    ir::Node node{"ln", "LayerNormalization", "", {"x", "scale"}, {"y"}, {int_attr("axis", axis - (coin() ? rank : 0))}, ""};
    std::vector<Tensor> inputs = {random(dims), random(norm)};
    if (with_bias) {
      node.inputs.push_back("bias");
      inputs.push_back(random(norm));
    }
    KernelPair pair(node, 17, inputs, {false, true, true});
    expect_agree(pair, "LayerNormalization " + tunnx::dims_to_string(dims) + " axis " + std::to_string(axis) +
                           (with_bias ? " with B" : ""));
  }
}

// Attention (opset 23): 3-D and 4-D inputs, grouped heads, query lengths across the 32-row block
// edge, causal masking (also over a past cache, where rows see keys past their own index), sliding
// windows, bool and float masks of every rank (broadcast dims, a last dim shorter than the keys,
// -inf entries), nonpad_kv_seqlen (0 included: rows that see nothing are zeros), an explicit scale;
// Y and, when asked for, present_key / present_value.
TEST_F(OnednnVsReference, Attention) {
  for (int c = 0; c < 120; ++c) {
    const bool four_d = coin(), past = c % 3 == 0, nonpad = !past && c % 5 == 1;
    const int64_t B = pick({1, 2}), Hkv = pick({1, 2, 3}), Hq = Hkv * pick({1, 2, 4});
    const int64_t Sq = pick({1, 2, 7, 32, 33, 65}), Skv = coin() ? Sq : pick({1, 5, 33, 64});
    const int64_t D = pick({1, 4, 8, 17, 64}), Dv = coin() ? D : pick({3, 16});
    const int64_t Sp = past ? pick({1, 3, 16}) : 0, T = Sp + Skv;
    auto layout = [&](int64_t H, int64_t S, int64_t d) {
      return four_d ? std::vector<int64_t>{B, H, S, d} : std::vector<int64_t>{B, S, H * d};
    };
    Tensor q = random(layout(Hq, Sq, D));
    for (int64_t i = 0; i < q.numel(); ++i) q.mutable_data_as<float>()[i] *= 3;  // peaked softmax rows too
    ir::Node node{"attn", "Attention", "", {"q", "k", "v"}, {"y"}, {}, ""};
    std::vector<Tensor> inputs = {q, random(layout(Hkv, Skv, D)), random(layout(Hkv, Skv, Dv))};
    if (!four_d) node.attributes = {int_attr("q_num_heads", Hq), int_attr("kv_num_heads", Hkv)};
    std::string what = "Attention " + tunnx::dims_to_string(q.dims()) + " Hq " + std::to_string(Hq) + " Hkv " +
                       std::to_string(Hkv) + " Skv " + std::to_string(Skv) + " D " + std::to_string(D) + " Dv " +
                       std::to_string(Dv) + " past " + std::to_string(Sp);
    if (coin()) {
      node.attributes.push_back(int_attr("is_causal", 1));
      what += " causal";
    }
    if (c % 7 == 2) {
      node.attributes.push_back(int_attr("left_window_size", pick({0, 3, 20})));
      node.attributes.push_back(int_attr("right_window_size", pick({-1, 0, 2})));
      what += " window";
    }
    if (c % 4 == 3) {
      node.attributes.push_back(float_attr("scale", 0.3f));
      what += " scale 0.3";
    }
    const int mask_kind = static_cast<int>(rng_() % 3);  // none, bool, float
    if (mask_kind) {
      const int mask_rank = 1 + static_cast<int>(rng_() % 4);
      const std::vector<int64_t> full = {B, Hq, Sq, coin() ? T : std::max<int64_t>(1, T - pick({1, 4}))};
      std::vector<int64_t> mdims(full.end() - mask_rank, full.end());
      for (size_t i = 0; i + 1 < mdims.size(); ++i)
        if (coin()) mdims[i] = 1;  // broadcast
      Tensor mask = mask_kind == 1 ? Tensor(DataType::kBool, mdims) : random(mdims);
      for (int64_t i = 0; i < mask.numel(); ++i) {
        if (mask_kind == 1) mask.mutable_data_as<bool>()[i] = rng_() % 5 != 0;
        else if (rng_() % 6 == 0) mask.mutable_data_as<float>()[i] = -std::numeric_limits<float>::infinity();
      }
      node.inputs.push_back("mask");
      inputs.push_back(mask);
      what += std::string(mask_kind == 1 ? " bool" : " float") + " mask " + tunnx::dims_to_string(mdims);
    }
    if (past || nonpad) {
      while (node.inputs.size() < 4) {
        node.inputs.push_back("");
        inputs.push_back(Tensor());
      }
      if (past) {
        node.inputs.insert(node.inputs.end(), {"past_k", "past_v"});
        inputs.push_back(random({B, Hkv, Sp, D}));
        inputs.push_back(random({B, Hkv, Sp, Dv}));
      } else {
        node.inputs.insert(node.inputs.end(), {"", "", "nonpad"});
        inputs.push_back(Tensor());
        inputs.push_back(Tensor());
        std::vector<int64_t> lens;
        for (int64_t b = 0; b < B; ++b) lens.push_back(pick({0, 1, Skv / 2, Skv}));
        inputs.push_back(Tensor::from_vector<int64_t>({B}, lens));
        what += " nonpad";
      }
    }
    const bool presents = past || coin();
    if (presents) node.outputs = {"y", "present_k", "present_v"};
    KernelPair pair(node, 23, inputs, std::vector<bool>(inputs.size(), false));
    expect_agree(pair, what, static_cast<double>(D + T));
    if (presents) {
      expect_agree(pair, what + " present_key", 1, 1);
      expect_agree(pair, what + " present_value", 1, 2);
    }
  }
}

}  // namespace
