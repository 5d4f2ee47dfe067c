// The broadcasting half of the elementwise family (elementwise_binary.cc, bitwise.cc);
// register_elementwise_kernels calls them so that kernels.h keeps one register function per family.
#pragma once

#include <cstdint>
#include <vector>

#include "runtime/core/kernel_registry.h"
#include "runtime/cpu/kernels/vector_loops.h"

namespace tunnx::cpu {

// Binary arithmetic, logic and comparison, PRelu, variadic Max/Min/Sum/Mean, Where.
void register_elementwise_binary_kernels(KernelRegistry& registry);
// out = a op b for float tensors whose broadcast comes down to rows (same shapes, a scalar, a bias
// row, a value per row: every pattern of a CNN's or a transformer's operands) on the vector loops, the
// rows split among the run's threads; out may be a (in place). False, with nothing written, for any
// other pattern.
bool float_binary(FloatBinaryOp op, const float* a, const std::vector<int64_t>& a_dims, const float* b,
                  const std::vector<int64_t>& b_dims, float* out, const std::vector<int64_t>& out_dims);

// BitwiseAnd/Or/Xor/Not and BitShift from opset 28 (bitwise.cc).
void register_bitwise_kernels(KernelRegistry& registry);

}  // namespace tunnx::cpu
