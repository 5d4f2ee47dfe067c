// Pooling kernels (AveragePool, MaxPool, LpPool, their Global forms, MaxUnpool) and LRN; registered
// from register_conv_pool_kernels (conv_pool.cc).
#pragma once

#include "runtime/core/kernel_registry.h"

namespace tunnx::cpu {

void register_pool_kernels(KernelRegistry& registry);

}  // namespace tunnx::cpu
