// Shared pieces of the com.tunnx training kernels (gradients, losses, dropout; contracts in
// runtime/core/ops/gradient_ops.md): their registration and the thread helpers of their OpenMP loops.
#pragma once

#include <string>

#include "runtime/core/kernel_registry.h"

namespace tunnx::cpu {

// Registers the reference kernel of a com.tunnx op (opset 1, the float types, the dtype read from
// input `type_input`), named "cpu/reference/<op_type>".
void add_grad_kernel(KernelRegistry& registry, const std::string& op_type, KernelFactory factory, int type_input = 0);

// Threads an OpenMP loop may use now (at least 1; 1 without OpenMP).
int max_threads();
// The calling thread's index in the OpenMP team it runs in (0 outside one, and without OpenMP).
int thread_index();

}  // namespace tunnx::cpu
