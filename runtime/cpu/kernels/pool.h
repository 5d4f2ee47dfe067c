// Pooling kernels (AveragePool, MaxPool, LpPool, their Global forms, MaxUnpool) and LRN; registered
// from register_conv_pool_kernels (conv_pool.cc). The pool windows below are shared with the gradients
// (conv_pool_grad.cc): a gradient must read each window exactly as the forward kernel did.
#pragma once

#include <cstdint>
#include <vector>

#include "runtime/core/kernel.h"
#include "runtime/core/kernel_registry.h"
#include "runtime/core/ops/conv_pool.h"
#include "runtime/cpu/kernels/common.h"

namespace tunnx::cpu {

void register_pool_kernels(KernelRegistry& registry);

// Where each pooling window reads (the geometry of runtime/core/ops/conv_pool.h, unrolled). Per
// spatial dim d and output index o: the in-range input coordinates of the window (taps[d][o]) and how
// many of its positions lie inside the padded input (padded[d][o], the divisor of count_include_pad).
struct PoolWindows : ops::PoolGeometry {
  std::vector<std::vector<std::vector<int64_t>>> taps;
  std::vector<std::vector<int64_t>> padded;
};

// x: the dims of X, (N, C, D1..Dn). Throws ctx's error naming X when it does not fit the attributes.
PoolWindows pool_windows(const KernelContext& ctx, const ops::PoolAttrs& a, const std::vector<int64_t>& x);

// Calls fn(out_index, offsets, padded_count) for each output position of one plane, where offsets
// are the flat in-plane input offsets the window reads.
template <typename Fn>
void for_each_window(const PoolWindows& g, Fn fn) {
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
