// The Conv fusion pass (runtime/core/passes/fuse_conv.cc) and the FusedConv kernels: at optimization
// level 2 Conv -> [BatchNormalization] -> [Add(residual)] -> [activation] (or the Add after the
// activation) runs as one com.tunnx:FusedConv node and gives level 0's outputs, for every activation
// of the shared table, SiLU spelled x * Sigmoid(x) included; the folded BatchNormalization follows
// its Parameters when they change; chains that cannot fuse are left alone.
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
constexpr int64_t kBatch = 2, kIn = 4, kOut = 6, kSize = 9;

bool have_onednn() {
  const tunnx::KernelDef* def = tunnx::KernelRegistry::global().find(
      "", "Conv", 11, tunnx::DeviceType::kCpu, {DataType::kFloat32, DataType::kFloat32}, nullptr);
  return def && def->name == "cpu/onednn/Conv";
}

// An activation as the graph spells it: appends its nodes reading `in` and writing `out`.
struct Act {
  std::string name;
  std::function<void(GraphBuilder&, const std::string& in, const std::string& out)> emit;
};

std::vector<Act> activations() {
  auto single = [](const char* op, std::function<void(GraphBuilder&, onnx::NodeProto&)> setup = nullptr) {
    return [op, setup](GraphBuilder& b, const std::string& in, const std::string& out) {
      auto& n = b.node(op, {in}, {out}, "act");
      if (setup) setup(b, n);
    };
  };
  auto clip = [](float lo, float hi) {
    return [lo, hi](GraphBuilder& b, const std::string& in, const std::string& out) {
      b.initializer(float_tensor("lo", {}, {lo}));
      b.initializer(float_tensor("hi", {}, {hi}));
      b.node("Clip", {in, "lo", "hi"}, {out}, "act");
    };
  };
  return {
      {"Relu", single("Relu")},
      {"LeakyRelu", single("LeakyRelu", [](GraphBuilder&, onnx::NodeProto& n) { attr_float(n, "alpha", 0.1f); })},
      {"Clip(0,6)", clip(0.0f, 6.0f)},
      {"Clip(lo>hi)", clip(0.5f, -0.25f)},  // oneDNN's clip differs here: the reference kernel runs
      {"Sigmoid", single("Sigmoid")},
      {"Tanh", single("Tanh")},
      {"HardSigmoid", single("HardSigmoid", [](GraphBuilder&, onnx::NodeProto& n) {
         attr_float(n, "alpha", 0.3f);
         attr_float(n, "beta", 0.4f);
       })},
      {"HardSwish", single("HardSwish")},
      {"SiLU", [](GraphBuilder& b, const std::string& in, const std::string& out) {
         b.node("Sigmoid", {in}, {"sig"}, "sigmoid");
         b.node("Mul", {"sig", in}, {out}, "mul");
       }},
  };
}

struct Chain {
  bool bn = true, residual = false, residual_after = false, symbolic_batch = false;
  // y * s + t around the activation (Paddle's learnable affine blocks), s and t [1] initializers.
  bool affine_before = false, affine_after = false;
  int64_t group = 1;
  int64_t in = kIn, out = kOut, size = kSize, batch = kBatch;  // channels, image side, batch
};

class FuseConvTest : public TempDirTest {
 protected:
  // Opset 17: the newest that Debian's ONNX shape inference knows, which proves the residual's shape
  // (GELU, an opset-20 op, fuses through the same table: fuse_linear_test.cc runs it).
  Model chain(const Chain& c, const Act* act) {
    ModelBuilder b(17);
    const DimSpec batch = c.symbolic_batch ? DimSpec("N") : DimSpec(c.batch);
    b.input("x", kF32, Dims{batch, c.in, c.size, c.size});
    b.initializer(float_tensor("w", {c.out, c.in / c.group, 3, 3}, uniform(static_cast<size_t>(c.out * c.in / c.group * 9), rng_)));
    b.initializer(float_tensor("b", {c.out}, uniform(static_cast<size_t>(c.out), rng_)));
    auto& conv = b.node("Conv", {"x", "w", "b"}, {"c"}, "conv");
    attr_ints(conv, "pads", {1, 1, 1, 1});
    attr_int(conv, "group", c.group);
    std::string v = "c";
    if (c.bn) {
      b.initializer(float_tensor("scale", {c.out}, uniform(static_cast<size_t>(c.out), rng_, 0.5f, 1.5f)));
      b.initializer(float_tensor("shift", {c.out}, uniform(static_cast<size_t>(c.out), rng_)));
      b.initializer(float_tensor("mean", {c.out}, uniform(static_cast<size_t>(c.out), rng_)));
      b.initializer(float_tensor("var", {c.out}, uniform(static_cast<size_t>(c.out), rng_, 0.2f, 2.0f)));
      auto& bn = b.node("BatchNormalization", {v, "scale", "shift", "mean", "var"}, {"n"}, "bn");
      attr_float(bn, "epsilon", 1e-3f);
      v = "n";
    }
    if (c.residual) b.input("z", kF32, Dims{batch, c.out, c.size, c.size});
    if (c.residual && !c.residual_after) {
      b.node("Add", {v, "z"}, {"s"}, "add");
      v = "s";
    }
    auto affine = [&](const std::string& tag) {
      b.initializer(float_tensor("s_" + tag, {1}, uniform(1, rng_, 0.5f, 2.0f)));
      b.initializer(float_tensor("t_" + tag, {1}, uniform(1, rng_)));
      b.node("Mul", {"s_" + tag, v}, {"scaled_" + tag}, "mul_" + tag);
      b.node("Add", {"scaled_" + tag, "t_" + tag}, {"shifted_" + tag}, "add_" + tag);
      v = "shifted_" + tag;
    };
    if (c.affine_before) affine("before");
    if (act) {
      act->emit(b, v, "a");
      v = "a";
    }
    if (c.affine_after) affine("after");
    if (c.residual && c.residual_after) {
      b.node("Add", {"z", v}, {"s"}, "add");
      v = "s";
    }
    b.node("Identity", {v}, {"y"}, "out");
    b.output("y", kF32, Dims{batch, c.out, c.size, c.size});
    return Model::load(b.save(path("m" + std::to_string(saved_++) + ".onnx")));
  }

  static Session session(const Model& model, int level) {
    SessionOptions options;
    options.optimization_level = level;
    return Session(model, options);
  }

  Tensor random_tensor(const std::vector<int64_t>& dims) {
    Tensor t(DataType::kFloat32, dims);
    const std::vector<float> v = uniform(static_cast<size_t>(t.numel()), rng_);
    std::copy(v.begin(), v.end(), t.mutable_data_as<float>());
    return t;
  }

  tunnx::NamedValues inputs(const Chain& c) {
    tunnx::NamedValues in = {{"x", random_tensor({c.batch, c.in, c.size, c.size})}};
    if (c.residual) in.emplace("z", random_tensor({c.batch, c.out, c.size, c.size}));
    return in;
  }

  static void expect_near(const Tensor& got, const Tensor& want, const std::string& what) {
    tunnx_test::expect_near(got, want, what, 2e-5f, 2e-6f);
  }

  // Within `tolerance` of want's largest magnitude: sums of hundreds of products (64 channels x 3 x 3,
  // or Winograd's transformed form) round differently in each order.
  static void expect_near_scaled(const Tensor& got, const Tensor& want, const std::string& what,
                                 float tolerance = 2e-5f) {
    ASSERT_EQ(got.dims(), want.dims()) << what;
    float scale = 0;
    for (int64_t i = 0; i < want.numel(); ++i) scale = std::fmax(scale, std::fabs(want.data_as<float>()[i]));
    for (int64_t i = 0; i < got.numel(); ++i)
      ASSERT_LE(std::fabs(got.data_as<float>()[i] - want.data_as<float>()[i]), tolerance * scale) << what << " element " << i;
  }

  // The op types a session runs, without the Transposes that the channels_last pass puts at the edges
  // of channels-last regions (channels_last_test.cc checks those).
  static std::vector<std::string> op_types(const Session& s) {
    std::vector<std::string> out;
    for (const auto& k : s.stats().kernels)
      if (k.op_type != "Transpose") out.push_back(k.op_type);
    return out;
  }

  // What a Conv with nothing fused runs as: itself, or a FusedConv reading channels-last values where
  // the channels_last pass runs (with oneDNN).
  static std::string plain_conv() { return have_onednn() ? "FusedConv" : "Conv"; }

  static std::string fused_conv_kernel(const Session& s) {
    for (const auto& k : s.stats().kernels)
      if (k.op_type == "FusedConv") return k.kernel;
    return "";
  }

  std::mt19937 rng_{7};
  int saved_ = 0;
};

TEST_F(FuseConvTest, EveryChainAndActivationFusesAndMatchesLevelZero) {
  const std::vector<Chain> chains = {
      {.bn = true},
      {.bn = false},
      {.bn = true, .residual = true},
      {.bn = true, .residual = true, .residual_after = true},
      {.bn = false, .residual = true, .symbolic_batch = true},
      {.bn = true, .group = 2},
  };
  for (const Chain& c : chains)
    for (const Act& act : activations()) {
      const std::string what = std::string(c.bn ? "BN " : "") + (c.residual ? (c.residual_after ? "act+Z " : "Z+act ") : "") +
                               "group " + std::to_string(c.group) + (c.symbolic_batch ? " batch N " : " ") + act.name;
      Model model = chain(c, &act);
      Session fused = session(model, 2), plain = session(model, 0);
      EXPECT_EQ(op_types(fused), (std::vector<std::string>{"FusedConv", "Identity"})) << what;
      const tunnx::NamedValues in = inputs(c);
      for (int run = 0; run < 2; ++run)  // the second run reads the folded, packed copy
        expect_near(fused.run(in).at("y").tensor(), plain.run(in).at("y").tensor(), what);
      // The registered kernel (with Clip lo > hi the oneDNN one hands every run to the reference).
      EXPECT_EQ(fused_conv_kernel(fused), have_onednn() ? "cpu/onednn/FusedConv" : "cpu/reference/FusedConv") << what;
    }
  // Batch-norm alone, with nothing after it.
  Model bn_only = chain({.bn = true}, nullptr);
  Session fused = session(bn_only, 2), plain = session(bn_only, 0);
  EXPECT_EQ(op_types(fused), (std::vector<std::string>{"FusedConv", "Identity"}));
  const tunnx::NamedValues in = inputs(Chain{});
  expect_near(fused.run(in).at("y").tensor(), plain.run(in).at("y").tensor(), "BN only");
}

// Chains the oneDNN kernel runs on Winograd's algorithm where the machine has it (3x3, stride 1, 16+
// channels, 28x28+ outputs; runtime/cpu/onednn/conv.cc), with each activation as a post-op or, where
// the Winograd kernel takes none (SiLU, HardSwish, ...), run after it; also a residual after the
// activation (the direct form then). Winograd's transforms round differently from the direct sum: the
// outputs agree with level 0 to 2e-5 of their largest magnitude, as measured (~1e-6) with a margin.
// Paddle2ONNX's blocks: conv -> BN -> Mul/Add of scalars -> activation -> Mul/Add of scalars, each
// affine map read as an input of the fused node; with residuals before and after, and a Winograd-sized
// chain (the activation then may run as eltwise primitives after the product).
TEST_F(FuseConvTest, AffineMapsAroundTheActivationFuse) {
  const std::vector<Act> acts = activations();
  for (const Chain& c : {Chain{.affine_before = true}, Chain{.affine_after = true},
                         Chain{.affine_before = true, .affine_after = true},
                         Chain{.residual = true, .affine_before = true, .affine_after = true},
                         Chain{.residual = true, .residual_after = true, .affine_before = true, .affine_after = true},
                         Chain{.affine_before = true, .affine_after = true, .in = 64, .out = 64, .size = 32, .batch = 1}})
    for (const Act& act : {acts[0], acts[2], acts[7]}) {
      const std::string what = act.name + " before " + std::to_string(c.affine_before) + " after " +
                               std::to_string(c.affine_after) + " residual " + std::to_string(c.residual) +
                               (c.residual_after ? " after" : "") + " channels " + std::to_string(c.in);
      Model model = chain(c, &act);
      Session fused = session(model, 2);
      EXPECT_EQ(op_types(fused), (std::vector<std::string>{"FusedConv", "Identity"})) << what;
      const tunnx::NamedValues in = inputs(c);
      expect_near_scaled(fused.run(in).at("y").tensor(), session(model, 0).run(in).at("y").tensor(), what);
    }
  // Without an activation only the map before it is taken: the second Mul/Add stay as they are.
  Model model = chain(Chain{.affine_before = true, .affine_after = true}, nullptr);
  Session fused = session(model, 2);
  EXPECT_EQ(op_types(fused), (std::vector<std::string>{"FusedConv", "Mul", "Add", "Identity"}));
  const tunnx::NamedValues in = inputs(Chain{});
  expect_near(fused.run(in).at("y").tensor(), session(model, 0).run(in).at("y").tensor(), "no activation");
}

// The scalars are Parameters: a write after the session is made is seen by the next run.
TEST_F(FuseConvTest, FusedAffineMapsFollowTheirParameters) {
  const std::vector<Act> acts = activations();
  const Chain c{.affine_before = true, .affine_after = true};
  Model model = chain(c, &acts[7]);
  Session fused = session(model, 2);
  const tunnx::NamedValues in = inputs(c);
  const Tensor before = fused.run(in).at("y").tensor().clone();
  model.load_state_dict({{"s_before", Tensor::from_vector<float>({1}, {-1.5f})},
                         {"t_after", Tensor::from_vector<float>({1}, {3.0f})}}, /*strict=*/false);
  const Tensor after = fused.run(in).at("y").tensor();
  expect_near(after, session(model, 0).run(in).at("y").tensor(), "after load_state_dict");
  EXPECT_NE(after.data_as<float>()[0], before.data_as<float>()[0]);
}

TEST_F(FuseConvTest, WinogradSizedChainsMatchLevelZero) {
  const std::vector<Chain> chains = {
      {.bn = true, .in = 16, .out = 24, .size = 30, .batch = 1},
      {.bn = true, .residual = true, .in = 32, .out = 16, .size = 28, .batch = 1},
      {.bn = false, .residual = true, .residual_after = true, .in = 16, .out = 16, .size = 29, .batch = 1},
      // F(2x2, 3x3) on its small-image weight layout (wino_wei_aaOio), whole and padded channel blocks
      // (channel pairs whose F(4x4) weights, 144 bytes a pair, exceed a 2 MiB L2).
      {.bn = true, .residual = true, .in = 160, .out = 128, .size = 14, .batch = 1},
      {.bn = false, .in = 136, .out = 120, .size = 15, .batch = 2},
  };
  for (const Chain& c : chains)
    for (const Act& act : activations()) {
      const std::string what = std::to_string(c.in) + "->" + std::to_string(c.out) + " at " + std::to_string(c.size) +
                               (c.residual ? (c.residual_after ? " act+Z " : " Z+act ") : " ") + act.name;
      Model model = chain(c, &act);
      Session fused = session(model, 2), plain = session(model, 0);
      const tunnx::NamedValues in = inputs(c);
      // Winograd's F(4x4, 3x3) rounds more than a direct sum (up to 3.5e-5 of the scale seen here):
      // its transforms' constants are larger than F(2x2, 3x3)'s.
      for (int run = 0; run < 2; ++run)
        expect_near_scaled(fused.run(in).at("y").tensor(), plain.run(in).at("y").tensor(), what, 1e-4f);
    }
}

// Two Winograd-sized 3x3 convolutions in a row, as ResNet's basic block: conv -> BN -> Relu -> conv
// -> BN -> + x -> Relu, then a third that reads the block's output. On AVX-512 the first hands the
// second its output in oneDNN's nChw16c (runtime/core/passes/channel_blocks.h: x_channel_block and
// y_channel_block), with no reorder between them; the second's output, read by the third and as a
// graph output, stays channels-last. Level 2 matches level 0 at batch 1 and 2 (and a symbolic batch),
// at 1 and 2 threads, on F(4x4) and F(2x2) sizes.
TEST_F(FuseConvTest, ConvolutionsHandingChannelBlocksMatchLevelZero) {
  for (const bool symbolic : {false, true})
    for (const int64_t channels : {32, 160}) {
      const int64_t side = channels == 32 ? 28 : 14, batch = symbolic ? 2 : 1;
      ModelBuilder b(17);
      const DimSpec n = symbolic ? DimSpec("N") : DimSpec(batch);
      b.input("x", kF32, Dims{n, channels, side, side});
      std::string v = "x";
      for (int layer = 0; layer < 3; ++layer) {
        const std::string id = std::to_string(layer);
        b.initializer(float_tensor("w" + id, {channels, channels, 3, 3},
                                   uniform(static_cast<size_t>(channels * channels * 9), rng_, -0.1f, 0.1f)));
        b.initializer(float_tensor("b" + id, {channels}, uniform(static_cast<size_t>(channels), rng_)));
        auto& conv = b.node("Conv", {v, "w" + id, "b" + id}, {"c" + id}, "conv" + id);
        attr_ints(conv, "pads", {1, 1, 1, 1});
        b.initializer(float_tensor("s" + id, {channels}, uniform(static_cast<size_t>(channels), rng_, 0.5f, 1.5f)));
        b.initializer(float_tensor("t" + id, {channels}, uniform(static_cast<size_t>(channels), rng_)));
        b.initializer(float_tensor("m" + id, {channels}, uniform(static_cast<size_t>(channels), rng_)));
        b.initializer(float_tensor("v" + id, {channels}, uniform(static_cast<size_t>(channels), rng_, 0.2f, 2.0f)));
        b.node("BatchNormalization", {"c" + id, "s" + id, "t" + id, "m" + id, "v" + id}, {"n" + id}, "bn" + id);
        v = "n" + id;
        if (layer == 1) {
          b.node("Add", {v, "x"}, {"sum"}, "add");
          v = "sum";
        }
        b.node("Relu", {v}, {"r" + id}, "relu" + id);
        v = "r" + id;
      }
      b.output("r1", kF32, Dims{n, channels, side, side});
      b.output("r2", kF32, Dims{n, channels, side, side});
      Model model = Model::load(b.save(path("m" + std::to_string(saved_++) + ".onnx")));
      const tunnx::NamedValues in = {{"x", random_tensor({batch, channels, side, side})}};
      for (const int threads : {1, 2}) {
        SessionOptions options;
        options.threads = threads;
        options.optimization_level = 2;
        Session fused(model, options);
        options.optimization_level = 0;
        Session plain(model, options);
        const std::string what = std::to_string(channels) + " channels at " + std::to_string(side) + ", batch " +
                                 (symbolic ? "N" : "1") + ", " + std::to_string(threads) + " threads";
        for (int run = 0; run < 2; ++run) {
          auto got = fused.run(in), want = plain.run(in);
          expect_near_scaled(got.at("r1").tensor(), want.at("r1").tensor(), what + ": r1", 1e-4f);
          expect_near_scaled(got.at("r2").tensor(), want.at("r2").tensor(), what + ": r2", 1e-4f);
        }
      }
    }
}

// GELU (as torch exports it, Erf and constants) after a direct convolution: oneDNN's brgconv builds
// several times faster without the post-op, so the FusedConv runs it as its own primitive in place
// on the output (conv.cc, gelu_costs_more_to_build). Level 2 matches level 0, with and without a
// folded BatchNormalization and a residual, at 1 and 2 threads.
TEST_F(FuseConvTest, GeluAfterADirectConvolutionMatchesLevelZero) {
  const Act gelu = {"GELU", [](GraphBuilder& b, const std::string& in, const std::string& out) {
                      b.initializer(float_tensor("sqrt2", {}, {1.41421356f}));
                      b.initializer(float_tensor("one", {}, {1.0f}));
                      b.initializer(float_tensor("half", {}, {0.5f}));
                      b.node("Div", {in, "sqrt2"}, {"g_div"}, "g_div");
                      b.node("Erf", {"g_div"}, {"g_erf"}, "g_erf");
                      b.node("Add", {"g_erf", "one"}, {"g_add"}, "g_add");
                      b.node("Mul", {in, "g_add"}, {"g_mul"}, "g_mul");
                      b.node("Mul", {"g_mul", "half"}, {out}, "g_half");
                    }};
  const std::vector<Chain> chains = {
      {.bn = false, .in = 16, .out = 24, .size = 12, .batch = 1},  // below Winograd's 14x14
      {.bn = true, .residual = true, .in = 8, .out = 32, .size = 13, .batch = 2},
  };
  for (const Chain& c : chains) {
    Model model = chain(c, &gelu);
    for (int threads : {1, 2}) {
      SessionOptions fused_options, plain_options;
      fused_options.threads = plain_options.threads = threads;
      fused_options.adaptive_threads = plain_options.adaptive_threads = false;
      plain_options.optimization_level = 0;
      Session fused(model, fused_options), plain(model, plain_options);
      const tunnx::NamedValues in = inputs(c);
      const std::string what = std::to_string(c.in) + "->" + std::to_string(c.out) + " GELU, " +
                               std::to_string(threads) + " threads";
      for (int run = 0; run < 2; ++run) expect_near_scaled(fused.run(in).at("y").tensor(), plain.run(in).at("y").tensor(), what);
      if (have_onednn()) {
        EXPECT_EQ(fused_conv_kernel(fused), "cpu/onednn/FusedConv") << what;
        const std::vector<std::string> ops = op_types(fused);
        EXPECT_EQ(std::count(ops.begin(), ops.end(), "Erf"), 0) << what << ": the GELU is inside the FusedConv";
      }
    }
  }
}

// A squeeze-excite block's pointwise convolutions on a 1x1 image (and a channels-last 1x1 convolution
// of a few rows) run as a product on packed panels, no oneDNN primitive built (conv.cc,
// run_on_panels); from 17 rows on, oneDNN's kernels. One session of symbolic batch meets both, at 1
// and 2 threads, and matches level 0; with release_packed_originals too.
TEST_F(FuseConvTest, PointwiseConvolutionsOfAFewRowsMatchLevelZero) {
  ModelBuilder b(17);
  b.input("x", kF32, Dims{"N", 24, 1, 1});
  b.initializer(float_tensor("w1", {6, 24, 1, 1}, uniform(6 * 24, rng_)));
  b.initializer(float_tensor("b1", {6}, uniform(6, rng_)));
  b.node("Conv", {"x", "w1", "b1"}, {"c1"}, "fc1");
  b.node("Relu", {"c1"}, {"r1"}, "relu");
  b.initializer(float_tensor("w2", {24, 6, 1, 1}, uniform(24 * 6, rng_)));
  b.initializer(float_tensor("b2", {24}, uniform(24, rng_)));
  b.node("Conv", {"r1", "w2", "b2"}, {"c2"}, "fc2");
  auto& hs = b.node("HardSigmoid", {"c2"}, {"s"}, "gate");
  attr_float(hs, "alpha", 0.2f);
  b.node("Mul", {"x", "s"}, {"y"}, "scale");
  b.output("y", kF32, Dims{"N", 24, 1, 1});
  Model model = Model::load(b.save(path("se.onnx")));
  for (bool release : {false, true}) {
    for (int threads : {1, 2}) {
      SessionOptions fused_options, plain_options;
      fused_options.threads = plain_options.threads = threads;
      fused_options.adaptive_threads = plain_options.adaptive_threads = false;
      fused_options.release_packed_originals = release;
      fused_options.expected_dims = {{"N", 6}};
      plain_options.optimization_level = 0;
      Session fused(model, fused_options), plain(model, plain_options);
      for (int64_t batch : {6, 1, 16, 17, 40, 3}) {
        const tunnx::NamedValues in = {{"x", random_tensor({batch, 24, 1, 1})}};
        const std::string what = "batch " + std::to_string(batch) + ", " + std::to_string(threads) + " threads" +
                                 (release ? ", released" : "");
        expect_near(fused.run(in).at("y").tensor(), plain.run(in).at("y").tensor(), what);
      }
      if (have_onednn()) {
        EXPECT_EQ(fused_conv_kernel(fused), "cpu/onednn/FusedConv");
      }
    }
  }
}

// The folded weights are remade when a Parameter or running statistic they came from changes.
TEST_F(FuseConvTest, FoldedBatchNormFollowsItsParameters) {
  const std::vector<Act> acts = activations();
  Model model = chain({.bn = true}, &acts[0]);
  Session fused = session(model, 2), plain = session(model, 0);
  const tunnx::NamedValues in = inputs(Chain{});
  const Tensor before = fused.run(in).at("y").tensor().clone();
  tunnx::StateDict changed;
  for (const char* name : {"scale", "var", "w"}) {
    Tensor t = model.parameter(name).clone();
    for (int64_t i = 0; i < t.numel(); ++i) t.mutable_data_as<float>()[i] *= 1.5f;
    changed.emplace_back(name, t);
  }
  model.load_state_dict(changed, /*strict=*/false);
  const Tensor after = fused.run(in).at("y").tensor();
  EXPECT_FALSE(after.equals(before));
  expect_near(after, plain.run(in).at("y").tensor(), "after load_state_dict");
}

// A value with a second reader or that the graph returns stays; a BatchNormalization in training
// form or with statistics the graph computes is not folded.
TEST_F(FuseConvTest, ChainsThatCannotFuseStay) {
  const std::string conv = plain_conv();
  {  // the Conv's output is also a graph output
    ModelBuilder b(17);
    b.input("x", kF32, Dims{1, kIn, kSize, kSize});
    b.initializer(float_tensor("w", {kOut, kIn, 1, 1}, uniform(kOut * kIn, rng_)));
    b.node("Conv", {"x", "w"}, {"c"}, "conv");
    b.node("Relu", {"c"}, {"y"}, "relu");
    b.output("y", kF32, Dims{1, kOut, kSize, kSize});
    b.output("c", kF32, Dims{1, kOut, kSize, kSize});
    Session s = session(Model::load(b.save(path("out.onnx"))), 2);
    EXPECT_EQ(op_types(s), (std::vector<std::string>{conv, "Relu"}));
  }
  {  // BatchNormalization's mean is a graph input: not foldable; the Relu after it is not the Conv's
    ModelBuilder b(17);
    b.input("x", kF32, Dims{1, kIn, kSize, kSize});
    b.input("mean", kF32, Dims{kOut});
    b.initializer(float_tensor("w", {kOut, kIn, 1, 1}, uniform(kOut * kIn, rng_)));
    for (const char* n : {"scale", "shift", "var"}) b.initializer(float_tensor(n, {kOut}, uniform(kOut, rng_, 0.5f, 1.0f)));
    b.node("Conv", {"x", "w"}, {"c"}, "conv");
    b.node("BatchNormalization", {"c", "scale", "shift", "mean", "var"}, {"n"}, "bn");
    b.node("Relu", {"n"}, {"y"}, "relu");
    b.output("y", kF32, Dims{1, kOut, kSize, kSize});
    Session s = session(Model::load(b.save(path("bn.onnx"))), 2);
    EXPECT_EQ(op_types(s), (std::vector<std::string>{conv, "BatchNormalization", "Relu"}));
  }
  {  // an Add whose other operand broadcasts (a [C,1,1] bias) is not a residual
    ModelBuilder b(17);
    b.input("x", kF32, Dims{1, kIn, kSize, kSize});
    b.initializer(float_tensor("w", {kOut, kIn, 1, 1}, uniform(kOut * kIn, rng_)));
    b.initializer(float_tensor("bias", {kOut, 1, 1}, uniform(kOut, rng_)));
    b.node("Conv", {"x", "w"}, {"c"}, "conv");
    b.node("Add", {"c", "bias"}, {"y"}, "add");
    b.output("y", kF32, Dims{1, kOut, kSize, kSize});
    Session s = session(Model::load(b.save(path("bias.onnx"))), 2);
    EXPECT_EQ(op_types(s), (std::vector<std::string>{conv, "Add"}));
  }
}

// Two convolution branches meeting in one Add (a ResNet block with a projection): the Add joins one
// chain only, and the graph still computes level 0's result.
TEST_F(FuseConvTest, AnAddOfTwoConvolutionsJoinsOneChain) {
  ModelBuilder b(17);
  b.input("x", kF32, Dims{1, kIn, kSize, kSize});
  b.initializer(float_tensor("w1", {kOut, kIn, 3, 3}, uniform(kOut * kIn * 9, rng_)));
  b.initializer(float_tensor("w2", {kOut, kIn, 1, 1}, uniform(kOut * kIn, rng_)));
  auto& c1 = b.node("Conv", {"x", "w1"}, {"c1"}, "conv1");
  attr_ints(c1, "pads", {1, 1, 1, 1});
  b.node("Conv", {"x", "w2"}, {"c2"}, "conv2");
  b.node("Add", {"c1", "c2"}, {"s"}, "add");
  b.node("Relu", {"s"}, {"y"}, "relu");
  b.output("y", kF32, Dims{1, kOut, kSize, kSize});
  Model model = Model::load(b.save(path("two.onnx")));
  Session fused = session(model, 2), plain = session(model, 0);
  EXPECT_EQ(op_types(fused), (std::vector<std::string>{plain_conv(), "FusedConv"}));
  const tunnx::NamedValues in = {{"x", random_tensor({1, kIn, kSize, kSize})}};
  expect_near(fused.run(in).at("y").tensor(), plain.run(in).at("y").tensor(), "two branches");
}

// If/Loop/Scan bodies get the Conv fusion too (a PyTorch export of silero-vad runs its network inside
// an If): a Conv + Relu whose weight is a Constant node of the body, and a Conv + BatchNormalization +
// Sigmoid reading the main graph's initializers, each run as one FusedConv and give level 0's outputs
// on both branches.
TEST_F(FuseConvTest, ChainsInsideIfBodiesFuse) {
  ModelBuilder b(17);
  const Dims y_dims{1, kOut, kSize, kSize};
  b.input("x", kF32, Dims{1, kIn, kSize, kSize});
  b.input("cond", onnx_type_of<bool>(), Dims{});
  b.initializer(float_tensor("w_else", {kOut, kIn, 3, 3}, uniform(kOut * kIn * 9, rng_)));
  for (const char* n : {"scale", "shift", "mean"}) b.initializer(float_tensor(n, {kOut}, uniform(kOut, rng_)));
  b.initializer(float_tensor("var", {kOut}, uniform(kOut, rng_, 0.5f, 1.5f)));
  auto& branch = b.node("If", {"cond"}, {"y"}, "if");
  GraphBuilder then_body(attr_graph(branch, "then_branch", "then"));
  attr_tensor(then_body.node("Constant", {}, {"w_then"}, "weight"), "value",
              float_tensor("w_then", {kOut, kIn, 3, 3}, uniform(kOut * kIn * 9, rng_)));
  attr_ints(then_body.node("Conv", {"x", "w_then"}, {"c_then"}, "conv_then"), "pads", {1, 1, 1, 1});
  then_body.node("Relu", {"c_then"}, {"y_then"}, "relu");
  then_body.output("y_then", kF32, y_dims);
  GraphBuilder else_body(attr_graph(branch, "else_branch", "else"));
  attr_ints(else_body.node("Conv", {"x", "w_else"}, {"c_else"}, "conv_else"), "pads", {1, 1, 1, 1});
  else_body.node("BatchNormalization", {"c_else", "scale", "shift", "mean", "var"}, {"n_else"}, "bn");
  else_body.node("Sigmoid", {"n_else"}, {"y_else"}, "sigmoid");
  else_body.output("y_else", kF32, y_dims);
  b.output("y", kF32, y_dims);
  const Model model = Model::load(b.save(path("if.onnx")));

  Session fused = session(model, 2), plain = session(model, 0);
  std::vector<std::string> body_ops;
  for (const auto& k : fused.stats().kernels)
    if (k.depth > 0 && k.op_type != "Constant") body_ops.push_back(k.op_type);
  EXPECT_EQ(body_ops, (std::vector<std::string>{"FusedConv", "FusedConv"}));
  const Tensor x = random_tensor({1, kIn, kSize, kSize});
  for (bool cond : {true, false}) {
    const tunnx::NamedValues in = {{"x", x}, {"cond", Tensor::from_vector<bool>({}, {cond})}};
    expect_near(fused.run(in).at("y").tensor(), plain.run(in).at("y").tensor(), cond ? "then" : "else");
  }
}

}  // namespace
