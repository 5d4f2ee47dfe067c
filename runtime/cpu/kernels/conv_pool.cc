// Convolutions: Conv, ConvTranspose, DeformConv, ConvInteger, QLinearConv. Pooling, LRN and MaxUnpool live in
// pool.cc (register_pool_kernels, called from here). Their attributes and shape rules:
// runtime/core/ops/conv_pool.h.
//
// Both run per image and group as a matrix product around an im2col / col2im of the spatial patches,
// in float (double for float64, int32 for the integer convolutions).
#include <algorithm>
#include <cmath>

#include "runtime/cpu/kernels/common.h"
#include "runtime/cpu/kernels/conv_geometry.h"
#include "runtime/cpu/kernels/kernels.h"
#include "runtime/cpu/kernels/pool.h"
#include "runtime/cpu/kernels/vector_loops.h"

namespace tunnx::cpu {
namespace {

// y[n, group grp] = bias + W[grp] x col, where col holds the group's patches (C/group * kernel rows,
// one column per grid position). w: (M, C/group, kernel), y: (N, M, grid).
template <typename Acc>
void group_product(const ops::ConvGeometry& g, const Acc* w, const Acc* bias, const Acc* col, int64_t n,
                   int64_t grp, Acc* y) {
  const int64_t grid_size = product(g.grid), rows = g.in_channels / g.group * product(g.kernel);
  const int64_t mg = g.out_channels / g.group;
  for (int64_t m = 0; m < mg; ++m) {
    const int64_t oc = grp * mg + m;
    Acc* out = y + (n * g.out_channels + oc) * grid_size;
    std::fill(out, out + grid_size, bias ? bias[oc] : Acc(0));
    const Acc* wrow = w + oc * rows;
    for (int64_t r = 0; r < rows; ++r) {
      const Acc a = wrow[r];
      if (a == Acc(0)) continue;
      const Acc* src = col + r * grid_size;
      for (int64_t p = 0; p < grid_size; ++p) out[p] += a * src[p];
    }
  }
}

// Conv on Acc values. x: (N, C, image), w: (M, C/group, kernel), bias: (M) or null, y: (N, M, grid).
template <typename Acc>
void conv_forward(const ops::ConvGeometry& g, const Acc* x, const Acc* w, const Acc* bias, Acc* y) {
  const int64_t image_size = product(g.image), grid_size = product(g.grid), kernel_size = product(g.kernel);
  const int64_t cg = g.in_channels / g.group;
  const auto tables = tap_tables(g);
  std::vector<Acc> col(static_cast<size_t>(cg * kernel_size * grid_size));
  for (int64_t n = 0; n < g.batch; ++n)
    for (int64_t grp = 0; grp < g.group; ++grp) {
      patch_transfer<false, Acc>(g, tables, cg, x + (n * g.in_channels + grp * cg) * image_size, col.data());
      group_product(g, w, bias, col.data(), n, grp, y);
    }
}

// DeformConv (2-D) on Acc values: Conv whose every kernel tap is shifted by a learned offset and read
// by bilinear interpolation (0 outside the image), then scaled by a mask.
// offset: (N, offset_group * kh * kw * 2, oh, ow) as (dy, dx) pairs; mask: (N, offset_group * kh * kw, oh, ow).
template <typename Acc>
void deform_conv_forward(const ops::ConvGeometry& g, int64_t offset_groups, const Acc* x, const Acc* w,
                         const Acc* offset, const Acc* mask, const Acc* bias, Acc* y) {
  const int64_t ih = g.image[0], iw = g.image[1], oh = g.grid[0], ow = g.grid[1];
  const int64_t kh = g.kernel[0], kw = g.kernel[1], grid_size = oh * ow, taps = kh * kw;
  const int64_t cg = g.in_channels / g.group, channels_per_offset = g.in_channels / offset_groups;
  std::vector<Acc> col(static_cast<size_t>(cg * taps * grid_size));
  auto pixel = [&](const Acc* plane, int64_t r, int64_t c) {
    return (r >= 0 && r < ih && c >= 0 && c < iw) ? plane[r * iw + c] : Acc(0);
  };
  for (int64_t n = 0; n < g.batch; ++n)
    for (int64_t grp = 0; grp < g.group; ++grp) {
      for (int64_t c = 0; c < cg; ++c) {
        const int64_t ic = grp * cg + c, og = ic / channels_per_offset;
        const Acc* plane = x + (n * g.in_channels + ic) * ih * iw;
        for (int64_t t = 0; t < taps; ++t) {
          const Acc* dy = offset + ((n * offset_groups + og) * taps * 2 + t * 2) * grid_size;
          const Acc* dx = dy + grid_size;
          const Acc* scale = mask ? mask + ((n * offset_groups + og) * taps + t) * grid_size : nullptr;
          Acc* line = col.data() + (c * taps + t) * grid_size;
          for (int64_t i = 0; i < oh; ++i)
            for (int64_t j = 0; j < ow; ++j) {
              const int64_t p = i * ow + j;
              const Acc h = static_cast<Acc>(i * g.strides[0] - g.pad_begin[0] + (t / kw) * g.dilations[0]) + dy[p];
              const Acc v = static_cast<Acc>(j * g.strides[1] - g.pad_begin[1] + (t % kw) * g.dilations[1]) + dx[p];
              const Acc h0 = std::floor(h), v0 = std::floor(v), fh = h - h0, fv = v - v0;
              const int64_t r = static_cast<int64_t>(h0), q = static_cast<int64_t>(v0);
              Acc value = (1 - fh) * ((1 - fv) * pixel(plane, r, q) + fv * pixel(plane, r, q + 1)) +
                          fh * ((1 - fv) * pixel(plane, r + 1, q) + fv * pixel(plane, r + 1, q + 1));
              line[p] = scale ? value * scale[p] : value;
            }
        }
      }
      group_product(g, w, bias, col.data(), n, grp, y);
    }
}

// ConvTranspose on Acc values. x: (N, C, grid), w: (C, M/group, kernel), bias: (M) or null,
// y: (N, M, image), zero on entry.
template <typename Acc>
void conv_transpose_forward(const ops::ConvGeometry& g, const Acc* x, const Acc* w, const Acc* bias, Acc* y) {
  const int64_t image_size = product(g.image), grid_size = product(g.grid), kernel_size = product(g.kernel);
  const int64_t cg = g.in_channels / g.group, mg = g.out_channels / g.group, rows = mg * kernel_size;
  const auto tables = tap_tables(g);
  std::vector<Acc> col(static_cast<size_t>(rows * grid_size));
  for (int64_t n = 0; n < g.batch; ++n)
    for (int64_t grp = 0; grp < g.group; ++grp) {
      std::fill(col.begin(), col.end(), Acc(0));
      for (int64_t c = 0; c < cg; ++c) {
        const int64_t ic = grp * cg + c;
        const Acc* src = x + (n * g.in_channels + ic) * grid_size;
        const Acc* wrow = w + ic * rows;
        for (int64_t r = 0; r < rows; ++r) {
          const Acc a = wrow[r];
          if (a == Acc(0)) continue;
          Acc* dst = col.data() + r * grid_size;
          for (int64_t p = 0; p < grid_size; ++p) dst[p] += a * src[p];
        }
      }
      patch_transfer<true, Acc>(g, tables, mg, y + (n * g.out_channels + grp * mg) * image_size, col.data());
    }
  if (bias)
    for (int64_t n = 0; n < g.batch; ++n)
      for (int64_t m = 0; m < g.out_channels; ++m) {
        Acc* out = y + (n * g.out_channels + m) * image_size;
        for (int64_t p = 0; p < image_size; ++p) out[p] += bias[m];
      }
}

enum class ConvKind { kConv, kTranspose, kDeform };

// DeformConv's offset (and mask) must match the Conv geometry: one (dy, dx) pair (one scale) per
// offset group, kernel tap and output position.
void check_deform_inputs(const KernelContext& ctx, const ops::ConvGeometry& g, int64_t offset_groups,
                         const Tensor& offset, const Tensor* mask) {
  if (g.grid.size() != 2) throw ctx.error("DeformConv supports 2-D inputs only");
  if (g.in_channels % offset_groups != 0)
    throw ctx.error("offset_group " + std::to_string(offset_groups) + " does not divide the input channels");
  const int64_t taps = offset_groups * product(g.kernel);
  const std::vector<int64_t> want = {g.batch, taps * 2, g.grid[0], g.grid[1]};
  if (offset.dims() != want)
    throw ctx.error("offset " + dims_to_string(offset.dims()) + " must be " + dims_to_string(want));
  if (mask && mask->dims() != std::vector<int64_t>{g.batch, taps, g.grid[0], g.grid[1]})
    throw ctx.error("mask " + dims_to_string(mask->dims()) + " must be [" + std::to_string(g.batch) + "," +
                    std::to_string(taps) + "," + std::to_string(g.grid[0]) + "," + std::to_string(g.grid[1]) + "]");
}

// Conv / ConvTranspose / DeformConv for the float types: X, W (and offset, mask), optional B, one dtype.
void run_float_conv(KernelContext& ctx, const ops::ConvAttrs& attrs, ConvKind kind) {
  const Tensor& x = ctx.input(0);
  const Tensor& w = ctx.input(1);
  if (w.dtype() != x.dtype())
    throw ctx.error(std::string("X and W dtypes differ: ") + to_string(x.dtype()) + " and " + to_string(w.dtype()));
  const ops::ConvGeometry g = conv_geometry(ctx, attrs, x.dims(), w.dims(), kind == ConvKind::kTranspose);
  const size_t bias_input = kind == ConvKind::kDeform ? 3 : 2;
  const Tensor* b = ctx.has_input(bias_input) ? &ctx.input(bias_input) : nullptr;
  if (b && (b->dtype() != x.dtype() || b->numel() != g.out_channels))
    throw ctx.error("B must hold " + std::to_string(g.out_channels) + " values of X's dtype, got " +
                    dims_to_string(b->dims()));
  const Tensor* offset = kind == ConvKind::kDeform ? &ctx.input(2) : nullptr;
  const Tensor* mask = kind == ConvKind::kDeform && ctx.has_input(4) ? &ctx.input(4) : nullptr;
  if (offset) check_deform_inputs(ctx, g, attrs.offset_group, *offset, mask);
  for (const Tensor* t : {offset, mask})
    if (t && t->dtype() != x.dtype()) throw ctx.error("offset and mask must have X's dtype");
  std::vector<int64_t> y_dims = {g.batch, g.out_channels};
  const auto& spatial = kind == ConvKind::kTranspose ? g.image : g.grid;
  y_dims.insert(y_dims.end(), spatial.begin(), spatial.end());
  dispatch(x.dtype(), ctx, FloatTypes{}, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using Acc = FloatAcc<T>;
    std::vector<Acc> xs, ws, bs, os, ms, ys;
    const Acc* xp = as_acc<Acc>(data<T>(x), x.numel(), xs);
    const Acc* wp = as_acc<Acc>(data<T>(w), w.numel(), ws);
    const Acc* bp = b ? as_acc<Acc>(data<T>(*b), b->numel(), bs) : nullptr;
    Tensor& y = ctx.allocate_output(0, x.dtype(), y_dims);
    Acc* yp;
    if constexpr (std::is_same_v<T, Acc>) {
      yp = mutable_data<T>(y);
    } else {
      ys.assign(static_cast<size_t>(y.numel()), Acc(0));
      yp = ys.data();
    }
    if (kind == ConvKind::kTranspose) {
      conv_transpose_forward(g, xp, wp, bp, yp);
    } else if (kind == ConvKind::kDeform) {
      deform_conv_forward(g, attrs.offset_group, xp, wp, as_acc<Acc>(data<T>(*offset), offset->numel(), os),
                          mask ? as_acc<Acc>(data<T>(*mask), mask->numel(), ms) : nullptr, bp, yp);
    } else {
      conv_forward(g, xp, wp, bp, yp);
    }
    if constexpr (!std::is_same_v<T, Acc>) {
      T* out = mutable_data<T>(y);
      for (int64_t i = 0; i < y.numel(); ++i) out[i] = T(static_cast<float>(ys[static_cast<size_t>(i)]));
    }
  });
}

std::vector<int64_t> output_dims(const ops::ConvGeometry& g) {
  std::vector<int64_t> dims = {g.batch, g.out_channels};
  dims.insert(dims.end(), g.grid.begin(), g.grid.end());
  return dims;
}

// t (int8 or uint8) minus its zero point (one value, or one per output channel when `per_channel`):
// each value in [-255, 255], so an int16.
Tensor centered(const KernelContext& ctx, const Tensor& t, const Tensor* zero_point, bool per_channel, const char* what) {
  // From the tensor memory cache: a weight's copy every run faulted its pages in again.
  Tensor centered_t = Tensor::uninitialized(DataType::kInt16, {t.numel()});
  int16_t* out = centered_t.mutable_data_as<int16_t>();
  std::vector<int16_t> zp = {0};
  if (zero_point) {
    if (zero_point->dtype() != t.dtype())
      throw ctx.error(std::string(what) + " zero point dtype " + to_string(zero_point->dtype()) + " differs from " +
                      to_string(t.dtype()));
    zp.clear();
    for (double v : read_double_values(*zero_point, ctx)) zp.push_back(static_cast<int16_t>(v));
    if (zp.empty() ||
        (zp.size() != 1 && (!per_channel || t.rank() == 0 || static_cast<int64_t>(zp.size()) != t.dims()[0])))
      throw ctx.error(std::string(what) + " zero point " + dims_to_string(zero_point->dims()) + " must be " +
                      (per_channel ? "one value or one per output channel" : "one value"));
  }
  if (t.dtype() != DataType::kInt8 && t.dtype() != DataType::kUInt8)
    throw ctx.error(std::string(what) + " must be int8 or uint8, got " + to_string(t.dtype()));
  subtract_zero_points(t, 0, t.numel(), zp, zp.size() == 1 ? t.numel() : t.numel() / t.dims()[0], out);
  return centered_t;
}

// ConvInteger and the integer core of QLinearConv: int32 (N, M, grid) from X, W and their zero points.
// Each (image, group) is im2col of the centered X (padding reads 0) times the centered W by
// vector_loops' int16_matmul, in wrapping 32-bit arithmetic; the bias is added after. (The float
// path's generic loops on int32 ran ~45 ms of ddddocr's quantized recognizer, 21 convolutions.)
Tensor integer_conv(const KernelContext& ctx, const ops::ConvAttrs& attrs, const Tensor& x, const Tensor* x_zp,
                    const Tensor& w, const Tensor* w_zp, const Tensor* bias, ops::ConvGeometry& g) {
  g = conv_geometry(ctx, attrs, x.dims(), w.dims(), false);
  const Tensor xs = centered(ctx, x, x_zp, false, "X");
  const Tensor ws = centered(ctx, w, w_zp, true, "W");
  if (bias && (bias->dtype() != DataType::kInt32 || bias->numel() != g.out_channels))
    throw ctx.error("B must hold " + std::to_string(g.out_channels) + " int32 values, got " + to_string(bias->dtype()) +
                    dims_to_string(bias->dims()));
  const int64_t image_size = product(g.image), grid_size = product(g.grid), kernel_size = product(g.kernel);
  const int64_t cg = g.in_channels / g.group, mg = g.out_channels / g.group, depth = cg * kernel_size;
  Tensor y = Tensor::uninitialized(DataType::kInt32, output_dims(g));  // int16_matmul writes every element
  const auto tables = tap_tables(g);
  Tensor col = Tensor::uninitialized(DataType::kInt16, {depth * grid_size});
  for (int64_t n = 0; n < g.batch; ++n)
    for (int64_t grp = 0; grp < g.group; ++grp) {
      patch_transfer<false, int16_t>(g, tables, cg, xs.data_as<int16_t>() + (n * g.in_channels + grp * cg) * image_size,
                                     col.mutable_data_as<int16_t>());
      int32_t* out = y.mutable_data_as<int32_t>() + (n * g.out_channels + grp * mg) * grid_size;
      int16_matmul(ws.data_as<int16_t>() + grp * mg * depth, mg, depth, col.data_as<int16_t>(), grid_size,
                   reinterpret_cast<uint32_t*>(out));
      if (bias)
        for (int64_t m = 0; m < mg; ++m) {
          const auto b = static_cast<uint32_t>(data<int32_t>(*bias)[grp * mg + m]);
          for (int64_t p = 0; p < grid_size; ++p) {
            int32_t& v = out[m * grid_size + p];
            v = static_cast<int32_t>(static_cast<uint32_t>(v) + b);
          }
        }
    }
  return y;
}


// QLinearConv: y = saturate(round(conv(x - x_zp, w - w_zp) + B) * x_scale * w_scale / y_scale) + y_zp).
// w_scale (and w_zero_point) may hold one value per output channel.
void run_qlinear_conv(KernelContext& ctx, const ops::ConvAttrs& attrs) {
  const Tensor& x = ctx.input(0);
  const Tensor& w = ctx.input(3);
  const Tensor* y_zp = ctx.has_input(7) ? &ctx.input(7) : nullptr;
  const DataType y_type = y_zp ? y_zp->dtype() : x.dtype();
  ops::ConvGeometry g;
  const Tensor products = integer_conv(ctx, attrs, x, ctx.has_input(2) ? &ctx.input(2) : nullptr, w,
                                       ctx.has_input(5) ? &ctx.input(5) : nullptr,
                                       ctx.has_input(8) ? &ctx.input(8) : nullptr, g);
  const int32_t* acc = products.data_as<int32_t>();
  const float x_scale = static_cast<float>(read_scalar(ctx.input(1), ctx));
  const float y_scale = static_cast<float>(read_scalar(ctx.input(6), ctx));
  std::vector<double> w_scale = read_double_values(ctx.input(4), ctx);
  if (w_scale.empty() || (w_scale.size() != 1 && static_cast<int64_t>(w_scale.size()) != g.out_channels))
    throw ctx.error("w_scale must hold one value or one per output channel (" + std::to_string(g.out_channels) + ")");
  const double zero = y_zp ? read_scalar(*y_zp, ctx) : 0.0;
  const int64_t grid_size = product(g.grid);
  Tensor& y = ctx.allocate_output(0, y_type, output_dims(g));
  dispatch<int8_t, uint8_t>(y_type, ctx, [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* out = mutable_data<T>(y);
    const double lo = std::numeric_limits<T>::min(), hi = std::numeric_limits<T>::max();
    for (int64_t i = 0; i < y.numel(); ++i) {
      const int64_t m = (i / grid_size) % g.out_channels;
      const float scale = x_scale * static_cast<float>(w_scale[w_scale.size() == 1 ? 0 : static_cast<size_t>(m)]) / y_scale;
      double v = static_cast<double>(acc[i]) * static_cast<double>(scale) + zero;
      out[i] = static_cast<T>(std::nearbyint(std::clamp(v, lo, hi)));
    }
  });
}

}  // namespace

void register_conv_pool_kernels(KernelRegistry& r) {
  // Conv: opset 1 and 11 differ only in documentation (auto_pad details); both read the same way.
  add_kernel(r, "Conv", 1, INT_MAX, kFloatTypes, [](const KernelInit& init) {
    const ops::ConvAttrs attrs = ops::parse_conv_attrs(init.node());
    return make_kernel([attrs](KernelContext& ctx) { run_float_conv(ctx, attrs, ConvKind::kConv); });
  });

  add_kernel(r, "ConvTranspose", 1, INT_MAX, kFloatTypes, [](const KernelInit& init) {
    const ops::ConvAttrs attrs = ops::parse_conv_attrs(init.node());
    return make_kernel([attrs](KernelContext& ctx) { run_float_conv(ctx, attrs, ConvKind::kTranspose); });
  });

  // DeformConv (opset 19): 2-D only, like the ONNX reference.
  add_kernel(r, "DeformConv", 19, INT_MAX, kFloatTypes, [](const KernelInit& init) {
    const ops::ConvAttrs attrs = ops::parse_conv_attrs(init.node());
    return make_kernel([attrs](KernelContext& ctx) { run_float_conv(ctx, attrs, ConvKind::kDeform); });
  });

  // ConvInteger (opset 10): int32 y = conv(x - x_zero_point, w - w_zero_point).
  add_kernel(r, "ConvInteger", 10, INT_MAX, {DataType::kInt8, DataType::kUInt8}, [](const KernelInit& init) {
    const ops::ConvAttrs attrs = ops::parse_conv_attrs(init.node());
    return make_kernel([attrs](KernelContext& ctx) {
      ops::ConvGeometry g;
      const Tensor products = integer_conv(ctx, attrs, ctx.input(0), ctx.has_input(2) ? &ctx.input(2) : nullptr,
                                           ctx.input(1), ctx.has_input(3) ? &ctx.input(3) : nullptr, nullptr, g);
      Tensor& y = ctx.allocate_output_uninitialized(0, DataType::kInt32, output_dims(g));
      std::copy_n(products.data_as<int32_t>(), products.numel(), mutable_data<int32_t>(y));
    });
  });

  add_kernel(r, "QLinearConv", 10, INT_MAX, {DataType::kInt8, DataType::kUInt8}, [](const KernelInit& init) {
    const ops::ConvAttrs attrs = ops::parse_conv_attrs(init.node());
    return make_kernel([attrs](KernelContext& ctx) { run_qlinear_conv(ctx, attrs); });
  });

  register_pool_kernels(r);
}

}  // namespace tunnx::cpu
