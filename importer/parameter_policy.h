// Which initializers are trainable Parameters and which are buffers, following torch.nn.Parameter:
// a floating-point initializer of rank >= 1 that feeds at least one input ONNX's schema does not mark
// non-differentiable is a Parameter (requires_grad = true); everything else is a buffer. Names decide
// nothing: PyTorch names real weights `onnx::MatMul_123` as often as `fc1.weight`.
#pragma once

#include "runtime/core/graph.h"
#include "runtime/core/parameter_store.h"

namespace tunnx {

// Sets role, requires_grad and reason on every store entry that the model's graphs reference.
void assign_parameter_roles(const ir::ModelIR& model, ParameterStore& store);

}  // namespace tunnx
