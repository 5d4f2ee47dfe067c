// PyTorch's optimizers (torch.optim.SGD, Adam, AdamW: the single-tensor CPU code paths), global-norm
// gradient clipping and learning-rate schedules, applied to the Parameters of a ParameterStore in place.
// State lives beside each Parameter (StoredTensor::optimizer_state), so checkpoints find it there.
#pragma once

#include <cstdint>
#include <vector>

#include "runtime/core/parameter_store.h"
#include "tunnx/train.h"

namespace tunnx::train {

// One update of every entry in `params` that has a gradient, with learning rate `lr`.
// `step` is the optimizer step being taken, counted from 1 (Adam's bias correction).
void optimizer_update(const OptimizerOptions& options, double lr, int64_t step, const std::vector<StoredTensor*>& params);

// Scales the gradients so their global L2 norm is at most max_norm (coefficient max_norm/(norm+1e-6),
// capped at 1); returns the norm before clipping.
double clip_grad_norm(const std::vector<StoredTensor*>& params, double max_norm);

// The learning rate after `steps` optimizer steps.
double scheduled_lr(const ScheduleOptions& schedule, double base_lr, int64_t steps);

}  // namespace tunnx::train
