// oneDNN fast paths for the CPU runtime. Registered with priority above the reference kernels, which
// stay the fallback (other dtypes, shapes oneDNN does not take) and the yardstick in tests.
#pragma once

#include "runtime/core/kernel_registry.h"

namespace tunnx::cpu {

void register_onednn_kernels(KernelRegistry& registry);

}  // namespace tunnx::cpu
