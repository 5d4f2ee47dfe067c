// The squeeze-excite fusion (runtime/core/passes/fuse_squeeze_excite.cc) and its kernel: at
// optimization level 2 a block mean -> 1x1 convolutions with their activations -> Mul(X, gate), as
// torchvision's MobileNetV3 and Paddle's PP-LCNet export it, runs as one com.tunnx:SqueezeExcite node
// and gives level 0's outputs, on one and two threads, for small blocks and ones large enough to split
// among threads; written weights are seen; blocks it cannot take stay as they are; and the kernel's
// channels-first form (what a build without oneDNN fuses) matches the ONNX spelling.
#include <algorithm>
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

Dims dims_of(const std::vector<int64_t>& d) { return Dims(d.begin(), d.end()); }

struct Block {
  int64_t batch = 1, channels = 24, squeezed = 8, size = 6;  // X [batch, channels, size, size]
  std::string gate = "HardSigmoid", inner = "Relu";         // the activations ("" for none)
  bool paddle = false;       // biases as Add(conv, Reshape(b, [1, C, 1, 1])), not the Conv's third input
  bool reduce_mean = false;  // ReduceMean over [2, 3] (axes as an input, opset 18), not GlobalAveragePool
  bool gate_first = false;   // Mul(gate, X), not Mul(X, gate)
  bool one_dimensional = false;  // X [batch, channels, size], Conv1d
  int opset = 17;
};

class FuseSqueezeExciteTest : public TempDirTest {
 protected:
  std::vector<float> uniform(size_t n, float lo = -1.0f, float hi = 1.0f) { return tunnx_test::uniform(n, rng_, lo, hi); }

  std::vector<int64_t> image(const Block& b, int64_t channels) const {
    if (b.one_dimensional) return {b.batch, channels, b.size};
    return {b.batch, channels, b.size, b.size};
  }

  // A convolution, then the block on its output (so that its values are channels-last where oneDNN
  // runs), then an Identity to the output y. `tweak` edits the graph before it is saved.
  Model model(const Block& b, const std::function<void(ModelBuilder&)>& tweak = nullptr) {
    ModelBuilder m(b.opset);
    const int64_t k = 3, spatial = b.one_dimensional ? 1 : 2;
    std::vector<int64_t> unit(static_cast<size_t>(spatial), 1), kernel(static_cast<size_t>(spatial), k);
    auto with = [](std::vector<int64_t> head, const std::vector<int64_t>& tail) {
      head.insert(head.end(), tail.begin(), tail.end());
      return head;
    };
    m.input("x", kF32, dims_of(image(b, 3)));
    m.initializer(float_tensor("stem.w", with({b.channels, 3}, kernel), uniform(static_cast<size_t>(b.channels * 3 * (spatial == 1 ? k : k * k)))));
    auto& stem = m.node("Conv", {"x", "stem.w"}, {"f"}, "stem");
    attr_ints(stem, "pads", std::vector<int64_t>(static_cast<size_t>(2 * spatial), 1));
    if (b.reduce_mean) {
      std::vector<int64_t> axes = {2};
      if (!b.one_dimensional) axes.push_back(3);
      m.initializer(int64_tensor("axes", {static_cast<int64_t>(axes.size())}, axes));
      m.node("ReduceMean", {"f", "axes"}, {"m"}, "pool");
    } else {
      m.node("GlobalAveragePool", {"f"}, {"m"}, "pool");
    }
    std::string v = "m";
    auto layer = [&](const std::string& name, int64_t in, int64_t out, const std::string& act) {
      m.initializer(float_tensor(name + ".w", with({out, in}, unit), uniform(static_cast<size_t>(out * in))));
      m.initializer(float_tensor(name + ".b", {out}, uniform(static_cast<size_t>(out))));
      if (b.paddle) {
        m.node("Conv", {v, name + ".w"}, {name + ".c"}, name);
        const std::vector<int64_t> shape = b.one_dimensional ? std::vector<int64_t>{1, -1, 1} : std::vector<int64_t>{1, -1, 1, 1};
        m.initializer(int64_tensor(name + ".shape", {static_cast<int64_t>(shape.size())}, shape));
        m.node("Reshape", {name + ".b", name + ".shape"}, {name + ".b4"}, name + ".reshape");
        m.node("Add", {name + ".c", name + ".b4"}, {name + ".y"}, name + ".add");
      } else {
        m.node("Conv", {v, name + ".w", name + ".b"}, {name + ".y"}, name);
      }
      v = name + ".y";
      if (act == "SiLU") {
        m.node("Sigmoid", {v}, {name + ".s"}, name + ".sigmoid");
        m.node("Mul", {v, name + ".s"}, {name + ".a"}, name + ".silu");
        v = name + ".a";
      } else if (!act.empty()) {
        auto& a = m.node(act, {v}, {name + ".a"}, name + ".act");
        if (act == "HardSigmoid") {
          attr_float(a, "alpha", 0.2f);  // Paddle's slope; torch writes 1/6
          attr_float(a, "beta", 0.5f);
        }
        v = name + ".a";
      }
    };
    layer("fc1", b.channels, b.squeezed, b.inner);
    layer("fc2", b.squeezed, b.channels, b.gate);
    if (b.gate_first) m.node("Mul", {v, "f"}, {"s"}, "scale");
    else m.node("Mul", {"f", v}, {"s"}, "scale");
    m.node("Identity", {"s"}, {"y"}, "out");
    const std::vector<int64_t> out = image(b, b.channels);
    m.output("y", kF32, dims_of(out));
    if (tweak) tweak(m);
    return Model::load(m.save(path("se" + std::to_string(saved_++) + ".onnx")));
  }

  static Session session(const Model& model, int level, int threads = 1) {
    SessionOptions options;
    options.optimization_level = level;
    options.threads = threads;
    options.adaptive_threads = false;
    return Session(model, options);
  }

  static int count(const Session& s, const std::string& op) {
    const auto& k = s.stats().kernels;
    return static_cast<int>(std::count_if(k.begin(), k.end(), [&](const auto& n) { return n.op_type == op; }));
  }

  // Level 2 (one SqueezeExcite where `fuses`, none otherwise) against level 0, at 1 and 2 threads.
  void expect_matches_level_zero(const Model& model, const Block& b, bool fuses, const std::string& what) {
    const Tensor x = uniform_tensor(image(b, 3), rng_);
    const Tensor want = session(model, 0).run({{"x", x}}).at("y").tensor();
    for (int threads : {1, 2}) {
      Session fused = session(model, 2, threads);
      EXPECT_EQ(count(fused, "SqueezeExcite"), fuses ? 1 : 0) << what;
      if (fuses) {
        EXPECT_EQ(count(fused, "GlobalAveragePool") + count(fused, "ReduceMean"), 0) << what;
        EXPECT_EQ(count(fused, "Mul"), 0) << what;
      }
      for (int run = 0; run < 2; ++run)
        tunnx_test::expect_near(fused.run({{"x", x}}).at("y").tensor(), want, what + " threads " + std::to_string(threads),
                                2e-5f, 2e-5f);
    }
  }

  std::mt19937 rng_{11};
  int saved_ = 0;
};

TEST_F(FuseSqueezeExciteTest, TorchAndPaddleBlocksFuseAndMatchLevelZero) {
  const std::vector<std::pair<std::string, Block>> blocks = {
      {"torchvision", {}},
      {"Paddle", {.paddle = true}},
      {"sigmoid gate, Mul(gate, X)", {.gate = "Sigmoid", .gate_first = true}},
      {"SiLU inside, no gate activation", {.gate = "", .inner = "SiLU"}},
      {"ReduceMean, opset 18", {.reduce_mean = true, .opset = 18}},
      {"batch 3", {.batch = 3}},
      {"1-D", {.one_dimensional = true}},
      {"1-D Paddle batch 2", {.batch = 2, .paddle = true, .one_dimensional = true}},
      // X of 96 x 28 x 28 (75,264 values): split between two threads, the means and scales by rows.
      {"large", {.channels = 96, .squeezed = 24, .size = 28}},
      {"large, batch 2, Paddle", {.batch = 2, .channels = 40, .squeezed = 10, .size = 24, .paddle = true}},
      // Wider than its blocks of 16: weight rows split into a partial last block.
      {"odd widths", {.channels = 37, .squeezed = 19, .size = 5}},
  };
  for (const auto& [what, block] : blocks) expect_matches_level_zero(model(block), block, true, what);
}

// The kernel reads constant weights from copies in panels: a write to them (load_state_dict, an
// optimizer step) is seen by the next run.
TEST_F(FuseSqueezeExciteTest, WrittenWeightsAreSeen) {
  const Block b{.channels = 40, .squeezed = 20};
  Model model = this->model(b);
  Session fused = session(model, 2), plain = session(model, 0);
  const Tensor x = uniform_tensor(image(b, 3), rng_);
  ASSERT_EQ(count(fused, "SqueezeExcite"), 1);
  const Tensor before = fused.run({{"x", x}}).at("y").tensor().clone();
  tunnx::StateDict changed;
  for (const char* name : {"fc1.w", "fc2.w"}) {
    Tensor t = model.parameter(name).clone();
    for (int64_t i = 0; i < t.numel(); ++i) t.mutable_data_as<float>()[i] *= -1.5f;
    changed.emplace_back(name, t);
  }
  model.load_state_dict(changed, /*strict=*/false);
  const Tensor after = fused.run({{"x", x}}).at("y").tensor();
  EXPECT_FALSE(after.equals(before));
  tunnx_test::expect_near(after, plain.run({{"x", x}}).at("y").tensor(), "after load_state_dict", 2e-5f, 2e-5f);
}

TEST_F(FuseSqueezeExciteTest, BlocksItCannotTakeStay) {
  const Block b;
  // The gate is also a graph output: the chain's values must be private.
  expect_matches_level_zero(model(b, [](ModelBuilder& m) { m.output("fc2.a", kF32, Dims{1, 24, 1, 1}); }), b, false,
                            "gate returned");
  // A Mul by something other than the block's input.
  expect_matches_level_zero(model(b, [](ModelBuilder& m) {
                              for (auto& n : *m.proto().mutable_node())
                                if (n.name() == "scale") n.set_input(0, "fc1.w");
                            }),
                            b, false, "Mul of another tensor");
  // A 3x3 layer (padded to keep the 1x1 image): not a matrix-vector product.
  expect_matches_level_zero(model(b, [&](ModelBuilder& m) {
                              for (auto& t : *m.proto().mutable_initializer())
                                if (t.name() == "fc1.w") t = float_tensor("fc1.w", {8, 24, 3, 3}, uniform(8 * 24 * 9));
                              for (auto& n : *m.proto().mutable_node())
                                if (n.name() == "fc1") attr_ints(n, "pads", {1, 1, 1, 1});
                            }),
                            b, false, "3x3 layer");
  // The mean also read by another node.
  expect_matches_level_zero(model(b, [](ModelBuilder& m) {
                              m.node("Identity", {"m"}, {"m2"}, "also");
                              m.output("m2", kF32, Dims{1, 24, 1, 1});
                            }),
                            b, false, "mean read twice");
}

// The kernel's channels-first form, as written into a model by hand (the fusion makes it where the
// convolutions stay channels-first: builds without oneDNN), against the ONNX ops it stands for.
TEST_F(FuseSqueezeExciteTest, ChannelsFirstKernelMatchesTheOnnxSpelling) {
  for (const Block& b : {Block{}, Block{.batch = 2, .channels = 64, .squeezed = 16, .size = 20, .paddle = true}}) {
    const std::mt19937 weights = rng_;  // both models draw the same weights
    Model spelled = model(b);
    rng_ = weights;
    Model fused = model(b, [&](ModelBuilder& m) {
      auto* nodes = m.proto().mutable_node();
      std::vector<onnx::NodeProto> kept;
      for (const auto& n : *nodes)
        if (n.name() == "stem" || n.name() == "out") kept.push_back(n);
      nodes->Clear();
      for (const auto& n : kept) *nodes->Add() = n;
      // Stem, then the block, then the Identity.
      const std::string fc1_bias = b.paddle ? "" : "fc1.b", fc2_bias = b.paddle ? "" : "fc2.b";
      const std::string fc1_add = b.paddle ? "fc1.b" : "", fc2_add = b.paddle ? "fc2.b" : "";
      onnx::NodeProto se;
      se.set_name("se");
      se.set_op_type("SqueezeExcite");
      se.set_domain("com.tunnx");
      for (const std::string& in : {std::string("f"), std::string("fc1.w"), fc1_bias, fc1_add, std::string("fc2.w"), fc2_bias, fc2_add})
        se.add_input(in);
      se.add_output("s");
      attr_strings(se, "activations", {"Relu", "HardSigmoid"});
      attr_strings(se, "approximates", {"none", "none"});
      attr_floats(se, "activation_alphas", {0.0f, 0.2f});
      attr_floats(se, "activation_betas", {0.0f, 0.5f});
      nodes->Add()->CopyFrom(se);
      std::swap(*nodes->Mutable(1), *nodes->Mutable(2));  // stem, se, out
      m.add_opset("com.tunnx", 1);
    });
    const Tensor x = uniform_tensor(image(b, 3), rng_);
    const Tensor want = session(spelled, 0).run({{"x", x}}).at("y").tensor();
    for (int threads : {1, 2})
      tunnx_test::expect_near(session(fused, 0, threads).run({{"x", x}}).at("y").tensor(), want,
                              "channels-first, threads " + std::to_string(threads), 2e-5f, 2e-5f);
  }
}

}  // namespace
