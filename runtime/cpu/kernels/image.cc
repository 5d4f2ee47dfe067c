// Image ops: Resize (and its predecessor Upsample), GridSample, RoiAlign, NonMaxSuppression.
// Shape rules:
//   Resize/Upsample  X [d0..dr-1] -> Y [floor(d_i * scale_i)] or `sizes` (keep_aspect_ratio_policy may
//                    round them to one common scale); dtype of X.
//   GridSample       X [N,C,D1..Dk], grid [N,O1..Ok,k] -> Y [N,C,O1..Ok].
//   RoiAlign         X [N,C,H,W], rois [R,4], batch_indices [R] -> Y [R,C,output_height,output_width].
//   NonMaxSuppression boxes [B,S,4], scores [B,C,S] -> selected int64 [num_selected,3].
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "runtime/cpu/kernels/common.h"
#include "runtime/cpu/kernels/kernels.h"

namespace tunnx::cpu {
namespace {

bool has_nonempty_input(const KernelContext& ctx, size_t i) { return ctx.has_input(i) && ctx.input(i).numel() > 0; }

// ---------------------------------------------------------------------------------------------
// Resize / Upsample

enum class InterpMode { kNearest, kLinear, kCubic };
enum class CoordMode { kHalfPixel, kHalfPixelSymmetric, kPytorchHalfPixel, kAlignCorners, kAsymmetric,
                       kTfHalfPixelForNN, kTfCropAndResize };
// kSimple is the pre-opset-11 rule (Upsample, Resize-10): floor when upsampling, ceil when downsampling.
enum class NearestMode { kRoundPreferFloor, kRoundPreferCeil, kFloor, kCeil, kSimple };

struct ResizeAttrs {
  InterpMode mode = InterpMode::kNearest;
  CoordMode coord = CoordMode::kHalfPixel;
  NearestMode nearest = NearestMode::kRoundPreferFloor;
  double cubic_a = -0.75;
  bool exclude_outside = false;
  double extrapolation = 0;
  bool antialias = false;
  std::vector<int64_t> axes;  // as given (may be negative); empty: all
  std::string aspect_policy = "stretch";
  // Where the parameters come from; -1 when this opset has no such input.
  int roi_input = -1, scales_input = -1, sizes_input = -1;
  std::vector<float> scales_attr;  // Upsample-1/7
};

InterpMode parse_interp_mode(const std::string& s, const KernelInit& init) {
  if (s == "nearest") return InterpMode::kNearest;
  if (s == "linear" || s == "bilinear" || s == "trilinear") return InterpMode::kLinear;
  if (s == "cubic" || s == "bicubic") return InterpMode::kCubic;
  throw init.error("unsupported mode '" + s + "'");
}

ResizeAttrs parse_resize(const KernelInit& init) {
  ResizeAttrs a;
  a.mode = parse_interp_mode(init.attr_string("mode", "nearest"), init);
  if (init.opset() < 11) {  // Resize-10: X, scales
    a.coord = CoordMode::kAsymmetric;
    a.nearest = NearestMode::kSimple;
    a.scales_input = 1;
    if (a.mode == InterpMode::kCubic) throw init.error("mode 'cubic' needs opset 11 or later");
    return a;
  }
  a.roi_input = 1;
  a.scales_input = 2;
  a.sizes_input = 3;
  std::string c = init.attr_string("coordinate_transformation_mode", "half_pixel");
  if (c == "half_pixel") a.coord = CoordMode::kHalfPixel;
  else if (c == "half_pixel_symmetric") a.coord = CoordMode::kHalfPixelSymmetric;
  else if (c == "pytorch_half_pixel") a.coord = CoordMode::kPytorchHalfPixel;
  else if (c == "align_corners") a.coord = CoordMode::kAlignCorners;
  else if (c == "asymmetric") a.coord = CoordMode::kAsymmetric;
  else if (c == "tf_half_pixel_for_nn") a.coord = CoordMode::kTfHalfPixelForNN;
  else if (c == "tf_crop_and_resize") a.coord = CoordMode::kTfCropAndResize;
  else throw init.error("unsupported coordinate_transformation_mode '" + c + "'");
  std::string n = init.attr_string("nearest_mode", "round_prefer_floor");
  if (n == "round_prefer_floor") a.nearest = NearestMode::kRoundPreferFloor;
  else if (n == "round_prefer_ceil") a.nearest = NearestMode::kRoundPreferCeil;
  else if (n == "floor") a.nearest = NearestMode::kFloor;
  else if (n == "ceil") a.nearest = NearestMode::kCeil;
  else throw init.error("unsupported nearest_mode '" + n + "'");
  a.cubic_a = init.attr_float("cubic_coeff_a", -0.75f);
  a.exclude_outside = init.attr_int("exclude_outside", 0) != 0;
  a.extrapolation = init.attr_float("extrapolation_value", 0.0f);
  a.antialias = init.attr_int("antialias", 0) != 0;
  a.axes = init.attr_ints("axes");
  a.aspect_policy = init.attr_string("keep_aspect_ratio_policy", "stretch");
  if (a.aspect_policy != "stretch" && a.aspect_policy != "not_larger" && a.aspect_policy != "not_smaller")
    throw init.error("unsupported keep_aspect_ratio_policy '" + a.aspect_policy + "'");
  return a;
}

ResizeAttrs parse_upsample(const KernelInit& init) {
  ResizeAttrs a;
  a.mode = parse_interp_mode(init.attr_string("mode", "nearest"), init);
  if (a.mode == InterpMode::kCubic) throw init.error("Upsample supports only 'nearest' and 'linear'");
  a.coord = CoordMode::kAsymmetric;
  a.nearest = NearestMode::kSimple;
  if (init.opset() >= 9) {
    a.scales_input = 1;
  } else if (init.opset() >= 7) {
    a.scales_attr = init.attr_floats("scales");
    if (a.scales_attr.empty()) throw init.error("attribute 'scales' is required");
  } else {  // Upsample-1: NCHW with height_scale / width_scale
    a.scales_attr = {1.0f, 1.0f, init.attr_float("height_scale", 1.0f), init.attr_float("width_scale", 1.0f)};
  }
  return a;
}

// What one axis of a resize does: its scale, output length and the crop window (tf_crop_and_resize).
struct AxisResize {
  double scale = 1;
  int64_t in = 0, out = 0;
  double roi_start = 0, roi_end = 1;
};

// The source coordinate of output index x along one axis; `extrapolate` is set when
// tf_crop_and_resize maps it outside the input.
double source_coordinate(const ResizeAttrs& a, const AxisResize& ax, int64_t xi, bool& extrapolate) {
  const double x = static_cast<double>(xi), in = static_cast<double>(ax.in);
  const double out_width = ax.scale * in;  // may be fractional (scales given); the spec uses it as is
  extrapolate = false;
  switch (a.coord) {
    case CoordMode::kHalfPixel: return (x + 0.5) / ax.scale - 0.5;
    case CoordMode::kHalfPixelSymmetric: {
      double adjustment = static_cast<double>(ax.out) / out_width;
      double offset = in / 2 * (1 - adjustment);
      return offset + (x + 0.5) / ax.scale - 0.5;
    }
    case CoordMode::kPytorchHalfPixel: return out_width == 1 ? -0.5 : (x + 0.5) / ax.scale - 0.5;
    case CoordMode::kAlignCorners: return out_width == 1 ? 0.0 : x * (in - 1) / (out_width - 1);
    case CoordMode::kAsymmetric: return x / ax.scale;
    case CoordMode::kTfHalfPixelForNN: return (x + 0.5) / ax.scale;
    case CoordMode::kTfCropAndResize: {
      double span = ax.roi_end - ax.roi_start;
      double v = out_width == 1 ? span * (in - 1) / 2 : x * span * (in - 1) / (out_width - 1);
      v += ax.roi_start * (in - 1);
      extrapolate = v < 0 || v > in - 1;
      return v;
    }
  }
  return x;
}

int64_t nearest_index(const ResizeAttrs& a, const AxisResize& ax, double x) {
  double r;
  switch (a.nearest) {
    case NearestMode::kRoundPreferFloor: r = std::ceil(x - 0.5); break;
    case NearestMode::kRoundPreferCeil: r = std::floor(x + 0.5); break;
    case NearestMode::kFloor: r = std::floor(x); break;
    case NearestMode::kCeil: r = std::ceil(x); break;
    default: r = ax.scale < 1 ? std::ceil(x) : std::floor(x); break;
  }
  return std::clamp<int64_t>(static_cast<int64_t>(r), 0, ax.in - 1);
}

// Keys' cubic convolution kernel with parameter A.
double cubic_kernel(double x, double A) {
  x = std::fabs(x);
  if (x <= 1) return ((A + 2) * x - (A + 3)) * x * x + 1;
  if (x < 2) return ((A * x - 5 * A) * x + 8 * A) * x - 4 * A;
  return 0;
}

// The input taps (index, weight) of every output position along one axis, linear or cubic.
struct AxisTaps {
  std::vector<int64_t> begin;  // taps of output o are [begin[o], begin[o+1])
  std::vector<int64_t> index;
  std::vector<double> weight;
  std::vector<char> extrapolate;
};

AxisTaps interpolation_taps(const ResizeAttrs& a, const AxisResize& ax) {
  AxisTaps t;
  t.begin.push_back(0);
  const bool cubic = a.mode == InterpMode::kCubic;
  // Antialiasing stretches the filter by 1/scale when downsampling.
  const double s = a.antialias ? std::min(ax.scale, 1.0) : 1.0;
  const double support = (cubic ? 2.0 : 1.0) / s;
  std::vector<std::pair<int64_t, double>> taps;
  for (int64_t o = 0; o < ax.out; ++o) {
    bool extrap = false;
    double x = source_coordinate(a, ax, o, extrap);
    t.extrapolate.push_back(extrap);
    taps.clear();
    int64_t lo = static_cast<int64_t>(std::floor(x - support)), hi = static_cast<int64_t>(std::ceil(x + support));
    double sum = 0;
    for (int64_t i = lo; i <= hi; ++i) {
      double d = (static_cast<double>(i) - x) * s;
      double w = cubic ? cubic_kernel(d, a.cubic_a) : std::max(0.0, 1 - std::fabs(d));
      if (w == 0) continue;
      taps.emplace_back(i, w);
      sum += w;
    }
    if (a.antialias && sum != 0)
      for (auto& tap : taps) tap.second /= sum;
    if (a.exclude_outside) {
      double kept = 0;
      for (auto& tap : taps) {
        if (tap.first < 0 || tap.first >= ax.in) tap.second = 0;
        kept += tap.second;
      }
      if (kept != 0)
        for (auto& tap : taps) tap.second /= kept;
    }
    for (const auto& [i, w] : taps) {
      t.index.push_back(std::clamp<int64_t>(i, 0, ax.in - 1));  // edge padding
      t.weight.push_back(w);
    }
    t.begin.push_back(static_cast<int64_t>(t.index.size()));
  }
  return t;
}

// Works out per-axis scale, output length and roi from the node's inputs and attributes.
std::vector<AxisResize> plan_resize(const ResizeAttrs& a, const KernelContext& ctx, const std::vector<int64_t>& dims) {
  const int64_t rank = static_cast<int64_t>(dims.size());
  std::vector<int64_t> axes;
  for (int64_t ax : a.axes) axes.push_back(normalize_axis(ax, rank, ctx));
  if (axes.empty())
    for (int64_t i = 0; i < rank; ++i) axes.push_back(i);
  const size_t n = axes.size();
  std::vector<AxisResize> plan(static_cast<size_t>(rank));
  for (int64_t i = 0; i < rank; ++i) plan[i].in = plan[i].out = dims[i];

  if (a.coord == CoordMode::kTfCropAndResize) {
    if (a.roi_input < 0 || !has_nonempty_input(ctx, a.roi_input))
      throw ctx.error("coordinate_transformation_mode 'tf_crop_and_resize' needs the 'roi' input");
    std::vector<double> roi = read_double_values(ctx.input(a.roi_input), ctx);
    if (roi.size() != 2 * n)
      throw ctx.error("'roi' has " + std::to_string(roi.size()) + " values, expected " + std::to_string(2 * n));
    for (size_t i = 0; i < n; ++i) {
      plan[axes[i]].roi_start = roi[i];
      plan[axes[i]].roi_end = roi[n + i];
    }
  }

  std::vector<float> scales = a.scales_attr;
  if (a.scales_input >= 0 && has_nonempty_input(ctx, a.scales_input)) {
    std::vector<double> s = read_double_values(ctx.input(a.scales_input), ctx);
    scales.assign(s.begin(), s.end());
  }
  bool use_sizes = a.sizes_input >= 0 && has_nonempty_input(ctx, a.sizes_input);
  if (use_sizes && !scales.empty()) throw ctx.error("only one of 'scales' and 'sizes' may be given");
  if (use_sizes) {
    std::vector<int64_t> sizes = read_int_values(ctx.input(a.sizes_input), ctx);
    if (sizes.size() != n)
      throw ctx.error("'sizes' has " + std::to_string(sizes.size()) + " values, expected " + std::to_string(n));
    for (size_t i = 0; i < n; ++i) {
      if (sizes[i] < 0) throw ctx.error("'sizes' must not be negative");
      AxisResize& ax = plan[axes[i]];
      ax.out = sizes[i];
      ax.scale = ax.in == 0 ? 1.0 : static_cast<double>(sizes[i]) / static_cast<double>(ax.in);
    }
    if (a.aspect_policy != "stretch") {
      double scale = a.aspect_policy == "not_larger" ? std::numeric_limits<double>::infinity() : 0.0;
      for (int64_t ax : axes)
        scale = a.aspect_policy == "not_larger" ? std::min(scale, plan[ax].scale) : std::max(scale, plan[ax].scale);
      for (int64_t ax : axes) {
        plan[ax].scale = scale;
        plan[ax].out = static_cast<int64_t>(scale * static_cast<double>(plan[ax].in) + 0.5);
      }
    }
  } else {
    if (scales.empty()) throw ctx.error("one of 'scales' and 'sizes' must be given");
    if (scales.size() != n)
      throw ctx.error("'scales' has " + std::to_string(scales.size()) + " values, expected " + std::to_string(n));
    for (size_t i = 0; i < n; ++i) {
      if (!(scales[i] > 0)) throw ctx.error("'scales' must be positive");
      AxisResize& ax = plan[axes[i]];
      ax.scale = scales[i];
      // float arithmetic, as ONNX Runtime computes it
      ax.out = static_cast<int64_t>(std::floor(scales[i] * static_cast<float>(ax.in)));
    }
  }
  return plan;
}

bool is_identity(const ResizeAttrs& a, const AxisResize& ax) {
  return ax.scale == 1 && ax.out == ax.in &&
         (a.coord != CoordMode::kTfCropAndResize || (ax.roi_start == 0 && ax.roi_end == 1));
}

// Nearest: a gather of whole elements (exact for every dtype); -1 marks an extrapolated position.
template <typename T>
void resize_nearest(const ResizeAttrs& a, const std::vector<AxisResize>& plan, const Tensor& x, Tensor& y) {
  const size_t rank = plan.size();
  std::vector<std::vector<int64_t>> src(rank);
  for (size_t d = 0; d < rank; ++d)
    for (int64_t o = 0; o < plan[d].out; ++o) {
      bool extrap = false;
      double c = source_coordinate(a, plan[d], o, extrap);
      src[d].push_back(extrap ? -1 : nearest_index(a, plan[d], c));
    }
  std::vector<int64_t> in_strides = strides_of(x.dims());
  const T* in = data<T>(x);
  T* out = mutable_data<T>(y);
  const T fill = [&] {
    if constexpr (std::is_same_v<T, std::string>) return std::string();
    else return from_double<T>(a.extrapolation);
  }();
  // The last axis kept as it is (NHWC upsampling: the channels): whole rows of it are copied, the
  // rows split among the run's threads.
  bool rows_kept = rank >= 1 && plan[rank - 1].out == x.dims()[rank - 1];
  for (size_t d = 0; d < rank && rows_kept; ++d)
    for (int64_t o = 0; o < plan[d].out && rows_kept; ++o)
      rows_kept = src[d][static_cast<size_t>(o)] >= 0 && (d + 1 < rank || src[d][static_cast<size_t>(o)] == o);
  if constexpr (!std::is_same_v<T, std::string>) {
    if (rows_kept && y.numel() > 0) {
      const int64_t inner = plan[rank - 1].out, rows = y.numel() / inner;
      const int threads = y.numel() >= kParallelElements ? max_threads() : 1;
#pragma omp parallel for schedule(static) num_threads(threads)
      for (int64_t row = 0; row < rows; ++row) {
        int64_t offset = 0;
        for (int64_t rest = row, d = static_cast<int64_t>(rank) - 2; d >= 0; --d) {
          const size_t dd = static_cast<size_t>(d);
          offset += src[dd][static_cast<size_t>(rest % plan[dd].out)] * in_strides[dd];
          rest /= plan[dd].out;
        }
        std::copy(in + offset, in + offset + inner, out + row * inner);
      }
      return;
    }
  }
  std::vector<int64_t> idx(rank, 0);
  for (int64_t flat = 0; flat < y.numel(); ++flat) {
    int64_t offset = 0;
    bool extrap = false;
    for (size_t d = 0; d < rank; ++d) {
      int64_t s = src[d][idx[d]];
      if (s < 0) extrap = true;
      offset += s * in_strides[d];
    }
    out[flat] = extrap ? fill : in[offset];
    for (size_t d = rank; d-- > 0;) {
      if (++idx[d] < plan[d].out) break;
      idx[d] = 0;
    }
  }
}

// Linear / cubic: separable, one axis at a time, in double.
std::vector<double> resize_interpolate(const ResizeAttrs& a, const std::vector<AxisResize>& plan,
                                       std::vector<double> cur, std::vector<int64_t> dims) {
  for (size_t d = 0; d < plan.size(); ++d) {
    if (is_identity(a, plan[d])) continue;
    AxisTaps taps = interpolation_taps(a, plan[d]);
    const AxisView view = axis_view(dims, static_cast<int64_t>(d));
    const int64_t outer = view.outer, inner = view.inner;
    const int64_t in_len = dims[d], out_len = plan[d].out;
    std::vector<double> next(static_cast<size_t>(outer * out_len * inner), 0.0);
    for (int64_t b = 0; b < outer; ++b)
      for (int64_t o = 0; o < out_len; ++o) {
        double* dst = next.data() + (b * out_len + o) * inner;
        if (taps.extrapolate[o]) {
          std::fill(dst, dst + inner, a.extrapolation);
          continue;
        }
        for (int64_t t = taps.begin[o]; t < taps.begin[o + 1]; ++t) {
          const double w = taps.weight[t];
          const double* srcp = cur.data() + (b * in_len + taps.index[t]) * inner;
          for (int64_t i = 0; i < inner; ++i) dst[i] += w * srcp[i];
        }
      }
    cur.swap(next);
    dims[d] = out_len;
  }
  return cur;
}

void run_resize(const ResizeAttrs& a, KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  std::vector<AxisResize> plan = plan_resize(a, ctx, x.dims());
  std::vector<int64_t> out_dims;
  for (const auto& ax : plan) out_dims.push_back(ax.out);
  if (a.mode == InterpMode::kNearest) {
    dispatch<float, double, Float16, BFloat16, int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t,
             uint64_t, bool, std::string>(x.dtype(), ctx, [&](auto tag) {
      using T = typename decltype(tag)::type;
      Tensor& y = ctx.allocate_output(0, x.dtype(), out_dims);
      if (y.numel() > 0) resize_nearest<T>(a, plan, x, y);
    });
    return;
  }
  dispatch<float, double, Float16, BFloat16, int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t,
           uint64_t>(x.dtype(), ctx, [&](auto tag) {
    using T = typename decltype(tag)::type;
    Tensor& y = ctx.allocate_output(0, x.dtype(), out_dims);
    if (y.numel() == 0) return;
    if (x.numel() == 0) throw ctx.error("cannot interpolate an empty input to a non-empty output");
    std::vector<double> result = resize_interpolate(a, plan, read_double_values(x, ctx), x.dims());
    T* out = mutable_data<T>(y);
    for (int64_t i = 0; i < y.numel(); ++i) out[i] = from_double<T>(result[static_cast<size_t>(i)]);
  });
}

// ---------------------------------------------------------------------------------------------
// GridSample

enum class PaddingMode { kZeros, kBorder, kReflection };

struct GridSampleAttrs {
  InterpMode mode = InterpMode::kLinear;
  PaddingMode padding = PaddingMode::kZeros;
  bool align_corners = false;
};

// Reflects x into [lo, hi] by repeatedly mirroring at the borders.
double reflect(double x, double lo, double hi) {
  double range = hi - lo;
  if (range <= 0) return lo;
  if (x < lo) {
    double dx = lo - x;
    double n = std::floor(dx / range), r = dx - n * range;
    return std::fmod(n, 2.0) == 0 ? lo + r : hi - r;
  }
  if (x > hi) {
    double dx = x - hi;
    double n = std::floor(dx / range), r = dx - n * range;
    return std::fmod(n, 2.0) == 0 ? hi - r : lo + r;
  }
  return x;
}

// X [N,C,D1..Dk] sampled at grid [N,O1..Ok,k] (last grid dim is (x, y, ...) = (Dk, ..., D1)).
template <typename T, typename G>
void grid_sample(const GridSampleAttrs& a, const Tensor& xt, const Tensor& gt, Tensor& yt) {
  const auto& xd = xt.dims();
  const size_t k = xd.size() - 2;
  const int64_t N = xd[0], C = xd[1];
  std::vector<int64_t> sdims(xd.begin() + 2, xd.end());
  const int64_t in_spatial = std::accumulate(sdims.begin(), sdims.end(), int64_t{1}, std::multiplies<>());
  int64_t out_spatial = 1;
  for (size_t i = 1; i + 1 < gt.dims().size(); ++i) out_spatial *= gt.dims()[i];
  std::vector<int64_t> sstrides = strides_of(sdims);
  std::vector<double> lo(k), hi(k);
  for (size_t i = 0; i < k; ++i) {
    lo[i] = a.align_corners ? 0.0 : -0.5;
    hi[i] = a.align_corners ? static_cast<double>(sdims[i] - 1) : static_cast<double>(sdims[i]) - 0.5;
  }
  const int taps_per_dim = a.mode == InterpMode::kNearest ? 1 : a.mode == InterpMode::kLinear ? 2 : 4;
  int64_t corners = 1;
  for (size_t i = 0; i < k; ++i) corners *= taps_per_dim;

  const T* X = data<T>(xt);
  const G* grid = data<G>(gt);
  T* Y = mutable_data<T>(yt);
  std::vector<double> coord(k);
  std::vector<std::vector<int64_t>> tap_index(k, std::vector<int64_t>(4));
  std::vector<std::vector<double>> tap_weight(k, std::vector<double>(4));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t p = 0; p < out_spatial; ++p) {
      const G* g = grid + (n * out_spatial + p) * static_cast<int64_t>(k);
      for (size_t i = 0; i < k; ++i) {
        double v = static_cast<double>(g[k - 1 - i]);
        double len = static_cast<double>(sdims[i]);
        double c = a.align_corners ? (v + 1) / 2 * (len - 1) : ((v + 1) * len - 1) / 2;
        if (a.mode == InterpMode::kNearest) c = std::nearbyint(c);  // half to even, like PyTorch
        // Linear and nearest move an outside point in (PyTorch's compute_coordinates); cubic, like
        // PyTorch and ONNX Runtime, keeps the point and pads each of its taps instead.
        if ((c < lo[i] || c > hi[i]) && a.mode != InterpMode::kCubic) {
          if (a.padding == PaddingMode::kBorder) c = std::clamp(c, 0.0, len - 1);
          else if (a.padding == PaddingMode::kReflection) c = reflect(c, lo[i], hi[i]);
        }
        coord[i] = c;
        if (a.mode == InterpMode::kNearest) {
          tap_index[i][0] = static_cast<int64_t>(c);
          tap_weight[i][0] = 1;
        } else if (a.mode == InterpMode::kLinear) {
          double f = std::floor(c), t = c - f;
          tap_index[i][0] = static_cast<int64_t>(f);
          tap_index[i][1] = static_cast<int64_t>(f) + 1;
          tap_weight[i][0] = 1 - t;
          tap_weight[i][1] = t;
        } else {
          double f = std::floor(c), t = c - f;
          for (int j = 0; j < 4; ++j) {
            tap_index[i][j] = static_cast<int64_t>(f) - 1 + j;
            tap_weight[i][j] = cubic_kernel(t + 1 - j, -0.75);
          }
        }
        // Map taps that fall outside the input per the padding mode (-1: reads zero).
        for (int j = 0; j < taps_per_dim; ++j) {
          int64_t& t = tap_index[i][j];
          if (t >= 0 && t < sdims[i]) continue;
          if (a.padding == PaddingMode::kZeros) t = -1;
          else if (a.padding == PaddingMode::kBorder) t = std::clamp<int64_t>(t, 0, sdims[i] - 1);
          else t = std::clamp<int64_t>(static_cast<int64_t>(reflect(static_cast<double>(t), lo[i], hi[i])), 0,
                                       sdims[i] - 1);
        }
      }
      for (int64_t c = 0; c < C; ++c) {
        const T* plane = X + (n * C + c) * in_spatial;
        double acc = 0;
        for (int64_t corner = 0; corner < corners; ++corner) {
          int64_t rest = corner, offset = 0;
          double w = 1;
          bool zero = false;
          for (size_t i = k; i-- > 0;) {
            int j = static_cast<int>(rest % taps_per_dim);
            rest /= taps_per_dim;
            int64_t t = tap_index[i][j];
            if (t < 0) zero = true;
            offset += t * sstrides[i];
            w *= tap_weight[i][j];
          }
          if (!zero && w != 0) acc += w * static_cast<double>(plane[offset]);
        }
        Y[(n * C + c) * out_spatial + p] = from_double<T>(acc);
      }
    }
}

// ---------------------------------------------------------------------------------------------
// RoiAlign

struct RoiAlignAttrs {
  bool max_mode = false;
  bool half_pixel = true;
  int64_t output_height = 1, output_width = 1, sampling_ratio = 0;
  double spatial_scale = 1;
};

// The four bilinear taps of one sampling point (weights zero when the point is outside).
struct BilinearTap {
  int64_t pos[4] = {0, 0, 0, 0};
  double w[4] = {0, 0, 0, 0};
};

BilinearTap bilinear_tap(double y, double x, int64_t H, int64_t W) {
  BilinearTap t;
  if (y < -1.0 || y > static_cast<double>(H) || x < -1.0 || x > static_cast<double>(W)) return t;
  y = std::max(y, 0.0);
  x = std::max(x, 0.0);
  int64_t y_lo = static_cast<int64_t>(y), x_lo = static_cast<int64_t>(x), y_hi, x_hi;
  if (y_lo >= H - 1) {
    y_hi = y_lo = H - 1;
    y = static_cast<double>(y_lo);
  } else {
    y_hi = y_lo + 1;
  }
  if (x_lo >= W - 1) {
    x_hi = x_lo = W - 1;
    x = static_cast<double>(x_lo);
  } else {
    x_hi = x_lo + 1;
  }
  double ly = y - static_cast<double>(y_lo), lx = x - static_cast<double>(x_lo), hy = 1 - ly, hx = 1 - lx;
  t.pos[0] = y_lo * W + x_lo;
  t.pos[1] = y_lo * W + x_hi;
  t.pos[2] = y_hi * W + x_lo;
  t.pos[3] = y_hi * W + x_hi;
  t.w[0] = hy * hx;
  t.w[1] = hy * lx;
  t.w[2] = ly * hx;
  t.w[3] = ly * lx;
  return t;
}

template <typename T>
void roi_align(const RoiAlignAttrs& a, const KernelContext& ctx, const Tensor& xt, const std::vector<double>& rois,
               const std::vector<int64_t>& batch, Tensor& yt) {
  const int64_t N = xt.dims()[0], C = xt.dims()[1], H = xt.dims()[2], W = xt.dims()[3];
  const int64_t PH = a.output_height, PW = a.output_width;
  const T* X = data<T>(xt);
  T* Y = mutable_data<T>(yt);
  const double offset = a.half_pixel ? 0.5 : 0.0;
  for (size_t r = 0; r < batch.size(); ++r) {
    if (batch[r] < 0 || batch[r] >= N)
      throw ctx.error("batch_indices[" + std::to_string(r) + "] = " + std::to_string(batch[r]) + " is out of range");
    const double* roi = rois.data() + 4 * r;
    double start_w = roi[0] * a.spatial_scale - offset, start_h = roi[1] * a.spatial_scale - offset;
    double end_w = roi[2] * a.spatial_scale - offset, end_h = roi[3] * a.spatial_scale - offset;
    double roi_w = end_w - start_w, roi_h = end_h - start_h;
    if (!a.half_pixel) {
      roi_w = std::max(roi_w, 1.0);
      roi_h = std::max(roi_h, 1.0);
    }
    double bin_h = roi_h / static_cast<double>(PH), bin_w = roi_w / static_cast<double>(PW);
    int64_t grid_h = a.sampling_ratio > 0 ? a.sampling_ratio : static_cast<int64_t>(std::ceil(roi_h / static_cast<double>(PH)));
    int64_t grid_w = a.sampling_ratio > 0 ? a.sampling_ratio : static_cast<int64_t>(std::ceil(roi_w / static_cast<double>(PW)));
    grid_h = std::max<int64_t>(grid_h, 0);
    grid_w = std::max<int64_t>(grid_w, 0);
    const double count = static_cast<double>(std::max<int64_t>(grid_h * grid_w, 1));
    std::vector<BilinearTap> taps;
    taps.reserve(static_cast<size_t>(PH * PW * grid_h * grid_w));
    for (int64_t ph = 0; ph < PH; ++ph)
      for (int64_t pw = 0; pw < PW; ++pw)
        for (int64_t iy = 0; iy < grid_h; ++iy) {
          double y = start_h + static_cast<double>(ph) * bin_h +
                     (static_cast<double>(iy) + 0.5) * bin_h / static_cast<double>(grid_h);
          for (int64_t ix = 0; ix < grid_w; ++ix) {
            double x = start_w + static_cast<double>(pw) * bin_w +
                       (static_cast<double>(ix) + 0.5) * bin_w / static_cast<double>(grid_w);
            taps.push_back(bilinear_tap(y, x, H, W));
          }
        }
    const int64_t per_bin = grid_h * grid_w;
    for (int64_t c = 0; c < C; ++c) {
      const T* plane = X + (batch[r] * C + c) * H * W;
      T* out = Y + (static_cast<int64_t>(r) * C + c) * PH * PW;
      for (int64_t b = 0; b < PH * PW; ++b) {
        double acc = 0;
        bool first = true;
        for (int64_t s = 0; s < per_bin; ++s) {
          const BilinearTap& t = taps[static_cast<size_t>(b * per_bin + s)];
          if (a.max_mode) {  // the max of the weighted taps, as ONNX Runtime defines it
            double v = t.w[0] * static_cast<double>(plane[t.pos[0]]);
            for (int q = 1; q < 4; ++q) v = std::max(v, t.w[q] * static_cast<double>(plane[t.pos[q]]));
            acc = first ? v : std::max(acc, v);
            first = false;
          } else {
            for (int q = 0; q < 4; ++q) acc += t.w[q] * static_cast<double>(plane[t.pos[q]]);
          }
        }
        out[b] = from_double<T>(a.max_mode ? acc : acc / count);
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// NonMaxSuppression

// Box i as (y1, x1, y2, x2) with min/max ordered, from either box format.
struct Box {
  double y_min, x_min, y_max, x_max;
};

Box read_box(const double* b, bool center_point) {
  if (center_point) {  // (x_center, y_center, width, height)
    return {b[1] - b[3] / 2, b[0] - b[2] / 2, b[1] + b[3] / 2, b[0] + b[2] / 2};
  }
  return {std::min(b[0], b[2]), std::min(b[1], b[3]), std::max(b[0], b[2]), std::max(b[1], b[3])};
}

bool suppresses(const Box& a, const Box& b, double iou_threshold) {
  double ix_min = std::max(a.x_min, b.x_min), ix_max = std::min(a.x_max, b.x_max);
  if (ix_max <= ix_min) return false;
  double iy_min = std::max(a.y_min, b.y_min), iy_max = std::min(a.y_max, b.y_max);
  if (iy_max <= iy_min) return false;
  double inter = (ix_max - ix_min) * (iy_max - iy_min);
  double area_a = (a.x_max - a.x_min) * (a.y_max - a.y_min), area_b = (b.x_max - b.x_min) * (b.y_max - b.y_min);
  double uni = area_a + area_b - inter;
  if (inter <= 0 || area_a <= 0 || area_b <= 0 || uni <= 0) return false;
  return inter / uni > iou_threshold;
}

void run_nms(bool center_point, KernelContext& ctx) {
  const Tensor& boxes_t = ctx.input(0);
  const Tensor& scores_t = ctx.input(1);
  if (boxes_t.rank() != 3 || boxes_t.dims()[2] != 4)
    throw ctx.error("boxes must have shape [num_batches, spatial_dimension, 4], got " + dims_to_string(boxes_t.dims()));
  if (scores_t.rank() != 3) throw ctx.error("scores must have shape [num_batches, num_classes, spatial_dimension]");
  const int64_t B = boxes_t.dims()[0], S = boxes_t.dims()[1], C = scores_t.dims()[1];
  if (scores_t.dims()[0] != B || scores_t.dims()[2] != S)
    throw ctx.error("boxes " + dims_to_string(boxes_t.dims()) + " and scores " + dims_to_string(scores_t.dims()) +
                    " disagree");
  int64_t max_per_class = 0;
  if (has_nonempty_input(ctx, 2)) max_per_class = std::max<int64_t>(read_int_values(ctx.input(2), ctx)[0], 0);
  double iou_threshold = has_nonempty_input(ctx, 3) ? read_double_values(ctx.input(3), ctx)[0] : 0.0;
  bool use_score_threshold = has_nonempty_input(ctx, 4);
  double score_threshold = use_score_threshold ? read_double_values(ctx.input(4), ctx)[0] : 0.0;
  if (iou_threshold < 0 || iou_threshold > 1) throw ctx.error("iou_threshold must be in [0, 1]");

  std::vector<double> boxes = read_double_values(boxes_t, ctx), scores = read_double_values(scores_t, ctx);
  std::vector<int64_t> selected;  // (batch, class, box) triples
  std::vector<int64_t> order;
  std::vector<Box> kept;
  for (int64_t b = 0; b < B; ++b) {
    std::vector<Box> all(static_cast<size_t>(S));
    for (int64_t s = 0; s < S; ++s) all[s] = read_box(boxes.data() + (b * S + s) * 4, center_point);
    for (int64_t c = 0; c < C; ++c) {
      const double* sc = scores.data() + (b * C + c) * S;
      order.clear();
      for (int64_t s = 0; s < S; ++s)
        if (!use_score_threshold || sc[s] > score_threshold) order.push_back(s);
      // Highest score first; ties keep the lower box index first.
      std::stable_sort(order.begin(), order.end(), [&](int64_t l, int64_t r) { return sc[l] > sc[r]; });
      kept.clear();
      for (int64_t s : order) {
        if (static_cast<int64_t>(kept.size()) >= max_per_class) break;
        bool keep = true;
        for (const Box& k : kept)
          if (suppresses(all[s], k, iou_threshold)) {
            keep = false;
            break;
          }
        if (!keep) continue;
        kept.push_back(all[s]);
        selected.insert(selected.end(), {b, c, s});
      }
    }
  }
  Tensor& y = ctx.allocate_output(0, DataType::kInt64, {static_cast<int64_t>(selected.size() / 3), 3});
  std::copy(selected.begin(), selected.end(), mutable_data<int64_t>(y));
}

}  // namespace

void register_image_kernels(KernelRegistry& r) {
  const std::vector<DataType> resize_types = all_types();

  // Resize: 10 (X, scales), 11+ (X, roi, scales, sizes; coordinate modes, cubic), 18+ antialias/axes/
  // keep_aspect_ratio_policy, 19 half_pixel_symmetric. One kernel reads what its opset has.
  add_kernel(r, "Resize", 10, INT_MAX, resize_types, [](const KernelInit& init) {
    ResizeAttrs a = parse_resize(init);
    return make_kernel([a](KernelContext& ctx) { run_resize(a, ctx); });
  });

  // Upsample: 1 (height_scale/width_scale), 7 (scales attribute), 9-10 (scales input); asymmetric.
  add_kernel(r, "Upsample", 1, 10, resize_types, [](const KernelInit& init) {
    ResizeAttrs a = parse_upsample(init);
    return make_kernel([a](KernelContext& ctx) { run_resize(a, ctx); });
  });

  // GridSample: 16 (4-D; bilinear/nearest/bicubic), 20+ (N-D; linear/nearest/cubic). Both spellings
  // of the modes are accepted everywhere.
  add_kernel(r, "GridSample", 16, INT_MAX, kFloatTypes, [](const KernelInit& init) {
    GridSampleAttrs a;
    a.mode = parse_interp_mode(init.attr_string("mode", init.opset() >= 20 ? "linear" : "bilinear"), init);
    std::string p = init.attr_string("padding_mode", "zeros");
    if (p == "zeros") a.padding = PaddingMode::kZeros;
    else if (p == "border") a.padding = PaddingMode::kBorder;
    else if (p == "reflection") a.padding = PaddingMode::kReflection;
    else throw init.error("unsupported padding_mode '" + p + "'");
    a.align_corners = init.attr_int("align_corners", 0) != 0;
    const bool nd = init.opset() >= 20;
    return make_kernel([a, nd](KernelContext& ctx) {
      const Tensor& x = ctx.input(0);
      const Tensor& grid = ctx.input(1);
      const size_t k = x.rank() >= 2 ? x.rank() - 2 : 0;
      if (k < 1 || (!nd && k != 2)) throw ctx.error("X must be [N,C,H,W]" + std::string(nd ? " or N-D" : ""));
      if (grid.rank() != k + 2 || grid.dims()[0] != x.dims()[0] || grid.dims()[k + 1] != static_cast<int64_t>(k))
        throw ctx.error("grid must have shape [N, ..., " + std::to_string(k) + "] matching X, got " +
                        dims_to_string(grid.dims()));
      std::vector<int64_t> out_dims = {x.dims()[0], x.dims()[1]};
      out_dims.insert(out_dims.end(), grid.dims().begin() + 1, grid.dims().end() - 1);
      for (size_t i = 2; i < x.rank(); ++i)
        if (x.dims()[i] == 0) throw ctx.error("X has an empty spatial dimension");
      dispatch(x.dtype(), ctx, FloatTypes{}, [&](auto xtag) {
        using T = typename decltype(xtag)::type;
        dispatch(grid.dtype(), ctx, FloatTypes{}, [&](auto gtag) {
          using G = typename decltype(gtag)::type;
          Tensor& y = ctx.allocate_output(0, x.dtype(), out_dims);
          if (y.numel() > 0) grid_sample<T, G>(a, x, grid, y);
        });
      });
    });
  });

  // RoiAlign: 10 (no coordinate_transformation_mode: output_half_pixel), 16+ (default half_pixel).
  add_kernel(r, "RoiAlign", 10, INT_MAX, kFloatTypes, [](const KernelInit& init) {
    RoiAlignAttrs a;
    std::string mode = init.attr_string("mode", "avg");
    if (mode != "avg" && mode != "max") throw init.error("unsupported mode '" + mode + "'");
    a.max_mode = mode == "max";
    std::string c = init.attr_string("coordinate_transformation_mode",
                                      init.opset() >= 16 ? "half_pixel" : "output_half_pixel");
    if (c != "half_pixel" && c != "output_half_pixel")
      throw init.error("unsupported coordinate_transformation_mode '" + c + "'");
    a.half_pixel = c == "half_pixel";
    a.output_height = init.attr_int("output_height", 1);
    a.output_width = init.attr_int("output_width", 1);
    a.sampling_ratio = init.attr_int("sampling_ratio", 0);
    a.spatial_scale = init.attr_float("spatial_scale", 1.0f);
    if (a.output_height < 1 || a.output_width < 1) throw init.error("output_height and output_width must be >= 1");
    return make_kernel([a](KernelContext& ctx) {
      const Tensor& x = ctx.input(0);
      const Tensor& rois = ctx.input(1);
      const Tensor& idx = ctx.input(2);
      if (x.rank() != 4) throw ctx.error("X must be [N,C,H,W], got " + dims_to_string(x.dims()));
      if (rois.rank() != 2 || rois.dims()[1] != 4) throw ctx.error("rois must be [num_rois, 4]");
      if (idx.rank() != 1 || idx.dims()[0] != rois.dims()[0])
        throw ctx.error("batch_indices must be [num_rois] with num_rois = " + std::to_string(rois.dims()[0]));
      std::vector<double> roi_values = read_double_values(rois, ctx);
      std::vector<int64_t> batch = read_int_values(idx, ctx);
      dispatch(x.dtype(), ctx, FloatTypes{}, [&](auto tag) {
        using T = typename decltype(tag)::type;
        Tensor& y = ctx.allocate_output(0, x.dtype(), {rois.dims()[0], x.dims()[1], a.output_height, a.output_width});
        if (y.numel() > 0) roi_align<T>(a, ctx, x, roi_values, batch, y);
      });
    });
  });

  // NonMaxSuppression: 10-11 share one signature.
  add_kernel(r, "NonMaxSuppression", 10, INT_MAX, kFloatTypes, [](const KernelInit& init) {
    int64_t cpb = init.attr_int("center_point_box", 0);
    if (cpb != 0 && cpb != 1) throw init.error("center_point_box must be 0 or 1");
    return make_kernel([cpb](KernelContext& ctx) { run_nms(cpb == 1, ctx); });
  });
}

}  // namespace tunnx::cpu
