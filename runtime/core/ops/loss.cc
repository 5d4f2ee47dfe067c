// Gradient rules of the loss family: com.tunnx Loss and TrainDropout, ONNX SoftmaxCrossEntropyLoss and
// NegativeLogLikelihoodLoss, and ONNX Dropout in training mode. The kernels they emit are in
// runtime/cpu/kernels/train_loss.cc. Targets, labels, class weights and seeds carry no gradient.
#include "runtime/core/ops/gradient.h"

#include <initializer_list>
#include <string>
#include <vector>

namespace tunnx::ops {
namespace {

// The forward node's attributes among `names`, copied as they are, so the gradient kernel parses
// them exactly as the forward kernel did (an absent attribute keeps its default on both sides).
std::vector<ir::Attribute> copy_attributes(const ir::Node& node, std::initializer_list<const char*> names) {
  std::vector<ir::Attribute> out;
  for (const char* name : names)
    if (const ir::Attribute* a = node.attribute(name)) out.push_back(*a);
  return out;
}

// com.tunnx:Loss(prediction, target) -> scalar.
void loss_gradient(GradientBuilder& b) {
  b.set_GI(0, b.grad_op1("LossGrad", {b.GO(0), b.I(0), b.I(1)},
                         copy_attributes(b.node(), {"kind", "ignore_index", "label_smoothing"})));
}

// SoftmaxCrossEntropyLoss(scores, labels, [weights]) -> loss, [log_prob]. Both outputs may carry a
// gradient: the loss's through SoftmaxCrossEntropyLossGrad, log_prob's as LogSoftmax's (axis 1).
void softmax_cross_entropy_gradient(GradientBuilder& b) {
  std::string grad;
  if (b.has_GO(0)) {
    std::vector<std::string> inputs = {b.GO(0), b.I(0), b.I(1)};
    if (b.has_input(2)) inputs.push_back(b.I(2));
    grad = b.grad_op1("SoftmaxCrossEntropyLossGrad", inputs, copy_attributes(b.node(), {"reduction", "ignore_index"}));
  }
  if (b.has_GO(1)) {
    const std::string from_log_prob =
        b.grad_op1("LogSoftmaxGrad", {b.GO(1), b.O(1)}, {attr("axis", int64_t{1}), attr("coerce_2d", int64_t{0})});
    grad = grad.empty() ? from_log_prob : b.add(grad, from_log_prob);
  }
  b.set_GI(0, grad);
}

// NegativeLogLikelihoodLoss(input, target, [weight]) -> loss.
void negative_log_likelihood_gradient(GradientBuilder& b) {
  std::vector<std::string> inputs = {b.GO(0), b.I(0), b.I(1)};
  if (b.has_input(2)) inputs.push_back(b.I(2));
  b.set_GI(0, b.grad_op1("NegativeLogLikelihoodLossGrad", inputs, copy_attributes(b.node(), {"reduction", "ignore_index"})));
}

// The mask says which elements the forward kept; without it the draw cannot be replayed.
const std::string& dropout_mask(const GradientBuilder& b) {
  if (b.num_outputs() < 2 || b.node().outputs[1].empty())
    throw b.error("dropout in training mode is differentiated through its mask, but the node has no mask "
                  "output (output 1); give the node a mask output");
  return b.O(1);
}

// com.tunnx:TrainDropout(X, seed) -> Y, mask.
void train_dropout_gradient(GradientBuilder& b) {
  const std::string& mask = dropout_mask(b);
  b.set_GI(0, b.grad_op1("DropoutGrad", {b.GO(0), mask}, copy_attributes(b.node(), {"ratio"})));
}

}  // namespace

// ONNX Dropout (opset 12+) with a training_mode input: data, [ratio], training_mode -> output, mask.
// Ratio and training_mode are read at run time by DropoutGrad (ratio 0.5 when the input is omitted,
// as ONNX's default; dX = dY when training_mode is false). Called by the tensor family's Dropout rule.
void dropout_training_gradient(GradientBuilder& b) {
  if (!b.has_input(2))
    throw b.error("this Dropout has no training_mode input, so it runs as the identity; it is not a training-mode "
                  "Dropout");
  const std::string& mask = dropout_mask(b);
  b.set_GI(0, b.grad_op1("DropoutGrad", {b.GO(0), mask, b.has_input(1) ? b.I(1) : std::string(), b.I(2)},
                         {attr("ratio", 0.5f)}));
}

void register_loss_gradients(GradientRegistry& registry) {
  registry.add({.domain = kGradDomain, .op_type = "Loss", .differentiable_inputs = {0}, .build = loss_gradient});
  registry.add({.domain = kGradDomain, .op_type = "TrainDropout", .differentiable_inputs = {0},
                .build = train_dropout_gradient});
  // Later versions (13, 22) changed the function bodies and dtypes, not the meaning: one rule from 12.
  registry.add({.domain = "", .op_type = "SoftmaxCrossEntropyLoss", .since_version = 12, .differentiable_inputs = {0},
                .build = softmax_cross_entropy_gradient});
  registry.add({.domain = "", .op_type = "NegativeLogLikelihoodLoss", .since_version = 12, .differentiable_inputs = {0},
                .build = negative_log_likelihood_gradient});
}

}  // namespace tunnx::ops
