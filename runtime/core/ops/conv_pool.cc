// Gradient rules of convolutions and pools. Each forward node becomes one com.tunnx gradient node
// (runtime/core/ops/gradient_ops.md) that carries the forward node's attributes unchanged, so the
// gradient kernel reads every window (pads, strides, dilations, auto_pad, ceil_mode, group...) exactly
// as the forward kernel did. What changed across opsets is only which attributes exist (MaxPool:
// storage_order and the Indices output since 8, ceil_mode and dilations since 10; AveragePool:
// count_include_pad since 7, ceil_mode since 10, dilations since 19); an absent one reads as its
// default, the value the older opset implied, so one rule serves every opset. Indices (MaxPool
// output 1) is int64: no gradient flows through it.
#include "runtime/core/ops/gradient.h"

namespace tunnx::ops {
namespace {

// ConvGrad / ConvTransposeGrad: dX, dW, dB for inputs 0, 1, 2.
void conv_rule(GradientBuilder& b, const std::string& grad_op) {
  // All three outputs are named; the planner marks those no node reads as unwanted, so a first layer
  // (X not trained) computes dW and dB only.
  const std::vector<std::string> grads = b.grad_op(grad_op, {b.GO(0), b.I(0), b.I(1)}, 3, b.node().attributes);
  for (size_t i = 0; i < 3; ++i) b.set_GI(i, grads[i]);  // ignored where not wanted
}

GradientRule rule(const std::string& op_type, std::vector<size_t> inputs, std::function<void(GradientBuilder&)> build) {
  return {.domain = "", .op_type = op_type, .since_version = 1, .until_version = INT_MAX,
          .differentiable_inputs = std::move(inputs), .build = std::move(build)};
}

}  // namespace

void register_conv_pool_gradients(GradientRegistry& r) {
  // Conv 1 and 11 differ only in wording; B (input 2) is optional.
  r.add(rule("Conv", {0, 1, 2}, [](GradientBuilder& b) { conv_rule(b, "ConvGrad"); }));
  r.add(rule("ConvTranspose", {0, 1, 2}, [](GradientBuilder& b) { conv_rule(b, "ConvTransposeGrad"); }));

  // dX: each dY added at its window's first maximum, found again from X.
  r.add(rule("MaxPool", {0}, [](GradientBuilder& b) {
    b.set_GI(0, b.grad_op1("MaxPoolGrad", {b.GO(0), b.I(0)}, b.node().attributes));
  }));
  // dX: each dY spread over its window; only X's shape is needed.
  r.add(rule("AveragePool", {0}, [](GradientBuilder& b) {
    b.set_GI(0, b.grad_op1("AveragePoolGrad", {b.GO(0), b.shape_of(b.I(0))}, b.node().attributes));
  }));
  r.add(rule("GlobalAveragePool", {0}, [](GradientBuilder& b) {
    b.set_GI(0, b.grad_op1("GlobalPoolGrad", {b.GO(0), b.I(0)}, {attr("mode", std::string("average"))}));
  }));
  r.add(rule("GlobalMaxPool", {0}, [](GradientBuilder& b) {
    b.set_GI(0, b.grad_op1("GlobalPoolGrad", {b.GO(0), b.I(0)}, {attr("mode", std::string("max"))}));
  }));
}

}  // namespace tunnx::ops
