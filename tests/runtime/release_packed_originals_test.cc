// SessionOptions::release_packed_originals: once every kernel reading a constant weight holds a packed
// copy of its own, the session lets go of the original. Outputs stay bitwise those of a session
// without it, at every batch size and thread count, on convolutions (BatchNormalization folded or
// not, depthwise, Winograd-sized) and products (the 1x1-convolution and matmul paths); the memory is
// really freed once the caller's Model is gone; the caller's Model is never changed and still saves;
// weights some kernel reads as they lie stay; a graph that computes gradients refuses the option.
#include <algorithm>
#include <atomic>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "runtime/core/model_impl.h"
#include "tests/importer/model_builder.h"

namespace {

using namespace tunnx_test;
using tunnx::Model;
using tunnx::Session;
using tunnx::SessionOptions;
using tunnx::SessionStats;
using tunnx::Tensor;

constexpr int32_t kF32 = onnx_type_of<float>();

// n values drawn uniformly from [lo, hi).
std::vector<float> uniform(size_t n, std::mt19937& rng, float lo = -1.0f, float hi = 1.0f) {
  std::vector<float> v(n);
  std::generate(v.begin(), v.end(), [&] { return std::uniform_real_distribution<float>(lo, hi)(rng); });
  return v;
}

size_t count(const std::vector<int64_t>& dims) {
  size_t n = 1;
  for (int64_t d : dims) n *= static_cast<size_t>(d);
  return n;
}

Tensor input_of(const std::vector<int64_t>& dims, uint32_t seed) {
  std::mt19937 rng(seed);
  return Tensor::from_vector<float>(dims, uniform(count(dims), rng));
}

SessionOptions options(bool release, int threads, int level = 2) {
  SessionOptions o;
  o.threads = threads;
  o.adaptive_threads = false;  // each run on `threads`: the paths, and so the bits, are the same run to run
  o.optimization_level = level;
  o.release_packed_originals = release;
  return o;
}

class ReleasePackedOriginals : public TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    if (!TUNNX_WITH_ONEDNN) GTEST_SKIP() << "built without oneDNN: no kernel keeps packed copies";
  }

  void weight(GraphBuilder& b, const std::string& name, const std::vector<int64_t>& dims, std::mt19937& rng,
              float lo = -0.5f, float hi = 0.5f) {
    b.initializer(float_tensor(name, dims, uniform(count(dims), rng, lo, hi)));
  }

  // Conv [-> BatchNormalization] [-> Add(residual)] -> activation, NCHW, 3x3 (or 1x1), pads kept.
  void conv(GraphBuilder& b, const std::string& x, const std::string& y, int64_t in, int64_t out, int64_t kernel,
            int64_t stride, int64_t group, bool bias, bool bn, const std::string& residual, const char* act,
            std::mt19937& rng) {
    const std::string w = y + ".w";
    weight(b, w, {out, in / group, kernel, kernel}, rng);
    std::vector<std::string> inputs = {x, w};
    if (bias) {
      weight(b, y + ".b", {out}, rng);
      inputs.push_back(y + ".b");
    }
    auto& n = b.node("Conv", inputs, {y + ".conv"}, y + "_conv");
    attr_ints(n, "kernel_shape", {kernel, kernel});
    attr_ints(n, "strides", {stride, stride});
    attr_ints(n, "pads", {kernel / 2, kernel / 2, kernel / 2, kernel / 2});
    attr_int(n, "group", group);
    std::string last = y + ".conv";
    if (bn) {
      weight(b, y + ".scale", {out}, rng, 0.5f, 1.5f);
      weight(b, y + ".shift", {out}, rng);
      weight(b, y + ".mean", {out}, rng);
      weight(b, y + ".var", {out}, rng, 0.5f, 2.0f);
      b.node("BatchNormalization", {last, y + ".scale", y + ".shift", y + ".mean", y + ".var"}, {y + ".bn"}, y + "_bn");
      last = y + ".bn";
    }
    if (!residual.empty()) {
      b.node("Add", {last, residual}, {y + ".sum"}, y + "_add");
      last = y + ".sum";
    }
    b.node(act, {last}, {y}, y + "_act");
  }

  // A CNN of symbolic batch: folded and unfolded convolutions, a Winograd-sized one (3x3, stride 1,
  // 32 channels, 30x30), a residual, a depthwise one, then a Linear head on Gemm. x [batch, 8, 30, 30].
  fs::path cnn() {
    std::mt19937 rng(7);
    ModelBuilder b;
    b.input("x", kF32, Dims{"batch", 8, 30, 30});
    conv(b, "x", "c1", 8, 32, 3, 1, 1, false, true, "", "Relu", rng);
    conv(b, "c1", "c2", 32, 32, 3, 1, 1, false, true, "c1", "Relu", rng);
    conv(b, "c2", "c3", 32, 32, 3, 2, 1, true, false, "", "Relu", rng);
    conv(b, "c3", "c4", 32, 32, 3, 1, 32, false, true, "", "Sigmoid", rng);
    conv(b, "c4", "c5", 32, 24, 1, 1, 1, true, true, "", "Relu", rng);
    b.node("GlobalAveragePool", {"c5"}, {"pooled"}, "pool");
    b.node("Flatten", {"pooled"}, {"flat"}, "flatten");
    weight(b, "head.w", {10, 24}, rng);
    weight(b, "head.b", {10}, rng);
    auto& gemm = b.node("Gemm", {"flat", "head.w", "head.b"}, {"y"}, "head");
    attr_int(gemm, "transB", 1);
    b.output("y", kF32, Dims{"batch", 10});
    return b.save(path("cnn.onnx"));
  }

  // Products of symbolic batch: MatMul + bias + Relu (a FusedMatMul at level 2), Gemm with transB and
  // C, Gemm with alpha 0.5 (the matmul path) and a plain MatMul. x [batch, 64] -> y [batch, 8].
  fs::path linear() {
    std::mt19937 rng(11);
    ModelBuilder b;
    b.input("x", kF32, Dims{"batch", 64});
    weight(b, "fc1.w", {64, 96}, rng);
    weight(b, "fc1.b", {96}, rng);
    b.node("MatMul", {"x", "fc1.w"}, {"p1"}, "fc1");
    b.node("Add", {"p1", "fc1.b"}, {"s1"}, "fc1_bias");
    b.node("Relu", {"s1"}, {"h1"}, "fc1_relu");
    weight(b, "fc2.w", {48, 96}, rng);
    weight(b, "fc2.b", {48}, rng);
    auto& fc2 = b.node("Gemm", {"h1", "fc2.w", "fc2.b"}, {"h2"}, "fc2");
    attr_int(fc2, "transB", 1);
    weight(b, "fc3.w", {48, 40}, rng);
    auto& fc3 = b.node("Gemm", {"h2", "fc3.w"}, {"h3"}, "fc3");
    attr_float(fc3, "alpha", 0.5f);
    weight(b, "fc4.w", {40, 8}, rng);
    b.node("MatMul", {"h3", "fc4.w"}, {"y"}, "fc4");
    b.output("y", kF32, Dims{"batch", 8});
    return b.save(path("linear.onnx"));
  }

  // Runs `file` on a session without the option (model kept) and on one with it whose Model is let
  // go right after the session is made, for each batch in turn; every output must be bitwise equal.
  // Returns the second session's statistics.
  SessionStats expect_same_bits(const fs::path& file, const std::string& input, const std::vector<int64_t>& dims,
                                const std::vector<int64_t>& batches, int threads, int level = 2) {
    Model kept = Model::load(file);
    Session plain(kept, options(false, threads, level));
    std::optional<Model> dropped = Model::load(file);
    Session releasing(*dropped, options(true, threads, level));
    dropped.reset();
    uint32_t seed = 1;
    for (int64_t batch : batches) {
      std::vector<int64_t> shape = dims;
      shape[0] = batch;
      const Tensor x = input_of(shape, seed++);
      const tunnx::NamedValues want = plain.run({{input, x}});
      const tunnx::NamedValues got = releasing.run({{input, x}});
      for (const auto& [name, value] : want)
        EXPECT_TRUE(got.at(name).tensor().equals(value.tensor()))
            << file.filename() << ": output " << name << " at batch " << batch << ", " << threads << " threads, level "
            << level << ", released " << releasing.stats().released_initializers;
    }
    return releasing.stats();
  }
};

TEST_F(ReleasePackedOriginals, ConvolutionsGiveTheSameBitsAtEveryBatchSize) {
  const fs::path file = cnn();
  for (int threads : {1, 2}) {
    // Folded BatchNormalization at level 2; Conv and BatchNormalization apart at level 0, where the
    // reference BatchNormalization reads its inputs as they lie and keeps them.
    for (int level : {2, 0}) {
      const SessionStats stats = expect_same_bits(file, "x", {1, 8, 30, 30}, {1, 3, 1, 4, 3}, threads, level);
      EXPECT_GE(stats.released_initializers, 3) << threads << " threads, level " << level;
      EXPECT_GE(stats.released_bytes, int64_t{32 * 16 * 9 + 24 * 32 + 10 * 24} * 4);
    }
  }
}

TEST_F(ReleasePackedOriginals, ProductsGiveTheSameBitsAtEveryBatchSize) {
  const fs::path file = linear();
  for (int threads : {1, 2}) {
    // At 2 threads a one-row product takes the matmul path and more rows the 1x1 convolution: the
    // second path's layout is reordered from the first's copy.
    for (int level : {2, 0}) {
      const SessionStats stats = expect_same_bits(file, "x", {1, 64}, {1, 5, 1, 7, 5}, threads, level);
      // fc1, fc2 and fc4 on the 1x1 convolution; fc3 (alpha) on the matmul path, packed where oneDNN asks.
      EXPECT_GE(stats.released_initializers, 3) << threads << " threads, level " << level;
      EXPECT_GE(stats.released_bytes, int64_t{64 * 96 + 48 * 96 + 40 * 8} * 4);
    }
  }
}

// PyTorch exports of a Transformer encoder (dynamic batch and sequence) and a ResNet-shaped CNN.
TEST_F(ReleasePackedOriginals, RealModelsGiveTheSameBits) {
  const fs::path models = fs::path(TUNNX_SOURCE_DIR) / "tests" / "models";
  {
    Model kept = Model::load(models / "encoder4.onnx");
    Session plain(kept, options(false, 1));
    std::optional<Model> dropped = Model::load(models / "encoder4.onnx");
    Session releasing(*dropped, options(true, 1));
    dropped.reset();
    for (auto [batch, seq] : {std::pair<int64_t, int64_t>{1, 7}, {3, 16}, {1, 7}}) {
      std::vector<int64_t> tokens(static_cast<size_t>(batch * seq));
      for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = static_cast<int64_t>((i * 37) % 100);
      const tunnx::NamedValues in = {{"tokens", Tensor::from_vector<int64_t>({batch, seq}, tokens)}};
      const tunnx::NamedValues want = plain.run(in), got = releasing.run(in);
      for (const auto& [name, value] : want) EXPECT_TRUE(got.at(name).tensor().equals(value.tensor())) << name;
    }
    EXPECT_GE(releasing.stats().released_initializers, 16);  // 4 layers: Q, K, V, output and 2 feed-forward
  }
  const SessionStats stats =
      expect_same_bits(models / "resnet18_narrow.onnx", "image", {1, 3, 32, 32}, {1, 4, 2}, 1);
  EXPECT_GE(stats.released_bytes, int64_t{5} << 20);  // of its 6 MB
}

// An empty batch after the weights were freed: the product hands its reference kernel B restored from
// a copy; the convolution, left with only its folded weights, makes the empty output itself.
TEST_F(ReleasePackedOriginals, AnEmptyBatchAfterReleaseGivesAnEmptyOutput) {
  const SessionStats stats = expect_same_bits(linear(), "x", {2, 64}, {2, 0, 2}, 1);
  EXPECT_GT(stats.released_initializers, 0);
  // One folded convolution, checked alone: FusedConv's reference kernel, which a session without the
  // option runs on an empty batch, divides by the batch (channels_moved).
  std::mt19937 rng(5);
  ModelBuilder b;
  b.input("x", kF32, Dims{"batch", 8, 10, 10});
  conv(b, "x", "y", 8, 16, 3, 1, 1, true, true, "", "Relu", rng);
  b.output("y", kF32, Dims{"batch", 16, 10, 10});
  std::optional<Model> model = Model::load(b.save(path("conv.onnx")));
  Session session(*model, options(true, 1));
  model.reset();
  session.run({{"x", input_of({2, 8, 10, 10}, 1)}});
  ASSERT_EQ(session.stats().released_initializers, 6);  // W, B and the BatchNormalization's four
  const Tensor y = session.run({{"x", input_of({0, 8, 10, 10}, 1)}}).at("y").tensor();
  EXPECT_EQ(y.dims(), (std::vector<int64_t>{0, 16, 10, 10}));
  // At level 0 the Conv is unfolded, and its reference kernel gets W restored from a copy.
  const SessionStats unfolded = expect_same_bits(path("conv.onnx"), "x", {2, 8, 10, 10}, {2, 0, 2}, 1, 0);
  EXPECT_EQ(unfolded.released_initializers, 1);  // W: B and the BatchNormalization's inputs are read as they lie
}

// One folded 3x3 convolution at two image sizes: oneDNN's Winograd kernels take 32x32 (on AVX-512),
// direct ones 10x10. Winograd's transformed weights cannot be read back, so a session that started
// there keeps W until a direct run packs a copy that can; after that every size's layout is
// reordered from that copy (through the plain layout into Winograd's).
TEST_F(ReleasePackedOriginals, FoldedWeightsMoveBetweenDirectAndWinogradLayouts) {
  std::mt19937 rng(13);
  ModelBuilder b;
  b.input("x", kF32, Dims{"batch", 32, "size", "size"});
  conv(b, "x", "y", 32, 32, 3, 1, 1, true, true, "", "Relu", rng);
  b.output("y", kF32, Dims{"batch", 32, "size", "size"});
  const fs::path file = b.save(path("winograd.onnx"));
  using Sizes = std::vector<int64_t>;
  for (const Sizes& sizes : {Sizes{10, 32, 10, 32}, Sizes{32, 10, 32, 10}}) {
    Model kept = Model::load(file);
    Session plain(kept, options(false, 1));
    std::optional<Model> dropped = Model::load(file);
    Session releasing(*dropped, options(true, 1));
    dropped.reset();
    for (int64_t size : sizes) {
      const Tensor x = input_of({2, 32, size, size}, static_cast<uint32_t>(size));
      EXPECT_TRUE(releasing.run({{"x", x}}).at("y").tensor().equals(plain.run({{"x", x}}).at("y").tensor()))
          << "size " << size;
    }
    EXPECT_EQ(releasing.stats().released_initializers, 6);
  }
}

// Where the weights' memory goes: a weight that is a view on memory this test watches is freed once
// the session runs and the Model is gone; without the option the session keeps it.
TEST_F(ReleasePackedOriginals, TheOriginalIsFreedOnceTheModelIsGone) {
  const fs::path file = linear();
  for (bool release : {false, true}) {
    std::optional<Model> model = Model::load(file);
    tunnx::StoredTensor& stored = tunnx::model_impl(*model).store.at("fc2.w");
    auto bytes = std::make_shared<std::vector<float>>(stored.value.data_as<float>(),
                                                      stored.value.data_as<float>() + stored.value.numel());
    const std::weak_ptr<std::vector<float>> watch = bytes;
    stored.value = Tensor::view(tunnx::DataType::kFloat32, stored.value.dims(), bytes->data(), bytes);
    bytes.reset();
    Session session(*model, options(release, 1));
    model.reset();
    EXPECT_FALSE(watch.expired()) << "the session holds the weight until a kernel packs it";
    session.run({{"x", input_of({4, 64}, 3)}});
    EXPECT_EQ(watch.expired(), release) << (release ? "freed once packed" : "kept without the option");
    const SessionStats stats = session.stats();
    if (release) {
      EXPECT_GE(stats.released_initializers, 3);
    } else {
      EXPECT_EQ(stats.released_initializers, 0);
      EXPECT_EQ(stats.released_bytes, 0);
    }
  }
}

// A session that takes its model (Session(Model&&)) holds the only handles to its weights: with the
// kernels prepared for an expected batch, each weight is freed while the session is made, before any
// run, so the weights are never resident twice; the outputs keep their bits, at the prepared batch
// and at others (their layouts reordered from the copies).
TEST_F(ReleasePackedOriginals, ASessionThatTakesItsModelFreesEachWeightWhileItIsMade) {
  for (const bool release : {false, true}) {
    const fs::path file = linear();
    Model model = Model::load(file);
    tunnx::StoredTensor& stored = tunnx::model_impl(model).store.at("fc2.w");
    auto bytes = std::make_shared<std::vector<float>>(stored.value.data_as<float>(),
                                                      stored.value.data_as<float>() + stored.value.numel());
    const std::weak_ptr<std::vector<float>> watch = bytes;
    stored.value = Tensor::view(tunnx::DataType::kFloat32, stored.value.dims(), bytes->data(), bytes);
    bytes.reset();
    SessionOptions o = options(release, 1);
    o.expected_dims = {{"batch", 4}};
    Session session(std::move(model), o);
    EXPECT_GE(session.stats().prepared_nodes, 3);
    EXPECT_EQ(watch.expired(), release) << (release ? "freed while the session was made" : "kept without the option");
    EXPECT_EQ(session.stats().released_initializers >= 3, release);
    Model kept = Model::load(file);
    Session plain(kept, options(false, 1));
    for (int64_t batch : {4, 1, 7}) {
      const Tensor x = input_of({batch, 64}, static_cast<uint32_t>(batch));
      EXPECT_TRUE(session.run({{"x", x}}).at("y").tensor().equals(plain.run({{"x", x}}).at("y").tensor()))
          << "batch " << batch << (release ? ", released" : "");
    }
    EXPECT_EQ(watch.expired(), release);
  }
}

// The caller's Model is never changed: it still reads, saves and reloads its weights as they were,
// and the session, which froze its weights when it freed them, does not see later writes.
TEST_F(ReleasePackedOriginals, TheCallersModelStaysIntactAndSaveable) {
  Model model = Model::load(cnn());
  std::vector<std::pair<std::string, Tensor>> before;
  for (const auto& [name, t] : model.named_parameters()) before.emplace_back(name, t.clone());
  Session session(model, options(true, 1));
  const Tensor x = input_of({2, 8, 30, 30}, 5);
  const Tensor first = session.run({{"x", x}}).at("y").tensor();
  for (int i = 0; i < 3; ++i) EXPECT_TRUE(session.run({{"x", x}}).at("y").tensor().equals(first));
  ASSERT_GT(session.stats().released_initializers, 0);

  model.save(path("saved.onnx"));
  const Model reloaded = Model::load(path("saved.onnx"));
  for (const auto& [name, t] : before) {
    EXPECT_TRUE(model.parameter(name).equals(t)) << name;
    EXPECT_TRUE(reloaded.parameter(name).equals(t)) << name;
  }

  // A write to a freed weight reaches the Model, not the session.
  Tensor w = model.parameter("c3.w");
  w.mutable_data_as<float>()[0] += 1.0f;
  EXPECT_TRUE(session.run({{"x", x}}).at("y").tensor().equals(first));
  EXPECT_FALSE(Session(model, options(false, 1)).run({{"x", x}}).at("y").tensor().equals(first));
}

// A weight that a kernel also reads as it lies (here an Add) is kept; the product's other weight goes.
TEST_F(ReleasePackedOriginals, AWeightAlsoReadAsItLiesIsKept) {
  std::mt19937 rng(3);
  ModelBuilder b;
  b.input("x", kF32, Dims{"batch", 32});
  weight(b, "w", {32, 32}, rng);
  weight(b, "v", {32, 16}, rng);
  b.node("MatMul", {"x", "w"}, {"p"}, "product");
  b.node("Add", {"p", "w"}, {"s"}, "add");  // [batch, 32] + [32, 32]: batch 1 or 32
  b.node("MatMul", {"s", "v"}, {"y"}, "second");
  b.output("y", kF32, Dims{32, 16});
  const fs::path file = b.save(path("shared.onnx"));
  const SessionStats stats = expect_same_bits(file, "x", {32, 32}, {32, 32}, 1);
  EXPECT_EQ(stats.released_initializers, 1);
  EXPECT_EQ(stats.released_bytes, 32 * 16 * 4);
}

// Concurrent runs: an original is freed only by a run no other run overlaps, so none ever reads it
// after another freed it. Every output matches a plain session's bits.
TEST_F(ReleasePackedOriginals, ConcurrentRunsAgreeAndTheWeightsAreFreedAfterwards) {
  const fs::path file = linear();
  Model model = Model::load(file);
  Session plain(model, options(false, 1));
  std::optional<Model> dropped = Model::load(file);
  Session releasing(*dropped, options(true, 1));
  dropped.reset();
  const Tensor x = input_of({6, 64}, 9);
  const Tensor want = plain.run({{"x", x}}).at("y").tensor();
  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      for (int i = 0; i < 20; ++i)
        if (!releasing.run({{"x", x}}).at("y").tensor().equals(want)) ++mismatches;
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(mismatches.load(), 0);
  EXPECT_TRUE(releasing.run({{"x", x}}).at("y").tensor().equals(want));  // a lone run frees what is left
  EXPECT_GE(releasing.stats().released_initializers, 3);
}

// A graph that computes gradients (an ONNX Gradient node) reads its weights as they lie in the
// backward pass: the option is refused, with the reason.
TEST_F(ReleasePackedOriginals, AGraphThatComputesGradientsRefusesTheOption) {
  ModelBuilder b;
  b.add_opset("ai.onnx.preview.training", 1);
  b.input("x", kF32, Dims{2, 4});
  b.initializer(float_tensor("w", {4, 3}, std::vector<float>(12, 0.25f)));
  b.node("MatMul", {"x", "w"}, {"y"}, "product");
  auto& g = b.node("Gradient", {"x", "w"}, {"dy_dx", "dy_dw"}, "gradient", "ai.onnx.preview.training");
  attr_strings(g, "xs", {"x", "w"});
  attr_string(g, "y", "y");
  b.output("y", kF32, Dims{2, 3});
  b.output("dy_dw", kF32, Dims{4, 3});
  const Model model = Model::load(b.save(path("gradient.onnx")));
  EXPECT_NO_THROW(Session(model, options(false, 1)));
  const tunnx::Error error = expect_error([&] { Session(model, options(true, 1)); });
  EXPECT_EQ(error.code(), tunnx::ErrorCode::kInvalidArgument);
  EXPECT_TRUE(contains(error.what(), "release_packed_originals is for inference: this model's graph computes "
                                     "gradients (1 ONNX Gradient nodes)"));
}

}  // namespace
