// Pooling: AveragePool, MaxPool (with Indices), LpPool, GlobalAveragePool, GlobalMaxPool,
// GlobalLpPool, MaxUnpool; and LRN (a pooling of squares across channels).
//
// Shape rule (windowed pools): runtime/core/ops/conv_pool.h (pool_geometry), the attributes parsed
// there too. Global pools: Y is (N, C, 1, .., 1). MaxUnpool: Y is (N, C, (D - 1) * stride + kernel -
// pads), or the output_shape input. LRN: Y has X's shape.
#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <utility>

#include "runtime/cpu/kernels/common.h"
#include "runtime/cpu/kernels/pool.h"

namespace tunnx::cpu {
namespace {

template <typename Acc, typename T> Acc to_acc(T v) {
  if constexpr (std::is_same_v<T, Float16> || std::is_same_v<T, BFloat16>) return static_cast<float>(v);
  else return static_cast<Acc>(v);
}
template <typename T, typename Acc> T from_acc(Acc v) {
  if constexpr (std::is_same_v<T, Float16> || std::is_same_v<T, BFloat16>) return T(static_cast<float>(v));
  else return static_cast<T>(v);
}

}  // namespace

PoolWindows pool_windows(const KernelContext& ctx, const ops::PoolAttrs& a, const std::vector<int64_t>& x) {
  std::string why_not;
  std::optional<ops::PoolGeometry> geometry = ops::pool_geometry(a, x, &why_not);
  if (!geometry) throw ctx.error(why_not);
  PoolWindows g{std::move(*geometry), {}, {}};
  const size_t nd = g.in.size();
  g.taps.resize(nd);
  g.padded.resize(nd);
  for (size_t d = 0; d < nd; ++d) {
    const int64_t out = g.out[d], in = g.in[d], begin = g.pad_begin[d], end = g.pad_end[d];
    g.taps[d].resize(static_cast<size_t>(out));
    g.padded[d].resize(static_cast<size_t>(out));
    for (int64_t o = 0; o < out; ++o) {
      for (int64_t k = 0; k < g.kernel[d]; ++k) {
        const int64_t pos = o * g.strides[d] - begin + k * g.dilations[d];
        if (pos < in + end) ++g.padded[d][static_cast<size_t>(o)];
        if (pos >= 0 && pos < in) g.taps[d][static_cast<size_t>(o)].push_back(pos);
      }
    }
  }
  return g;
}

namespace {

// A row-major in-plane offset rewritten column-major (MaxPool storage_order 1).
int64_t column_major(int64_t offset, const std::vector<int64_t>& dims) {
  int64_t result = 0, stride = 1;
  std::vector<int64_t> index(dims.size());
  for (size_t d = dims.size(); d-- > 0;) {
    index[d] = offset % dims[d];
    offset /= dims[d];
  }
  for (size_t d = 0; d < dims.size(); ++d) {
    result += index[d] * stride;
    stride *= dims[d];
  }
  return result;
}

enum class PoolKind { kAverage, kMax, kLp };

// AveragePool / MaxPool / LpPool over windows. MaxPool's optional output 1 holds the flat index
// (over the whole X, N and C included) of each maximum.
void run_pool(KernelContext& ctx, const ops::PoolAttrs& a, PoolKind kind) {
  const Tensor& x = ctx.input(0);
  const PoolWindows g = pool_windows(ctx, a, x.dims());
  const std::vector<int64_t> dims = ops::pooled_dims(x.dims(), g.out);
  const bool want_indices = kind == PoolKind::kMax && ctx.num_outputs() > 1 && ctx.output_wanted(1);
  const int64_t in_size = product(g.in), out_size = product(g.out);
  auto body = [&](auto tag) {
    using T = typename decltype(tag)::type;
    using Acc = FloatAcc<T>;
    const T* in = data<T>(x);
    T* out = mutable_data<T>(ctx.allocate_output(0, x.dtype(), dims));
    int64_t* indices = want_indices ? mutable_data<int64_t>(ctx.allocate_output(1, DataType::kInt64, dims)) : nullptr;
    for_each_window(g, [&](int64_t o, const std::vector<int64_t>& offsets, int64_t padded) {
      for (int64_t plane = 0; plane < g.planes; ++plane) {
        const T* src = in + plane * in_size;
        Acc result = 0;
        if (kind == PoolKind::kMax) {
          int64_t best = -1;
          for (int64_t off : offsets)
            if (best < 0 || to_acc<Acc>(src[off]) > result) result = to_acc<Acc>(src[off]), best = off;
          if (indices)
            indices[plane * out_size + o] =
                best < 0 ? -1 : plane * in_size + (a.storage_order == 1 ? column_major(best, g.in) : best);
        } else if (kind == PoolKind::kAverage) {
          for (int64_t off : offsets) result += to_acc<Acc>(src[off]);
          const int64_t count = a.count_include_pad ? padded : static_cast<int64_t>(offsets.size());
          result = count > 0 ? result / static_cast<Acc>(count) : Acc(0);
        } else {
          for (int64_t off : offsets) result += static_cast<Acc>(std::pow(std::abs(to_acc<Acc>(src[off])), a.p));
          result = static_cast<Acc>(std::pow(result, 1.0 / a.p));
        }
        out[plane * out_size + o] = from_acc<T>(result);
      }
    });
  };
  if (kind == PoolKind::kMax) dispatch<float, double, Float16, BFloat16, int8_t, uint8_t>(x.dtype(), ctx, body);
  else dispatch(x.dtype(), ctx, FloatTypes{}, body);
}

// GlobalAveragePool / GlobalMaxPool / GlobalLpPool: one value per (n, c) over all spatial positions.
void run_global_pool(KernelContext& ctx, PoolKind kind, double p) {
  const Tensor& x = ctx.input(0);
  if (x.rank() < 2) throw ctx.error("X must have rank 2 or more (N, C, spatial...), got " + dims_to_string(x.dims()));
  std::vector<int64_t> dims = x.dims();
  std::fill(dims.begin() + 2, dims.end(), 1);
  const int64_t planes = dims[0] * dims[1];
  const int64_t size = planes > 0 ? x.numel() / planes : 0;
  dispatch(x.dtype(), ctx, FloatTypes{}, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using Acc = FloatAcc<T>;
    const T* in = data<T>(x);
    T* out = mutable_data<T>(ctx.allocate_output_uninitialized(0, x.dtype(), dims));
    const int threads = x.numel() >= kParallelElements ? max_threads() : 1;
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t plane = 0; plane < planes; ++plane) {
      const T* src = in + plane * size;
      if (kind == PoolKind::kMax) {
        // Eight running maxima: one chain waits a comparison's latency per element. The maximum does
        // not depend on the order, and a NaN is skipped by every chain as by one (NaN < x is false).
        Acc lanes[8];
        std::fill(lanes, lanes + 8, -std::numeric_limits<Acc>::infinity());
        int64_t i = 0;
        for (; i + 8 <= size; i += 8)
          for (int k = 0; k < 8; ++k) lanes[k] = std::max(lanes[k], to_acc<Acc>(src[i + k]));
        for (; i < size; ++i) lanes[0] = std::max(lanes[0], to_acc<Acc>(src[i]));
        Acc result = lanes[0];
        for (int k = 1; k < 8; ++k) result = std::max(result, lanes[k]);
        out[plane] = from_acc<T>(result);
        continue;
      }
      Acc result = Acc(0);
      for (int64_t i = 0; i < size; ++i) {
        const Acc v = to_acc<Acc>(src[i]);
        if (kind == PoolKind::kAverage) result += v;
        else result += static_cast<Acc>(std::pow(std::abs(v), p));
      }
      if (kind == PoolKind::kAverage) result = size > 0 ? result / static_cast<Acc>(size) : Acc(0);
      if (kind == PoolKind::kLp) result = static_cast<Acc>(std::pow(result, 1.0 / p));
      out[plane] = from_acc<T>(result);
    }
  });
}

// LRN: y = x / (bias + alpha / size * sum of x^2 over the channels [c - (size-1)/2, c + ceil((size-1)/2)])^beta.
struct LrnAttrs {
  float alpha = 1e-4f, beta = 0.75f, bias = 1.0f;
  int64_t size = 0;
};

void run_lrn(KernelContext& ctx, const LrnAttrs& a) {
  const Tensor& x = ctx.input(0);
  if (x.rank() < 2) throw ctx.error("X must have rank 2 or more (N, C, spatial...), got " + dims_to_string(x.dims()));
  const int64_t n = x.dims()[0], channels = x.dims()[1];
  const int64_t spatial = n * channels > 0 ? x.numel() / (n * channels) : 0;
  const int64_t before = (a.size - 1) / 2, after = a.size - 1 - before;
  dispatch(x.dtype(), ctx, FloatTypes{}, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using Acc = FloatAcc<T>;
    const T* in = data<T>(x);
    T* out = mutable_data<T>(ctx.allocate_output(0, x.dtype(), x.dims()));
    std::vector<Acc> sums(static_cast<size_t>(spatial));
    for (int64_t b = 0; b < n; ++b)
      for (int64_t c = 0; c < channels; ++c) {
        std::fill(sums.begin(), sums.end(), Acc(0));
        for (int64_t k = std::max<int64_t>(0, c - before); k <= std::min(channels - 1, c + after); ++k) {
          const T* src = in + (b * channels + k) * spatial;
          for (int64_t i = 0; i < spatial; ++i) {
            const Acc v = to_acc<Acc>(src[i]);
            sums[static_cast<size_t>(i)] += v * v;
          }
        }
        const int64_t base = (b * channels + c) * spatial;
        for (int64_t i = 0; i < spatial; ++i) {
          const Acc scale = static_cast<Acc>(a.bias) + static_cast<Acc>(a.alpha) / static_cast<Acc>(a.size) * sums[static_cast<size_t>(i)];
          out[base + i] = from_acc<T>(to_acc<Acc>(in[base + i]) / static_cast<Acc>(std::pow(scale, static_cast<Acc>(a.beta))));
        }
      }
  });
}

// MaxUnpool: Y zero but for Y[I[i]] = X[i]. The indices address the default (inferred) output shape,
// as MaxPool produced them; an output_shape input larger than that keeps the values in its leading corner.
void run_max_unpool(KernelContext& ctx, const ops::PoolAttrs& a) {
  const Tensor& x = ctx.input(0);
  const Tensor& ind = ctx.input(1);
  if (x.rank() < 3) throw ctx.error("X must have rank 3 or more (N, C, spatial...), got " + dims_to_string(x.dims()));
  if (ind.dims() != x.dims())
    throw ctx.error("I " + dims_to_string(ind.dims()) + " must have the shape of X " + dims_to_string(x.dims()));
  const size_t nd = x.rank() - 2;
  if (a.kernel_shape.size() != nd) throw ctx.error("kernel_shape needs " + std::to_string(nd) + " values");
  if ((!a.strides.empty() && a.strides.size() != nd) || (!a.pads.empty() && a.pads.size() != 2 * nd))
    throw ctx.error("strides needs " + std::to_string(nd) + " values and pads " + std::to_string(2 * nd));
  std::vector<int64_t> inferred = {x.dims()[0], x.dims()[1]};
  for (size_t d = 0; d < nd; ++d) {
    const int64_t s = a.strides.empty() ? 1 : a.strides[d];
    const int64_t pads = a.pads.empty() ? 0 : a.pads[d] + a.pads[d + nd];
    inferred.push_back((x.dims()[d + 2] - 1) * s + a.kernel_shape[d] - pads);
    if (inferred.back() < 0) throw ctx.error("the inferred output shape " + dims_to_string(inferred) + " is negative");
  }
  std::vector<int64_t> dims = inferred;
  if (ctx.has_input(2)) {
    dims = read_int_values(ctx.input(2), ctx);
    if (dims.size() != x.rank()) throw ctx.error("output_shape " + dims_to_string(dims) + " must have X's rank");
    checked_element_count(dims);
  }
  const std::vector<int64_t> idx = read_int_values(ind, ctx);
  const int64_t inferred_size = product(inferred);
  dispatch(x.dtype(), ctx, FloatTypes{}, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* in = data<T>(x);
    std::vector<T> scattered(static_cast<size_t>(inferred_size));
    for (int64_t i = 0; i < x.numel(); ++i) {
      const int64_t target = idx[static_cast<size_t>(i)];
      if (target < 0 || target >= inferred_size)
        throw ctx.error("index " + std::to_string(target) + " is outside the output " + dims_to_string(inferred));
      scattered[static_cast<size_t>(target)] = in[i];
    }
    T* out = mutable_data<T>(ctx.allocate_output(0, x.dtype(), dims));
    if (dims == inferred) {
      std::copy(scattered.begin(), scattered.end(), out);
      return;
    }
    const std::vector<int64_t> out_strides = strides_of(dims);
    std::vector<int64_t> index(inferred.size(), 0);
    for (int64_t i = 0; i < inferred_size; ++i) {
      int64_t offset = 0;
      bool inside = true;
      for (size_t d = 0; d < index.size(); ++d) {
        inside = inside && index[d] < dims[d];
        offset += index[d] * out_strides[d];
      }
      if (inside) out[offset] = scattered[static_cast<size_t>(i)];
      for (size_t d = index.size(); d-- > 0;) {
        if (++index[d] < inferred[d]) break;
        index[d] = 0;
      }
    }
  });
}

std::vector<DataType> max_pool_types() {
  std::vector<DataType> types = kFloatTypes;
  types.push_back(DataType::kInt8);
  types.push_back(DataType::kUInt8);
  return types;
}

}  // namespace

void register_pool_kernels(KernelRegistry& r) {
  // count_include_pad arrived in opset 7, ceil_mode in 10, dilations in 19: absent attributes read as
  // their defaults, so one kernel covers every opset.
  add_kernel(r, "AveragePool", 1, INT_MAX, kFloatTypes, [](const KernelInit& init) {
    const ops::PoolAttrs a = ops::parse_pool_attrs(init.node());
    if (a.kernel_shape.empty()) throw init.error("kernel_shape is required");
    return make_kernel([a](KernelContext& ctx) { run_pool(ctx, a, PoolKind::kAverage); });
  });

  // MaxPool: the Indices output and storage_order since opset 8, int8/uint8 since 12.
  add_kernel(r, "MaxPool", 1, INT_MAX, max_pool_types(), [](const KernelInit& init) {
    const ops::PoolAttrs a = ops::parse_pool_attrs(init.node());
    if (a.kernel_shape.empty()) throw init.error("kernel_shape is required");
    return make_kernel([a](KernelContext& ctx) { run_pool(ctx, a, PoolKind::kMax); });
  });

  // LpPool: p is a float attribute in opset 1, an int since 2; ceil_mode and dilations since 18.
  add_kernel(r, "LpPool", 1, INT_MAX, kFloatTypes, [](const KernelInit& init) {
    const ops::PoolAttrs a = ops::parse_pool_attrs(init.node());
    if (a.kernel_shape.empty()) throw init.error("kernel_shape is required");
    return make_kernel([a](KernelContext& ctx) { run_pool(ctx, a, PoolKind::kLp); });
  });

  add_kernel(r, "GlobalAveragePool", 1, INT_MAX, kFloatTypes, [](const KernelInit&) {
    return make_kernel([](KernelContext& ctx) { run_global_pool(ctx, PoolKind::kAverage, 1); });
  });
  add_kernel(r, "GlobalMaxPool", 1, INT_MAX, kFloatTypes, [](const KernelInit&) {
    return make_kernel([](KernelContext& ctx) { run_global_pool(ctx, PoolKind::kMax, 1); });
  });
  add_kernel(r, "GlobalLpPool", 1, INT_MAX, kFloatTypes, [](const KernelInit& init) {
    const ops::PoolAttrs a = ops::parse_pool_attrs(init.node());
    return make_kernel([p = a.p](KernelContext& ctx) { run_global_pool(ctx, PoolKind::kLp, p); });
  });

  add_kernel(r, "LRN", 1, INT_MAX, kFloatTypes, [](const KernelInit& init) {
    LrnAttrs a;
    a.alpha = init.attr_float("alpha", a.alpha);
    a.beta = init.attr_float("beta", a.beta);
    a.bias = init.attr_float("bias", a.bias);
    a.size = init.required_attr("size").i;
    if (a.size < 1) throw init.error("size must be positive, got " + std::to_string(a.size));
    return make_kernel([a](KernelContext& ctx) { run_lrn(ctx, a); });
  });

  add_kernel(r, "MaxUnpool", 9, INT_MAX, kFloatTypes, [](const KernelInit& init) {
    const ops::PoolAttrs a = ops::parse_pool_attrs(init.node());
    if (a.kernel_shape.empty()) throw init.error("kernel_shape is required");
    return make_kernel([a](KernelContext& ctx) { run_max_unpool(ctx, a); });
  });
}

}  // namespace tunnx::cpu