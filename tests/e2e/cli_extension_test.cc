// `tunnx train` extending the model it loads (tools/train_edits.h): new heads (--add-head,
// --replace-output), LoRA (--lora, --keep-lora, --save-adapters, --adapters), trainable inputs
// (--bind-input), a resume of an edited run, every refusal with its message, and the transfer-learning
// demo of the README: digits 0-4 first, then a new ten-class head on the frozen backbone.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <iostream>

#include "tests/e2e/train_harness.h"
#include "tests/e2e/venv_python.h"

namespace tunnx::e2e {
namespace {

using nlohmann::json;

const fs::path kMlp = kTrainFixtures / "mlp.onnx";  // Gemm fc1 [32,20] -> Relu -> fc2 [16,32] -> Tanh -> fc3 [5,16]
const std::string kPenultimate = "/relu_1/Relu_output_0";  // [batch,64]: what the digits CNN's last Gemm reads

std::vector<std::string> with(std::vector<std::string> args, const std::vector<std::string>& more) {
  args.insert(args.end(), more.begin(), more.end());
  return args;
}

// The MLP fixture's 40 samples as a .npz: input [40,20], label [40] (5 classes).
fs::path mlp_data(const fs::path& folder) {
  const fs::path out = folder / "mlp.npz";
  save_npz(out, {{"input", load_npy(kTrainFixtures / "mlp.x.npy")}, {"label", load_npy(kTrainFixtures / "mlp.y.npy")}});
  return out;
}

// The samples of a digits file whose label passes `keep`, as a new .npz (C++ API, no Python).
fs::path digits_where(const fs::path& from, const fs::path& out, bool (*keep)(int64_t)) {
  const Dataset data = Dataset::load_npz(from);
  const Tensor& labels = data.array("label");
  std::vector<int64_t> rows;
  for (int64_t i = 0; i < labels.numel(); ++i)
    if (keep(labels.data_as<int64_t>()[i])) rows.push_back(i);
  StateDict arrays;
  for (const auto& [key, value] : data.batch(rows)) arrays.emplace_back(key, value.tensor());
  save_npz(out, arrays);
  return out;
}

// `tunnx run MODEL [--input input=X]` into `dir`; every output as <name>.npy there.
void run_model(const fs::path& model, const fs::path& x, const fs::path& dir) {
  std::vector<std::string> args{"run", model.string(), "--output-dir", dir.string()};
  if (!x.empty()) args.insert(args.end(), {"--input", "input=" + x.string()});
  const ProcessResult r = run_cli(args);
  ASSERT_EQ(r.exit_code, 0) << r.describe();
}

// Largest |a - b| / max(1, |b|) over two arrays of the same shape.
double max_difference(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.dims(), b.dims());
  double worst = 0;
  for (int64_t i = 0; i < std::min(a.numel(), b.numel()); ++i) {
    const double x = a.data_as<float>()[i], y = b.data_as<float>()[i];
    worst = std::max(worst, std::abs(x - y) / std::max(1.0, std::abs(y)));
  }
  return worst;
}

// ONNX Runtime runs `model` (on x.npy, or with no inputs when `x` is empty) and every output must
// equal tunnx's <name>.npy in `tunnx_outputs` within 1e-5. Skips without the venv (fails under CI).
void expect_onnxruntime_matches(const fs::path& folder, const fs::path& model, const fs::path& x,
                                const fs::path& tunnx_outputs) {
  if (!venv_python_has("numpy, onnxruntime")) GTEST_SKIP() << "no .venv with onnxruntime (scripts/setup_venv.sh)";
  const std::string script =
      "import sys, numpy as np, onnxruntime as ort\n"
      "s = ort.InferenceSession(sys.argv[1], providers=['CPUExecutionProvider'])\n"
      "feeds = {i.name: np.load(sys.argv[2]) for i in s.get_inputs()}\n"
      "bad = 0\n"
      "for o, y in zip(s.get_outputs(), s.run(None, feeds)):\n"
      "    t = np.load(sys.argv[3] + '/' + o.name + '.npy')\n"
      "    ok = t.shape == y.shape and np.allclose(t, y, rtol=1e-5, atol=1e-5)\n"
      "    print(o.name, y.shape, 'max abs diff', float(np.max(np.abs(y - t))) if t.shape == y.shape else 'shape', ok)\n"
      "    bad += not ok\n"
      "sys.exit(1 if bad else 0)\n";
  const ProcessResult r = run_python(folder, script, {model.string(), x.empty() ? "-" : x.string(), tunnx_outputs.string()});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
}

// ------------------------------------------------------------------------------------------------
// Refusals: one line, exit 1, before any step, nothing written (no --save, --metrics, checkpoint).

struct Refusal {
  std::string name;
  std::vector<std::string> args;  // after MODEL --data DATA --target label --loss cross_entropy
  std::string message;
  bool data_has_input = true;     // false: the .npz holds only the label (for --bind-input)
};
void PrintTo(const Refusal& c, std::ostream* os) { *os << c.name; }
class CliExtensionRefusal : public ::testing::TestWithParam<Refusal> {};

TEST_P(CliExtensionRefusal, OneLineExitOneNothingWritten) {
  const Refusal& c = GetParam();
  TempFolder temp;
  const Dataset digits = Dataset::load_npz(kDigits / "test.npz");
  const NamedValues b = digits.batch(std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7});
  const Tensor x = b.at("input").tensor(), y = b.at("label").tensor();
  const fs::path data = temp.model_dir() / "data.npz";
  if (c.data_has_input) save_npz(data, {{"input", x}, {"label", y}});
  else save_npz(data, {{"label", y}});
  // X.npy fits the input; SMALL.npy has the wrong image size; F64.npy the wrong dtype.
  save_npy(temp.model_dir() / "X.npy", x);
  save_npy(temp.model_dir() / "SMALL.npy", Tensor(DataType::kFloat32, {8, 1, 4, 4}));
  save_npy(temp.model_dir() / "F64.npy", Tensor(DataType::kFloat64, {8, 1, 8, 8}));
  const fs::path out = temp.root() / "out";
  fs::create_directory(out);
  std::vector<std::string> args{"train", kFreshDigitsModel.string(), "--data", data.string(), "--target", "label",
                                "--loss", "cross_entropy", "--threads", "1",
                                "--save", (out / "tuned.onnx").string(), "--metrics", (out / "m.jsonl").string(),
                                "--checkpoint-dir", (out / "ckpt").string()};
  for (std::string a : c.args) {
    for (const char* token : {"OUT/", "DIR/"}) {
      const size_t at = a.find(token);
      if (at != std::string::npos)
        a = a.substr(0, at) + ((token[0] == 'O' ? out : temp.model_dir()) / a.substr(at + 4)).string();
    }
    args.push_back(a);
  }
  const ProcessResult r = run_cli(args);
  EXPECT_TRUE(refused_with(r, c.message));
  EXPECT_EQ(r.out, "");
  EXPECT_TRUE(fs::is_empty(out)) << "the refused run wrote into " << out;
}

const std::string kHeadValue = kPenultimate;

INSTANTIATE_TEST_SUITE_P(
    Refusals, CliExtensionRefusal,
    ::testing::Values(
        // --add-head VALUE:N[:NAME]
        Refusal{"head_no_fields", {"--add-head", "fc"}, "--add-head 'fc': expected VALUE:N[:NAME]"},
        Refusal{"head_n_zero", {"--add-head", kHeadValue + ":0"}, "--add-head '" + kHeadValue + ":0': N must be a positive integer, got '0'"},
        Refusal{"head_n_negative", {"--add-head", kHeadValue + ":-3:cls"}, "N must be a positive integer, got '-3'"},
        Refusal{"head_n_fraction", {"--add-head", kHeadValue + ":2.5"}, "N must be a positive integer, got '2.5'"},
        Refusal{"head_n_word", {"--add-head", kHeadValue + ":ten:cls"}, "N must be a positive integer, got 'ten'"},
        Refusal{"head_name_without_n", {"--add-head", "value:cls"}, "--add-head 'value:cls': N must be a positive integer, got 'cls'"},
        Refusal{"head_empty_name", {"--add-head", kHeadValue + ":10:"}, "NAME is empty"},
        Refusal{"head_empty_value", {"--add-head", ":10"}, "--add-head ':10': VALUE is empty"},
        Refusal{"head_unknown_value", {"--add-head", "no/such:value:10", "--output", "head"},
                "--add-head 'no/such:value:10': new head 'head': the graph has no value 'no/such:value'"},
        Refusal{"head_name_taken", {"--add-head", kHeadValue + ":10:logits"}, "new head 'logits': the graph already has a value named 'logits'"},
        Refusal{"head_weight_name_taken", {"--add-head", kHeadValue + ":10:fc1"}, "new head 'fc1': the graph already has a value named 'fc1.weight'"},
        Refusal{"head_twice", {"--add-head", kHeadValue + ":10:a", "--add-head", kHeadValue + ":4:a", "--output", "a"},
                "--add-head '" + kHeadValue + ":4:a': new head 'a': the graph already has a value named 'a'"},
        Refusal{"head_int_value", {"--add-head", "onnx::Reshape_17:10", "--output", "head"},
                "'onnx::Reshape_17' is int64; a head reads float32 or float64"},
        Refusal{"head_output_not_named", {"--add-head", kHeadValue + ":10"},
                "the model has 2 outputs (logits, head): name the one the loss reads with --output"},
        Refusal{"head_too_few_classes", {"--add-head", kHeadValue + ":3:small", "--output", "small"},
                "tensor 'label': holds class index 6 but the output 'small' has 3 classes"},
        Refusal{"replace_output_without_head", {"--replace-output"}, "--replace-output needs --add-head: the heads become the outputs"},
        Refusal{"replaced_output_gone", {"--add-head", kHeadValue + ":10", "--replace-output", "--output", "logits"},
                "--output 'logits' is not an output of the model (outputs: head)"},
        // --lora GLOB:RANK[:ALPHA]
        Refusal{"lora_no_rank", {"--lora", "fc1.weight"}, "--lora 'fc1.weight': expected GLOB:RANK[:ALPHA]"},
        Refusal{"lora_rank_zero", {"--lora", "fc1.weight:0"}, "--lora 'fc1.weight:0': RANK must be a positive integer, got '0'"},
        Refusal{"lora_rank_negative", {"--lora", "fc1.weight:-2:8"}, "RANK must be a positive integer, got '-2'"},
        Refusal{"lora_rank_word", {"--lora", "fc1.weight:four"}, "RANK must be a positive integer, got 'four'"},
        Refusal{"lora_rank_fraction", {"--lora", "fc1.weight:1.5"}, "RANK must be a positive integer, got '1.5'"},
        Refusal{"lora_alpha_zero", {"--lora", "fc1.weight:4:0"}, "--lora 'fc1.weight:4:0': ALPHA must be a positive number, got '0'"},
        Refusal{"lora_alpha_negative", {"--lora", "fc1.weight:4:-1"}, "ALPHA must be a positive number, got '-1'"},
        Refusal{"lora_alpha_word", {"--lora", "fc1.weight:4:inf"}, "ALPHA must be a positive number, got 'inf'"},
        Refusal{"lora_empty_glob", {"--lora", ":4"}, "--lora ':4': GLOB is empty"},
        Refusal{"lora_matches_nothing", {"--lora", "encoder.*:4"}, "--lora 'encoder.*:4': LoRA: no parameter matches 'encoder.*'"},
        Refusal{"lora_not_a_product_weight", {"--lora", "conv1.weight:4"},
                "LoRA: 'conv1.weight' matches 'conv1.weight' but no MatMul or Gemm reads it as its weight"},
        Refusal{"lora_twice", {"--lora", "fc1.weight:4", "--lora", "fc*.weight:2"}, "LoRA: 'fc1.weight' has adapters already"},
        Refusal{"keep_and_merge", {"--lora", "fc1.weight:4", "--keep-lora", "--merge-lora"}, "--keep-lora and --merge-lora exclude each other"},
        Refusal{"keep_without_lora", {"--keep-lora"}, "--keep-lora and --merge-lora are options of --lora"},
        Refusal{"merge_without_lora", {"--merge-lora"}, "--keep-lora and --merge-lora are options of --lora"},
        Refusal{"save_adapters_without_lora", {"--save-adapters", "OUT/a.safetensors"}, "--save-adapters needs --lora: there are no adapters to save"},
        Refusal{"adapters_without_lora", {"--adapters", "DIR/X.npy"}, "--adapters needs --lora: the same --lora the adapters were trained with"},
        Refusal{"adapters_missing", {"--lora", "fc1.weight:4", "--adapters", "OUT/none.safetensors"}, "--adapters: no such file"},
        Refusal{"adapters_not_safetensors", {"--lora", "fc1.weight:4", "--adapters", "DIR/X.npy"}, "X.npy"},
        Refusal{"save_adapters_folder_missing", {"--lora", "fc1.weight:4", "--save-adapters", "OUT/x/a.safetensors"}, "its folder does not exist"},
        Refusal{"save_adapters_is_folder", {"--lora", "fc1.weight:4", "--save-adapters", "DIR/"}, "is a folder, not a file"},
        Refusal{"lora_all_frozen", {"--lora", "fc1.weight:4", "--freeze", "*.lora_*"}, "no Parameter requires a gradient (all frozen)"},
        // --bind-input INPUT=FILE.npy
        Refusal{"bind_no_file", {"--bind-input", "input"}, "--bind-input 'input': expected INPUT=FILE.npy", false},
        Refusal{"bind_empty_input", {"--bind-input", "=DIR/X.npy"}, "expected INPUT=FILE.npy", false},
        Refusal{"bind_missing_npy", {"--bind-input", "input=OUT/none.npy"}, "none.npy: --bind-input 'input=", false},
        Refusal{"bind_unknown_input", {"--bind-input", "pixels=DIR/X.npy"},
                "binding input 'pixels': the model has no graph input of that name", false},
        Refusal{"bind_twice", {"--bind-input", "input=DIR/X.npy", "--bind-input", "input=DIR/X.npy"},
                "--bind-input: input 'input' is bound twice", false},
        Refusal{"bind_shape", {"--bind-input", "input=DIR/SMALL.npy"},
                "binding input 'input': the input is declared [batch,1,8,8] but the value is [8,1,4,4]", false},
        Refusal{"bind_dtype", {"--bind-input", "input=DIR/F64.npy"}, "the input is float32 but the value is float64", false},
        Refusal{"bind_input_still_in_data", {"--bind-input", "input=DIR/X.npy"},
                "holds an array 'input', but --bind-input makes that input a trained Parameter: leave it out"}),
    [](const auto& info) { return info.param.name; });

// ------------------------------------------------------------------------------------------------
// A new head

// A head on the CNN's penultimate value beside the old output, trained through --output, saved:
// `tunnx params` lists its tensors as registered, `tunnx run` gives both outputs, ONNX Runtime agrees.
TEST(CliExtension, HeadTrainedThroughOutputIsSavedAndRunsInOnnxRuntime) {
  TempFolder temp;
  const fs::path data = digits_subset(temp.root(), "train.npz", 128);
  const fs::path saved = temp.model_dir() / "with head.onnx";
  const ProcessResult r = run_cli({"train", kFreshDigitsModel.string(), "--data", data.string(), "--target", "label",
                                   "--loss", "cross_entropy", "--optimizer", "adamw", "--lr", "0.01", "--epochs", "2",
                                   "--batch-size", "16", "--threads", "1", "--add-head", kPenultimate + ":10:digits",
                                   "--output", "digits", "--freeze", "*", "--unfreeze", "digits.*", "--save", saved.string()});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_TRUE(contains(r.out, "training 2 Parameters")) << r.out;

  const Model model = Model::load(saved);
  const ModelInfo info = model.info();
  ASSERT_EQ(info.outputs.size(), 2u);
  EXPECT_EQ(info.outputs[0].name, "logits");
  EXPECT_EQ(info.outputs[1].name, "digits");
  // The frozen model is byte-identical; the head has trained away from its seeded start.
  const auto before = tensors_of(kFreshDigitsModel), after = tensors_of(saved);
  for (const auto& [name, t] : before) EXPECT_TRUE(after.at(name).equals(t) || contains(name, "running_")) << name;
  ASSERT_TRUE(after.count("digits.weight") && after.count("digits.bias"));
  EXPECT_EQ(after.at("digits.weight").dims(), (std::vector<int64_t>{10, 64}));

  const ProcessResult params = run_cli({"params", saved.string()});
  ASSERT_EQ(params.exit_code, 0) << params.describe();
  EXPECT_TRUE(contains(params.out, "origin")) << params.out;
  EXPECT_TRUE(contains(params.out, "registered")) << params.out;
  const json listed = json::parse(run_cli({"params", "--json", saved.string()}).out);
  for (const auto& t : listed["tensors"])
    EXPECT_EQ(t["origin"], contains(t["name"].get<std::string>(), "digits.") ? "registered" : "imported") << t.dump();

  const fs::path x = temp.root() / "x.npy";
  save_npy(x, Dataset::load_npz(kDigits / "test.npz").array("input"));
  const fs::path outputs = temp.root() / "tunnx";
  run_model(saved, x, outputs);
  EXPECT_EQ(load_npy(outputs / "digits.npy").dims(), (std::vector<int64_t>{359, 10}));
  EXPECT_EQ(load_npy(outputs / "logits.npy").dims(), (std::vector<int64_t>{359, 10}));
  expect_onnxruntime_matches(temp.root(), saved, x, outputs);
}

// Repeated heads get seed + index (different starts); repeated --freeze options all apply.
TEST(CliExtension, RepeatedHeadsAndFreezesAccumulate) {
  TempFolder temp;
  const fs::path data = digits_subset(temp.root(), "train.npz", 32);
  const fs::path saved = temp.model_dir() / "two heads.onnx";
  const ProcessResult r = run_cli({"train", kFreshDigitsModel.string(), "--data", data.string(), "--target", "label",
                                   "--loss", "cross_entropy", "--threads", "1", "--seed", "5", "--add-head",
                                   kPenultimate + ":10:a", "--add-head", kPenultimate + ":10:b", "--output", "a",
                                   "--freeze", "conv1.*", "--freeze", "fc1.*", "--freeze", "b.*", "--lr", "0.1",
                                   "--save", saved.string()});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  const auto before = tensors_of(kFreshDigitsModel), after = tensors_of(saved);
  for (const char* name : {"conv1.weight", "conv1.bias", "fc1.weight", "fc1.bias"})
    EXPECT_TRUE(after.at(name).equals(before.at(name))) << name << " was frozen";
  EXPECT_FALSE(after.at("bn1.weight").equals(before.at("bn1.weight")));
  EXPECT_EQ(after.at("b.weight").dims(), (std::vector<int64_t>{10, 64}));
  // a (seed 5) and b (seed 6) start apart; b, frozen, is still at its start: the same as a one-head run
  // with seed 6 gives its head.
  const fs::path single = temp.model_dir() / "one head.onnx";
  ASSERT_EQ(run_cli({"train", kFreshDigitsModel.string(), "--data", data.string(), "--target", "label", "--loss",
                     "cross_entropy", "--threads", "1", "--seed", "6", "--add-head", kPenultimate + ":10:b", "--output",
                     "b", "--freeze", "*", "--unfreeze", "fc2.*", "--save", single.string()})
                .exit_code,
            0);
  EXPECT_TRUE(tensors_of(single).at("b.weight").equals(after.at("b.weight")));
  EXPECT_FALSE(after.at("a.weight").equals(after.at("b.weight")));
}

// ------------------------------------------------------------------------------------------------
// LoRA

// On the MLP (no BatchNorm, so a run at lr 0 changes nothing): the merged export and the kept-adapter
// export give the same outputs; the kept one holds the backbone byte-identical; the adapters saved
// alone and loaded into a run at lr 0 reproduce the merged export; mismatched adapters are refused.
TEST(CliExtension, LoraMergedEqualsKeptAndSavedAdaptersReproduceTheExport) {
  TempFolder temp;
  const fs::path data = mlp_data(temp.root());
  const fs::path merged = temp.model_dir() / "merged.onnx", kept = temp.model_dir() / "kept.onnx";
  const fs::path adapters = temp.model_dir() / "adapters.safetensors";
  const std::vector<std::string> base{"train", kMlp.string(), "--data", data.string(), "--target", "label", "--loss",
                                      "cross_entropy", "--optimizer", "adamw", "--batch-size", "8", "--threads", "1",
                                      "--seed", "3"};
  const std::vector<std::string> learn{"--lr", "0.02", "--epochs", "4"};
  ProcessResult r = run_cli(with(with(base, learn), {"--lora", "fc*.weight:4:16", "--save", merged.string(),
                                                     "--save-adapters", adapters.string()}));
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_TRUE(contains(r.out, "training 6 Parameters")) << r.out;  // A and B of three weights: LoRA froze the rest
  r = run_cli(with(with(base, learn), {"--lora", "fc*.weight:4:16", "--keep-lora", "--save", kept.string()}));
  ASSERT_EQ(r.exit_code, 0) << r.describe();

  // Merged: the original names and graph, W changed, biases not. Kept: every original tensor
  // byte-identical, plus the adapters.
  const auto original = tensors_of(kMlp), m = tensors_of(merged), k = tensors_of(kept);
  EXPECT_EQ(m.size(), original.size());
  EXPECT_EQ(Model::load(merged).info().node_count, Model::load(kMlp).info().node_count);
  for (const auto& [name, t] : original) {
    EXPECT_TRUE(k.at(name).equals(t)) << name << " changed in the kept export";
    EXPECT_EQ(m.at(name).equals(t), contains(name, "bias")) << name;
  }
  for (const char* w : {"fc1", "fc2", "fc3"})
    for (const char* part : {".weight.lora_A", ".weight.lora_B"}) EXPECT_TRUE(k.count(std::string(w) + part)) << w << part;
  EXPECT_EQ(k.at("fc1.weight.lora_A").dims(), (std::vector<int64_t>{4, 20}));
  EXPECT_EQ(k.at("fc3.weight.lora_B").dims(), (std::vector<int64_t>{5, 4}));

  const fs::path x = kTrainFixtures / "mlp.x.npy";
  const fs::path out_m = temp.root() / "merged", out_k = temp.root() / "kept", out_o = temp.root() / "original";
  run_model(merged, x, out_m);
  run_model(kept, x, out_k);
  run_model(kMlp, x, out_o);
  const Tensor y_merged = load_npy(out_m / "output.npy");
  EXPECT_LE(max_difference(y_merged, load_npy(out_k / "output.npy")), 1e-5) << "merged and kept LoRA exports differ";
  EXPECT_GT(max_difference(y_merged, load_npy(out_o / "output.npy")), 1e-3) << "training changed nothing";

  // The adapters alone: PEFT-style keys, rank/alpha/glob in the metadata.
  const SafetensorsFile file = load_safetensors(adapters);
  EXPECT_EQ(file.tensors.size(), 6u);
  std::map<std::string, std::string> meta(file.metadata.begin(), file.metadata.end());
  EXPECT_EQ(meta["lora_glob"], "fc*.weight");
  EXPECT_EQ(meta["lora_rank"], "4");
  EXPECT_EQ(meta["lora_alpha"], "16");

  // Loaded into a run that learns nothing (lr 0): the same merged export, bit for bit.
  const fs::path again = temp.model_dir() / "again.onnx";
  r = run_cli(with(base, {"--lora", "fc*.weight:4:16", "--adapters", adapters.string(), "--lr", "0", "--save", again.string()}));
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  const auto a = tensors_of(again);
  for (const auto& [name, t] : m) EXPECT_TRUE(a.at(name).equals(t)) << name << " differs from the first run's export";

  // Adapters onto another LoRA: refused naming what differs, nothing written.
  const fs::path never = temp.model_dir() / "never.onnx";
  EXPECT_TRUE(refused_with(run_cli(with(base, {"--lora", "fc*.weight:8:16", "--adapters", adapters.string(), "--save", never.string()})),
                           "--adapters: the adapters were made with lora_rank 4, this model's LoRA has 8"));
  EXPECT_TRUE(refused_with(run_cli(with(base, {"--lora", "fc*.weight:4", "--adapters", adapters.string(), "--save", never.string()})),
                           "the adapters were made with lora_alpha 16, this model's LoRA has 8"));
  EXPECT_TRUE(refused_with(run_cli(with(base, {"--lora", "fc1.weight:4:16", "--adapters", adapters.string(), "--save", never.string()})),
                           "the adapters were made with lora_glob fc*.weight, this model's LoRA has fc1.weight"));
  EXPECT_FALSE(fs::exists(never));

  expect_onnxruntime_matches(temp.root(), kept, x, out_k);
  expect_onnxruntime_matches(temp.root(), merged, x, out_m);
}

// A LoRA run stopped after 2 epochs and resumed to 4 ends where an uninterrupted 4-epoch run ends; a
// resume with other edits is refused naming the option; `tunnx export --checkpoint` exports the run.
TEST(CliExtension, ResumeOfALoraRunMatchesAnUninterruptedRun) {
  TempFolder temp;
  const fs::path data = mlp_data(temp.root());
  const fs::path whole = temp.root() / "whole", part = temp.root() / "part";
  fs::create_directories(whole);
  fs::create_directories(part);
  auto args = [&](const fs::path& dir, const std::string& epochs) {
    return std::vector<std::string>{"train", kMlp.string(), "--data", data.string(), "--target", "label", "--loss",
                                    "cross_entropy", "--optimizer", "adamw", "--lr", "0.02", "--batch-size", "8",
                                    "--threads", "1", "--lora", "fc*.weight:2", "--keep-lora", "--epochs", epochs,
                                    "--checkpoint-dir", (dir / "ckpt").string(), "--save", (dir / "kept.onnx").string()};
  };
  ProcessResult r = run_cli(args(whole, "4"));
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  r = run_cli(args(part, "2"));
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  const auto newest = latest_checkpoint(part / "ckpt");
  ASSERT_TRUE(newest.has_value());
  const json state = json::parse(std::ifstream(*newest / "state.json"));
  EXPECT_EQ(state["run"]["identity"]["--lora"], json::array({"fc*.weight:2:8"})) << state["run"].dump();

  // Other edits than the checkpoint's run: refused naming the option, before anything is written.
  auto other = args(part, "4");
  *std::find(other.begin(), other.end(), "fc*.weight:2") = "fc*.weight:4";
  other.push_back("--resume");
  EXPECT_TRUE(refused_with(run_cli(other), "--resume: --lora is [\"fc*.weight:4:8\"] but the checkpoint's run had [\"fc*.weight:2:8\"]"));
  other = args(part, "4");
  other.erase(std::find(other.begin(), other.end(), "--lora"), std::find(other.begin(), other.end(), "--lora") + 3);  // and --keep-lora
  other.push_back("--resume");
  EXPECT_TRUE(refused_with(run_cli(other), "--resume: --lora is [] but"));
  other = with(args(part, "4"), {"--add-head", "/Tanh_output_0:5:extra", "--replace-output", "--resume"});
  EXPECT_TRUE(refused_with(run_cli(other), "--resume: --add-head is [\"/Tanh_output_0:5:extra\"] but the checkpoint's run had []"));

  r = run_cli(with(args(part, "4"), {"--resume"}));
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_TRUE(contains(r.out, "resumed from ")) << r.out;
  EXPECT_FALSE(contains(r.out, "already holds")) << r.out;
  const auto a = tensors_of(whole / "kept.onnx"), b = tensors_of(part / "kept.onnx");
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, t] : a) EXPECT_TRUE(b.at(name).equals(t)) << name << " differs after the resume";
  EXPECT_TRUE(a.count("fc2.weight.lora_B"));

  // `tunnx export --checkpoint` makes the run's edits again before loading the checkpoint: kept or merged.
  const fs::path exported = temp.root() / "exported.onnx", merged = temp.root() / "merged.onnx";
  r = run_cli({"export", kMlp.string(), "--checkpoint", (part / "ckpt").string(), "--keep-lora", "-o", exported.string()});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  const auto e = tensors_of(exported);
  ASSERT_EQ(e.size(), a.size());
  for (const auto& [name, t] : a) EXPECT_TRUE(e.at(name).equals(t)) << name << " differs in the export of the checkpoint";
  r = run_cli({"export", kMlp.string(), "--checkpoint", (part / "ckpt").string(), "-o", merged.string()});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(tensors_of(merged).size(), tensors_of(kMlp).size());
  EXPECT_FALSE(tensors_of(merged).at("fc1.weight").equals(tensors_of(kMlp).at("fc1.weight")));
}

// ------------------------------------------------------------------------------------------------
// A trainable input

// The digits CNN's input bound to four images that are then optimised (the model frozen) toward
// their labels: the export has no graph input, holds the optimised images, and runs with no feeds.
TEST(CliExtension, BoundInputIsTrainedAndLeavesTheExportedInputs) {
  TempFolder temp;
  const Dataset digits = Dataset::load_npz(kDigits / "test.npz");
  const NamedValues b = digits.batch(std::vector<int64_t>{0, 1, 2, 3});
  const fs::path x = temp.model_dir() / "start.npy", data = temp.root() / "labels.npz";
  save_npy(x, b.at("input").tensor());
  save_npz(data, {{"label", b.at("label").tensor()}});
  const fs::path saved = temp.model_dir() / "bound.onnx";
  const ProcessResult r = run_cli({"train", kFreshDigitsModel.string(), "--data", data.string(), "--target", "label",
                                   "--loss", "cross_entropy", "--bind-input", "input=" + x.string(), "--freeze", "*",
                                   "--unfreeze", "input", "--batch-size", "4", "--no-shuffle", "--epochs", "5", "--lr",
                                   "0.5", "--threads", "1", "--save", saved.string()});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_TRUE(contains(r.out, "training 1 Parameters")) << r.out;

  EXPECT_TRUE(Model::load(saved).info().inputs.empty());
  const ProcessResult check = run_cli({"check", saved.string()});
  EXPECT_TRUE(contains(check.out, "Inputs (0):")) << check.out;
  const auto before = tensors_of(kFreshDigitsModel), after = tensors_of(saved);
  for (const auto& [name, t] : before) EXPECT_TRUE(after.at(name).equals(t) || contains(name, "running_")) << name;
  ASSERT_TRUE(after.count("input"));
  EXPECT_EQ(after.at("input").dims(), (std::vector<int64_t>{4, 1, 8, 8}));
  EXPECT_FALSE(after.at("input").equals(load_npy(x))) << "the bound input did not train";

  const fs::path outputs = temp.root() / "tunnx";
  run_model(saved, {}, outputs);
  EXPECT_EQ(load_npy(outputs / "logits.npy").dims(), (std::vector<int64_t>{4, 10}));
  expect_onnxruntime_matches(temp.root(), saved, {}, outputs);
}

// ------------------------------------------------------------------------------------------------
// Transfer learning (the README's demo): train the CNN on digits 0-4, export it, load the export, put a
// new ten-class head on its penultimate value in place of the old output, freeze the backbone and
// fine-tune on all ten digits. Held-out accuracy, byte-identical backbone, ONNX Runtime.

bool zero_to_four(int64_t label) { return label < 5; }

TEST(CliExtension, TransferLearningFromDigitsZeroToFourToAllTen) {
  TempFolder temp;
  const fs::path train04 = digits_where(kDigits / "train.npz", temp.root() / "train04.npz", zero_to_four);
  const fs::path test04 = digits_where(kDigits / "test.npz", temp.root() / "test04.npz", zero_to_four);
  const fs::path base = temp.model_dir() / "digits04.onnx", tuned = temp.model_dir() / "digits10.onnx";
  const fs::path m1 = temp.root() / "first.jsonl", m2 = temp.root() / "second.jsonl";

  // 1. The first task: digits 0-4 (the model's ten logits, five of them used).
  ProcessResult r = run_cli({"train", kFreshDigitsModel.string(), "--data", train04.string(), "--eval-data", test04.string(),
                             "--target", "label", "--loss", "cross_entropy", "--optimizer", "adamw", "--lr", "0.003",
                             "--epochs", "5", "--batch-size", "16", "--threads", "1", "--metrics", m1.string(),
                             "--save", base.string()});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  const double first_task = metrics_of_kind(m1, "epoch").back()["eval_accuracy"].get<double>();
  EXPECT_GT(first_task, 0.95) << r.out;

  // 2. The second task: all ten digits, through a new head on the frozen backbone.
  r = run_cli({"train", base.string(), "--data", (kDigits / "train.npz").string(), "--eval-data", (kDigits / "test.npz").string(),
               "--target", "label", "--loss", "cross_entropy", "--add-head", kPenultimate + ":10:digits", "--replace-output",
               "--freeze", "*", "--unfreeze", "digits.*", "--optimizer", "adamw", "--lr", "0.01", "--epochs", "10",
               "--batch-size", "16", "--threads", "1", "--metrics", m2.string(), "--save", tuned.string()});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_TRUE(contains(r.out, "training 2 Parameters")) << r.out;
  const double before = metrics_of_kind(m2, "eval").at(0)["eval_accuracy"].get<double>();
  const double after = metrics_of_kind(m2, "epoch").back()["eval_accuracy"].get<double>();
  std::cout << "digits 0-4: " << first_task << " held-out accuracy; all ten with a new head: " << before << " -> " << after
            << std::endl;
  EXPECT_LT(before, 0.3);
  EXPECT_GT(after, 0.85) << r.out;

  // The export: one output, the head; the old classifier gone; every backbone Parameter byte-identical
  // (BatchNorm's running statistics are buffers and follow the batches in train mode, as in PyTorch).
  const Model model = Model::load(tuned);
  ASSERT_EQ(model.info().outputs.size(), 1u);
  EXPECT_EQ(model.info().outputs[0].name, "digits");
  const auto backbone = tensors_of(base), now = tensors_of(tuned);
  EXPECT_FALSE(now.count("fc2.weight") || now.count("fc2.bias"));
  std::vector<std::string> checked;
  for (const auto& [name, t] : Model::load(base).named_parameters()) {
    if (name.rfind("fc2.", 0) == 0) continue;
    EXPECT_TRUE(now.at(name).equals(t)) << name << " changed, but the backbone was frozen";
    checked.push_back(name);
  }
  EXPECT_EQ(checked.size(), 6u);

  // tunnx run on the held-out digits: the accuracy the eval reported; ONNX Runtime: the same outputs.
  const Dataset test = Dataset::load_npz(kDigits / "test.npz");
  const fs::path x = temp.root() / "x.npy", outputs = temp.root() / "tunnx";
  save_npy(x, test.array("input"));
  run_model(tuned, x, outputs);
  const Tensor logits = load_npy(outputs / "digits.npy");
  const Tensor& labels = test.array("label");
  int64_t correct = 0;
  for (int64_t i = 0; i < labels.numel(); ++i) {
    const float* row = logits.data_as<float>() + i * 10;
    correct += std::max_element(row, row + 10) - row == labels.data_as<int64_t>()[i];
  }
  EXPECT_NEAR(static_cast<double>(correct) / static_cast<double>(labels.numel()), after, 1e-9);
  expect_onnxruntime_matches(temp.root(), tuned, x, outputs);
}

}  // namespace
}  // namespace tunnx::e2e
