// Training the real-model fixtures of tests/models (a ResNet-18-shaped CNN and a 4-layer transformer
// encoder with token embeddings, both exported by torch.onnx.export): every node on the way from a
// Parameter to the loss has a rule, and a few AdamW steps on one batch drive its loss down.
#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include "tunnx/tunnx.h"

namespace {

namespace fs = std::filesystem;
using namespace tunnx;

const fs::path kModels = fs::path(TUNNX_SOURCE_DIR) / "tests" / "models";

// cross_entropy on random classes when the output is [N, C]; mse to random targets otherwise (the
// encoder's per-token logits [N, S, C] have no class axis 1).
double overfit(const std::string& model_file, const std::string& input_file, int steps, std::vector<double>* losses) {
  Model model = Model::load(kModels / model_file);
  const Tensor x = load_npy(kModels / input_file);
  Session session(model);
  const std::string input = session.input_names().at(0);
  const Tensor logits = session.run({{input, x}}).begin()->second.tensor();
  TrainerOptions options;
  options.loss.kind = logits.rank() == 2 ? LossKind::kCrossEntropy : LossKind::kMse;
  options.optimizer.kind = OptimizerKind::kAdamW;
  options.optimizer.lr = 1e-3;
  Trainer trainer(model, options);
  std::mt19937 rng(7);
  Tensor y;
  if (options.loss.kind == LossKind::kCrossEntropy) {
    const int64_t n = x.dims()[0], classes = logits.dims().back();
    std::vector<int64_t> labels(static_cast<size_t>(n));
    for (auto& l : labels) l = static_cast<int64_t>(rng() % static_cast<uint32_t>(classes));
    y = Tensor::from_vector<int64_t>({n}, labels);
  } else {
    y = Tensor(DataType::kFloat32, logits.dims());
    std::normal_distribution<float> normal;
    for (int64_t i = 0; i < y.numel(); ++i) y.mutable_data_as<float>()[i] = normal(rng);
  }
  for (int k = 0; k < steps; ++k) losses->push_back(trainer.step({{input, x}, {"target", y}}).loss);
  return trainer.evaluate({{input, x}, {"target", y}}).loss;
}

TEST(RealModelTraining, ResNetLossFalls) {
  std::vector<double> losses;
  const double final_loss = overfit("resnet18_narrow.onnx", "resnet18_narrow.b1.input.npy", 4, &losses);
  EXPECT_LT(losses.back(), losses.front());
  EXPECT_TRUE(std::isfinite(final_loss));
}

TEST(RealModelTraining, TransformerEncoderLossFalls) {
  std::vector<double> losses;
  const double final_loss = overfit("encoder4.onnx", "encoder4.b1.input.npy", 4, &losses);
  EXPECT_LT(losses.back(), losses.front());
  EXPECT_LT(final_loss, losses.front());
}

}  // namespace
