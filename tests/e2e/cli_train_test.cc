// `tunnx train` through the CLI: PyTorch parity for one epoch of SGD and AdamW on the committed
// fixtures, the four losses, the three optimizers, freeze/unfreeze, eval data and metrics, and every
// refusal of the command line (one line, exit 1, nothing written).
#include <gtest/gtest.h>

#include <cmath>

#include "tests/e2e/train_harness.h"

namespace tunnx::e2e {
namespace {

using nlohmann::json;

// |a - b| <= 1e-5 |b|, or <= 1e-7 near zero: the parity bound of the training-core tests.
bool close(double a, double b) { return std::abs(a - b) <= std::max(1e-5 * std::abs(b), 1e-7); }

double at(const Tensor& t, int64_t i) { return t.dtype() == DataType::kFloat64 ? t.data_as<double>()[i] : t.data_as<float>()[i]; }

struct ParityCase {
  std::string model, optimizer;
  std::vector<std::string> flags;
};
void PrintTo(const ParityCase& c, std::ostream* os) { *os << c.model << "/" << c.optimizer; }

class CliTrainParity : public ::testing::TestWithParam<ParityCase> {};

// The fixtures hold 40 samples trained in batches of 8 in file order: with --no-shuffle one epoch
// is exactly PyTorch's five steps.
TEST_P(CliTrainParity, OneEpochEndsWithPyTorchsParameters) {
  const ParityCase& c = GetParam();
  TempFolder temp;
  const fs::path data = temp.model_dir() / "data.npz";
  save_npz(data, {{"input", load_npy(kTrainFixtures / (c.model + ".x.npy"))}, {"y", load_npy(kTrainFixtures / (c.model + ".y.npy"))}});
  const fs::path out = temp.model_dir() / "tuned.onnx", metrics = temp.model_dir() / "m.jsonl";
  std::vector<std::string> args{"train", (kTrainFixtures / (c.model + ".onnx")).string(), "--data", data.string(),
                                "--target", "y", "--loss", "cross_entropy", "--optimizer", c.optimizer,
                                "--batch-size", "8", "--no-shuffle", "--threads", "1",
                                "--save", out.string(), "--metrics", metrics.string()};
  args.insert(args.end(), c.flags.begin(), c.flags.end());
  const ProcessResult r = run_cli(args);
  ASSERT_EQ(r.exit_code, 0) << r.describe();

  const Tensor torch_losses = load_npy(kTrainFixtures / (c.model + "." + c.optimizer + ".losses.npy"));
  const auto steps = metrics_of_kind(metrics, "step");
  ASSERT_EQ(static_cast<int64_t>(steps.size()), torch_losses.numel());
  for (size_t i = 0; i < steps.size(); ++i)
    EXPECT_TRUE(close(steps[i]["loss"].get<double>(), at(torch_losses, static_cast<int64_t>(i))))
        << "step " << i + 1 << ": " << steps[i]["loss"] << " vs PyTorch " << at(torch_losses, static_cast<int64_t>(i));

  const auto expected = tensors_of(kTrainFixtures / (c.model + "." + c.optimizer + ".expected.onnx"));
  const auto actual = tensors_of(out);
  ASSERT_EQ(actual.size(), expected.size());
  for (const auto& [name, want] : expected) {
    const Tensor& got = actual.at(name);
    ASSERT_EQ(got.dims(), want.dims()) << name;
    if (!is_floating_point(want.dtype())) {
      EXPECT_TRUE(got.equals(want)) << name;
      continue;
    }
    int64_t bad = 0;
    for (int64_t i = 0; i < want.numel(); ++i) bad += !close(at(got, i), at(want, i));
    EXPECT_EQ(bad, 0) << name << ": " << bad << " of " << want.numel() << " elements differ from PyTorch's";
  }
}

INSTANTIATE_TEST_SUITE_P(
    Fixtures, CliTrainParity,
    ::testing::Values(ParityCase{"mlp", "sgd", {"--lr", "0.05", "--momentum", "0.9", "--weight-decay", "0.01"}},
                      ParityCase{"mlp", "adamw", {"--lr", "0.01", "--weight-decay", "0.01"}},
                      ParityCase{"cnn", "sgd", {"--lr", "0.05", "--momentum", "0.9", "--weight-decay", "0.01"}},
                      ParityCase{"cnn", "adamw", {"--lr", "0.01", "--weight-decay", "0.01"}}),
    [](const auto& info) { return info.param.model + "_" + info.param.optimizer; });

// The digits twin on 512 real digits: the held-out loss falls, accuracy is reported, and the metrics
// file has an eval line before training and a line per step and per epoch.
TEST(CliTrain, CrossEntropyWithEvalDataLearnsTheDigits) {
  TempFolder temp;
  const fs::path data = digits_subset(temp.model_dir(), "train.npz", 512);
  const fs::path metrics = temp.model_dir() / "m.jsonl";
  const ProcessResult r = run_cli({"train", kFreshDigitsModel.string(), "--data", data.string(), "--eval-data",
                                   (kDigits / "test.npz").string(), "--target", "label", "--loss", "cross_entropy",
                                   "--optimizer", "adam", "--lr", "0.003", "--epochs", "3", "--metrics", metrics.string()});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_TRUE(contains(r.out, "before training: eval loss")) << r.out;
  EXPECT_TRUE(contains(r.out, "epoch 3/3: loss ")) << r.out;
  EXPECT_TRUE(contains(r.out, "eval accuracy")) << r.out;
  const auto eval = metrics_of_kind(metrics, "eval");
  const auto epochs = metrics_of_kind(metrics, "epoch");
  ASSERT_EQ(eval.size(), 1u);
  ASSERT_EQ(epochs.size(), 3u);
  EXPECT_EQ(metrics_of_kind(metrics, "step").size(), 3u * 16);  // 512 / 32 batches a epoch
  EXPECT_LT(epochs.back()["eval_loss"].get<double>(), 0.5 * eval[0]["eval_loss"].get<double>());
  EXPECT_GT(epochs.back()["eval_accuracy"].get<double>(), 0.8);
  EXPECT_GT(epochs.back()["accuracy"].get<double>(), epochs.front()["accuracy"].get<double>());
  EXPECT_EQ(epochs.back()["step"], 48);
}

// On a terminal the progress bar shows epoch, step/total, loss, samples/s and ETA (run under
// util-linux's `script`, which gives the command a pseudo-terminal); without one, a line per epoch.
TEST(CliTrain, ProgressBarOnATerminalAndLinesOtherwise) {
  if (!fs::exists("/usr/bin/script")) GTEST_SKIP() << "no /usr/bin/script (util-linux) to make a terminal";
  TempFolder temp;
  const fs::path data = digits_subset(temp.model_dir(), "train.npz", 256);
  const std::string command = "'" + kCli.string() + "' train '" + kFreshDigitsModel.string() + "' --data '" +
                              data.string() + "' --target label --loss cross_entropy --epochs 2 --batch-size 16";
  const ProcessResult tty = run_process({"/usr/bin/script", "-qec", command, "/dev/null"}, std::chrono::seconds(120));
  ASSERT_EQ(tty.exit_code, 0) << tty.describe();
  EXPECT_TRUE(contains(tty.out, "\repoch 1/2 [")) << tty.out;
  EXPECT_TRUE(contains(tty.out, "16/16  loss ")) << tty.out;
  EXPECT_TRUE(contains(tty.out, " samples/s  ETA ")) << tty.out;
  EXPECT_TRUE(contains(tty.out, "epoch 2/2: loss ")) << tty.out;

  const ProcessResult pipe = run_cli({"train", kFreshDigitsModel.string(), "--data", data.string(), "--target", "label",
                                      "--loss", "cross_entropy", "--epochs", "2", "--batch-size", "16"});
  ASSERT_EQ(pipe.exit_code, 0) << pipe.describe();
  EXPECT_FALSE(contains(pipe.out + pipe.err, "\r")) << pipe.out;
  EXPECT_FALSE(contains(pipe.out + pipe.err, "ETA")) << pipe.out;
  EXPECT_TRUE(contains(pipe.out, "epoch 1/2: loss ")) << pipe.out;
}

// mse, l1 and bce_with_logits on the transformer-encoder and MLP fixtures (exported by torch): the
// loss falls from the first epoch to the last.
struct LossCase {
  std::string loss, model;
};
void PrintTo(const LossCase& c, std::ostream* os) { *os << c.loss; }
class CliTrainLoss : public ::testing::TestWithParam<LossCase> {};

TEST_P(CliTrainLoss, LossFalls) {
  const LossCase& c = GetParam();
  TempFolder temp;
  const Tensor x = load_npy(kTrainFixtures / (c.model + ".x.npy"));
  Tensor y = load_npy(kTrainFixtures / (c.model + ".y.npy"));
  if (c.loss == "bce_with_logits") {  // one-hot float targets of the logits' shape
    const ModelInfo info = Model::load(kTrainFixtures / (c.model + ".onnx")).info();
    const int64_t n = y.dims()[0], classes = info.outputs.at(0).shape.dims.at(1).value;
    Tensor hot(DataType::kFloat32, {n, classes});
    for (int64_t i = 0; i < n; ++i) hot.mutable_data_as<float>()[i * classes + y.data_as<int64_t>()[i]] = 1;
    y = hot;
  }
  const fs::path data = temp.model_dir() / "data.npz", metrics = temp.model_dir() / "m.jsonl";
  save_npz(data, {{"input", x}, {"target", y}}, /*compressed=*/true);
  const ProcessResult r = run_cli({"train", (kTrainFixtures / (c.model + ".onnx")).string(), "--data", data.string(),
                                   "--target", "target", "--loss", c.loss, "--optimizer", "adamw", "--lr", "0.003",
                                   "--epochs", "8", "--batch-size", "8", "--metrics", metrics.string()});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  const auto epochs = metrics_of_kind(metrics, "epoch");
  ASSERT_EQ(epochs.size(), 8u);
  EXPECT_FALSE(epochs[0].contains("accuracy"));
  EXPECT_LT(epochs.back()["loss"].get<double>(), 0.9 * epochs.front()["loss"].get<double>()) << r.out;
}

INSTANTIATE_TEST_SUITE_P(Losses, CliTrainLoss,
                         ::testing::Values(LossCase{"mse", "encoder"}, LossCase{"l1", "encoder"},
                                           LossCase{"bce_with_logits", "mlp"}),
                         [](const auto& info) { return info.param.loss; });

// --freeze '*' --unfreeze 'fc2.*' trains only fc2; the frozen Parameters come back byte-identical
// (BatchNorm's running statistics still move in train mode, as in PyTorch), and the order matters.
TEST(CliTrain, FreezeAndUnfreezeApplyInCommandLineOrder) {
  TempFolder temp;
  const fs::path data = digits_subset(temp.model_dir(), "train.npz", 64);
  const fs::path out = temp.model_dir() / "tuned.onnx";
  const std::vector<std::string> base{"train", kFreshDigitsModel.string(), "--data", data.string(), "--target", "label",
                                      "--loss", "cross_entropy", "--lr", "0.1"};
  auto args = base;
  args.insert(args.end(), {"--freeze", "*", "--unfreeze", "fc2.*", "--save", out.string()});
  const ProcessResult r = run_cli(args);
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_TRUE(contains(r.out, "training 2 Parameters")) << r.out;
  const auto before = tensors_of(kFreshDigitsModel), after = tensors_of(out);
  for (const auto& [name, t] : before) {
    const bool trained = name.rfind("fc2.", 0) == 0 || name.find("running_") != std::string::npos;
    EXPECT_EQ(after.at(name).equals(t), !trained) << name;
  }

  args = base;
  args.insert(args.end(), {"--unfreeze", "fc2.*", "--freeze", "*", "--save", out.string() + ".2"});
  EXPECT_TRUE(refused_with(run_cli(args), "nothing to train"));
  EXPECT_FALSE(fs::exists(out.string() + ".2"));
}

// --profile: after training, every node of the training graph with its kernel and calls, the
// forward products and the backward's gradient nodes among them.
TEST(CliTrain, ProfileListsTheTrainingGraphsNodes) {
  TempFolder temp;
  const fs::path data = digits_subset(temp.model_dir(), "train.npz", 64);
  const ProcessResult r = run_cli({"train", kFreshDigitsModel.string(), "--data", data.string(), "--target", "label",
                                   "--loss", "cross_entropy", "--batch-size", "32", "--profile"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_TRUE(contains(r.out, "training graph (forward, loss, backward), Profile:")) << r.out;
  EXPECT_TRUE(contains(r.out, "cpu/onednn/FusedMatMul") || contains(r.out, "cpu/reference/FusedMatMul")) << r.out;
  EXPECT_TRUE(contains(r.out, "/grad/")) << r.out;
  EXPECT_TRUE(contains(r.out, "ms/call")) << r.out;
}

// Each refusal: one line naming the problem, exit 1, before any step, with nothing written.
struct Refusal {
  std::string name;
  std::vector<std::string> args;  // after MODEL --data DATA
  std::string message;
  std::string data = "good";     // which .npz to pass
};
void PrintTo(const Refusal& c, std::ostream* os) { *os << c.name; }
class CliTrainRefusal : public ::testing::TestWithParam<Refusal> {};

TEST_P(CliTrainRefusal, OneLineExitOneNothingWritten) {
  const Refusal& c = GetParam();
  TempFolder temp;
  const Dataset digits = Dataset::load_npz(kDigits / "test.npz");
  const std::vector<int64_t> first{0, 1, 2, 3, 4, 5, 6, 7};
  const NamedValues b = digits.batch(first);
  const Tensor x = b.at("input").tensor(), y = b.at("label").tensor();
  Tensor x64(DataType::kFloat64, x.dims()), yf(DataType::kFloat32, y.dims());
  for (int64_t i = 0; i < x.numel(); ++i) x64.mutable_data_as<double>()[i] = x.data_as<float>()[i];
  for (int64_t i = 0; i < y.numel(); ++i) yf.mutable_data_as<float>()[i] = static_cast<float>(y.data_as<int64_t>()[i]);
  const std::map<std::string, StateDict> datasets{
      {"good", {{"input", x}, {"label", y}}},
      {"extra", {{"input", x}, {"label", y}, {"weights", y}, {"ids", y}}},
      {"no_input", {{"label", y}}},
      {"no_target", {{"input", x}}},
      {"float_target", {{"input", x}, {"label", yf}}},
      {"float64_input", {{"input", x64}, {"label", y}}},
      {"short_target", {{"input", x}, {"label", Tensor(DataType::kInt64, {7})}}},
      {"wrong_image", {{"input", Tensor(DataType::kFloat32, {8, 1, 4, 4})}, {"label", y}}},
  };
  const fs::path data = temp.model_dir() / "data.npz";
  save_npz(data, datasets.at(c.data));
  const fs::path written = temp.model_dir() / "written";
  std::vector<std::string> args{"train", kFreshDigitsModel.string(), "--data", data.string()};
  for (std::string a : c.args) {
    // WRITTEN/... names a path that must not exist afterwards.
    if (a.rfind("WRITTEN", 0) == 0) a = (written / a.substr(std::string("WRITTEN/").size())).string();
    args.push_back(a);
  }
  const ProcessResult r = run_cli(args);
  EXPECT_TRUE(refused_with(r, c.message));
  EXPECT_EQ(r.out, "");
  EXPECT_FALSE(fs::exists(written)) << "the refused run wrote " << written;
}

const std::vector<std::string> kCe{"--target", "label", "--loss", "cross_entropy"};
std::vector<std::string> ce(std::vector<std::string> more) {
  more.insert(more.begin(), kCe.begin(), kCe.end());
  return more;
}

INSTANTIATE_TEST_SUITE_P(
    Refusals, CliTrainRefusal,
    ::testing::Values(
        Refusal{"unknown_loss", {"--target", "label", "--loss", "hinge"}, "--loss must be mse, cross_entropy, bce_with_logits or l1, got 'hinge'"},
        Refusal{"unknown_optimizer", ce({"--optimizer", "lbfgs"}), "--optimizer must be sgd, adam or adamw, got 'lbfgs'"},
        Refusal{"unknown_schedule", ce({"--schedule", "onecycle"}), "--schedule must be constant, step or cosine"},
        Refusal{"missing_loss", {"--target", "label"}, "--loss is required"},
        Refusal{"unknown_option", ce({"--learning-rate", "3"}), "--learning-rate"},
        Refusal{"not_a_number", ce({"--lr", "fast"}), "--lr"},
        Refusal{"zero_epochs", ce({"--epochs", "0"}), "--epochs must be 1 or more, got 0"},
        Refusal{"zero_batch", ce({"--batch-size", "0"}), "--batch-size must be 1 or more, got 0"},
        Refusal{"negative_lr", ce({"--lr", "-1"}), "--lr must be 0 or more"},
        Refusal{"nesterov_without_momentum", ce({"--nesterov"}), "--nesterov needs --momentum above 0"},
        Refusal{"momentum_with_adam", ce({"--optimizer", "adam", "--momentum", "0.9"}), "are options of --optimizer sgd"},
        Refusal{"smoothing_with_mse", {"--target", "label", "--loss", "mse", "--label-smoothing", "0.1"}, "are options of --loss cross_entropy"},
        Refusal{"resume_without_dir", ce({"--resume"}), "--resume needs --checkpoint-dir"},
        Refusal{"every_without_dir", ce({"--checkpoint-every", "5"}), "--checkpoint-every needs --checkpoint-dir"},
        Refusal{"save_folder_missing", ce({"--save", "WRITTEN/x/tuned.onnx"}), "its folder does not exist"},
        Refusal{"resume_empty_dir", ce({"--checkpoint-dir", "WRITTEN/ckpt", "--resume"}), "--resume: no complete checkpoint"},
        Refusal{"no_such_output", ce({"--output", "probabilities", "--checkpoint-dir", "WRITTEN/ckpt"}),
                "--output 'probabilities' is not an output of the model (outputs: logits)"},
        Refusal{"freeze_matches_nothing", ce({"--freeze", "encoder.*"}), "encoder.*"},
        Refusal{"extra_keys", ce({"--checkpoint-dir", "WRITTEN/ckpt"}),
                "holds arrays that are neither model inputs nor the target (--target label): 'weights', 'ids'", "extra"},
        Refusal{"missing_input", ce({}), "has no array 'input' for the model input of that name", "no_input"},
        Refusal{"missing_target", ce({}), "has no target array 'label' (--target)", "no_target"},
        Refusal{"target_not_int64", ce({}), "tensor 'label': is float32: cross_entropy needs int64 class indices", "float_target"},
        Refusal{"target_not_float", {"--target", "label", "--loss", "mse"}, "is int64: mse needs a target of the output's dtype (float32)"},
        Refusal{"target_wrong_shape", {"--target", "label", "--loss", "l1"}, "has shape [8]: l1 needs the output's shape [batch,10]", "float_target"},
        Refusal{"input_dtype", ce({}), "tensor 'input': is float64 but the model input is float32", "float64_input"},
        Refusal{"input_shape", ce({}), "has shape [8,1,4,4] but the model input is [batch,1,8,8]", "wrong_image"},
        Refusal{"sample_axis", ce({}), "has 7 samples on axis 0 but 'input' has 8", "short_target"}),
    [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace tunnx::e2e
