// Cast between any two of tunnx's numeric, bool and string dtypes; other kernels (Pad, EyeLike,
// constants) reuse the conversion.
#pragma once

#include "runtime/core/kernel.h"
#include "runtime/core/kernel_registry.h"
#include "runtime/core/narrow_types.h"

namespace tunnx::cpu {

// How a float is rounded into the narrow float types (Cast's `saturate` and `round_mode`).
struct NarrowRounding {
  bool saturate = true;
  E8M0Rounding e8m0 = E8M0Rounding::kUp;
};

// Converts every element of `x` into `y` (same element count, y's dtype); throws through `ctx` when
// a string does not parse as a number.
void cast_into(const Tensor& x, Tensor& y, const KernelContext& ctx, const NarrowRounding& rounding = {});

void register_cast_kernels(KernelRegistry& registry);  // Cast, CastLike, BitCast

}  // namespace tunnx::cpu
