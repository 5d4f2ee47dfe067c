// Gradient rules of the normalization family: BatchNormalization (inference form), com.tunnx's
// BatchNormTrain, InstanceNormalization, LayerNormalization. Each is one com.tunnx gradient kernel
// (runtime/cpu/kernels/normalization_grad.cc) giving dX, dScale and dBias together. Running and saved
// statistics are outputs no gradient flows back through.
#include <algorithm>
#include <optional>

#include "runtime/core/ops/gradient.h"

namespace tunnx::ops {
namespace {

// BatchNormalization in inference form: the running statistics are constants, so
// dX = dY * scale / sqrt(var + eps). Training mode (statistics of the batch) is com.tunnx's
// BatchNormTrain, which the trainer runs in its place.
void batch_norm_grads(GradientBuilder& b) {
  const ir::Node& node = b.node();
  size_t outputs = 0;
  for (const auto& o : node.outputs) outputs += !o.empty();
  // As the kernel decides it: training_mode from opset 14, before that the extra outputs asked for
  // (and is_test up to opset 6).
  const bool training = b.opset() >= 14 ? node_int(node, "training_mode", 0) != 0
                                        : outputs > 1 && (b.opset() > 6 || node_int(node, "is_test", 0) == 0);
  if (training)
    throw b.error("BatchNormalization in training mode has no gradient rule: training runs com.tunnx:BatchNormTrain "
                  "in its place");
  if (b.opset() < 9 && node_int(node, "spatial", 1) == 0)
    throw b.error("BatchNormalization with spatial=0 (per-element statistics) has no gradient rule");
  const std::vector<std::string> g =
      b.grad_op("BatchNormGrad", {b.GO(0), b.I(0), b.I(1), b.I(3), b.I(4)}, 3,
                {attr("epsilon", node_float(node, "epsilon", 1e-5f)), attr("training", int64_t{0})});
  for (size_t i = 0; i < 3; ++i) b.set_GI(i, g[i]);
}

// BatchNormTrain: the batch statistics depend on X, so dX has their terms; they come from its
// saved_mean and saved_invstd outputs (recomputed when the node does not name them).
void batch_norm_train_grads(GradientBuilder& b) {
  const ir::Node& node = b.node();
  const float epsilon = node_float(node, "epsilon", 1e-5f);
  std::string mean, invstd;
  if (node.outputs.size() > 4 && !node.outputs[3].empty() && !node.outputs[4].empty()) {
    mean = node.outputs[3];
    invstd = node.outputs[4];
  } else {
    std::vector<std::string> again = b.emit("BatchNormTrain", node.inputs, 5, node.attributes, kGradDomain);
    mean = again[3];
    invstd = again[4];
  }
  const std::vector<std::string> g = b.grad_op("BatchNormGrad", {b.GO(0), b.I(0), b.I(1), mean, invstd}, 3,
                                               {attr("epsilon", epsilon), attr("training", int64_t{1})});
  for (size_t i = 0; i < 3; ++i) b.set_GI(i, g[i]);
}

void instance_norm_grads(GradientBuilder& b) {
  const std::vector<std::string> g = b.grad_op("InstanceNormGrad", {b.GO(0), b.I(0), b.I(1)}, 3,
                                               {attr("epsilon", node_float(b.node(), "epsilon", 1e-5f))});
  for (size_t i = 0; i < 3; ++i) b.set_GI(i, g[i]);
}

// Whether a LayerNormalization parameter is statically X.shape[axis:] itself (not broadcast to it),
// so LayerNormGrad's dScale / dBias need no summing. The parameter broadcasts to the block (the
// forward checked), so a parameter of the block's rank without 1s is the block.
bool is_block_shaped(const GradientBuilder& b, const std::string& param, int64_t axis) {
  const std::optional<std::vector<int64_t>> dims = b.dims(param);
  if (!dims) return false;
  std::optional<int64_t> block_rank;
  if (axis < 0) block_rank = -axis;
  else if (auto r = b.rank(b.I(0))) block_rank = static_cast<int64_t>(*r) - axis;
  if (!block_rank || static_cast<int64_t>(dims->size()) != *block_rank) return false;
  if (auto x = b.dims(b.I(0)))
    return std::equal(dims->begin(), dims->end(), x->end() - static_cast<std::ptrdiff_t>(dims->size()));
  for (int64_t d : *dims)
    if (d == 1) return false;
  return true;
}

void layer_norm_grads(GradientBuilder& b) {
  const ir::Node& node = b.node();
  const int64_t axis = node_int(node, "axis", -1);
  const std::vector<std::string> g =
      b.grad_op("LayerNormGrad", {b.GO(0), b.I(0), b.I(1)}, 3,
                {attr("axis", axis), attr("epsilon", node_float(node, "epsilon", 1e-5f))});
  b.set_GI(0, g[0]);
  for (size_t i = 1; i < 3; ++i) {
    if (!b.wants_GI(i)) continue;
    const std::string& param = b.I(i);
    b.set_GI(i, is_block_shaped(b, param, axis) ? g[i] : b.grad_op1("SumToShape", {g[i], b.shape_of(param)}));
  }
}

}  // namespace

void register_normalization_gradients(GradientRegistry& registry) {
  // Mean and var (inputs 3, 4) are the running statistics: constants of the inference form.
  registry.add({.domain = "", .op_type = "BatchNormalization", .differentiable_inputs = {0, 1, 2},
                .build = batch_norm_grads});
  registry.add({.domain = kGradDomain, .op_type = "BatchNormTrain", .differentiable_inputs = {0, 1, 2},
                .build = batch_norm_train_grads});
  registry.add({.domain = "", .op_type = "InstanceNormalization", .differentiable_inputs = {0, 1, 2},
                .build = instance_norm_grads});
  registry.add({.domain = "", .op_type = "LayerNormalization", .since_version = 17, .differentiable_inputs = {0, 1, 2},
                .build = layer_norm_grads});
  // Made by passes/fuse_layer_norm and passes/lower_contrib_ops in models of any opset.
  registry.add({.domain = kGradDomain, .op_type = "LayerNormalization", .differentiable_inputs = {0, 1, 2},
                .build = layer_norm_grads});
}

}  // namespace tunnx::ops
