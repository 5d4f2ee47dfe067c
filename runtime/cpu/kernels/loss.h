// The attributes and shapes of ONNX's classification losses (NegativeLogLikelihoodLoss,
// SoftmaxCrossEntropyLoss), read one way by the forward kernels (loss.cc) and their gradients
// (train_loss.cc).
#pragma once

#include <cstdint>
#include <optional>

#include "runtime/core/kernel.h"

namespace tunnx::cpu {

enum class LossReduction { kNone, kSum, kMean };

struct LossAttrs {
  LossReduction reduction = LossReduction::kMean;
  std::optional<int64_t> ignore_index;  // absent: every label must be a valid class
};

// reduction ("none", "sum", "mean"; default "mean") and the optional ignore_index.
LossAttrs parse_loss_attrs(const KernelInit& init);

// The [N, C, D] view of the scores, D = d1*..*dk.
struct LossLayout {
  int64_t n = 0, c = 0, d = 1;
};

// scores: [N, C, d1..dk]; labels: [N, d1..dk] int32 or int64; weight (optional): [C] of the scores'
// dtype. Throws naming the shapes when they do not fit.
LossLayout check_loss_shapes(const KernelContext& ctx, const Tensor& scores, const Tensor& labels,
                             const Tensor* weight);

// Throws naming a label (at flat sample index `flat`) that is neither a class in [0, C) nor ignored.
void check_class(const KernelContext& ctx, int64_t label, int64_t flat, const LossLayout& layout,
                 std::optional<int64_t> ignore_index);

}  // namespace tunnx::cpu
