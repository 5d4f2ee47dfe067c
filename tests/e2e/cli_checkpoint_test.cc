// Checkpoints and what comes after training, through the CLI: a run killed mid-epoch and resumed
// ends bit-identical to an uninterrupted one; a damaged checkpoint is refused naming the tensor; a
// resume with another command line is refused naming the option; checkpoints are readable by
// Python's safetensors; `tunnx export --checkpoint/--weights/--weights-only` and `tunnx run
// --weights`; the exported model gives tunnx's outputs in ONNX Runtime.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <thread>

#include "tests/e2e/train_harness.h"
#include "tests/e2e/venv_python.h"

namespace tunnx::e2e {
namespace {

using nlohmann::json;

std::vector<std::string> digits_run(const fs::path& data, const fs::path& folder, std::vector<std::string> more = {}) {
  std::vector<std::string> args{"train", kFreshDigitsModel.string(), "--data", data.string(), "--target", "label",
                                "--loss", "cross_entropy", "--optimizer", "adamw", "--lr", "0.003",
                                "--batch-size", "8", "--threads", "1", "--save", (folder / "tuned.onnx").string()};
  args.insert(args.end(), more.begin(), more.end());
  return args;
}

void expect_same_tensors(const fs::path& a, const fs::path& b) {
  const auto ta = tensors_of(a), tb = tensors_of(b);
  ASSERT_EQ(ta.size(), tb.size());
  for (const auto& [name, t] : ta) EXPECT_TRUE(tb.at(name).equals(t)) << name << " differs between " << a << " and " << b;
}

// Starts the CLI in the background; the caller kills or waits for it.
pid_t spawn_cli(const std::vector<std::string>& args) {
  std::vector<std::string> argv{kCli.string()};
  argv.insert(argv.end(), args.begin(), args.end());
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int devnull = ::open("/dev/null", O_WRONLY);
    ::dup2(devnull, STDOUT_FILENO);
    ::dup2(devnull, STDERR_FILENO);
    std::vector<char*> raw;
    for (auto& a : argv) raw.push_back(a.data());
    raw.push_back(nullptr);
    ::execv(raw[0], raw.data());
    ::_exit(127);
  }
  return pid;
}

size_t step_folders(const fs::path& dir) {
  size_t n = 0;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
    n += it->path().filename().string().rfind("step-", 0) == 0;
  return n;
}

TEST(CliCheckpoint, KilledMidEpochThenResumedIsBitIdenticalToAnUninterruptedRun) {
  TempFolder temp;
  const fs::path data = digits_subset(temp.root(), "train.npz", 400);  // 50 batches of 8 an epoch
  const fs::path whole = temp.root() / "whole", killed = temp.root() / "killed";
  fs::create_directories(whole);
  fs::create_directories(killed);
  const ProcessResult reference = run_cli(digits_run(data, whole, {"--epochs", "3"}));
  ASSERT_EQ(reference.exit_code, 0) << reference.describe();

  // Checkpoints every step, so the process is killed with some written and most of the run to go.
  const fs::path ckpt = killed / "ckpt";
  const auto args = digits_run(data, killed, {"--epochs", "3", "--checkpoint-dir", ckpt.string(), "--checkpoint-every", "1",
                                              "--metrics", (killed / "m.jsonl").string()});
  const pid_t pid = spawn_cli(args);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (step_folders(ckpt) < 2 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status)) << "the run ended before it could be killed";
  ASSERT_FALSE(fs::exists(killed / "tuned.onnx"));
  const auto newest = latest_checkpoint(ckpt);
  ASSERT_TRUE(newest.has_value());
  const int64_t killed_at = read_checkpoint_info(*newest).progress.step;
  EXPECT_LT(killed_at, 150);

  auto resume = args;
  resume.push_back("--resume");
  const ProcessResult resumed = run_cli(resume);
  ASSERT_EQ(resumed.exit_code, 0) << resumed.describe();
  EXPECT_TRUE(contains(resumed.out, "resumed from ")) << resumed.out;
  expect_same_tensors(whole / "tuned.onnx", killed / "tuned.onnx");

  // The metrics file tells one run: steps 1..150 once each, three epoch lines.
  std::vector<int64_t> steps;
  for (const auto& j : metrics_of_kind(killed / "m.jsonl", "step")) steps.push_back(j["step"].get<int64_t>());
  ASSERT_EQ(steps.size(), 150u);
  for (size_t i = 0; i < steps.size(); ++i) EXPECT_EQ(steps[i], static_cast<int64_t>(i) + 1);
  EXPECT_EQ(metrics_of_kind(killed / "m.jsonl", "epoch").size(), 3u);
  EXPECT_EQ(step_folders(ckpt), 2u);  // the two newest are kept

  // More epochs later: --epochs may change on resume.
  resume[std::find(resume.begin(), resume.end(), "3") - resume.begin()] = "4";
  const ProcessResult more = run_cli(resume);
  ASSERT_EQ(more.exit_code, 0) << more.describe();
  EXPECT_TRUE(contains(more.out, "epoch 4/4")) << more.out;
  EXPECT_FALSE(contains(more.out, "epoch 3/4")) << more.out;
}

TEST(CliCheckpoint, ResumeRefusesADamagedCheckpointOrAnotherCommandLine) {
  TempFolder temp;
  const fs::path data = digits_subset(temp.root(), "train.npz", 64);
  const fs::path ckpt = temp.root() / "ckpt";
  const auto args = digits_run(data, temp.root(), {"--checkpoint-dir", ckpt.string()});
  ASSERT_EQ(run_cli(args).exit_code, 0);
  const auto newest = latest_checkpoint(ckpt);
  ASSERT_TRUE(newest.has_value());
  EXPECT_EQ(newest->filename(), "step-00000008");

  auto other = args;
  *std::find(other.begin(), other.end(), "0.003") = "0.1";
  other.push_back("--resume");
  EXPECT_TRUE(refused_with(run_cli(other), "--resume: --lr is 0.1 but the checkpoint's run had 0.003"));
  other = args;
  other.insert(other.end(), {"--seed", "7", "--resume"});
  EXPECT_TRUE(refused_with(run_cli(other), "--resume: --seed is 7 but the checkpoint's run had 0"));

  // One flipped bit in the last tensor's data (tensors are stored in the order state.json lists them).
  const fs::path tensors = *newest / "tensors.safetensors";
  const std::string last = load_safetensors(tensors).tensors.back().first;
  {
    std::fstream f(tensors, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(-1, std::ios::end);
    const char byte = static_cast<char>(f.get());
    f.seekp(-1, std::ios::end);
    f.put(static_cast<char>(byte ^ 0x10));
  }
  auto again = args;
  again.insert(again.end(), {"--epochs", "2", "--resume"});
  const ProcessResult r = run_cli(again);
  EXPECT_TRUE(refused_with(r, "tensor '" + last + "': fails its CRC32 check")) << last;
  EXPECT_TRUE(contains(r.err, newest->filename().string())) << r.err;
}

// The checkpoint is a safetensors file Python reads, with the tensors state.json lists.
TEST(CliCheckpoint, PythonSafetensorsReadsTheCheckpoint) {
  if (!venv_python_has("safetensors")) GTEST_SKIP() << "no .venv with safetensors (scripts/setup_venv.sh)";
  TempFolder temp;
  const fs::path data = digits_subset(temp.root(), "train.npz", 32);
  const fs::path ckpt = temp.root() / "ckpt";
  ASSERT_EQ(run_cli(digits_run(data, temp.root(), {"--checkpoint-dir", ckpt.string()})).exit_code, 0);
  const fs::path step = *latest_checkpoint(ckpt);
  const std::string script =
      "import json,sys\n"
      "from safetensors.numpy import load_file\n"
      "t = load_file(sys.argv[1] + '/tensors.safetensors')\n"
      "s = json.load(open(sys.argv[1] + '/state.json'))\n"
      "assert sorted(t) == sorted(e['name'] for e in s['tensors']), 'names differ'\n"
      "assert t['fc1.weight'].shape == (64, 512) and str(t['fc1.weight'].dtype) == 'float32'\n"
      "assert 'optimizer/fc1.weight/exp_avg' in t\n"
      "print('ok', len(t))\n";
  const ProcessResult r = run_python(temp.root(), script, {step.string()});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_TRUE(contains(r.out, "ok ")) << r.out;
}

TEST(CliCheckpoint, ExportAppliesACheckpointOrWeightsAndWritesWeightsAlone) {
  TempFolder temp;
  const fs::path data = digits_subset(temp.root(), "train.npz", 64);
  const fs::path ckpt = temp.root() / "ckpt";
  ASSERT_EQ(run_cli(digits_run(data, temp.root(), {"--checkpoint-dir", ckpt.string(), "--epochs", "2"})).exit_code, 0);
  const fs::path tuned = temp.root() / "tuned.onnx";

  // From the checkpoint folder (its newest step) or from a step folder: the trained model.
  const fs::path from_ckpt = temp.root() / "from_ckpt.onnx";
  ProcessResult r = run_cli({"export", kFreshDigitsModel.string(), "--checkpoint", ckpt.string(), "-o", from_ckpt.string()});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  expect_same_tensors(tuned, from_ckpt);

  // Weights alone, then applied to the fresh model by export and by run.
  const fs::path weights = temp.root() / "tuned.safetensors";
  r = run_cli({"export", tuned.string(), "--weights-only", "-o", weights.string()});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  const fs::path from_weights = temp.root() / "from_weights.onnx";
  r = run_cli({"export", kFreshDigitsModel.string(), "--weights", weights.string(), "-o", from_weights.string()});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  expect_same_tensors(tuned, from_weights);

  const fs::path sample = fs::path(TUNNX_SOURCE_DIR) / "examples" / "digits_sample.npy";
  const fs::path out_a = temp.root() / "a", out_b = temp.root() / "b";
  ASSERT_EQ(run_cli({"run", tuned.string(), "--input", "input=" + sample.string(), "--output-dir", out_a.string()}).exit_code, 0);
  r = run_cli({"run", kFreshDigitsModel.string(), "--weights", weights.string(), "--input", "input=" + sample.string(),
               "--output-dir", out_b.string()});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_TRUE(load_npy(out_a / "logits.npy").equals(load_npy(out_b / "logits.npy")));
}

// --save writes a model ONNX Runtime loads and runs with tunnx's outputs (1e-5 relative).
TEST(CliCheckpoint, SavedModelRunsInOnnxRuntimeWithTunnxsOutputs) {
  if (!venv_python_has("numpy, onnxruntime")) GTEST_SKIP() << "no .venv with onnxruntime (scripts/setup_venv.sh)";
  TempFolder temp;
  const fs::path data = digits_subset(temp.root(), "train.npz", 128);
  ASSERT_EQ(run_cli(digits_run(data, temp.root(), {"--epochs", "2"})).exit_code, 0);
  const fs::path tuned = temp.root() / "tuned.onnx";
  const fs::path test = digits_subset(temp.root(), "test.npz", 64, kDigits / "test.npz");
  const Tensor x = Dataset::load_npz(test).array("input");
  save_npy(temp.root() / "x.npy", x);
  const fs::path outputs = temp.root() / "out";
  ASSERT_EQ(run_cli({"run", tuned.string(), "--input", "input=" + (temp.root() / "x.npy").string(), "--output-dir", outputs.string()}).exit_code, 0);
  const std::string script =
      "import sys, numpy as np, onnxruntime as ort\n"
      "s = ort.InferenceSession(sys.argv[1], providers=['CPUExecutionProvider'])\n"
      "y = s.run(None, {'input': np.load(sys.argv[2])})[0]\n"
      "t = np.load(sys.argv[3])\n"
      "err = np.max(np.abs(y - t) / np.maximum(np.abs(t), 1e-6))\n"
      "print('max relative error', err)\n"
      "sys.exit(0 if np.allclose(t, y, rtol=1e-5, atol=1e-6) else 1)\n";
  const ProcessResult r =
      run_python(temp.root(), script, {tuned.string(), (temp.root() / "x.npy").string(), (outputs / "logits.npy").string()});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
}

}  // namespace
}  // namespace tunnx::e2e
