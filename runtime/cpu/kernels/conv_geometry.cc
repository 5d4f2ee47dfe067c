// The convolution window helpers shared by conv_pool.cc and conv_pool_grad.cc (conv_geometry.h).
#include "runtime/cpu/kernels/conv_geometry.h"

#include <optional>
#include <string>
#include <utility>

namespace tunnx::cpu {

ops::ConvGeometry conv_geometry(const KernelContext& ctx, const ops::ConvAttrs& a, const std::vector<int64_t>& x,
                                const std::vector<int64_t>& w, bool transpose) {
  std::string why_not;
  std::optional<ops::ConvGeometry> g = ops::conv_geometry(a, x, w, transpose, &why_not);
  if (!g) throw ctx.error(why_not);
  return std::move(*g);
}

std::vector<std::vector<int64_t>> tap_tables(const ops::ConvGeometry& g) {
  std::vector<std::vector<int64_t>> tables(g.grid.size());
  for (size_t d = 0; d < g.grid.size(); ++d) {
    tables[d].resize(static_cast<size_t>(g.kernel[d] * g.grid[d]));
    for (int64_t k = 0; k < g.kernel[d]; ++k)
      for (int64_t o = 0; o < g.grid[d]; ++o) {
        int64_t pos = o * g.strides[d] - g.pad_begin[d] + k * g.dilations[d];
        tables[d][static_cast<size_t>(k * g.grid[d] + o)] = (pos >= 0 && pos < g.image[d]) ? pos : -1;
      }
  }
  return tables;
}

}  // namespace tunnx::cpu
