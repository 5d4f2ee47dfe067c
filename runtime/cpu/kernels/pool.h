// Pooling kernels (AveragePool, MaxPool, LpPool, their Global forms, MaxUnpool) and LRN; registered
// from register_conv_pool_kernels (conv_pool.cc), which also uses the window helpers below. The pool
// geometry is shared with the gradients (conv_pool_grad.cc): a gradient must read each window
// exactly as the forward kernel did.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "runtime/core/kernel.h"
#include "runtime/core/kernel_registry.h"
#include "runtime/cpu/kernels/common.h"

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

// The attributes of the windowed pools (and MaxUnpool), parsed once.
struct PoolAttrs {
  std::string auto_pad;
  std::vector<int64_t> kernel_shape, strides, pads, dilations;
  bool ceil_mode = false;
  bool count_include_pad = false;
  int64_t storage_order = 0;
  double p = 2;  // LpPool
};

PoolAttrs parse_pool_attrs(const KernelInit& init);

// Where each pooling window reads. Per spatial dim d and output index o: the in-range input
// coordinates of the window (taps[d][o]) and how many of its positions lie inside the padded input
// (padded[d][o], the divisor of count_include_pad).
struct PoolGeometry {
  int64_t planes = 0;  // N * C
  std::vector<int64_t> in, out;
  std::vector<std::vector<std::vector<int64_t>>> taps;
  std::vector<std::vector<int64_t>> padded;
};

// x: the dims of X, (N, C, D1..Dn). Throws naming X when it does not fit the attributes.
PoolGeometry pool_geometry(const KernelContext& ctx, const PoolAttrs& a, const std::vector<int64_t>& x);

// Y's dims: (N, C, out...).
std::vector<int64_t> pooled_dims(const std::vector<int64_t>& x, const std::vector<int64_t>& out);

// Calls fn(out_index, offsets, padded_count) for each output position of one plane, where offsets
// are the flat in-plane input offsets the window reads.
template <typename Fn>
void for_each_window(const PoolGeometry& g, Fn fn) {
  const size_t nd = g.in.size();
  const int64_t out_size = product(g.out);
  std::vector<int64_t> index(nd, 0), offsets, next;
  for (int64_t o = 0; o < out_size; ++o) {
    offsets.assign(1, 0);
    int64_t padded = 1;
    for (size_t d = 0; d < nd; ++d) {
      const auto& taps = g.taps[d][static_cast<size_t>(index[d])];
      padded *= g.padded[d][static_cast<size_t>(index[d])];
      next.clear();
      for (int64_t base : offsets)
        for (int64_t t : taps) next.push_back(base * g.in[d] + t);
      offsets.swap(next);
    }
    fn(o, offsets, padded);
    for (size_t d = nd; d-- > 0;) {
      if (++index[d] < g.out[d]) break;
      index[d] = 0;
    }
  }
}

}  // namespace tunnx::cpu
