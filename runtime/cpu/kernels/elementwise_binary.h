// The broadcasting half of the elementwise family (elementwise_binary.cc, bitwise.cc);
// register_elementwise_kernels calls them so that kernels.h keeps one register function per family.
#pragma once

#include "runtime/core/kernel_registry.h"

namespace tunnx::cpu {

// Binary arithmetic, logic and comparison, PRelu, variadic Max/Min/Sum/Mean, Where.
void register_elementwise_binary_kernels(KernelRegistry& registry);
// BitwiseAnd/Or/Xor/Not and BitShift from opset 28 (bitwise.cc).
void register_bitwise_kernels(KernelRegistry& registry);

}  // namespace tunnx::cpu
