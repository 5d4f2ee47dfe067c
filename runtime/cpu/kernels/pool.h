// Pooling kernels (AveragePool, MaxPool, LpPool, their Global forms, MaxUnpool) and LRN; registered
// from register_conv_pool_kernels (conv_pool.cc), which also uses the window helpers below.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/core/kernel.h"
#include "runtime/core/kernel_registry.h"

namespace tunnx::cpu {

void register_pool_kernels(KernelRegistry& registry);

// The window attributes pools share with convolutions (conv_pool.cc), read and checked one way.
// auto_pad: "NOTSET" when absent or empty; throws on an unknown value.
std::string read_auto_pad(const KernelInit& init);
// Throws unless strides and dilations are >= 1 and pads >= 0.
void check_window_attrs(const KernelInit& init, const std::vector<int64_t>& strides,
                        const std::vector<int64_t>& dilations, const std::vector<int64_t>& pads);
// SAME_UPPER / SAME_LOWER along one dim: ceil(in / stride) windows of `extent`, the padding they need
// split in two with the odd one at the end (upper) or the beginning (lower).
struct SamePadding {
  int64_t out = 0, begin = 0, end = 0;
};
SamePadding same_padding(int64_t in, int64_t stride, int64_t extent, bool upper);

}  // namespace tunnx::cpu
