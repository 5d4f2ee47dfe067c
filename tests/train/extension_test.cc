// The training extension's C++ API (tunnx/extend.h and Model::register_parameter): registration and
// its refusals, new heads, replacing outputs, LoRA (merge and keep on export, adapters alone), trainable
// inputs, and that a frozen backbone stays byte-identical through training.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <random>
#include <string>

#include "tests/importer/model_builder.h"
#include "tunnx/extend.h"
#include "tunnx/tunnx.h"

namespace {

namespace fs = std::filesystem;
using namespace tunnx;
using tunnx_test::Dims;
using tunnx_test::ModelBuilder;

std::string message_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "(nothing thrown)";
}

Tensor random_floats(std::vector<int64_t> dims, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  Tensor t(DataType::kFloat32, std::move(dims));
  for (int64_t i = 0; i < t.numel(); ++i) t.mutable_data_as<float>()[i] = u(rng);
  return t;
}

std::vector<float> random_values(size_t n, uint32_t seed) {
  Tensor t = random_floats({static_cast<int64_t>(n)}, seed);
  return std::vector<float>(t.data_as<float>(), t.data_as<float>() + n);
}

std::string bytes_of(const Tensor& t) { return std::string(static_cast<const char*>(t.data()), t.nbytes()); }

void expect_close(const Tensor& a, const Tensor& b, double tol, const std::string& what) {
  ASSERT_EQ(a.dims(), b.dims()) << what;
  double worst = 0;
  for (int64_t i = 0; i < a.numel(); ++i)
    worst = std::max(worst, std::fabs(double(a.data_as<float>()[i]) - double(b.data_as<float>()[i])));
  EXPECT_LE(worst, tol) << what;
}

class ExtensionTest : public tunnx_test::TempDirTest {
 protected:
  // x [batch, 4] -> MatMul(W1 [4, 6]) + b1 -> Relu -> h -> Gemm(W2 [3, 6], b2, transB=1) -> y [batch, 3]
  fs::path mlp() {
    ModelBuilder b;
    b.input("x", onnx::TensorProto::FLOAT, Dims{"batch", 4});
    b.initializer(tunnx_test::float_tensor("w1", {4, 6}, random_values(24, 1)));
    b.initializer(tunnx_test::float_tensor("b1", {6}, random_values(6, 2)));
    b.initializer(tunnx_test::float_tensor("w2", {3, 6}, random_values(18, 3)));
    b.initializer(tunnx_test::float_tensor("b2", {3}, random_values(3, 4)));
    b.node("MatMul", {"x", "w1"}, {"z1"}, "mm1");
    b.node("Add", {"z1", "b1"}, {"z2"}, "add1");
    b.node("Relu", {"z2"}, {"h"}, "relu");
    b.node("Gemm", {"h", "w2", "b2"}, {"y"}, "gemm").add_attribute()->CopyFrom(int_attr("transB", 1));
    b.output("y", onnx::TensorProto::FLOAT, Dims{"batch", 3});
    return b.save(path("mlp.onnx"));
  }

  // x [batch, 5, 4] -> MatMul(x, Transpose(W [6, 4])) + b -> y [batch, 5, 6], as torch exports nn.Linear.
  fs::path linear3d() {
    ModelBuilder b;
    b.input("x", onnx::TensorProto::FLOAT, Dims{"batch", 5, 4});
    b.initializer(tunnx_test::float_tensor("lin.weight", {6, 4}, random_values(24, 5)));
    b.initializer(tunnx_test::float_tensor("lin.bias", {6}, random_values(6, 6)));
    b.node("Transpose", {"lin.weight"}, {"wt"}, "t");
    b.node("MatMul", {"x", "wt"}, {"z"}, "mm");
    b.node("Add", {"z", "lin.bias"}, {"y"}, "add");
    b.output("y", onnx::TensorProto::FLOAT, Dims{"batch", 5, 6});
    return b.save(path("linear3d.onnx"));
  }

  static onnx::AttributeProto int_attr(const std::string& name, int64_t v) {
    onnx::AttributeProto a;
    a.set_name(name);
    a.set_type(onnx::AttributeProto::INT);
    a.set_i(v);
    return a;
  }

  static Tensor run1(const Model& model, const Tensor& x, const std::string& output) {
    Session session(model);
    return session.run({{"x", Value(x)}}, {output}).at(output).tensor();
  }
};

// ---- Registration -----------------------------------------------------------------------------------

TEST_F(ExtensionTest, RegistrationRefusalsAreExact) {
  Model model = Model::load(mlp());
  const Tensor f = random_floats({2}, 9);
  EXPECT_EQ(message_of([&] { model.register_parameter("", f); }), "cannot register a parameter with an empty name");
  EXPECT_EQ(message_of([&] { model.register_parameter("w1", f); }),
            "tensor 'w1': cannot register a parameter: the name is already taken by a parameter");
  EXPECT_EQ(message_of([&] { model.register_buffer("b2", f); }),
            "tensor 'b2': cannot register a buffer: the name is already taken by a parameter");
  EXPECT_EQ(message_of([&] { model.register_parameter("x", f); }),
            "tensor 'x': cannot register a parameter: the name is already a graph input");
  EXPECT_EQ(message_of([&] { model.register_parameter("y", f); }),
            "tensor 'y': cannot register a parameter: the name is already a graph output");
  EXPECT_EQ(message_of([&] { model.register_parameter("z1", f); }),
            "tensor 'z1': cannot register a parameter: the name is already a graph node output");
  EXPECT_EQ(message_of([&] { model.register_parameter("steps", Tensor::from_vector<int64_t>({1}, {3})); }),
            "tensor 'steps': cannot register a parameter that requires grad: int64 is not a floating-point type "
            "(pass requires_grad = false, or register a buffer)");
  EXPECT_EQ(message_of([&] { model.register_parameter("u", Tensor()); }),
            "tensor 'u': cannot register a parameter: the tensor is undefined");
  model.register_buffer("mask", Tensor::from_vector<int64_t>({1}, {3}));
  EXPECT_EQ(message_of([&] { model.register_parameter("mask", f); }),
            "tensor 'mask': cannot register a parameter: the name is already taken by a buffer");
  // Nothing refused was added.
  EXPECT_EQ(model.named_parameters().size(), 4u);
}

TEST_F(ExtensionTest, RegisteredTensorsAreListedAndPersistenceIsHonoured) {
  Model model = Model::load(mlp());
  model.register_parameter("extra.scale", random_floats({3}, 10));
  model.register_parameter("extra.frozen", random_floats({3}, 11), /*requires_grad=*/false);
  model.register_parameter("extra.count", Tensor::from_vector<int64_t>({1}, {7}), /*requires_grad=*/false);
  model.register_buffer("extra.stats", random_floats({3}, 12));
  model.register_buffer("extra.scratch", random_floats({3}, 13), /*persistent=*/false);

  auto names = [](const StateDict& s) {
    std::vector<std::string> out;
    for (const auto& [n, t] : s) out.push_back(n);
    return out;
  };
  EXPECT_EQ(names(model.named_parameters()),
            (std::vector<std::string>{"w1", "b1", "w2", "b2", "extra.scale", "extra.frozen", "extra.count"}));
  EXPECT_EQ(names(model.named_buffers()), (std::vector<std::string>{"extra.stats", "extra.scratch"}));
  const std::vector<std::string> state = names(model.state_dict());
  EXPECT_EQ(std::count(state.begin(), state.end(), "extra.scratch"), 0);
  EXPECT_EQ(std::count(state.begin(), state.end(), "extra.stats"), 1);
  EXPECT_TRUE(model.requires_grad("extra.scale"));
  EXPECT_FALSE(model.requires_grad("extra.frozen"));
  for (const TensorInfo& t : model.tensors()) {
    const bool registered = t.name.rfind("extra.", 0) == 0;
    EXPECT_EQ(t.origin, registered ? TensorOrigin::kRegistered : TensorOrigin::kImported) << t.name;
    EXPECT_EQ(t.in_graph, !registered) << t.name;
    EXPECT_EQ(t.persistent, t.name != "extra.scratch") << t.name;
  }
  // A strict load of the model's own state dict works without the non-persistent buffer.
  EXPECT_NO_THROW(model.load_state_dict(model.state_dict(), /*strict=*/true));
  // Registered tensors no node reads are not exported.
  model.save(path("out.onnx"));
  Model back = Model::load(path("out.onnx"));
  EXPECT_EQ(back.tensors().size(), 4u);
}

TEST_F(ExtensionTest, LoadingAFileWithADuplicateNameStillSaysSo) {
  ModelBuilder b;
  b.input("x", onnx::TensorProto::FLOAT, Dims{2});
  b.initializer(tunnx_test::float_tensor("w", {2}, {1, 2}));
  b.initializer(tunnx_test::float_tensor("w", {2}, {3, 4}));
  b.node("Add", {"x", "w"}, {"y"});
  b.output("y", onnx::TensorProto::FLOAT, Dims{2});
  const fs::path p = b.save(path("dup.onnx"));
  EXPECT_EQ(message_of([&] { Model::load(p); }), p.string() + ": tensor 'w': initializer is defined twice in graph 'g'");
}

// ---- Heads -------------------------------------------------------------------------------------------

TEST_F(ExtensionTest, HeadOnARank2ValueIsAGemmAndExportsWithItsOrigin) {
  Model model = Model::load(mlp());
  add_head(model, {.value = "h", .out_features = 2, .name = "cls", .seed = 3});
  const Tensor w = model.parameter("cls.weight"), bias = model.parameter("cls.bias");
  EXPECT_EQ(w.dims(), (std::vector<int64_t>{2, 6}));
  EXPECT_EQ(bias.dims(), (std::vector<int64_t>{2}));
  const double bound = 1.0 / std::sqrt(6.0);
  for (int64_t i = 0; i < w.numel(); ++i) EXPECT_LE(std::fabs(w.data_as<float>()[i]), bound);
  EXPECT_TRUE(model.requires_grad("cls.weight"));
  EXPECT_EQ(model.info().outputs.back().name, "cls");
  EXPECT_EQ(model.info().op_histogram.at("Gemm"), 2);

  // The head computes h W^T + b, next to the original output.
  const Tensor x = random_floats({3, 4}, 20);
  Session session(model);
  NamedValues out = session.run({{"x", Value(x)}});
  const Tensor h = session.run({{"x", Value(x)}}, {"y"}).at("y").tensor();  // still there
  EXPECT_EQ(h.dims(), (std::vector<int64_t>{3, 3}));
  const Tensor& cls = out.at("cls").tensor();
  ASSERT_EQ(cls.dims(), (std::vector<int64_t>{3, 2}));
  // Recompute from the backbone's hidden value.
  const Tensor w1 = model.parameter("w1"), b1 = model.parameter("b1");
  for (int64_t r = 0; r < 3; ++r)
    for (int64_t n = 0; n < 2; ++n) {
      double acc = bias.data_as<float>()[n];
      for (int64_t k = 0; k < 6; ++k) {
        double z = b1.data_as<float>()[k];
        for (int64_t i = 0; i < 4; ++i) z += double(x.data_as<float>()[r * 4 + i]) * w1.data_as<float>()[i * 6 + k];
        acc += std::max(z, 0.0) * w.data_as<float>()[n * 6 + k];
      }
      EXPECT_NEAR(cls.data_as<float>()[r * 2 + n], acc, 1e-5);
    }

  model.save(path("head.onnx"));
  Model back = Model::load(path("head.onnx"));
  const ModelInfo info = back.info();
  bool recorded = false;
  for (const auto& [k, v] : info.metadata) recorded = recorded || (k == "tunnx.registered_initializers" && v == "cls.weight,cls.bias");
  EXPECT_TRUE(recorded);
  for (const TensorInfo& t : back.tensors())
    EXPECT_EQ(t.origin, t.name.rfind("cls.", 0) == 0 ? TensorOrigin::kRegistered : TensorOrigin::kImported) << t.name;
  expect_close(run1(back, x, "cls"), cls, 0, "reloaded head");
  EXPECT_EQ(graph_edits(model), (std::vector<std::string>{"head value=h n=2 name=cls seed=3"}));
}

TEST_F(ExtensionTest, HeadOnARank3ValueIsMatMulAndAdd) {
  Model model = Model::load(linear3d());
  add_head(model, {.value = "y", .out_features = 3});
  const ModelInfo info = model.info();
  EXPECT_EQ(info.outputs.back().name, "head");
  EXPECT_EQ(info.outputs.back().shape.to_string(), "[batch,5,3]");
  const Tensor x = random_floats({2, 5, 4}, 21);
  const Tensor y = run1(model, x, "y"), head = run1(model, x, "head");
  ASSERT_EQ(head.dims(), (std::vector<int64_t>{2, 5, 3}));
  const Tensor w = model.parameter("head.weight"), b = model.parameter("head.bias");
  for (int64_t r = 0; r < 10; ++r)
    for (int64_t n = 0; n < 3; ++n) {
      double acc = b.data_as<float>()[n];
      for (int64_t k = 0; k < 6; ++k) acc += double(y.data_as<float>()[r * 6 + k]) * w.data_as<float>()[n * 6 + k];
      EXPECT_NEAR(head.data_as<float>()[r * 3 + n], acc, 1e-5);
    }
}

TEST_F(ExtensionTest, HeadRefusals) {
  Model model = Model::load(mlp());
  EXPECT_EQ(message_of([&] { add_head(model, {.value = "nope", .out_features = 2}); }),
            "new head 'head': the graph has no value 'nope'");
  EXPECT_EQ(message_of([&] { add_head(model, {.value = "h", .out_features = 0}); }),
            "new head 'head': the number of outputs must be positive, got 0");
  EXPECT_EQ(message_of([&] { add_head(model, {.value = "h", .out_features = 2, .name = ""}); }),
            "a new head needs a name");
  EXPECT_EQ(message_of([&] { add_head(model, {.value = "h", .out_features = 2, .name = "z1"}); }),
            "new head 'z1': the graph already has a value named 'z1'");
  add_head(model, {.value = "h", .out_features = 2});
  EXPECT_EQ(message_of([&] { add_head(model, {.value = "h", .out_features = 2}); }),
            "new head 'head': the graph already has a value named 'head'");
  // A value whose last dim is symbolic.
  ModelBuilder b;
  b.input("x", onnx::TensorProto::FLOAT, Dims{"batch", "width"});
  b.node("Relu", {"x"}, {"y"});
  b.output("y", onnx::TensorProto::FLOAT, Dims{"batch", "width"});
  Model sym = Model::load(b.save(path("sym.onnx")));
  EXPECT_EQ(message_of([&] { add_head(sym, {.value = "x", .out_features = 2}); }),
            "new head 'head': the last dim of 'x' is width, not a fixed size");
  EXPECT_TRUE(graph_edits(sym).empty());
}

TEST_F(ExtensionTest, ReplacingOutputsDropsWhatFedOnlyTheOldOnes) {
  Model model = Model::load(mlp());
  add_head(model, {.value = "h", .out_features = 2});
  replace_outputs(model, {"head"});
  const ModelInfo info = model.info();
  ASSERT_EQ(info.outputs.size(), 1u);
  EXPECT_EQ(info.outputs[0].name, "head");
  EXPECT_EQ(info.op_histogram.count("Gemm"), 1u);  // the head's; the old classifier is gone
  EXPECT_EQ(info.op_histogram.at("Gemm"), 1);
  EXPECT_THROW(model.parameter("w2"), Error);
  EXPECT_NO_THROW(model.parameter("w1"));
  EXPECT_EQ(message_of([&] { replace_outputs(model, {"y"}); }), "replacing the outputs: 'y' is not a graph output");
  const Tensor x = random_floats({2, 4}, 22);
  EXPECT_EQ(run1(model, x, "head").dims(), (std::vector<int64_t>{2, 2}));
  model.save(path("replaced.onnx"));
  EXPECT_EQ(Model::load(path("replaced.onnx")).tensors().size(), 4u);  // w1 b1 head.weight head.bias
}

// ---- LoRA ------------------------------------------------------------------------------------------

TEST_F(ExtensionTest, LoraRefusalsNameTheGlobOrWeight) {
  Model model = Model::load(mlp());
  EXPECT_EQ(message_of([&] { add_lora(model, {.glob = "enc.*", .rank = 2}); }), "LoRA: no parameter matches 'enc.*'");
  EXPECT_EQ(message_of([&] { add_lora(model, {.glob = "b*", .rank = 2}); }),
            "LoRA: 'b1' matches 'b*' but no MatMul or Gemm reads it as its weight");
  EXPECT_EQ(message_of([&] { add_lora(model, {.glob = "w*", .rank = 0}); }), "LoRA rank must be positive, got 0");
  EXPECT_EQ(message_of([&] { add_lora(model, {.glob = "w*", .rank = 2, .alpha = -1}); }),
            "LoRA alpha must be a positive number, got -1");
  EXPECT_TRUE(lora_adapters(model).empty());
  EXPECT_TRUE(model.requires_grad("w1"));  // nothing frozen by a refused edit
  add_lora(model, {.glob = "w1", .rank = 2});
  EXPECT_EQ(message_of([&] { add_lora(model, {.glob = "w1", .rank = 2}); }), "LoRA: 'w1' has adapters already");
}

TEST_F(ExtensionTest, LoraAdaptersMergeOnExportAndKeepOnRequest) {
  for (const fs::path& file : {mlp(), linear3d()}) {
    SCOPED_TRACE(file.filename().string());
    Model original = Model::load(file);
    Model model = Model::load(file);
    const bool is_mlp = file.filename() == "mlp.onnx";
    const std::vector<LoraAdapter> added = add_lora(model, {.glob = is_mlp ? "w*" : "lin.weight", .rank = 2, .alpha = 4});
    ASSERT_EQ(added.size(), is_mlp ? 2u : 1u);
    if (is_mlp) {
      EXPECT_EQ(added[0].weight, "w1");  // MatMul: W [in, out]
      EXPECT_EQ(added[0].in, 4);
      EXPECT_EQ(added[0].out, 6);
      EXPECT_EQ(added[1].weight, "w2");  // Gemm transB=1: W [out, in]
      EXPECT_EQ(added[1].in, 6);
      EXPECT_EQ(added[1].out, 3);
    } else {
      EXPECT_EQ(added[0].in, 4);  // read through Transpose: W [out, in]
      EXPECT_EQ(added[0].out, 6);
    }
    // The base model is frozen, the adapters train; B starts at zero, so outputs are unchanged.
    for (const auto& [name, t] : original.named_parameters()) EXPECT_FALSE(model.requires_grad(name)) << name;
    EXPECT_TRUE(model.requires_grad(added[0].lora_a));
    const Tensor x = random_floats(is_mlp ? std::vector<int64_t>{3, 4} : std::vector<int64_t>{2, 5, 4}, 30);
    expect_close(run1(model, x, "y"), run1(original, x, "y"), 1e-6, "B = 0");

    // Give B values; the kept graph and the merged weights must then agree.
    for (const LoraAdapter& a : added) {
      Tensor b = model.parameter(a.lora_b);
      const Tensor r = random_floats(b.dims(), 31);
      std::memcpy(b.mutable_data(), r.data(), r.nbytes());
    }
    const Tensor adapted = run1(model, x, "y");
    SaveOptions keep;
    keep.merge_lora = false;
    model.save(path("kept.onnx"), keep);
    model.save(path("merged.onnx"));
    Model kept = Model::load(path("kept.onnx")), merged = Model::load(path("merged.onnx"));
    expect_close(run1(kept, x, "y"), adapted, 1e-5, "kept export");
    expect_close(run1(merged, x, "y"), adapted, 1e-5, "merged export");
    // The merged export is the original graph with the original names.
    EXPECT_EQ(merged.info().op_histogram, original.info().op_histogram);
    auto names = [](const Model& m) {
      std::vector<std::string> out;
      for (const TensorInfo& t : m.tensors()) out.push_back(t.name);
      return out;
    };
    EXPECT_EQ(names(merged), names(original));
    EXPECT_GT(kept.tensors().size(), original.tensors().size());
    // Saving did not change the model in memory.
    expect_close(run1(model, x, "y"), adapted, 0, "after saving");
  }
}

TEST_F(ExtensionTest, LoraOnAGemmWithPlainBAndAlphaMergesExactly) {
  // Gemm(x, W [4, 3], C, alpha=0.5, beta=2): W is [in, out], and the merged update is divided by alpha.
  ModelBuilder b;
  b.input("x", onnx::TensorProto::FLOAT, Dims{"batch", 4});
  b.initializer(tunnx_test::float_tensor("w", {4, 3}, random_values(12, 80)));
  b.initializer(tunnx_test::float_tensor("c", {3}, random_values(3, 81)));
  onnx::NodeProto& gemm = b.node("Gemm", {"x", "w", "c"}, {"y"}, "gemm");
  onnx::AttributeProto alpha;
  alpha.set_name("alpha");
  alpha.set_type(onnx::AttributeProto::FLOAT);
  alpha.set_f(0.5f);
  gemm.add_attribute()->CopyFrom(alpha);
  alpha.set_name("beta");
  alpha.set_f(2.0f);
  gemm.add_attribute()->CopyFrom(alpha);
  b.output("y", onnx::TensorProto::FLOAT, Dims{"batch", 3});
  Model model = Model::load(b.save(path("gemm.onnx")));
  const std::vector<LoraAdapter> added = add_lora(model, {.glob = "w", .rank = 2, .alpha = 3});
  ASSERT_EQ(added.size(), 1u);
  EXPECT_EQ(added[0].in, 4);
  EXPECT_EQ(added[0].out, 3);
  Tensor lb = model.parameter("w.lora_B");
  const Tensor r = random_floats(lb.dims(), 82);
  std::memcpy(lb.mutable_data(), r.data(), r.nbytes());
  const Tensor x = random_floats({5, 4}, 83);
  const Tensor adapted = run1(model, x, "y");
  // y = 0.5 x W + 2 c + 1.5 (x A^T) B^T, computed here by hand.
  const Tensor w = model.parameter("w"), c = model.parameter("c"), a = model.parameter("w.lora_A");
  for (int64_t i = 0; i < 5; ++i)
    for (int64_t o = 0; o < 3; ++o) {
      double base = 2.0 * c.data_as<float>()[o], lora = 0;
      for (int64_t k = 0; k < 4; ++k) base += 0.5 * x.data_as<float>()[i * 4 + k] * w.data_as<float>()[k * 3 + o];
      for (int64_t q = 0; q < 2; ++q) {
        double down = 0;
        for (int64_t k = 0; k < 4; ++k) down += double(x.data_as<float>()[i * 4 + k]) * a.data_as<float>()[q * 4 + k];
        lora += down * lb.data_as<float>()[o * 2 + q];
      }
      EXPECT_NEAR(adapted.data_as<float>()[i * 3 + o], base + 1.5 * lora, 1e-5);
    }
  model.save(path("merged.onnx"));
  expect_close(run1(Model::load(path("merged.onnx")), x, "y"), adapted, 1e-5, "merged Gemm");
}

TEST_F(ExtensionTest, AdaptersSaveAndLoadAlone) {
  Model model = Model::load(mlp());
  add_lora(model, {.glob = "w*", .rank = 2, .alpha = 4, .seed = 1});
  Tensor b = model.parameter("w1.lora_B");
  const Tensor r = random_floats(b.dims(), 40);
  std::memcpy(b.mutable_data(), r.data(), r.nbytes());
  save_adapters(model, path("adapters.safetensors"));
  const SafetensorsFile file = load_safetensors(path("adapters.safetensors"));
  EXPECT_EQ(file.tensors.size(), 4u);

  Model other = Model::load(mlp());
  add_lora(other, {.glob = "w*", .rank = 2, .alpha = 4, .seed = 2});  // another seed: other A values
  load_adapters(other, path("adapters.safetensors"));
  for (const char* n : {"w1.lora_A", "w1.lora_B", "w2.lora_A", "w2.lora_B"})
    EXPECT_EQ(bytes_of(other.parameter(n)), bytes_of(model.parameter(n))) << n;

  Model wrong_rank = Model::load(mlp());
  add_lora(wrong_rank, {.glob = "w*", .rank = 3, .alpha = 4});
  EXPECT_EQ(message_of([&] { load_adapters(wrong_rank, path("adapters.safetensors")); }),
            path("adapters.safetensors").string() + ": the adapters were made with lora_rank 2, this model's LoRA has 3");
  Model no_lora = Model::load(mlp());
  EXPECT_EQ(message_of([&] { load_adapters(no_lora, path("adapters.safetensors")); }),
            path("adapters.safetensors").string() +
                ": the model has no LoRA adapters to load these into (add the same --lora first)");
  EXPECT_EQ(message_of([&] { save_adapters(no_lora, path("none.safetensors")); }), "the model has no LoRA adapters to save");
  EXPECT_FALSE(fs::exists(path("none.safetensors")));
}

TEST_F(ExtensionTest, TrainingLoraLeavesTheBackboneByteIdentical) {
  Model model = Model::load(mlp());
  std::map<std::string, std::string> before;
  for (const auto& [name, t] : model.state_dict()) before[name] = bytes_of(t);
  add_lora(model, {.glob = "w*", .rank = 2});
  TrainerOptions options;
  options.loss.kind = LossKind::kMse;
  options.loss.target = "target";
  options.optimizer.kind = OptimizerKind::kAdamW;
  options.optimizer.lr = 0.05;
  Trainer trainer(model, options);
  const Tensor x = random_floats({8, 4}, 50), target = random_floats({8, 3}, 51);
  double first = 0, last = 0;
  for (int i = 0; i < 20; ++i) {
    const double loss = trainer.step({{"x", Value(x)}, {"target", Value(target)}}).loss;
    if (i == 0) first = loss;
    last = loss;
  }
  EXPECT_LT(last, first);
  for (const auto& [name, bytes] : before) EXPECT_EQ(bytes_of(model.parameter(name)), bytes) << name;
  // The adapters moved (B from zero).
  const Tensor b = model.parameter("w2.lora_B");
  double norm = 0;
  for (int64_t i = 0; i < b.numel(); ++i) norm += std::fabs(b.data_as<float>()[i]);
  EXPECT_GT(norm, 0);
}

TEST_F(ExtensionTest, CheckpointsRecordTheEditsAndLoadOnlyOntoTheSameOnes) {
  Model model = Model::load(mlp());
  add_head(model, {.value = "h", .out_features = 2});
  add_lora(model, {.glob = "w1", .rank = 2});
  TrainerOptions options;
  options.loss.output = "head";
  options.optimizer.lr = 0.1;
  Trainer trainer(model, options);
  trainer.step({{"x", Value(random_floats({4, 4}, 70))}, {"target", Value(random_floats({4, 2}, 71))}});
  const fs::path saved = save_checkpoint(path("ckpt"), model, trainer, {0, 1, 1});

  Model same = Model::load(mlp());
  add_head(same, {.value = "h", .out_features = 2});
  add_lora(same, {.glob = "w1", .rank = 2});
  load_checkpoint_weights(saved, same);
  EXPECT_EQ(bytes_of(same.parameter("w1.lora_B")), bytes_of(model.parameter("w1.lora_B")));
  EXPECT_EQ(bytes_of(same.parameter("head.weight")), bytes_of(model.parameter("head.weight")));

  Model plain = Model::load(mlp());
  EXPECT_EQ(message_of([&] { load_checkpoint_weights(saved, plain); }),
            (saved / "state.json").string() +
                ": was made on a model with graph edits [head value=h n=2 name=head seed=0; lora glob=w1 rank=2 "
                "alpha=8 seed=0], but this model has []");
}

// ---- Trainable inputs -------------------------------------------------------------------------------

TEST_F(ExtensionTest, BoundInputBecomesATrainedParameter) {
  Model model = Model::load(mlp());
  const Tensor value = random_floats({2, 4}, 60);
  const std::string initial = bytes_of(value);
  bind_input(model, "x", value);  // shared, as torch's register_parameter keeps the tensor it is given
  EXPECT_TRUE(model.info().inputs.empty());
  EXPECT_TRUE(model.requires_grad("x"));
  Session session(model);
  EXPECT_EQ(session.run({}).at("y").tensor().dims(), (std::vector<int64_t>{2, 3}));
  // Input optimisation: only x trains.
  model.requires_grad("*", false);
  model.requires_grad("x", true);
  TrainerOptions options;
  options.optimizer.lr = 0.1;
  Trainer trainer(model, options);
  const Tensor target = random_floats({2, 3}, 61);
  trainer.step({{"target", Value(target)}});
  EXPECT_NE(bytes_of(model.parameter("x")), initial);
  model.save(path("bound.onnx"));
  Model back = Model::load(path("bound.onnx"));
  EXPECT_TRUE(back.info().inputs.empty());
}

TEST_F(ExtensionTest, BindInputRefusals) {
  Model model = Model::load(mlp());
  EXPECT_EQ(message_of([&] { bind_input(model, "w1", random_floats({4, 6}, 1)); }),
            "binding input 'w1': the model has no graph input of that name");
  EXPECT_EQ(message_of([&] { bind_input(model, "x", random_floats({2, 5}, 1)); }),
            "binding input 'x': the input is declared [batch,4] but the value is [2,5]");
  EXPECT_EQ(message_of([&] { bind_input(model, "x", Tensor::from_vector<int64_t>({1, 4}, {1, 2, 3, 4})); }),
            "binding input 'x': the input is float32 but the value is int64");
  EXPECT_EQ(model.info().inputs.size(), 1u);  // still an input after the refusals
}

}  // namespace
