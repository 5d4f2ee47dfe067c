// Model extensions (tunnx/extend.h) against PyTorch: the fixtures of scripts/make_extension_fixtures.py.
// A new head on an intermediate value of a frozen backbone (the CNN's BatchNorm still in train mode,
// so its running statistics move), and LoRA adapters on the Linear weights of an MLP (Gemm) and of an
// encoder block (MatMul through Transpose), trained K=5 steps with AdamW in tunnx from PyTorch's initial
// values, give PyTorch's loss at every step and end with its heads, adapters and running statistics;
// the backbone stays byte for byte as the file had it. A LoRA model exported merged (the original
// graph) and with the adapters kept computes the same outputs, PyTorch's.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <string>
#include <vector>

#include "tests/importer/model_builder.h"
#include "tunnx/extend.h"
#include "tests/train/parity_util.h"
#include "tunnx/tunnx.h"

namespace {

namespace fs = std::filesystem;
using namespace tunnx;

const fs::path kDir = fs::path(TUNNX_SOURCE_DIR) / "tests" / "models" / "extension";
constexpr int kSteps = 5;
constexpr int64_t kBatch = 8;

using tunnx_test::close;
using tunnx_test::rows;
using tunnx_test::value_at;

// The worst differences seen: relative where close() allows a relative error (|b| >= 1e-2), absolute
// over all elements.
struct Worst {
  double rel = 0, abs = 0;
  void add(double a, double b) {
    if (std::abs(b) >= 1e-2) rel = std::max(rel, std::abs(a - b) / std::abs(b));
    abs = std::max(abs, std::abs(a - b));
  }
  void add(const Worst& o) {
    rel = std::max(rel, o.rel);
    abs = std::max(abs, o.abs);
  }
};
std::ostream& operator<<(std::ostream& os, const Worst& w) { return os << "rel " << w.rel << " abs " << w.abs; }

// Every element of `got` close() to `want`.
Worst expect_close(const Tensor& got, const Tensor& want, const std::string& what) {
  Worst worst;
  EXPECT_EQ(got.dims(), want.dims()) << what;
  EXPECT_EQ(got.dtype(), want.dtype()) << what;
  if (got.dims() != want.dims() || got.dtype() != want.dtype()) return worst;
  int bad = 0;
  for (int64_t i = 0; i < want.numel(); ++i) {
    const double a = value_at(got, i), b = value_at(want, i);
    worst.add(a, b);
    if (!close(a, b)) ++bad;
  }
  EXPECT_EQ(bad, 0) << what << ": " << bad << " of " << want.numel() << " elements differ; worst " << worst;
  return worst;
}

std::string meta(const SafetensorsFile& file, const std::string& key) {
  for (const auto& [k, v] : file.metadata)
    if (k == key) return v;
  ADD_FAILURE() << "fixture metadata has no " << key;
  return "";
}

// What scripts/make_extension_fixtures.py wrote for one fixture.
struct Fixture {
  std::string name;
  Tensor x, y, losses;
  SafetensorsFile init;
  StateDict expected;

  explicit Fixture(const std::string& n)
      : name(n),
        x(load_npy(kDir / (n + ".x.npy"))),
        y(load_npy(kDir / (n + ".y.npy"))),
        losses(load_npy(kDir / (n + ".losses.npy"))),
        init(load_safetensors(kDir / (n + ".init.safetensors"))),
        expected(load_safetensors(kDir / (n + ".expected.safetensors")).tensors) {}
  fs::path onnx() const { return kDir / (name + ".onnx"); }
};

// AdamW as the script's: lr 0.01, weight_decay 0.01, PyTorch's betas and eps.
TrainerOptions adamw(const std::string& loss, const std::string& output) {
  TrainerOptions options;
  options.loss.kind = loss_kind_from_string(loss);
  options.loss.output = output;
  options.optimizer.kind = OptimizerKind::kAdamW;
  options.optimizer.lr = 0.01;
  options.optimizer.weight_decay = 0.01;
  options.threads = 1;
  return options;
}

// K steps on batches [8k, 8k + 8), each loss compared with PyTorch's.
Worst train_and_compare_losses(Trainer& trainer, const Fixture& f) {
  Worst worst;
  for (int k = 0; k < kSteps; ++k) {
    StepResult r = trainer.step({{"input", rows(f.x, k * kBatch, kBatch)}, {"target", rows(f.y, k * kBatch, kBatch)}});
    EXPECT_TRUE(r.updated);
    const double want = f.losses.data_as<double>()[k];
    worst.add(r.loss, want);
    EXPECT_TRUE(close(r.loss, want)) << "step " << k << ": tunnx " << r.loss << ", torch " << want;
  }
  EXPECT_EQ(trainer.steps(), kSteps);
  return worst;
}

// The original file's Parameters and buffers, except those named in `moving`, are byte for byte the
// same in `model`.
void expect_backbone_unchanged(const Model& model, const Model& original, const StateDict& moving) {
  auto moves = [&](const std::string& name) {
    return std::any_of(moving.begin(), moving.end(), [&](const auto& e) { return e.first == name; });
  };
  size_t checked = 0;
  for (const auto& [name, want] : original.state_dict()) {
    if (moves(name)) continue;
    SCOPED_TRACE(name);
    EXPECT_FALSE(model.requires_grad(name));
    EXPECT_TRUE(model.parameter(name).equals(want)) << name << " moved";
    ++checked;
  }
  EXPECT_GT(checked, 0u);
}

// ---- Heads ---------------------------------------------------------------------------------------------

class HeadParity : public ::testing::TestWithParam<std::string> {};

TEST_P(HeadParity, LossesHeadAndRunningStatisticsMatchPyTorch) {
  const Fixture f(GetParam());
  Model model = Model::load(f.onnx());
  const Model original = Model::load(f.onnx());
  const std::string head = meta(f.init, "name");

  HeadOptions ho;
  ho.value = meta(f.init, "value");
  ho.out_features = std::stoll(meta(f.init, "out_features"));
  ho.name = head;
  add_head(model, ho);
  model.requires_grad("*", false);
  EXPECT_EQ(model.requires_grad(head + ".*", true), 2u);
  // PyTorch's initial head (tunnx draws its own from another generator).
  const LoadStateDictResult loaded = model.load_state_dict(f.init.tensors, /*strict=*/false);
  EXPECT_TRUE(loaded.unexpected_keys.empty());
  for (const auto& [name, want] : f.init.tensors) EXPECT_TRUE(model.parameter(name).equals(want)) << name;

  Trainer trainer(model, adamw(meta(f.init, "loss"), head));
  EXPECT_EQ(trainer.trainable(), (std::vector<std::string>{head + ".weight", head + ".bias"}));
  const Worst loss_worst = train_and_compare_losses(trainer, f);

  Worst worst;
  for (const auto& [name, want] : f.expected) worst.add(expect_close(model.parameter(name), want, name));
  std::cout << "[ parity   ] " << f.name << ": worst differences: losses " << loss_worst
            << ", head and running statistics " << worst << "\n";
  // The running statistics moved (BatchNorm in train mode), and nothing else of the backbone did.
  for (const auto& [name, want] : f.expected) {
    if (name.find("running_") == std::string::npos) continue;
    EXPECT_FALSE(original.parameter(name).equals(want)) << name;
  }
  expect_backbone_unchanged(model, original, f.expected);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, HeadParity, ::testing::Values("cnn_head", "encoder_head"),
                         [](const auto& info) { return info.param; });

// ---- LoRA ----------------------------------------------------------------------------------------------

class LoraParity : public tunnx_test::TempDirTest, public ::testing::WithParamInterface<std::string> {};

std::vector<std::string> names(const Model& model) {
  std::vector<std::string> out;
  for (const TensorInfo& t : model.tensors()) out.push_back(t.name);
  return out;
}

TEST_P(LoraParity, LossesAdaptersAndExportsMatchPyTorch) {
  const Fixture f(GetParam());
  Model model = Model::load(f.onnx());
  const Model original = Model::load(f.onnx());

  LoraOptions lo;
  lo.glob = meta(f.init, "lora_glob");
  lo.rank = std::stoll(meta(f.init, "lora_rank"));
  lo.alpha = std::stod(meta(f.init, "lora_alpha"));
  const std::vector<LoraAdapter> adapters = add_lora(model, lo);
  ASSERT_EQ(adapters.size() * 2, f.init.tensors.size());
  // PyTorch's A and a random B (PEFT's zeros would make the first step trivial), through the adapters
  // file format the metadata describes.
  load_adapters(model, kDir / (f.name + ".init.safetensors"));
  for (const auto& [name, want] : f.init.tensors) EXPECT_TRUE(model.parameter(name).equals(want)) << name;

  Trainer trainer(model, adamw(meta(f.init, "loss"), ""));
  std::vector<std::string> trainable = trainer.trainable(), want_trainable;
  for (const auto& [name, t] : f.init.tensors) want_trainable.push_back(name);
  std::sort(trainable.begin(), trainable.end());
  std::sort(want_trainable.begin(), want_trainable.end());
  EXPECT_EQ(trainable, want_trainable);
  const Worst loss_worst = train_and_compare_losses(trainer, f);

  Worst worst;
  for (const auto& [name, want] : f.expected) worst.add(expect_close(model.parameter(name), want, name));
  expect_backbone_unchanged(model, original, {});

  // Both exports compute what the trained model computes in PyTorch, and each other's outputs.
  const fs::path merged = path("merged.onnx"), kept = path("kept.onnx");
  model.save(merged);
  SaveOptions keep;
  keep.merge_lora = false;
  model.save(kept, keep);
  const Model merged_model = Model::load(merged), kept_model = Model::load(kept);
  // The merged export is the original graph with the adapters folded into the weights.
  EXPECT_EQ(merged_model.info().node_count, original.info().node_count);
  EXPECT_EQ(names(merged_model), names(original));
  EXPECT_GT(kept_model.info().node_count, original.info().node_count);
  for (const auto& [name, t] : f.init.tensors)
    EXPECT_TRUE(kept_model.parameter(name).equals(model.parameter(name))) << name;
  // The model itself still holds the unmerged weights after both saves.
  expect_backbone_unchanged(model, original, {});

  const Tensor torch_out = load_npy(kDir / (f.name + ".expected_output.npy"));
  const NamedValues inputs{{"input", f.x}};
  const Tensor merged_out = Session(merged_model, {.threads = 1}).run(inputs).at("output").tensor();
  const Tensor kept_out = Session(kept_model, {.threads = 1}).run(inputs).at("output").tensor();
  const Tensor live_out = Session(model, {.threads = 1}).run(inputs).at("output").tensor();
  const Worst merged_vs_kept = expect_close(merged_out, kept_out, "merged vs kept export");
  expect_close(live_out, kept_out, "trained model vs kept export");
  // The trained adapters on their own, loaded onto a fresh copy of the file, compute the same.
  save_adapters(model, path("adapters.safetensors"));
  Model fresh = Model::load(f.onnx());
  add_lora(fresh, lo);
  load_adapters(fresh, path("adapters.safetensors"));
  EXPECT_TRUE(Session(fresh, {.threads = 1}).run(inputs).at("output").tensor().equals(live_out));
  // Against PyTorch: its float32 forward sums in another order; outputs near zero get an absolute
  // allowance of 1e-6.
  Comparison c = compare(Value(torch_out), Value(merged_out), 1e-5, 1e-6);
  EXPECT_TRUE(c.ok) << c.detail;
  Worst vs_torch;
  for (int64_t i = 0; i < torch_out.numel(); ++i) vs_torch.add(value_at(merged_out, i), value_at(torch_out, i));
  std::cout << "[ parity   ] " << f.name << ": worst differences: losses " << loss_worst << ", adapters " << worst
            << ", merged vs kept " << merged_vs_kept << ", merged export vs torch outputs " << vs_torch << "\n";
}

INSTANTIATE_TEST_SUITE_P(Fixtures, LoraParity, ::testing::Values("mlp_lora", "encoder_lora"),
                         [](const auto& info) { return info.param; });

}  // namespace
