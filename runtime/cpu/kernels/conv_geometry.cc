// The convolution geometry shared by conv_pool.cc and conv_pool_grad.cc (conv_geometry.h).
#include "runtime/cpu/kernels/conv_geometry.h"

#include "runtime/cpu/kernels/pool.h"

namespace tunnx::cpu {
namespace {

// Fills what Conv and ConvTranspose share (kernel, strides, dilations, batch, group, channels) from the
// attributes, X and W, and zeroes pad_begin; checks X and W agree. W is (M, C/group, kernel) for Conv,
// (C, M/group, kernel) for ConvTranspose. Returns the number of spatial dims.
size_t common_geometry(const KernelContext& ctx, const ConvAttrs& a, const std::vector<int64_t>& x,
                       const std::vector<int64_t>& w, bool transpose, ConvGeometry& g) {
  if (x.size() < 3) throw ctx.error("X must have rank 3 or more (N, C, spatial...), got " + dims_to_string(x));
  if (w.size() != x.size())
    throw ctx.error("W " + dims_to_string(w) + " must have the rank of X " + dims_to_string(x));
  const size_t nd = x.size() - 2;
  g.kernel.assign(w.begin() + 2, w.end());
  if (!a.kernel_shape.empty() && a.kernel_shape != g.kernel)
    throw ctx.error("kernel_shape " + dims_to_string(a.kernel_shape) + " does not match W " + dims_to_string(w));
  g.strides = a.strides.empty() ? std::vector<int64_t>(nd, 1) : a.strides;
  g.dilations = a.dilations.empty() ? std::vector<int64_t>(nd, 1) : a.dilations;
  if (g.strides.size() != nd || g.dilations.size() != nd)
    throw ctx.error("strides and dilations need " + std::to_string(nd) + " values");
  if (!a.pads.empty() && a.pads.size() != 2 * nd)
    throw ctx.error("pads needs " + std::to_string(2 * nd) + " values, got " + std::to_string(a.pads.size()));
  for (int64_t k : g.kernel)
    if (k < 1) throw ctx.error("W has an empty kernel " + dims_to_string(w));
  g.batch = x[0];
  g.group = a.group;
  g.in_channels = x[1];
  g.out_channels = transpose ? w[1] * g.group : w[0];
  const bool fits = transpose ? w[0] == x[1] && x[1] % g.group == 0
                              : w[1] * g.group == x[1] && g.out_channels % g.group == 0;
  if (!fits)
    throw ctx.error("X " + dims_to_string(x) + " and W " + dims_to_string(w) + " do not fit group " +
                    std::to_string(g.group));
  g.pad_begin.assign(nd, 0);
  return nd;
}

}  // namespace

ConvAttrs parse_conv_attrs(const KernelInit& init) {
  ConvAttrs a;
  a.auto_pad = read_auto_pad(init);
  a.group = init.attr_int("group", 1);
  if (a.group < 1) throw init.error("group must be at least 1, got " + std::to_string(a.group));
  a.kernel_shape = init.attr_ints("kernel_shape");
  a.strides = init.attr_ints("strides");
  a.dilations = init.attr_ints("dilations");
  a.pads = init.attr_ints("pads");
  a.output_padding = init.attr_ints("output_padding");
  a.output_shape = init.attr_ints("output_shape");
  a.offset_group = init.attr_int("offset_group", 1);
  if (a.offset_group < 1) throw init.error("offset_group must be at least 1");
  check_window_attrs(init, a.strides, a.dilations, a.pads);
  return a;
}

ConvGeometry conv_geometry(const KernelContext& ctx, const ConvAttrs& a, const std::vector<int64_t>& x,
                           const std::vector<int64_t>& w) {
  ConvGeometry g;
  const size_t nd = common_geometry(ctx, a, x, w, false, g);
  g.image.assign(x.begin() + 2, x.end());
  g.grid.resize(nd);
  for (size_t d = 0; d < nd; ++d) {
    const int64_t extent = (g.kernel[d] - 1) * g.dilations[d] + 1;
    if (a.auto_pad == "SAME_UPPER" || a.auto_pad == "SAME_LOWER") {
      const SamePadding same = same_padding(g.image[d], g.strides[d], extent, a.auto_pad == "SAME_UPPER");
      g.grid[d] = same.out;
      g.pad_begin[d] = same.begin;
    } else {
      int64_t begin = 0, end = 0;
      if (a.auto_pad == "NOTSET" && !a.pads.empty()) begin = a.pads[d], end = a.pads[d + nd];
      g.pad_begin[d] = begin;
      int64_t span = g.image[d] + begin + end - extent;
      if (span < 0)
        throw ctx.error("the kernel (extent " + std::to_string(extent) + ") is larger than the padded input " +
                        dims_to_string(x));
      g.grid[d] = span / g.strides[d] + 1;
    }
  }
  return g;
}

ConvGeometry conv_transpose_geometry(const KernelContext& ctx, const ConvAttrs& a, const std::vector<int64_t>& x,
                                     const std::vector<int64_t>& w) {
  ConvGeometry g;
  const size_t nd = common_geometry(ctx, a, x, w, true, g);
  if (!a.output_padding.empty() && a.output_padding.size() != nd && a.output_padding.size() != 2 * nd)
    throw ctx.error("output_padding needs " + std::to_string(nd) + " values");
  if (!a.output_shape.empty() && a.output_shape.size() != nd && a.output_shape.size() != nd + 2)
    throw ctx.error("output_shape needs " + std::to_string(nd) + " values");
  g.grid.assign(x.begin() + 2, x.end());
  g.image.resize(nd);
  const bool same = a.auto_pad == "SAME_UPPER" || a.auto_pad == "SAME_LOWER";
  for (size_t d = 0; d < nd; ++d) {
    const int64_t extent = (g.kernel[d] - 1) * g.dilations[d] + 1;
    const int64_t out_pad = a.output_padding.empty() ? 0 : a.output_padding[d];
    const int64_t full = g.strides[d] * (g.grid[d] - 1) + out_pad + extent;
    if (!a.output_shape.empty() || same) {
      // The output size is given; the pads are what makes it so (the odd one at the end for SAME_UPPER).
      g.image[d] = !a.output_shape.empty() ? a.output_shape[a.output_shape.size() - nd + d] : g.grid[d] * g.strides[d];
      // A negative total (output_shape past the full size) leaves the extra rows at the end: floor division.
      const int64_t total = full - g.image[d];
      const int64_t half = total >= 0 ? total / 2 : -((-total + 1) / 2);
      g.pad_begin[d] = a.auto_pad == "SAME_UPPER" ? half : total - half;
    } else {
      int64_t begin = 0, end = 0;
      if (a.auto_pad == "NOTSET" && !a.pads.empty()) begin = a.pads[d], end = a.pads[d + nd];
      g.pad_begin[d] = begin;
      g.image[d] = full - begin - end;
    }
    if (g.image[d] < 0) throw ctx.error("the computed output shape is negative");
  }
  return g;
}

std::vector<std::vector<int64_t>> tap_tables(const ConvGeometry& g) {
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
