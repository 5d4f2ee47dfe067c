// Normalization ops: BatchNormalization (inference and training), InstanceNormalization,
// LayerNormalization, RMSNormalization, GroupNormalization, MeanVarianceNormalization,
// LpNormalization. Y always has X's shape and dtype; statistics are accumulated in double whatever the
// input dtype (16-bit floats go through float).
#include <algorithm>
#include <cmath>

#include "runtime/cpu/kernels/common.h"
#include "runtime/cpu/kernels/kernels.h"
#include "runtime/cpu/kernels/vector_loops.h"

namespace tunnx::cpu {
namespace {

bool wants(const KernelContext& ctx, size_t i) { return i < ctx.num_outputs() && ctx.output_wanted(i); }

// Mean and population variance of `count` elements of `x` at x[base + j * stride], j < count.
template <typename T> void moments(const T* x, int64_t base, int64_t stride, int64_t count, double& mean, double& var) {
  double sum = 0;
  for (int64_t j = 0; j < count; ++j) sum += static_cast<double>(x[base + j * stride]);
  mean = count ? sum / static_cast<double>(count) : 0;
  double sq = 0;
  for (int64_t j = 0; j < count; ++j) {
    const double d = static_cast<double>(x[base + j * stride]) - mean;
    sq += d * d;
  }
  var = count ? sq / static_cast<double>(count) : 0;
}

// ---- BatchNormalization: X [N, C, D1..Dn]; scale, B, mean, var [C] (or [C, D1..Dn] when spatial=0
// before opset 9). Inference: y = scale * (x - mean) / sqrt(var + eps) + B. Training normalizes with
// the batch statistics and outputs running = input * momentum + batch * (1 - momentum). ------------

struct BatchNormAttrs {
  float epsilon = 1e-5f;
  float momentum = 0.9f;
  bool training = false;
  bool legacy_outputs = false;  // opset < 14: Y, mean, var, saved_mean, saved_var
};

void run_batch_norm(KernelContext& ctx, const BatchNormAttrs& attrs) {
  const Tensor& x = ctx.input(0);
  if (x.rank() < 2) throw ctx.error("X must have rank >= 2 ([N, C, ...]), got " + dims_to_string(x.dims()));
  const int64_t n = x.dims()[0];
  const int64_t features = n ? x.numel() / n : 0;
  // Parameters are per channel, or per element of X[1:] (the opset < 9 spatial=0 layout).
  const int64_t channels = ctx.input(1).numel();
  if (channels != x.dims()[1] && channels != features)
    throw ctx.error("scale has " + std::to_string(channels) + " values; expected C = " + std::to_string(x.dims()[1]));
  const int64_t spatial = channels ? features / channels : 0;
  std::vector<std::vector<double>> p(4);
  for (size_t i = 0; i < 4; ++i) {
    p[i] = read_double_values(ctx.input(i + 1), ctx);
    if (static_cast<int64_t>(p[i].size()) != channels)
      throw ctx.error("input " + std::to_string(i + 1) + " has " + std::to_string(p[i].size()) + " values, expected " +
                      std::to_string(channels));
  }
  const std::vector<double>&scale = p[0], &bias = p[1];
  std::vector<double> mean = p[2], var = p[3], batch_mean(channels), batch_var(channels);
  dispatch(x.dtype(), ctx, FloatTypes{}, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* in = data<T>(x);
    if (attrs.training) {
      // Element (b, c, s) sits at (b * channels + c) * spatial + s.
      for (int64_t c = 0; c < channels; ++c) {
        double sum = 0, sq = 0;
        for (int64_t b = 0; b < n; ++b)
          for (int64_t s = 0; s < spatial; ++s) sum += static_cast<double>(in[(b * channels + c) * spatial + s]);
        const double count = static_cast<double>(n * spatial), m = count ? sum / count : 0;
        for (int64_t b = 0; b < n; ++b)
          for (int64_t s = 0; s < spatial; ++s) {
            const double d = static_cast<double>(in[(b * channels + c) * spatial + s]) - m;
            sq += d * d;
          }
        batch_mean[c] = m;
        batch_var[c] = count ? sq / count : 0;
      }
    }
    const std::vector<double>& use_mean = attrs.training ? batch_mean : mean;
    const std::vector<double>& use_var = attrs.training ? batch_var : var;
    T* out = mutable_data<T>(ctx.allocate_output_uninitialized(0, x.dtype(), x.dims()));
    std::vector<double> a(static_cast<size_t>(channels)), shift(static_cast<size_t>(channels));
    for (int64_t c = 0; c < channels; ++c) {
      a[c] = scale[c] / std::sqrt(use_var[c] + attrs.epsilon);
      shift[c] = bias[c] - use_mean[c] * a[c];
    }
    // Plane (b, c) at a time, split among the run's threads: a standalone BatchNormalization (after
    // PaddleOCR's ConvTranspose: 614k elements) took 0.77 ms on one thread.
    const int64_t planes = n * channels;
    const int threads = x.numel() >= kParallelElements ? max_threads() : 1;
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t plane = 0; plane < planes; ++plane) {
      const int64_t c = plane % channels, base = plane * spatial;
      for (int64_t s = 0; s < spatial; ++s) out[base + s] = static_cast<T>(static_cast<double>(in[base + s]) * a[c] + shift[c]);
    }
  });
  if (!attrs.training) return;
  const double mom = attrs.momentum;
  for (int64_t c = 0; c < channels; ++c) {
    mean[c] = mean[c] * mom + batch_mean[c] * (1 - mom);
    var[c] = var[c] * mom + batch_var[c] * (1 - mom);
  }
  const DataType stat_type = ctx.input(3).dtype();
  const std::vector<int64_t> stat_dims = ctx.input(3).dims();
  if (wants(ctx, 1)) write_output(ctx, 1, stat_type, stat_dims, mean);
  if (wants(ctx, 2)) write_output(ctx, 2, stat_type, stat_dims, var);
  if (attrs.legacy_outputs && wants(ctx, 3)) write_output(ctx, 3, stat_type, stat_dims, batch_mean);
  if (attrs.legacy_outputs && wants(ctx, 4)) write_output(ctx, 4, stat_type, stat_dims, batch_var);
}

BatchNormAttrs parse_batch_norm(const KernelInit& init) {
  BatchNormAttrs a;
  a.epsilon = init.attr_float("epsilon", 1e-5f);
  a.momentum = init.attr_float("momentum", 0.9f);
  size_t outputs = 0;
  for (const auto& o : init.node().outputs) outputs += !o.empty();
  if (init.opset() >= 14) {
    a.training = init.attr_int("training_mode", 0) != 0;
  } else {
    // Before 14 the mode is told by the outputs asked for (and by is_test up to opset 6).
    a.legacy_outputs = true;
    const bool is_test = init.opset() <= 6 && init.attr_int("is_test", 0) != 0;
    a.training = outputs > 1 && !is_test;
  }
  return a;
}

// ---- InstanceNormalization: X [N, C, D1..Dn]; scale, B [C]; normalizes each (n, c) over D1..Dn. ----

void run_instance_norm(KernelContext& ctx, float epsilon) {
  const Tensor& x = ctx.input(0);
  if (x.rank() < 2) throw ctx.error("X must have rank >= 2 ([N, C, ...]), got " + dims_to_string(x.dims()));
  const int64_t n = x.dims()[0], channels = x.dims()[1];
  const int64_t spatial = n * channels != 0 ? x.numel() / (n * channels) : 0;
  const std::vector<double> scale = read_double_values(ctx.input(1), ctx), bias = read_double_values(ctx.input(2), ctx);
  if (static_cast<int64_t>(scale.size()) != channels || static_cast<int64_t>(bias.size()) != channels)
    throw ctx.error("scale and B must have C = " + std::to_string(channels) + " values");
  dispatch(x.dtype(), ctx, FloatTypes{}, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* in = data<T>(x);
    T* out = mutable_data<T>(ctx.allocate_output(0, x.dtype(), x.dims()));
    for (int64_t b = 0; b < n; ++b)
      for (int64_t c = 0; c < channels; ++c) {
        const int64_t base = (b * channels + c) * spatial;
        double mean = 0, var = 0;
        moments(in, base, 1, spatial, mean, var);
        const double a = scale[c] / std::sqrt(var + epsilon), shift = bias[c] - mean * a;
        for (int64_t s = 0; s < spatial; ++s) out[base + s] = static_cast<T>(static_cast<double>(in[base + s]) * a + shift);
      }
  });
}

// ---- LayerNormalization: normalizes over X.dims[axis:]; Scale and B broadcast to X. Mean and
// InvStdDev are X.dims[:axis] + [1] * (rank - axis), of the stash_type dtype. ---------------------

struct LayerNormAttrs {
  int64_t axis = -1;
  float epsilon = 1e-5f;
  DataType stash_type = DataType::kFloat32;
};

// For each element of X, the index into `p` (broadcast to `dims`); empty when p is indexed by the
// position within the normalized block (the usual case, p of shape dims[axis:]).
std::vector<int64_t> param_map(const Tensor& p, const std::vector<int64_t>& dims, size_t axis, const KernelContext& ctx) {
  std::vector<int64_t> tail(dims.begin() + static_cast<std::ptrdiff_t>(axis), dims.end());
  std::vector<int64_t> pd = p.dims();
  while (!pd.empty() && pd.front() == 1 && pd.size() > tail.size()) pd.erase(pd.begin());
  while (!tail.empty() && tail.front() == 1 && tail.size() > pd.size()) tail.erase(tail.begin());
  if (pd == tail) return {};
  if (broadcast_shapes({p.dims(), dims}, ctx) != dims)
    throw ctx.error("shape " + dims_to_string(p.dims()) + " does not broadcast to X " + dims_to_string(dims));
  return broadcast_index_map(p.dims(), dims);
}

void run_layer_norm(KernelContext& ctx, const LayerNormAttrs& attrs) {
  const Tensor& x = ctx.input(0);
  const auto rank = static_cast<int64_t>(x.rank());
  const auto axis = static_cast<size_t>(normalize_axis(attrs.axis, rank, ctx));
  int64_t rows = 1, cols = 1;
  for (size_t d = 0; d < x.rank(); ++d) (d < axis ? rows : cols) *= x.dims()[d];
  const Tensor& scale_t = ctx.input(1);
  const std::vector<double> scale = read_double_values(scale_t, ctx);
  const std::vector<int64_t> scale_map = param_map(scale_t, x.dims(), axis, ctx);
  std::vector<double> bias;
  std::vector<int64_t> bias_map;
  if (ctx.has_input(2)) {
    bias = read_double_values(ctx.input(2), ctx);
    bias_map = param_map(ctx.input(2), x.dims(), axis, ctx);
  }
  std::vector<double> means(static_cast<size_t>(rows)), inv_stds(static_cast<size_t>(rows));
  dispatch(x.dtype(), ctx, FloatTypes{}, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* in = data<T>(x);
    T* out = mutable_data<T>(ctx.allocate_output(0, x.dtype(), x.dims()));
    for (int64_t r = 0; r < rows; ++r) {
      double mean = 0, var = 0;
      moments(in, r * cols, 1, cols, mean, var);
      const double inv_std = 1.0 / std::sqrt(var + attrs.epsilon);
      means[r] = mean;
      inv_stds[r] = inv_std;
      for (int64_t j = 0; j < cols; ++j) {
        const int64_t i = r * cols + j;
        double y = (static_cast<double>(in[i]) - mean) * inv_std * scale[scale_map.empty() ? j : scale_map[i]];
        if (!bias.empty()) y += bias[bias_map.empty() ? j : bias_map[i]];
        out[i] = static_cast<T>(y);
      }
    }
  });
  std::vector<int64_t> stat_dims(x.dims().begin(), x.dims().begin() + static_cast<std::ptrdiff_t>(axis));
  stat_dims.resize(x.rank(), 1);
  if (wants(ctx, 1)) write_output(ctx, 1, attrs.stash_type, stat_dims, means);
  if (wants(ctx, 2)) write_output(ctx, 2, attrs.stash_type, stat_dims, inv_stds);
}

// ---- RMSNormalization (opset 23): y = x / sqrt(mean(x^2 over X.dims[axis:]) + epsilon) * scale,
// scale broadcast to X as LayerNormalization's. Computed in double, which is at least stash_type.
// Rows are independent: they are split among the run's threads, and float rows with a scale of the
// normalized shape run on vector_loops' rms_norm_rows (the same double arithmetic, vectorized). ---

void run_rms_norm(KernelContext& ctx, int64_t axis_attr, float epsilon) {
  const Tensor& x = ctx.input(0);
  const auto axis = static_cast<size_t>(normalize_axis(axis_attr, static_cast<int64_t>(x.rank()), ctx));
  int64_t rows = 1, cols = 1;
  for (size_t d = 0; d < x.rank(); ++d) (d < axis ? rows : cols) *= x.dims()[d];
  const Tensor& scale_t = ctx.input(1);
  const std::vector<double> scale = read_double_values(scale_t, ctx);
  const std::vector<int64_t> scale_map = param_map(scale_t, x.dims(), axis, ctx);
  const int threads = rows > 1 && rows * cols >= kParallelElements ? static_cast<int>(std::min<int64_t>(max_threads(), rows)) : 1;
  dispatch(x.dtype(), ctx, FloatTypes{}, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* in = data<T>(x);
    T* out = mutable_data<T>(ctx.allocate_output_uninitialized(0, x.dtype(), x.dims()));  // every element written
    if constexpr (std::is_same_v<T, float>) {
      if (scale_map.empty()) {
#pragma omp parallel for schedule(static) num_threads(threads)
        for (int chunk = 0; chunk < threads; ++chunk) {
          const int64_t r0 = rows * chunk / threads, r1 = rows * (chunk + 1) / threads;
          rms_norm_rows(in + r0 * cols, scale.data(), out + r0 * cols, r1 - r0, cols, static_cast<double>(epsilon));
        }
        return;
      }
    }
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t r = 0; r < rows; ++r) {
      double sq = 0;
      for (int64_t j = 0; j < cols; ++j) {
        const double v = static_cast<double>(in[r * cols + j]);
        sq += v * v;
      }
      const double inv_rms = 1.0 / std::sqrt(sq / static_cast<double>(std::max<int64_t>(cols, 1)) + epsilon);
      for (int64_t j = 0; j < cols; ++j) {
        const int64_t i = r * cols + j;
        out[i] = static_cast<T>(static_cast<double>(in[i]) * inv_rms * scale[scale_map.empty() ? j : scale_map[i]]);
      }
    }
  });
}

// ---- GroupNormalization: X [N, C, D1..Dn] normalized per (n, group of C / num_groups channels).
// scale and bias hold one value per group before opset 21, one per channel from 21. ---------------

void run_group_norm(KernelContext& ctx, int64_t num_groups, float epsilon, bool per_channel) {
  const Tensor& x = ctx.input(0);
  if (x.rank() < 2) throw ctx.error("X must have rank >= 2 ([N, C, ...]), got " + dims_to_string(x.dims()));
  const int64_t n = x.dims()[0], channels = x.dims()[1];
  if (num_groups <= 0 || channels % num_groups != 0)
    throw ctx.error("num_groups " + std::to_string(num_groups) + " must divide the channel count " +
                    std::to_string(channels));
  const int64_t spatial = n * channels != 0 ? x.numel() / (n * channels) : 0;
  const int64_t group_channels = channels / num_groups;
  const std::vector<double> scale = read_double_values(ctx.input(1), ctx), bias = read_double_values(ctx.input(2), ctx);
  const int64_t params = per_channel ? channels : num_groups;
  if (static_cast<int64_t>(scale.size()) != params || static_cast<int64_t>(bias.size()) != params)
    throw ctx.error(std::string("scale and bias must have ") + (per_channel ? "C = " : "num_groups = ") +
                    std::to_string(params) + " values, got " + std::to_string(scale.size()) + " and " +
                    std::to_string(bias.size()));
  dispatch(x.dtype(), ctx, FloatTypes{}, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* in = data<T>(x);
    T* out = mutable_data<T>(ctx.allocate_output(0, x.dtype(), x.dims()));
    // A group's channels are contiguous: (b, g) covers group_channels * spatial elements from base.
    for (int64_t b = 0; b < n; ++b)
      for (int64_t g = 0; g < num_groups; ++g) {
        const int64_t base = (b * channels + g * group_channels) * spatial;
        double mean = 0, var = 0;
        moments(in, base, 1, group_channels * spatial, mean, var);
        const double inv_std = 1.0 / std::sqrt(var + epsilon);
        for (int64_t c = 0; c < group_channels; ++c) {
          const int64_t p = per_channel ? g * group_channels + c : g;
          const int64_t start = base + c * spatial;
          for (int64_t s = 0; s < spatial; ++s)
            out[start + s] = static_cast<T>((static_cast<double>(in[start + s]) - mean) * inv_std * scale[p] + bias[p]);
        }
      }
  });
}

// ---- Normalization over a set of axes (MeanVarianceNormalization, LpNormalization). --------------

// For each element of `dims`, the index of its group: the element's coordinates on the axes not in
// `reduced`. `groups` receives the number of groups.
std::vector<int64_t> group_of_elements(const std::vector<int64_t>& dims, const std::vector<bool>& reduced,
                                       int64_t& groups) {
  std::vector<int64_t> kept_stride(dims.size(), 0);
  groups = 1;
  for (size_t d = dims.size(); d-- > 0;)
    if (!reduced[d]) {
      kept_stride[d] = groups;
      groups *= dims[d];
    }
  int64_t total = 1;
  for (int64_t d : dims) total *= d;
  std::vector<int64_t> group(static_cast<size_t>(total));
  std::vector<int64_t> coord(dims.size(), 0);
  for (int64_t i = 0; i < total; ++i) {
    int64_t g = 0;
    for (size_t d = 0; d < dims.size(); ++d) g += coord[d] * kept_stride[d];
    group[i] = g;
    for (size_t d = dims.size(); d-- > 0;) {
      if (++coord[d] < dims[d]) break;
      coord[d] = 0;
    }
  }
  return group;
}

// MeanVarianceNormalization: y = (x - E[x]) / (sqrt(E[x^2] - E[x]^2) + 1e-9) over `axes`.
void run_mvn(KernelContext& ctx, const std::vector<int64_t>& axes) {
  const Tensor& x = ctx.input(0);
  const auto rank = static_cast<int64_t>(x.rank());
  std::vector<bool> reduced(x.rank(), false);
  for (int64_t a : axes) reduced[static_cast<size_t>(normalize_axis(a, rank, ctx))] = true;
  int64_t groups = 0;
  const std::vector<int64_t> group = group_of_elements(x.dims(), reduced, groups);
  dispatch(x.dtype(), ctx, FloatTypes{}, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* in = data<T>(x);
    std::vector<double> sum(static_cast<size_t>(groups), 0), sq(static_cast<size_t>(groups), 0);
    std::vector<int64_t> count(static_cast<size_t>(groups), 0);
    for (size_t i = 0; i < group.size(); ++i) {
      sum[group[i]] += static_cast<double>(in[i]);
      ++count[group[i]];
    }
    for (int64_t g = 0; g < groups; ++g) sum[g] /= static_cast<double>(std::max<int64_t>(count[g], 1));
    for (size_t i = 0; i < group.size(); ++i) {
      const double d = static_cast<double>(in[i]) - sum[group[i]];
      sq[group[i]] += d * d;
    }
    for (int64_t g = 0; g < groups; ++g) sq[g] = std::sqrt(sq[g] / static_cast<double>(std::max<int64_t>(count[g], 1))) + 1e-9;
    T* out = mutable_data<T>(ctx.allocate_output(0, x.dtype(), x.dims()));
    for (size_t i = 0; i < group.size(); ++i)
      out[i] = static_cast<T>((static_cast<double>(in[i]) - sum[group[i]]) / sq[group[i]]);
  });
}

// LpNormalization: y = x / ||x||_p along `axis` (p is 1 or 2); a zero norm gives zeros.
void run_lp_norm(KernelContext& ctx, int64_t axis_attr, int64_t p) {
  const Tensor& x = ctx.input(0);
  const auto rank = static_cast<int64_t>(x.rank());
  const auto axis = static_cast<size_t>(normalize_axis(axis_attr, rank, ctx));
  const AxisView v = axis_view(x.dims(), static_cast<int64_t>(axis));
  const int64_t outer = v.outer, inner = v.inner;
  const int64_t dim = rank ? x.dims()[axis] : 1;
  dispatch(x.dtype(), ctx, FloatTypes{}, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* in = data<T>(x);
    T* out = mutable_data<T>(ctx.allocate_output(0, x.dtype(), x.dims()));
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t i = 0; i < inner; ++i) {
        const int64_t base = o * dim * inner + i;
        double norm = 0;
        for (int64_t j = 0; j < dim; ++j) {
          const double v = static_cast<double>(in[base + j * inner]);
          norm += p == 1 ? std::fabs(v) : v * v;
        }
        if (p == 2) norm = std::sqrt(norm);
        for (int64_t j = 0; j < dim; ++j)
          out[base + j * inner] = static_cast<T>(norm == 0 ? 0.0 : static_cast<double>(in[base + j * inner]) / norm);
      }
  });
}

}  // namespace

void register_normalization_kernels(KernelRegistry& r) {
  add_kernel(r, "BatchNormalization", 1, INT_MAX, kFloatTypes, [](const KernelInit& init) {
    const BatchNormAttrs attrs = parse_batch_norm(init);
    return make_kernel([attrs](KernelContext& ctx) { run_batch_norm(ctx, attrs); });
  });

  add_kernel(r, "InstanceNormalization", 1, INT_MAX, kFloatTypes, [](const KernelInit& init) {
    const float epsilon = init.attr_float("epsilon", 1e-5f);
    return make_kernel([epsilon](KernelContext& ctx) { run_instance_norm(ctx, epsilon); });
  });

  add_kernel(r, "LayerNormalization", 17, INT_MAX, kFloatTypes, [](const KernelInit& init) {
    LayerNormAttrs attrs;
    attrs.axis = init.attr_int("axis", -1);
    attrs.epsilon = init.attr_float("epsilon", 1e-5f);
    const int64_t stash = init.attr_int("stash_type", 1);
    const auto stash_type = static_cast<DataType>(stash);
    if (!is_known_data_type(static_cast<int32_t>(stash)) || !is_floating_point(stash_type))
      throw init.error("stash_type " + std::to_string(stash) + " is not a floating-point type");
    attrs.stash_type = stash_type;
    return make_kernel([attrs](KernelContext& ctx) { run_layer_norm(ctx, attrs); });
  });

  add_kernel(r, "RMSNormalization", 23, INT_MAX, kFloatTypes, [](const KernelInit& init) {
    const int64_t axis = init.attr_int("axis", -1);
    const float epsilon = init.attr_float("epsilon", 1e-5f);
    const int64_t stash = init.attr_int("stash_type", 1);
    if (!is_known_data_type(static_cast<int32_t>(stash)) || !is_floating_point(static_cast<DataType>(stash)))
      throw init.error("stash_type " + std::to_string(stash) + " is not a floating-point type");
    return make_kernel([axis, epsilon](KernelContext& ctx) { run_rms_norm(ctx, axis, epsilon); });
  });

  add_kernel(r, "GroupNormalization", 18, INT_MAX, kFloatTypes, [](const KernelInit& init) {
    const int64_t num_groups = init.required_attr("num_groups").i;
    const float epsilon = init.attr_float("epsilon", 1e-5f);
    const bool per_channel = init.opset() >= 21;
    return make_kernel([num_groups, epsilon, per_channel](KernelContext& ctx) {
      run_group_norm(ctx, num_groups, epsilon, per_channel);
    });
  });

  add_kernel(r, "MeanVarianceNormalization", 9, INT_MAX, kFloatTypes, [](const KernelInit& init) {
    const std::vector<int64_t> axes = init.attr_ints("axes", {0, 2, 3});
    return make_kernel([axes](KernelContext& ctx) { run_mvn(ctx, axes); });
  });

  add_kernel(r, "LpNormalization", 1, INT_MAX, kFloatTypes, [](const KernelInit& init) {
    const int64_t axis = init.attr_int("axis", -1);
    const int64_t p = init.attr_int("p", 2);
    if (p != 1 && p != 2) throw init.error("p must be 1 or 2, got " + std::to_string(p));
    return make_kernel([axis, p](KernelContext& ctx) { run_lp_norm(ctx, axis, p); });
  });
}

}  // namespace tunnx::cpu
