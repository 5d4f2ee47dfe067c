// Shared pieces of the com.tunnx training kernels (gradients, losses, dropout; contracts in
// runtime/core/ops/gradient_ops.md): their registration. The thread helpers of OpenMP loops are in
// common.h.
#pragma once

#include <string>

#include "runtime/core/kernel_registry.h"
#include "runtime/cpu/kernels/common.h"

namespace tunnx::cpu {

// Registers the reference kernel of a com.tunnx op (opset 1, the float types, the dtype read from
// input `type_input`), named "cpu/reference/<op_type>".
void add_grad_kernel(KernelRegistry& registry, const std::string& op_type, KernelFactory factory, int type_input = 0);

}  // namespace tunnx::cpu
