// Training a loaded model: a Trainer appends a loss to the model's graph, differentiates it with
// respect to every Parameter that requires a gradient, and updates those Parameters in place with
// PyTorch's optimizers. Sessions of the same model see every completed step and never half of one.
//
//   tunnx::Model model = tunnx::Model::load("mlp.onnx");
//   tunnx::Trainer trainer(model, {.loss = {.kind = tunnx::LossKind::kCrossEntropy},
//                                  .optimizer = {.kind = tunnx::OptimizerKind::kAdamW, .lr = 1e-3}});
//   float loss = trainer.step({{"input", x}, {"target", y}});   // forward, backward, update
//   tunnx::Tensor g = trainer.grad("fc1.weight");                // like param.grad
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tunnx/model.h"
#include "tunnx/session.h"

namespace tunnx {

enum class LossKind {
  kMse,            // torch.nn.MSELoss
  kL1,             // torch.nn.L1Loss
  kBceWithLogits,  // torch.nn.BCEWithLogitsLoss: float targets of the output's shape
  kCrossEntropy,   // torch.nn.CrossEntropyLoss: logits [N,C,...], int64 class indices [N,...]
  kGraphOutput,    // the output already is the loss (a scalar)
};
const char* to_string(LossKind kind);             // "mse", "l1", "bce_with_logits", "cross_entropy", "graph_output"
LossKind loss_kind_from_string(const std::string& name);  // throws kInvalidArgument naming the choices

struct LossOptions {
  LossKind kind = LossKind::kMse;
  std::string output;             // the graph output the loss reads; "" when the model has one output
  std::string target = "target";  // the batch entry holding the targets
  int64_t ignore_index = -100;    // cross_entropy
  float label_smoothing = 0;      // cross_entropy
};

enum class OptimizerKind { kSgd, kAdam, kAdamW };
const char* to_string(OptimizerKind kind);  // "sgd", "adam", "adamw"
OptimizerKind optimizer_kind_from_string(const std::string& name);

// PyTorch's update rules and defaults (torch.optim.SGD, Adam, AdamW).
struct OptimizerOptions {
  OptimizerKind kind = OptimizerKind::kSgd;
  double lr = 1e-3;
  double momentum = 0, dampening = 0;  // SGD
  bool nesterov = false;               // SGD
  std::optional<double> weight_decay;  // default: 0 for SGD and Adam, 0.01 for AdamW
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-8;  // Adam, AdamW
  double effective_weight_decay() const;
};

// Learning-rate schedule, stepped once per optimizer step (torch.optim.lr_scheduler).
struct ScheduleOptions {
  enum class Kind { kConstant, kStep, kCosine, kLinear };
  Kind kind = Kind::kConstant;
  int64_t step_size = 1;   // StepLR
  double gamma = 0.1;      // StepLR
  int64_t t_max = 1;       // CosineAnnealingLR
  double eta_min = 0;      // CosineAnnealingLR
  double start_factor = 1.0 / 3, end_factor = 1.0;  // LinearLR
  int64_t total_iters = 5;                          // LinearLR
  // Linear warm-up from lr/warmup_steps... to lr over this many steps before the schedule (0: none),
  // as LinearLR(start_factor=1/warmup_steps) chained with the schedule by SequentialLR.
  int64_t warmup_steps = 0;
};

struct TrainerOptions {
  LossOptions loss;
  OptimizerOptions optimizer;
  ScheduleOptions schedule;
  double clip_grad_norm = 0;  // > 0: clip by global L2 norm (torch.nn.utils.clip_grad_norm_)
  int accumulate = 1;         // micro-batches per optimizer step; each micro-batch loss scaled by 1/N
  int threads = 0;            // as SessionOptions::threads
  int optimization_level = 2;
  uint64_t seed = 0;          // dropout masks
  // Time every node of the training graph (forward, loss and backward): Trainer::profile().
  bool profile = false;
};

struct StepResult {
  double loss = 0;      // this micro-batch's loss (unscaled)
  bool updated = false; // the optimizer stepped (every `accumulate` calls)
  int64_t correct = 0, counted = 0;  // cross_entropy: this batch's train-mode predictions (as EvalResult)
};

struct EvalResult {
  double loss = 0;
  int64_t correct = 0, counted = 0;  // cross_entropy: argmax over axis 1 equals the target (ignored excluded)
  double accuracy() const { return counted ? static_cast<double>(correct) / static_cast<double>(counted) : 0; }
};

class Trainer {
 public:
  // Builds the training graph (train-mode BatchNorm and Dropout, loss, backward) and the eval graph.
  // Throws Error naming the node and op when a node on a path from a trainable Parameter to the loss
  // has no gradient rule, and kInvalidArgument for a bad output, loss or option.
  Trainer(Model& model, TrainerOptions options);
  ~Trainer();
  Trainer(Trainer&&) noexcept;
  Trainer& operator=(Trainer&&) noexcept;

  // One micro-batch: forward, backward, gradients accumulated; every `accumulate`-th call also clips,
  // updates the Parameters, steps the schedule and zeroes the gradients. `batch` holds the model's
  // inputs and the target under LossOptions::target.
  StepResult step(const NamedValues& batch);
  // Forward and backward only: adds this batch's gradients (scaled by 1/accumulate) to grad().
  double backward(const NamedValues& batch);
  // Clips, updates, steps the schedule, zeroes the gradients.
  void optimizer_step();
  void zero_grad();

  // Loss (and accuracy for cross_entropy) in eval mode, no gradients, nothing written.
  EvalResult evaluate(const NamedValues& batch) const;

  void train() { training_ = true; }
  void eval() { training_ = false; }
  bool training() const { return training_; }

  // The accumulated gradient of a trainable Parameter (zeros before the first backward), like
  // param.grad. Throws kNotFound for names that are not trainable Parameters of the model.
  Tensor grad(const std::string& name) const;
  std::vector<std::string> trainable() const;  // the Parameters this trainer updates, in store order
  double lr() const;                           // the current learning rate
  int64_t steps() const;                       // optimizer steps taken
  const TrainerOptions& options() const;

  // What a checkpoint needs besides tensors to continue bit for bit: optimizer steps (which also
  // fix the schedule and Adam's bias correction) and train-mode forwards (which seed dropout).
  struct Counters {
    int64_t steps = 0;
    int64_t forwards = 0;
  };
  Counters counters() const;

  // Optimizer state (momentum buffers, exp_avg, exp_avg_sq) as named tensors "<param>/<state>",
  // for checkpoints; load_optimizer_state restores it with the counters (names and shapes checked
  // before anything changes) and clears the gradients.
  StateDict optimizer_state() const;
  void load_optimizer_state(const StateDict& state, const Counters& counters);

  // With TrainerOptions::profile: the training graph's nodes in execution order, with their runs and
  // time so far (as SessionStats::kernels); empty otherwise.
  std::vector<SessionStats::NodeKernel> profile() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
  bool training_ = true;
};

}  // namespace tunnx
