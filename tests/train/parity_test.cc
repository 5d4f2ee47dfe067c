// Training parity with PyTorch: the fixtures of scripts/make_training_fixtures.py (an MLP, a CNN with
// BatchNorm, a transformer encoder block; exported by torch.onnx.export) trained K=5 steps with SGD
// (momentum, weight decay) and AdamW (the MLP also with Adam and SGD's nesterov and dampening forms) in tunnx from the same ONNX files and data end with PyTorch's
// parameters and running statistics, and give PyTorch's loss at every step.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <string>

#include "tests/train/parity_util.h"
#include "tunnx/tunnx.h"

namespace {

namespace fs = std::filesystem;
using namespace tunnx;

const fs::path kDir = fs::path(TUNNX_SOURCE_DIR) / "tests" / "models" / "train";
constexpr int kSteps = 5;
constexpr int64_t kBatch = 8;

using tunnx_test::close;
using tunnx_test::rows;
using tunnx_test::value_at;

struct ParityCase {
  std::string model, optimizer;
};

void PrintTo(const ParityCase& c, std::ostream* os) { *os << c.model << "/" << c.optimizer; }

class TorchParity : public ::testing::TestWithParam<ParityCase> {};

TEST_P(TorchParity, ParametersAndLossesMatchPyTorch) {
  const ParityCase& c = GetParam();
  Model model = Model::load(kDir / (c.model + ".onnx"));
  const Model expected = Model::load(kDir / (c.model + "." + c.optimizer + ".expected.onnx"));
  const Tensor x = load_npy(kDir / (c.model + ".x.npy"));
  const Tensor y = load_npy(kDir / (c.model + ".y.npy"));
  const Tensor torch_losses = load_npy(kDir / (c.model + "." + c.optimizer + ".losses.npy"));

  TrainerOptions options;
  options.loss.kind = y.dtype() == DataType::kInt64 ? LossKind::kCrossEntropy : LossKind::kMse;
  // The optimizers of scripts/make_training_fixtures.py.
  OptimizerOptions& o = options.optimizer;
  if (c.optimizer == "sgd") {
    o.kind = OptimizerKind::kSgd;
    o.lr = 0.05;
    o.momentum = 0.9;
    o.weight_decay = 0.01;
  } else if (c.optimizer == "adamw") {
    o.kind = OptimizerKind::kAdamW;
    o.lr = 0.01;
    o.weight_decay = 0.01;
  } else if (c.optimizer == "adam") {
    o.kind = OptimizerKind::kAdam;
    o.lr = 0.01;
    o.weight_decay = 0.001;
  } else if (c.optimizer == "nesterov") {
    o.kind = OptimizerKind::kSgd;
    o.lr = 0.05;
    o.momentum = 0.9;
    o.nesterov = true;
    o.weight_decay = 0.001;
  } else {
    ASSERT_EQ(c.optimizer, "dampening");
    o.kind = OptimizerKind::kSgd;
    o.lr = 0.05;
    o.momentum = 0.5;
    o.dampening = 0.3;
  }
  options.threads = 1;
  Trainer trainer(model, options);

  // What must not move: frozen Parameters (none here) and buffers other than running statistics.
  for (int k = 0; k < kSteps; ++k) {
    StepResult r = trainer.step({{"input", rows(x, k * kBatch, kBatch)}, {"target", rows(y, k * kBatch, kBatch)}});
    EXPECT_TRUE(r.updated);
    EXPECT_TRUE(close(r.loss, torch_losses.data_as<double>()[k]))
        << "step " << k << ": tunnx " << r.loss << ", torch " << torch_losses.data_as<double>()[k];
  }
  EXPECT_EQ(trainer.steps(), kSteps);

  size_t compared = 0;
  for (const auto& [name, want] : expected.state_dict()) {
    SCOPED_TRACE(name);
    const Tensor got = model.parameter(name);
    ASSERT_EQ(got.dims(), want.dims());
    ASSERT_EQ(got.dtype(), want.dtype());
    if (!is_floating_point(want.dtype())) {
      EXPECT_TRUE(got.equals(want));
      continue;
    }
    int bad = 0;
    double worst = 0;
    for (int64_t i = 0; i < want.numel(); ++i) {
      const double a = value_at(got, i), b = value_at(want, i);
      if (!close(a, b)) {
        ++bad;
        worst = std::max(worst, std::abs(a - b) / std::max(std::abs(b), 1e-7));
      }
    }
    EXPECT_EQ(bad, 0) << bad << " of " << want.numel() << " elements differ; worst relative error " << worst;
    ++compared;
  }
  EXPECT_EQ(compared, expected.state_dict().size());
}

INSTANTIATE_TEST_SUITE_P(Fixtures, TorchParity,
                         ::testing::Values(ParityCase{"mlp", "sgd"}, ParityCase{"mlp", "adamw"}, ParityCase{"cnn", "sgd"},
                                           ParityCase{"cnn", "adamw"}, ParityCase{"encoder", "sgd"},
                                           ParityCase{"encoder", "adamw"}, ParityCase{"mlp", "adam"},
                                           ParityCase{"mlp", "nesterov"}, ParityCase{"mlp", "dampening"}),
                         [](const auto& info) { return info.param.model + "_" + info.param.optimizer; });

}  // namespace
