// The convolution window helpers shared by the forward kernels (conv_pool.cc) and their gradients
// (conv_pool_grad.cc): the geometry rules of runtime/core/ops/conv_pool.h as kernels call them, and the
// im2col / col2im patch transfer built on them.
//
// Conv: X is (N, C, image), W is (M, C/group, kernel), Y is (N, M, grid).
// ConvTranspose: X is (N, C, grid), W is (C, M/group, kernel), Y is (N, M, image).
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "runtime/core/ops/conv_pool.h"
#include "runtime/cpu/kernels/common.h"

namespace tunnx::cpu {

// ops::conv_geometry for the dims of X and W, throwing ctx's error (naming the shapes) when they do
// not fit the attributes.
ops::ConvGeometry conv_geometry(const KernelContext& ctx, const ops::ConvAttrs& a, const std::vector<int64_t>& x,
                                const std::vector<int64_t>& w, bool transpose);

// For each spatial dim d, table[d][k * grid[d] + o]: the image coordinate that kernel tap k of patch
// o touches, or -1 when it falls in the padding.
std::vector<std::vector<int64_t>> tap_tables(const ops::ConvGeometry& g);

// Between `channels` image planes and the column matrix col[(c, k1..kn)][grid position]:
// kScatter false copies image values into col (im2col, padding reads 0); true adds col into the image
// (col2im).
template <bool kScatter, typename Acc>
void patch_transfer(const ops::ConvGeometry& g, const std::vector<std::vector<int64_t>>& tables, int64_t channels,
                    std::conditional_t<kScatter, Acc*, const Acc*> image, std::conditional_t<kScatter, const Acc*, Acc*> col) {
  const size_t nd = g.grid.size();
  const int64_t image_size = product(g.image), grid_size = product(g.grid), kernel_size = product(g.kernel);
  const std::vector<int64_t> image_strides = strides_of(g.image);
  const int64_t inner = g.grid[nd - 1], outer = grid_size / std::max<int64_t>(inner, 1);
  std::vector<int64_t> k_index(nd), o_index(nd);
  for (int64_t row = 0; row < channels * kernel_size; ++row) {
    const int64_t c = row / kernel_size;
    for (int64_t rest = row % kernel_size, d = static_cast<int64_t>(nd) - 1; d >= 0; --d) {
      k_index[static_cast<size_t>(d)] = rest % g.kernel[static_cast<size_t>(d)];
      rest /= g.kernel[static_cast<size_t>(d)];
    }
    auto plane = image + c * image_size;
    auto line = col + row * grid_size;
    std::fill(o_index.begin(), o_index.end(), 0);
    const int64_t* last = tables[nd - 1].data() + k_index[nd - 1] * inner;
    for (int64_t o = 0; o < outer; ++o, line += inner) {
      int64_t base = 0;
      bool inside = true;
      for (size_t d = 0; d + 1 < nd && inside; ++d) {
        int64_t pos = tables[d][static_cast<size_t>(k_index[d] * g.grid[d] + o_index[d])];
        inside = pos >= 0;
        base += pos * image_strides[d];
      }
      if constexpr (kScatter) {
        if (inside)
          for (int64_t i = 0; i < inner; ++i)
            if (last[i] >= 0) plane[base + last[i]] += line[i];
      } else {
        for (int64_t i = 0; i < inner; ++i) line[i] = (inside && last[i] >= 0) ? plane[base + last[i]] : Acc(0);
      }
      for (size_t d = nd - 1; d-- > 0;) {  // advance the outer grid index
        if (++o_index[d] < g.grid[d]) break;
        o_index[d] = 0;
      }
    }
  }
}

}  // namespace tunnx::cpu
