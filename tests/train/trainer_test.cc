// The Trainer API: frozen Parameters and buffers untouched, gradient accumulation, gradients by name,
// sessions seeing every step, schedules, clipping, train-mode BatchNorm and Dropout, and refusals.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <numbers>
#include <string>
#include <thread>

#include "runtime/core/model_impl.h"
#include "runtime/train/optimizer.h"
#include "tests/importer/model_builder.h"
#include "tests/train/parity_util.h"
#include "tunnx/tunnx.h"

namespace {

namespace fs = std::filesystem;
using namespace tunnx;
using tunnx_test::Dims;
using tunnx_test::ModelBuilder;

const fs::path kDir = fs::path(TUNNX_SOURCE_DIR) / "tests" / "models" / "train";

using tunnx_test::rows;

std::string message_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TrainerOptions cross_entropy_sgd(double lr = 0.05) {
  TrainerOptions o;
  o.loss.kind = LossKind::kCrossEntropy;
  o.optimizer.kind = OptimizerKind::kSgd;
  o.optimizer.lr = lr;
  o.optimizer.momentum = 0.9;
  o.threads = 1;
  return o;
}

TEST(Trainer, FrozenParametersStayByteIdentical) {
  Model model = Model::load(kDir / "mlp.onnx");
  const Tensor x = load_npy(kDir / "mlp.x.npy"), y = load_npy(kDir / "mlp.y.npy");
  EXPECT_EQ(model.requires_grad("fc1.*", false), 2u);
  const Tensor fc1 = model.parameter("fc1.weight").clone(), fc2 = model.parameter("fc2.weight").clone();
  Trainer trainer(model, cross_entropy_sgd());
  EXPECT_EQ(trainer.trainable(), (std::vector<std::string>{"fc2.weight", "fc2.bias", "fc3.weight", "fc3.bias"}));
  for (int k = 0; k < 3; ++k) trainer.step({{"input", rows(x, 8 * k, 8)}, {"target", rows(y, 8 * k, 8)}});
  EXPECT_TRUE(model.parameter("fc1.weight").equals(fc1));
  EXPECT_FALSE(model.parameter("fc2.weight").equals(fc2));
  EXPECT_NE(message_of([&] { trainer.grad("fc1.weight"); }).find("is not a Parameter this trainer updates"),
            std::string::npos);
}

TEST(Trainer, BuffersOtherThanRunningStatisticsStayByteIdentical) {
  Model model = Model::load(kDir / "cnn.onnx");
  const Tensor x = load_npy(kDir / "cnn.x.npy"), y = load_npy(kDir / "cnn.y.npy");
  StateDict before;
  for (const auto& [name, t] : model.named_buffers()) before.emplace_back(name, t.clone());
  ASSERT_FALSE(before.empty());
  Trainer trainer(model, cross_entropy_sgd());
  trainer.step({{"input", rows(x, 0, 8)}, {"target", rows(y, 0, 8)}});
  for (const auto& [name, t] : before) {
    const bool running = name.find("running_") != std::string::npos;
    EXPECT_EQ(model.parameter(name).equals(t), !running) << name;
  }
}

TEST(Trainer, AccumulatingTwoHalvesEqualsOneBatch) {
  const Tensor x = load_npy(kDir / "mlp.x.npy"), y = load_npy(kDir / "mlp.y.npy");
  Model whole = Model::load(kDir / "mlp.onnx"), halves = Model::load(kDir / "mlp.onnx");
  TrainerOptions one = cross_entropy_sgd(), two = cross_entropy_sgd();
  two.accumulate = 2;
  Trainer a(whole, one), b(halves, two);
  a.step({{"input", rows(x, 0, 8)}, {"target", rows(y, 0, 8)}});
  EXPECT_FALSE(b.step({{"input", rows(x, 0, 4)}, {"target", rows(y, 0, 4)}}).updated);
  EXPECT_TRUE(b.step({{"input", rows(x, 4, 4)}, {"target", rows(y, 4, 4)}}).updated);
  for (const auto& [name, t] : whole.named_parameters()) {
    const Tensor other = halves.parameter(name);
    for (int64_t i = 0; i < t.numel(); ++i)
      ASSERT_NEAR(t.data_as<float>()[i], other.data_as<float>()[i], 1e-6) << name << "[" << i << "]";
  }
}

TEST(Trainer, ProfileTimesForwardAndBackwardNodes) {
  Model model = Model::load(kDir / "mlp.onnx");
  const Tensor x = load_npy(kDir / "mlp.x.npy"), y = load_npy(kDir / "mlp.y.npy");
  EXPECT_TRUE(Trainer(model, cross_entropy_sgd()).profile().empty());  // off by default
  TrainerOptions options = cross_entropy_sgd();
  options.profile = true;
  Trainer trainer(model, options);
  for (int k = 0; k < 2; ++k) trainer.step({{"input", rows(x, 0, 8)}, {"target", rows(y, 0, 8)}});
  const std::vector<SessionStats::NodeKernel> nodes = trainer.profile();
  bool forward = false, backward = false;
  for (const auto& n : nodes) {
    EXPECT_EQ(n.calls, 2) << n.node;
    EXPECT_GE(n.total_ms, 0.0) << n.node;
    forward = forward || n.op_type == "FusedMatMul";
    backward = backward || n.node.find("/grad/") != std::string::npos;
  }
  EXPECT_TRUE(forward);
  EXPECT_TRUE(backward);
}

TEST(Trainer, GradientsAreReadableByNameAndZeroed) {
  Model model = Model::load(kDir / "mlp.onnx");
  const Tensor x = load_npy(kDir / "mlp.x.npy"), y = load_npy(kDir / "mlp.y.npy");
  Trainer trainer(model, cross_entropy_sgd());
  Tensor g0 = trainer.grad("fc3.bias");
  for (int64_t i = 0; i < g0.numel(); ++i) EXPECT_EQ(g0.data_as<float>()[i], 0.0f);
  trainer.backward({{"input", rows(x, 0, 8)}, {"target", rows(y, 0, 8)}});
  // Cross-entropy's bias gradient sums to zero over the classes: softmax(z) - onehot, averaged.
  Tensor g = trainer.grad("fc3.bias");
  double sum = 0, norm = 0;
  for (int64_t i = 0; i < g.numel(); ++i) {
    sum += g.data_as<float>()[i];
    norm += std::abs(g.data_as<float>()[i]);
  }
  EXPECT_NEAR(sum, 0.0, 1e-6);
  EXPECT_GT(norm, 0.0);
  trainer.zero_grad();
  EXPECT_EQ(trainer.grad("fc3.bias").data_as<float>()[0], 0.0f);
}

TEST(Trainer, SessionsOfTheModelSeeEveryStep) {
  Model model = Model::load(kDir / "mlp.onnx");
  const Tensor x = load_npy(kDir / "mlp.x.npy"), y = load_npy(kDir / "mlp.y.npy");
  Session session(model, {.threads = 1});
  Trainer trainer(model, cross_entropy_sgd());
  const NamedValues in = {{"input", rows(x, 0, 8)}};
  const Tensor before = session.run(in).at("output").tensor().clone();
  trainer.step({{"input", rows(x, 0, 8)}, {"target", rows(y, 0, 8)}});
  const Tensor after = session.run(in).at("output").tensor();
  EXPECT_FALSE(after.equals(before));
  // The trainer's own eval graph agrees with the session on the loss of the updated model.
  EvalResult e = trainer.evaluate({{"input", rows(x, 0, 8)}, {"target", rows(y, 0, 8)}});
  EXPECT_GT(e.loss, 0.0);
  EXPECT_EQ(e.counted, 8);
}

TEST(Trainer, ConcurrentRunsNeverSeeHalfAStep) {
  Model model = Model::load(kDir / "mlp.onnx");
  const Tensor x = load_npy(kDir / "mlp.x.npy"), y = load_npy(kDir / "mlp.y.npy");
  Session session(model, {.threads = 1});
  Trainer trainer(model, cross_entropy_sgd(0.5));
  const NamedValues in = {{"input", rows(x, 0, 1)}};
  std::atomic<bool> done{false};
  std::vector<Tensor> seen;
  std::thread reader([&] {
    while (!done) seen.push_back(session.run(in).at("output").tensor().clone());
  });
  // After each step, the output the session gives for the parameters of that step.
  std::vector<Tensor> legal = {session.run(in).at("output").tensor().clone()};
  for (int k = 0; k < 20; ++k) {
    trainer.step({{"input", rows(x, 8 * (k % 5), 8)}, {"target", rows(y, 8 * (k % 5), 8)}});
    legal.push_back(session.run(in).at("output").tensor().clone());
  }
  done = true;
  reader.join();
  for (const Tensor& s : seen) {
    bool ok = false;
    for (const Tensor& l : legal) ok = ok || s.equals(l);
    ASSERT_TRUE(ok) << "a run saw parameters between two versions";
  }
}

TEST(Trainer, SchedulesFollowTorchFormulas) {
  ScheduleOptions step;
  step.kind = ScheduleOptions::Kind::kStep;
  step.step_size = 2;
  step.gamma = 0.5;
  EXPECT_DOUBLE_EQ(train::scheduled_lr(step, 0.1, 0), 0.1);
  EXPECT_DOUBLE_EQ(train::scheduled_lr(step, 0.1, 1), 0.1);
  EXPECT_DOUBLE_EQ(train::scheduled_lr(step, 0.1, 2), 0.05);
  EXPECT_DOUBLE_EQ(train::scheduled_lr(step, 0.1, 5), 0.025);
  ScheduleOptions cosine;
  cosine.kind = ScheduleOptions::Kind::kCosine;
  cosine.t_max = 10;
  cosine.eta_min = 0.001;
  EXPECT_NEAR(train::scheduled_lr(cosine, 0.1, 5), 0.001 + 0.099 * 0.5, 1e-12);
  EXPECT_NEAR(train::scheduled_lr(cosine, 0.1, 10), 0.001, 1e-12);
  EXPECT_NEAR(train::scheduled_lr(cosine, 0.1, 3), 0.001 + 0.099 * (1 + std::cos(std::numbers::pi * 0.3)) / 2, 1e-12);
  ScheduleOptions warm;
  warm.warmup_steps = 4;
  EXPECT_NEAR(train::scheduled_lr(warm, 0.1, 0), 0.025, 1e-12);
  EXPECT_NEAR(train::scheduled_lr(warm, 0.1, 2), 0.1 * (0.25 + 0.75 * 0.5), 1e-12);
  EXPECT_NEAR(train::scheduled_lr(warm, 0.1, 4), 0.1, 1e-12);
  ScheduleOptions linear;
  linear.kind = ScheduleOptions::Kind::kLinear;
  linear.start_factor = 0.5;
  linear.end_factor = 1.0;
  linear.total_iters = 4;
  EXPECT_NEAR(train::scheduled_lr(linear, 0.2, 2), 0.2 * 0.75, 1e-12);
  EXPECT_NEAR(train::scheduled_lr(linear, 0.2, 9), 0.2, 1e-12);
}

TEST(Trainer, ClippingScalesToTheMaxNorm) {
  StoredTensor a, b;
  a.name = "a";
  b.name = "b";
  a.value = Tensor::from_vector<float>({2}, {0, 0});
  b.value = Tensor::from_vector<float>({1}, {0});
  a.grad = Tensor::from_vector<float>({2}, {3, 0});
  b.grad = Tensor::from_vector<float>({1}, {4});
  const double norm = train::clip_grad_norm({&a, &b}, 1.0);
  EXPECT_DOUBLE_EQ(norm, 5.0);
  EXPECT_NEAR(a.grad.data_as<float>()[0], 3.0 / (5 + 1e-6), 1e-7);
  EXPECT_NEAR(b.grad.data_as<float>()[0], 4.0 / (5 + 1e-6), 1e-7);
  // Below the limit nothing changes (the coefficient is capped at 1).
  EXPECT_NEAR(train::clip_grad_norm({&a, &b}, 10.0), 5.0 / (5 + 1e-6), 1e-6);
  EXPECT_NEAR(b.grad.data_as<float>()[0], 4.0 / (5 + 1e-6), 1e-7);
}

TEST(Trainer, RefusesBadOptionsWithClearMessages) {
  Model model = Model::load(kDir / "mlp.onnx");
  TrainerOptions o = cross_entropy_sgd();
  o.loss.output = "logits";
  EXPECT_NE(message_of([&] { Trainer t(model, o); }).find("'logits' is not an output of the model (outputs: output)"),
            std::string::npos);
  o = cross_entropy_sgd();
  o.loss.target = "input";
  EXPECT_NE(message_of([&] { Trainer t(model, o); }).find("the target name 'input' is already a value of the model"),
            std::string::npos);
  o = cross_entropy_sgd();
  o.accumulate = 0;
  EXPECT_NE(message_of([&] { Trainer t(model, o); }).find("accumulate must be 1 or more"), std::string::npos);
  EXPECT_NE(message_of([] { loss_kind_from_string("hinge"); }).find("unknown loss 'hinge'"), std::string::npos);
  EXPECT_NE(message_of([] { optimizer_kind_from_string("lion"); }).find("unknown optimizer 'lion'"), std::string::npos);
  Trainer t(model, cross_entropy_sgd());
  EXPECT_NE(message_of([&] { t.step({{"input", Tensor(DataType::kFloat32, {2, 20})}}); })
                .find("tensor 'target': is a required input and was not given"),
            std::string::npos);
  EXPECT_NE(message_of([&] { t.step({{"inputs", Tensor(DataType::kFloat32, {2, 20})}}); })
                .find("is neither an input of this model nor the target"),
            std::string::npos);
  // Batch errors carry the model file, as loading and Session::run's do.
  const std::string wrong_shape = message_of([&] {
    t.step({{"input", Tensor(DataType::kFloat32, {2, 3})}, {"target", Tensor(DataType::kInt64, {2})}});
  });
  EXPECT_EQ(wrong_shape.rfind(model_impl(model).path.string() + ": ", 0), 0u) << wrong_shape;
  EXPECT_EQ(message_of([&] { t.evaluate({{"input", Tensor(DataType::kFloat32, {2, 3})}}); })
                .rfind(model_impl(model).path.string() + ": ", 0),
            0u);
}

// A model whose path to the loss has an op without a gradient rule is refused when the trainer is
// made, naming the node and op; int64 shape initializers are buffers a trainer never writes.
TEST(Trainer, OpWithoutRuleIsRefusedAtCreation) {
  ModelBuilder b(13);
  b.input("x", onnx::TensorProto::FLOAT, Dims{2, 6});
  b.initializer(tunnx_test::float_tensor("w", {6}, std::vector<float>(6, 0.5f)));
  b.node("Mul", {"x", "w"}, {"h"});
  b.node("LpNormalization", {"h"}, {"y"}, "lp");
  b.output("y", onnx::TensorProto::FLOAT, Dims{2, 6});
  Model model = Model::load_from_bytes(b.bytes(), fs::temp_directory_path());
  TrainerOptions o;
  const std::string message = message_of([&] { Trainer t(model, o); });
  EXPECT_NE(message.find("node 'lp' (LpNormalization): has no gradient rule at opset 13, and it lies on the path "
                         "from 'w' to the loss"),
            std::string::npos)
      << message;
  // Frozen, the same model trains nothing and builds.
  model.requires_grad("w", false);
  EXPECT_NO_THROW(Trainer(model, o));
}

TEST(Trainer, ShapeInitializersStayByteIdentical) {
  ModelBuilder b(13);
  b.input("x", onnx::TensorProto::FLOAT, Dims{2, 6});
  b.initializer(tunnx_test::float_tensor("w", {6}, {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f}));
  b.initializer(tunnx_test::int64_tensor("shape", {2}, {3, 4}));
  b.node("Mul", {"x", "w"}, {"h"});
  b.node("Reshape", {"h", "shape"}, {"y"}, "reshape");
  b.output("y", onnx::TensorProto::FLOAT, Dims{3, 4});
  Model model = Model::load_from_bytes(b.bytes(), fs::temp_directory_path());
  const Tensor shape = model.parameter("shape").clone(), w = model.parameter("w").clone();
  TrainerOptions o;
  o.optimizer.lr = 0.1;
  Trainer trainer(model, o);
  Tensor x(DataType::kFloat32, {2, 6}), target(DataType::kFloat32, {3, 4});
  for (int64_t i = 0; i < x.numel(); ++i) x.mutable_data_as<float>()[i] = static_cast<float>(i);
  trainer.step({{"x", x}, {"target", target}});
  EXPECT_TRUE(model.parameter("shape").equals(shape));
  EXPECT_FALSE(model.parameter("w").equals(w));
}

// Dropout in an eval-form graph (ratio 0.5): train mode drops about half and scales by 2, with the
// same mask for the same seed; eval mode is the identity.
TEST(Trainer, DropoutDropsInTrainModeOnly) {
  ModelBuilder b(13);
  b.input("x", onnx::TensorProto::FLOAT, Dims{4, 64});
  b.initializer(tunnx_test::float_tensor("w", {64}, std::vector<float>(64, 1.0f)));
  b.initializer(tunnx_test::float_tensor("ratio", {}, {0.5f}));
  b.node("Mul", {"x", "w"}, {"h"});
  b.node("Dropout", {"h", "ratio"}, {"y"}, "drop");
  b.output("y", onnx::TensorProto::FLOAT, Dims{4, 64});
  Model model = Model::load_from_bytes(b.bytes(), fs::temp_directory_path());
  TrainerOptions o;
  o.loss.kind = LossKind::kMse;
  o.optimizer.lr = 0;  // keep w at ones: the gradient shows the mask
  Trainer trainer(model, o);
  Tensor x(DataType::kFloat32, {4, 64}), target(DataType::kFloat32, {4, 64});
  for (int64_t i = 0; i < x.numel(); ++i) x.mutable_data_as<float>()[i] = 1.0f;
  trainer.backward({{"x", x}, {"target", target}});
  // d mse / dw_j = sum_i 2 * y_ij * mask_ij * 2 / numel, y = 2 * mask: 8 * kept_j / numel.
  Tensor g = trainer.grad("w");
  int kept = 0;
  for (int64_t j = 0; j < 64; ++j) {
    const float v = g.data_as<float>()[j] * static_cast<float>(x.numel()) / 8.0f;
    EXPECT_NEAR(v, std::round(v), 1e-4);
    kept += static_cast<int>(std::round(v));
  }
  EXPECT_GT(kept, 64);   // of 256 elements, about 128 kept
  EXPECT_LT(kept, 192);
  EvalResult e = trainer.evaluate({{"x", x}, {"target", target}});
  EXPECT_NEAR(e.loss, 1.0, 1e-6);  // identity in eval mode: mean((1 - 0)^2)
}

}  // namespace
