// com.tunnx training and gradient kernels of the normalization family (runtime/core/ops/gradient_ops.md):
// BatchNormTrain, BatchNormGrad, InstanceNormGrad, LayerNormGrad.
//
// With x^ = (x - mean) * invstd over a group of n elements (a channel over the batch and the spatial
// dims, a channel of one image, a row) and y = scale * x^ + bias:
//   dBias = sum dY,   dScale = sum dY * x^,
//   dX = scale * invstd * (dY - mean(dY) - x^ * mean(dY * x^))   when the statistics are the group's
//   dX = scale * invstd * dY                                       when they are constants (inference BN).
// Statistics and sums are in double whatever the dtype (LayerNormGrad: float for float, see there); groups run in parallel (OpenMP) where they
// write disjoint outputs, and per-thread partial sums are added in thread order (same bits for the
// same thread count).
#include <algorithm>
#include <cmath>
#include <string>
#include <type_traits>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "runtime/cpu/kernels/common.h"
#include "runtime/cpu/kernels/grad_common.h"
#include "runtime/cpu/kernels/kernels.h"

namespace tunnx::cpu {
namespace {

bool wants(const KernelContext& ctx, size_t i) { return i < ctx.num_outputs() && ctx.output_wanted(i); }

// X [N, C, D1..Dn] seen as (n, c, s): element (b, c, s) sits at (b * C + c) * spatial + s.
struct ChannelView {
  int64_t n = 0, channels = 0, spatial = 0;
};

ChannelView channel_view(const Tensor& x, const KernelContext& ctx) {
  if (x.rank() < 2) throw ctx.error("X must have rank >= 2 ([N, C, ...]), got " + dims_to_string(x.dims()));
  ChannelView v{x.dims()[0], x.dims()[1], 0};
  v.spatial = v.n * v.channels != 0 ? x.numel() / (v.n * v.channels) : 0;
  return v;
}

// A per-channel input ([C], any float dtype) as doubles; `what` names it in errors.
std::vector<double> per_channel(const KernelContext& ctx, size_t i, int64_t channels, const char* what) {
  std::vector<double> v = read_double_values(ctx.input(i), ctx);
  if (static_cast<int64_t>(v.size()) != channels)
    throw ctx.error(std::string(what) + " has " + std::to_string(v.size()) + " values, expected C = " +
                    std::to_string(channels));
  return v;
}

void require_same_shape(const KernelContext& ctx, const Tensor& dy, const Tensor& x) {
  if (dy.dims() != x.dims())
    throw ctx.error("dY " + dims_to_string(dy.dims()) + " and X " + dims_to_string(x.dims()) + " differ in shape");
  require_same_dtype(ctx, dy, x);
}

// ---- BatchNormTrain: X, scale, B, running_mean, running_var -> Y, new running mean and var, saved
// mean and invstd. Normalises with the batch's biased variance; the running variance takes the
// unbiased one (n / (n - 1)), as torch.nn.BatchNorm in train mode. ----------------------------------

void run_batch_norm_train(KernelContext& ctx, double epsilon, double momentum) {
  const Tensor& x = ctx.input(0);
  const ChannelView v = channel_view(x, ctx);
  const std::vector<double> scale = per_channel(ctx, 1, v.channels, "scale");
  const std::vector<double> bias = per_channel(ctx, 2, v.channels, "B");
  const std::vector<double> running_mean = per_channel(ctx, 3, v.channels, "running_mean");
  const std::vector<double> running_var = per_channel(ctx, 4, v.channels, "running_var");
  const int64_t count = v.n * v.spatial;
  if (count < 2) throw ctx.error("training needs more than one value per channel, got X " + dims_to_string(x.dims()));
  std::vector<double> mean(static_cast<size_t>(v.channels)), var(static_cast<size_t>(v.channels));
  dispatch(x.dtype(), ctx, FloatTypes{}, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* in = data<T>(x);
    T* out = mutable_data<T>(ctx.allocate_output(0, x.dtype(), x.dims()));
#ifdef _OPENMP
#pragma omp parallel for schedule(static)
#endif
    for (int64_t c = 0; c < v.channels; ++c) {
      double sum = 0;
      for (int64_t b = 0; b < v.n; ++b) {
        const T* p = in + (b * v.channels + c) * v.spatial;
        for (int64_t s = 0; s < v.spatial; ++s) sum += to_double(p[s]);
      }
      const double m = sum / static_cast<double>(count);
      double sq = 0;
      for (int64_t b = 0; b < v.n; ++b) {
        const T* p = in + (b * v.channels + c) * v.spatial;
        for (int64_t s = 0; s < v.spatial; ++s) {
          const double d = to_double(p[s]) - m;
          sq += d * d;
        }
      }
      mean[c] = m;
      var[c] = sq / static_cast<double>(count);
      const double a = scale[c] / std::sqrt(var[c] + epsilon), shift = bias[c] - m * a;
      for (int64_t b = 0; b < v.n; ++b) {
        const int64_t base = (b * v.channels + c) * v.spatial;
        for (int64_t s = 0; s < v.spatial; ++s) out[base + s] = from_double<T>(to_double(in[base + s]) * a + shift);
      }
    }
  });
  const Tensor& stats = ctx.input(3);
  const double unbiased = static_cast<double>(count) / static_cast<double>(count - 1);
  std::vector<double> out(static_cast<size_t>(v.channels));
  if (wants(ctx, 1)) {
    for (int64_t c = 0; c < v.channels; ++c) out[c] = momentum * running_mean[c] + (1 - momentum) * mean[c];
    write_output(ctx, 1, stats.dtype(), stats.dims(), out);
  }
  if (wants(ctx, 2)) {
    for (int64_t c = 0; c < v.channels; ++c) out[c] = momentum * running_var[c] + (1 - momentum) * var[c] * unbiased;
    write_output(ctx, 2, stats.dtype(), stats.dims(), out);
  }
  if (wants(ctx, 3)) write_output(ctx, 3, stats.dtype(), stats.dims(), mean);
  if (wants(ctx, 4)) {
    for (int64_t c = 0; c < v.channels; ++c) out[c] = 1.0 / std::sqrt(var[c] + epsilon);
    write_output(ctx, 4, stats.dtype(), stats.dims(), out);
  }
}

// ---- BatchNormGrad: dY, X, scale, mean, var_or_invstd -> dX, dScale, dBias ------------------------

void run_batch_norm_grad(KernelContext& ctx, double epsilon, bool training) {
  const Tensor& dy = ctx.input(0);
  const Tensor& x = ctx.input(1);
  require_same_shape(ctx, dy, x);
  const ChannelView v = channel_view(x, ctx);
  const std::vector<double> scale = per_channel(ctx, 2, v.channels, "scale");
  const std::vector<double> mean = per_channel(ctx, 3, v.channels, "mean");
  std::vector<double> invstd = per_channel(ctx, 4, v.channels, training ? "invstd" : "var");
  if (!training)
    for (double& s : invstd) s = 1.0 / std::sqrt(s + epsilon);
  const int64_t count = v.n * v.spatial;
  const bool want_dx = wants(ctx, 0);
  std::vector<double> dscale(static_cast<size_t>(v.channels)), dbias(static_cast<size_t>(v.channels));
  dispatch(x.dtype(), ctx, FloatTypes{}, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* g = data<T>(dy);
    const T* in = data<T>(x);
    T* dx = want_dx ? mutable_data<T>(ctx.allocate_output(0, x.dtype(), x.dims())) : nullptr;
#ifdef _OPENMP
#pragma omp parallel for schedule(static)
#endif
    for (int64_t c = 0; c < v.channels; ++c) {
      const double m = mean[c], is = invstd[c];
      double sum_g = 0, sum_gx = 0;
      for (int64_t b = 0; b < v.n; ++b) {
        const int64_t base = (b * v.channels + c) * v.spatial;
        for (int64_t s = 0; s < v.spatial; ++s) {
          const double gv = to_double(g[base + s]);
          sum_g += gv;
          sum_gx += gv * (to_double(in[base + s]) - m) * is;
        }
      }
      dbias[c] = sum_g;
      dscale[c] = sum_gx;
      if (!dx) continue;
      const double k = scale[c] * is;
      const double mean_g = count ? sum_g / static_cast<double>(count) : 0;
      const double mean_gx = count ? sum_gx / static_cast<double>(count) : 0;
      for (int64_t b = 0; b < v.n; ++b) {
        const int64_t base = (b * v.channels + c) * v.spatial;
        for (int64_t s = 0; s < v.spatial; ++s) {
          const double gv = to_double(g[base + s]);
          if (training) {
            const double xh = (to_double(in[base + s]) - m) * is;
            dx[base + s] = from_double<T>(k * (gv - mean_g - xh * mean_gx));
          } else {
            dx[base + s] = from_double<T>(k * gv);
          }
        }
      }
    }
  });
  const Tensor& st = ctx.input(2);
  if (wants(ctx, 1)) write_output(ctx, 1, st.dtype(), st.dims(), dscale);
  if (wants(ctx, 2)) write_output(ctx, 2, st.dtype(), st.dims(), dbias);
}

// ---- InstanceNormGrad: dY, X, scale -> dX, dScale, dBias; statistics per (image, channel) ----------

void run_instance_norm_grad(KernelContext& ctx, double epsilon) {
  const Tensor& dy = ctx.input(0);
  const Tensor& x = ctx.input(1);
  require_same_shape(ctx, dy, x);
  const ChannelView v = channel_view(x, ctx);
  const std::vector<double> scale = per_channel(ctx, 2, v.channels, "scale");
  const int64_t planes = v.n * v.channels;
  const bool want_dx = wants(ctx, 0);
  std::vector<double> plane_g(static_cast<size_t>(planes)), plane_gx(static_cast<size_t>(planes));
  dispatch(x.dtype(), ctx, FloatTypes{}, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* g = data<T>(dy);
    const T* in = data<T>(x);
    T* dx = want_dx ? mutable_data<T>(ctx.allocate_output(0, x.dtype(), x.dims())) : nullptr;
    const double count = static_cast<double>(v.spatial);
#ifdef _OPENMP
#pragma omp parallel for schedule(static)
#endif
    for (int64_t p = 0; p < planes; ++p) {
      const T* xp = in + p * v.spatial;
      const T* gp = g + p * v.spatial;
      double sum = 0;
      for (int64_t s = 0; s < v.spatial; ++s) sum += to_double(xp[s]);
      const double m = v.spatial ? sum / count : 0;
      double sq = 0;
      for (int64_t s = 0; s < v.spatial; ++s) {
        const double d = to_double(xp[s]) - m;
        sq += d * d;
      }
      const double is = 1.0 / std::sqrt((v.spatial ? sq / count : 0) + epsilon);
      double sum_g = 0, sum_gx = 0;
      for (int64_t s = 0; s < v.spatial; ++s) {
        const double gv = to_double(gp[s]);
        sum_g += gv;
        sum_gx += gv * (to_double(xp[s]) - m) * is;
      }
      plane_g[p] = sum_g;
      plane_gx[p] = sum_gx;
      if (!dx || !v.spatial) continue;
      const double k = scale[p % v.channels] * is, mean_g = sum_g / count, mean_gx = sum_gx / count;
      T* dxp = dx + p * v.spatial;
      for (int64_t s = 0; s < v.spatial; ++s) {
        const double xh = (to_double(xp[s]) - m) * is;
        dxp[s] = from_double<T>(k * (to_double(gp[s]) - mean_g - xh * mean_gx));
      }
    }
  });
  std::vector<double> dscale(static_cast<size_t>(v.channels), 0), dbias(static_cast<size_t>(v.channels), 0);
  for (int64_t p = 0; p < planes; ++p) {
    dscale[p % v.channels] += plane_gx[p];
    dbias[p % v.channels] += plane_g[p];
  }
  const Tensor& st = ctx.input(2);
  if (wants(ctx, 1)) write_output(ctx, 1, st.dtype(), st.dims(), dscale);
  if (wants(ctx, 2)) write_output(ctx, 2, st.dtype(), st.dims(), dbias);
}

// ---- LayerNormGrad: dY, X, scale -> dX, dScale, dBias; X seen as [rows, cols] around `axis`, scale
// broadcast to X.dims[axis:], and dScale, dBias shaped X.dims[axis:] (the rule sums them to the
// parameters' own shapes). ----------------------------------------------------------------------------

// dY, X rows [r0, r1) of `cols`: writes dX (when given) and adds into dscale, dbias ([cols]). Each row
// is widened once into `xh` and `gd` ([cols] scratch); the loops over them vectorize. A row's
// statistics are in Acc: float for float (as PyTorch's kernel; 16 lanes instead of 8, and the row
// sums of 768-wide hidden states lose nothing the 1e-5 parity with PyTorch would see), double else.
template <typename T, typename Acc>
void layer_norm_grad_rows(const T* dy, const T* x, const Acc* __restrict scale, int64_t r0, int64_t r1,
                          int64_t cols, double epsilon, T* dx, Acc* __restrict dscale, Acc* __restrict dbias,
                          Acc* __restrict xh, Acc* __restrict gd) {
  const Acc inv_cols = Acc(1) / static_cast<Acc>(cols);
  for (int64_t r = r0; r < r1; ++r) {
    const T* xr = x + r * cols;
    const T* gr = dy + r * cols;
    Acc sum = 0;
#ifdef _OPENMP
#pragma omp simd reduction(+ : sum)
#endif
    for (int64_t j = 0; j < cols; ++j) {
      xh[j] = static_cast<Acc>(load(xr[j]));
      gd[j] = static_cast<Acc>(load(gr[j]));
      sum += xh[j];
    }
    const Acc mean = sum * inv_cols;
    Acc sq = 0;
#ifdef _OPENMP
#pragma omp simd reduction(+ : sq)
#endif
    for (int64_t j = 0; j < cols; ++j) {
      xh[j] -= mean;
      sq += xh[j] * xh[j];
    }
    const Acc is = static_cast<Acc>(1.0 / std::sqrt(static_cast<double>(sq * inv_cols) + epsilon));
    Acc sum_g = 0, sum_gx = 0;  // of g = dY * scale
#ifdef _OPENMP
#pragma omp simd reduction(+ : sum_g, sum_gx)
#endif
    for (int64_t j = 0; j < cols; ++j) {
      xh[j] *= is;
      const Acc g = gd[j] * scale[j];
      sum_g += g;
      sum_gx += g * xh[j];
      dscale[j] += gd[j] * xh[j];
      dbias[j] += gd[j];
    }
    if (!dx) continue;
    const Acc mean_g = sum_g * inv_cols, mean_gx = sum_gx * inv_cols;
    T* dxr = dx + r * cols;
#ifdef _OPENMP
#pragma omp simd
#endif
    for (int64_t j = 0; j < cols; ++j) dxr[j] = static_cast<T>(is * (gd[j] * scale[j] - mean_g - xh[j] * mean_gx));
  }
}

void run_layer_norm_grad(KernelContext& ctx, int64_t axis_attr, double epsilon) {
  const Tensor& dy = ctx.input(0);
  const Tensor& x = ctx.input(1);
  require_same_shape(ctx, dy, x);
  const auto axis = static_cast<size_t>(normalize_axis(axis_attr, static_cast<int64_t>(x.rank()), ctx));
  const std::vector<int64_t> tail(x.dims().begin() + static_cast<std::ptrdiff_t>(axis), x.dims().end());
  const int64_t rows = product(x.dims(), 0, axis), cols = product(tail);
  // scale broadcast over the normalized block: one value per column.
  const Tensor& scale_t = ctx.input(2);
  const std::vector<double> scale_values = read_double_values(scale_t, ctx);
  std::vector<double> scale(static_cast<size_t>(cols));
  if (scale_t.numel() == cols) {
    scale = scale_values;
  } else {
    bool ok = scale_t.rank() <= tail.size();
    for (size_t i = 0; ok && i < scale_t.rank(); ++i) {
      const int64_t d = scale_t.dims()[i];
      ok = d == 1 || d == tail[tail.size() - scale_t.rank() + i];
    }
    if (!ok)
      throw ctx.error("scale " + dims_to_string(scale_t.dims()) + " does not broadcast to X.shape[axis:] " +
                      dims_to_string(tail));
    const std::vector<int64_t> map = broadcast_index_map(scale_t.dims(), tail);
    for (int64_t j = 0; j < cols; ++j) scale[j] = scale_values[static_cast<size_t>(map[j])];
  }
  const bool want_dx = wants(ctx, 0);
  // Contiguous blocks of rows, each with partial dScale, dBias sums of its own: the sums depend on the
  // block count only, not on how OpenMP schedules the blocks.
  const int blocks = static_cast<int>(std::min<int64_t>(max_threads(), std::max<int64_t>(rows / 8, 1)));
  std::vector<double> dscale(static_cast<size_t>(cols), 0), dbias(static_cast<size_t>(cols), 0);
  dispatch(x.dtype(), ctx, FloatTypes{}, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using Acc = std::conditional_t<std::is_same_v<T, double>, double, float>;
    const T* g = data<T>(dy);
    const T* in = data<T>(x);
    T* dx = want_dx ? mutable_data<T>(ctx.allocate_output_uninitialized(0, x.dtype(), x.dims())) : nullptr;
    const std::vector<Acc> scale_acc(scale.begin(), scale.end());
    // Per block: partial dScale, dBias, then two rows of scratch. Allocated here: nothing in the
    // parallel loop may throw.
    const size_t stride = static_cast<size_t>(4 * cols);
    std::vector<Acc> partial(static_cast<size_t>(blocks) * stride, Acc(0));
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(blocks)
#endif
    for (int t = 0; t < blocks; ++t) {
      Acc* part = partial.data() + static_cast<size_t>(t) * stride;
      layer_norm_grad_rows(g, in, scale_acc.data(), rows * t / blocks, rows * (t + 1) / blocks, cols, epsilon, dx,
                           part, part + cols, part + 2 * cols, part + 3 * cols);
    }
    for (int t = 0; t < blocks; ++t) {
      const Acc* part = partial.data() + static_cast<size_t>(t) * stride;
      for (int64_t j = 0; j < cols; ++j) {
        dscale[j] += part[j];
        dbias[j] += part[cols + j];
      }
    }
  });
  if (wants(ctx, 1)) write_output(ctx, 1, scale_t.dtype(), tail, dscale);
  if (wants(ctx, 2)) write_output(ctx, 2, scale_t.dtype(), tail, dbias);
}


}  // namespace

void register_normalization_grad_kernels(KernelRegistry& r) {
  add_grad_kernel(r, "BatchNormTrain", [](const KernelInit& init) {
    const double epsilon = init.attr_float("epsilon", 1e-5f), momentum = init.attr_float("momentum", 0.9f);
    return make_kernel([epsilon, momentum](KernelContext& ctx) { run_batch_norm_train(ctx, epsilon, momentum); });
  }, 0);  // X
  add_grad_kernel(r, "BatchNormGrad", [](const KernelInit& init) {
    const double epsilon = init.attr_float("epsilon", 1e-5f);
    const bool training = init.attr_int("training", 0) != 0;
    return make_kernel([epsilon, training](KernelContext& ctx) { run_batch_norm_grad(ctx, epsilon, training); });
  }, 0);  // dY
  add_grad_kernel(r, "InstanceNormGrad", [](const KernelInit& init) {
    const double epsilon = init.attr_float("epsilon", 1e-5f);
    return make_kernel([epsilon](KernelContext& ctx) { run_instance_norm_grad(ctx, epsilon); });
  }, 0);
  add_grad_kernel(r, "LayerNormGrad", [](const KernelInit& init) {
    const int64_t axis = init.attr_int("axis", -1);
    const double epsilon = init.attr_float("epsilon", 1e-5f);
    return make_kernel([axis, epsilon](KernelContext& ctx) { run_layer_norm_grad(ctx, axis, epsilon); });
  }, 0);
}

}  // namespace tunnx::cpu
