// The spelled-out activation and normalization passes (runtime/core/passes/fuse_hard_swish.cc,
// fuse_layer_norm.cc): Paddle2ONNX's HardSwish (x * Clip(x + 3, 0, 6) / 6), torch's x *
// HardSigmoid(x) and the nine-node layer normalization of exports below opset 17 each become one
// node at optimization level 2, a HardSwish after a Conv folds into it, and outputs match level 0
// (the nodes as written). Chains that differ in a constant, or whose intermediates are read
// elsewhere, are left alone.
#include <cmath>
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

class FuseSpelledOpsTest : public TempDirTest {
 protected:
  Tensor random_tensor(const std::vector<int64_t>& dims, float range) {
    std::uniform_real_distribution<float> dist(-range, range);
    Tensor t(DataType::kFloat32, dims);
    for (int64_t i = 0; i < t.numel(); ++i) t.mutable_data_as<float>()[i] = dist(rng_);
    return t;
  }
  std::vector<float> random_values(size_t n) {
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    std::vector<float> v(n);
    for (auto& x : v) x = dist(rng_);
    return v;
  }

  static Session session(const Model& m, int level) {
    SessionOptions options;
    options.optimization_level = level;
    return Session(m, options);
  }

  static std::vector<std::string> ops(const Session& s) {
    std::vector<std::string> out;
    for (const auto& k : s.stats().kernels)
      if (k.op_type != "Constant") out.push_back(k.op_type);
    return out;
  }

  // Level 2 against level 0 on x in [-range, range] (HardSwish's kinks at -3 and 3 inside).
  void expect_same_outputs(const Model& m, const std::vector<int64_t>& dims, float range, const std::string& what) {
    const Tensor x = random_tensor(dims, range);
    Tensor got = session(m, 2).run({{"x", x}}).at("y").tensor();
    Tensor want = session(m, 0).run({{"x", x}}).at("y").tensor();
    ASSERT_EQ(got.dims(), want.dims()) << what;
    for (int64_t i = 0; i < got.numel(); ++i) {
      const float g = got.data_as<float>()[i], w = want.data_as<float>()[i];
      EXPECT_LE(std::fabs(g - w), 2e-5f * std::fmax(std::fabs(g), std::fabs(w)) + 2e-6f) << what << " element " << i;
    }
  }

  Model save(ModelBuilder& b) { return Model::load(b.save(path("m" + std::to_string(saved_++) + ".onnx"))); }

  std::mt19937 rng_{11};
  int saved_ = 0;
};

// ---- HardSwish -------------------------------------------------------------------------------

// How x * relu6(x + 3) / 6 is written.
enum class HardSwishForm { kPaddle, kTimesSixth, kSigmoidFirst, kSigmoidFirstByMul, kHardSigmoid };

// Writes hardswish(x) -> y; `three` lets a test write another constant. Opset 11+: Clip's bounds
// are inputs, written as Constant nodes as Paddle2ONNX does.
void hard_swish(GraphBuilder& b, HardSwishForm form, const std::string& x, const std::string& y, float three = 3) {
  if (form == HardSwishForm::kHardSigmoid) {
    auto& hs = b.node("HardSigmoid", {x}, {"hs"}, "hs");
    attr_float(hs, "alpha", 1.0f / 6);
    attr_float(hs, "beta", 0.5f);
    b.node("Mul", {x, "hs"}, {y}, "times_x");
    return;
  }
  for (const auto& [name, value] : {std::pair<const char*, float>{"lo", 0}, {"hi", 6}}) {
    auto& c = b.node("Constant", {}, {name}, std::string(name) + "_const");
    attr_tensor(c, "value", float_tensor(name, {}, {value}));
  }
  b.initializer(float_tensor("three", {}, {three}));
  b.initializer(float_tensor("six", {}, {6.0f}));
  b.initializer(float_tensor("sixth", {}, {1.0f / 6}));
  b.node("Add", {"three", x}, {"plus3"}, "plus3");
  b.node("Clip", {"plus3", "lo", "hi"}, {"relu6"}, "clip");
  switch (form) {
    case HardSwishForm::kPaddle:
      b.node("Mul", {x, "relu6"}, {"times"}, "times");
      b.node("Div", {"times", "six"}, {y}, "div");
      break;
    case HardSwishForm::kTimesSixth:
      b.node("Mul", {"relu6", x}, {"times"}, "times");
      b.node("Mul", {"sixth", "times"}, {y}, "sixth");
      break;
    case HardSwishForm::kSigmoidFirst:
      b.node("Div", {"relu6", "six"}, {"hsig"}, "div");
      b.node("Mul", {"hsig", x}, {y}, "times");
      break;
    case HardSwishForm::kSigmoidFirstByMul:
      b.node("Mul", {"relu6", "sixth"}, {"hsig"}, "sixth");
      b.node("Mul", {x, "hsig"}, {y}, "times");
      break;
    default:
      break;
  }
}

TEST_F(FuseSpelledOpsTest, EveryHardSwishSpellingBecomesOneNode) {
  const std::vector<std::pair<HardSwishForm, std::string>> forms = {
      {HardSwishForm::kPaddle, "Paddle"},
      {HardSwishForm::kTimesSixth, "times 1/6"},
      {HardSwishForm::kSigmoidFirst, "hard sigmoid first"},
      {HardSwishForm::kSigmoidFirstByMul, "hard sigmoid by 1/6 first"},
      {HardSwishForm::kHardSigmoid, "x * HardSigmoid(x)"}};
  for (const auto& [form, what] : forms) {
    ModelBuilder b(12);
    b.input("x", kF32, Dims{3, 50});
    hard_swish(b, form, "x", "y");
    b.output("y", kF32, Dims{3, 50});
    Model m = save(b);
    EXPECT_EQ(ops(session(m, 2)), std::vector<std::string>{"HardSwish"}) << what;
    expect_same_outputs(m, {3, 50}, 5, what);
  }
}

TEST_F(FuseSpelledOpsTest, AHardSigmoidSpelledOutWithoutTheProductBecomesHardSigmoid) {
  ModelBuilder b(12);
  b.input("x", kF32, Dims{4, 20});
  b.initializer(float_tensor("three", {}, {3.0f}));
  b.initializer(float_tensor("six", {}, {6.0f}));
  b.initializer(float_tensor("lo", {}, {0.0f}));
  b.initializer(float_tensor("hi", {}, {6.0f}));
  b.node("Add", {"x", "three"}, {"plus3"}, "plus3");
  b.node("Clip", {"plus3", "lo", "hi"}, {"relu6"}, "clip");
  b.node("Div", {"relu6", "six"}, {"y"}, "div");
  b.output("y", kF32, Dims{4, 20});
  Model m = save(b);
  EXPECT_EQ(ops(session(m, 2)), std::vector<std::string>{"HardSigmoid"});
  expect_same_outputs(m, {4, 20}, 5, "hard sigmoid");
}

TEST_F(FuseSpelledOpsTest, OtherConstantsOrSharedIntermediatesKeepTheNodes) {
  {
    ModelBuilder b(12);
    b.input("x", kF32, Dims{3, 50});
    hard_swish(b, HardSwishForm::kPaddle, "x", "y", 2.5f);
    b.output("y", kF32, Dims{3, 50});
    Model m = save(b);
    EXPECT_EQ(ops(session(m, 2)).size(), 4u);
    expect_same_outputs(m, {3, 50}, 5, "x + 2.5");
  }
  {
    ModelBuilder b(12);
    b.input("x", kF32, Dims{3, 50});
    hard_swish(b, HardSwishForm::kPaddle, "x", "y");
    b.output("y", kF32, Dims{3, 50});
    b.output("relu6", kF32, Dims{3, 50});  // the Clip's output is also returned
    Model m = save(b);
    EXPECT_EQ(ops(session(m, 2)).size(), 4u);
    expect_same_outputs(m, {3, 50}, 5, "relu6 returned");
  }
}

// Paddle's backbone: Conv + BatchNormalization + hardswish spelled out becomes one FusedConv (the
// HardSwish a post-op); at opset 10 Clip's bounds are attributes.
TEST_F(FuseSpelledOpsTest, AHardSwishAfterAConvFoldsIntoIt) {
  for (int64_t opset : {10, 12}) {
    ModelBuilder b(opset);
    b.input("x", kF32, Dims{1, 4, 9, 9});
    b.initializer(float_tensor("w", {8, 4, 3, 3}, random_values(8 * 4 * 9)));
    b.initializer(float_tensor("bias", {8}, random_values(8)));
    b.node("Conv", {"x", "w", "bias"}, {"c"}, "conv");
    b.initializer(float_tensor("three", {}, {3.0f}));
    b.initializer(float_tensor("six", {}, {6.0f}));
    b.node("Add", {"c", "three"}, {"plus3"}, "plus3");
    if (opset < 11) {
      auto& clip = b.node("Clip", {"plus3"}, {"relu6"}, "clip");
      attr_float(clip, "min", 0);
      attr_float(clip, "max", 6);
    } else {
      b.initializer(float_tensor("lo", {}, {0.0f}));
      b.initializer(float_tensor("hi", {}, {6.0f}));
      b.node("Clip", {"plus3", "lo", "hi"}, {"relu6"}, "clip");
    }
    b.node("Mul", {"c", "relu6"}, {"times"}, "times");
    b.node("Div", {"times", "six"}, {"y"}, "div");
    b.output("y", kF32, Dims{1, 8, 9, 9});
    Model m = save(b);
    std::vector<std::string> fused = ops(session(m, 2));
    std::erase(fused, "Transpose");  // channels_last's, at the graph's edges
    EXPECT_EQ(fused, std::vector<std::string>{"FusedConv"}) << "opset " << opset;
    expect_same_outputs(m, {1, 4, 9, 9}, 2, "opset " + std::to_string(opset));
  }
}

// ---- LayerNormalization ----------------------------------------------------------------------

struct LayerNormForm {
  std::string name;
  bool square_by_mul = false;  // Mul(d, d) instead of Pow(d, 2)
  bool with_bias = true;
  bool axes_as_rank = false;  // axes [2] instead of [-1]
  bool constants_first = false;
  float two = 2;
};

// Writes layer_norm(x [B, T, C]) -> y at opset 13 (ReduceMean's axes an attribute) or 18 (an input).
void layer_norm(GraphBuilder& b, const LayerNormForm& f, int64_t opset, int64_t channels, const std::vector<float>& scale,
                const std::vector<float>& bias) {
  b.initializer(float_tensor("two", {}, {f.two}));
  b.initializer(float_tensor("eps", {}, {1e-5f}));
  b.initializer(float_tensor("gamma", {channels}, scale));
  b.initializer(float_tensor("beta", {channels}, bias));
  const int64_t axis = f.axes_as_rank ? 2 : -1;
  auto mean = [&](const std::string& in, const std::string& out) {
    if (opset >= 18) {
      b.initializer(int64_tensor(out + "_axes", {1}, {axis}));
      b.node("ReduceMean", {in, out + "_axes"}, {out}, out);
    } else {
      attr_ints(b.node("ReduceMean", {in}, {out}, out), "axes", {axis});
    }
  };
  mean("x", "mean");
  b.node("Sub", {"x", "mean"}, {"d"}, "sub");
  if (f.square_by_mul) b.node("Mul", {"d", "d"}, {"sq"}, "square");
  else b.node("Pow", {"d", "two"}, {"sq"}, "square");
  mean("sq", "var");
  b.node("Add", f.constants_first ? std::vector<std::string>{"eps", "var"} : std::vector<std::string>{"var", "eps"},
         {"var_eps"}, "plus_eps");
  b.node("Sqrt", {"var_eps"}, {"std"}, "sqrt");
  b.node("Div", {"d", "std"}, {"n"}, "div");
  const std::string scaled = f.with_bias ? "scaled" : "y";
  b.node("Mul", f.constants_first ? std::vector<std::string>{"gamma", "n"} : std::vector<std::string>{"n", "gamma"},
         {scaled}, "times_gamma");
  if (f.with_bias)
    b.node("Add", f.constants_first ? std::vector<std::string>{"beta", "scaled"} : std::vector<std::string>{"scaled", "beta"},
           {"y"}, "plus_beta");
}

TEST_F(FuseSpelledOpsTest, EveryLayerNormSpellingBecomesOneNode) {
  const std::vector<LayerNormForm> forms = {{"torch", false, true, false, false},
                                            {"square by Mul", true, true, false, false},
                                            {"no bias", false, false, false, false},
                                            {"axes as rank - 1, constants first", false, true, true, true}};
  constexpr int64_t C = 24;
  for (int64_t opset : {13, 18})
    for (const LayerNormForm& f : forms) {
      const std::string what = f.name + " opset " + std::to_string(opset);
      ModelBuilder b(opset);
      b.input("x", kF32, Dims{2, 5, C});
      layer_norm(b, f, opset, C, random_values(C), random_values(C));
      b.output("y", kF32, Dims{2, 5, C});
      Model m = save(b);
      Session fused = session(m, 2);
      EXPECT_EQ(ops(fused), std::vector<std::string>{"LayerNormalization"}) << what;
      EXPECT_EQ(fused.stats().kernels.back().node, "sub+layernorm") << what;
      expect_same_outputs(m, {2, 5, C}, 3, what);
    }
}

// A value whose last dim shape inference cannot tell (Paddle2ONNX's models) is fused on the
// scale's size; a fourth power instead of a square, or the centred value read a third time, is not.
TEST_F(FuseSpelledOpsTest, LayerNormWithAnUnknownLastDimOrAnotherChainIsMatchedRightly) {
  constexpr int64_t C = 16;
  {
    ModelBuilder b(13);
    b.input("x", kF32, Dims{"batch", "?", "?"});
    layer_norm(b, {"unknown dims"}, 13, C, random_values(C), random_values(C));
    b.output("y", kF32, Dims{"batch", "?", "?"});
    Model m = save(b);
    EXPECT_EQ(ops(session(m, 2)), std::vector<std::string>{"LayerNormalization"});
    expect_same_outputs(m, {3, 4, C}, 3, "unknown dims");
  }
  {
    ModelBuilder b(13);
    b.input("x", kF32, Dims{2, 5, C});
    LayerNormForm fourth{"fourth power"};
    fourth.two = 4;
    layer_norm(b, fourth, 13, C, random_values(C), random_values(C));
    b.output("y", kF32, Dims{2, 5, C});
    Model m = save(b);
    EXPECT_EQ(ops(session(m, 2)).size(), 9u);
    expect_same_outputs(m, {2, 5, C}, 3, "fourth power");
  }
  {
    ModelBuilder b(13);
    b.input("x", kF32, Dims{2, 5, C});
    layer_norm(b, {"d returned"}, 13, C, random_values(C), random_values(C));
    b.output("y", kF32, Dims{2, 5, C});
    b.output("d", kF32, Dims{2, 5, C});
    Model m = save(b);
    EXPECT_EQ(ops(session(m, 2)).size(), 9u);
    expect_same_outputs(m, {2, 5, C}, 3, "d returned");
  }
}

// The fused node reads the scale as a Parameter: a write after the session is made is seen.
TEST_F(FuseSpelledOpsTest, AFusedLayerNormSeesItsScaleWritten) {
  constexpr int64_t C = 8;
  ModelBuilder b(13);
  b.input("x", kF32, Dims{2, 3, C});
  layer_norm(b, {"torch"}, 13, C, random_values(C), random_values(C));
  b.output("y", kF32, Dims{2, 3, C});
  Model m = save(b);
  Session fused = session(m, 2);
  const Tensor x = random_tensor({2, 3, C}, 2);
  Tensor before = fused.run({{"x", x}}).at("y").tensor();
  Tensor doubled = m.parameter("gamma").clone();
  for (int64_t i = 0; i < C; ++i) doubled.mutable_data_as<float>()[i] *= 2;
  m.load_state_dict({{"gamma", doubled}}, /*strict=*/false);
  Tensor after = fused.run({{"x", x}}).at("y").tensor();
  Tensor want = session(m, 0).run({{"x", x}}).at("y").tensor();
  bool changed = false;
  for (int64_t i = 0; i < after.numel(); ++i) {
    EXPECT_NEAR(after.data_as<float>()[i], want.data_as<float>()[i], 1e-5f) << i;
    changed = changed || after.data_as<float>()[i] != before.data_as<float>()[i];
  }
  EXPECT_TRUE(changed);
}

}  // namespace
