// The broadcasting half of the elementwise family (elementwise_binary.cc); register_elementwise_kernels
// calls it so that kernels.h keeps one register function per family.
#pragma once

#include "runtime/core/kernel_registry.h"

namespace tunnx::cpu {

// Binary arithmetic, logic and comparison, PRelu, variadic Max/Min/Sum/Mean, Where.
void register_elementwise_binary_kernels(KernelRegistry& registry);

}  // namespace tunnx::cpu
