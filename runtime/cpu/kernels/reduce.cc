// Reductions and ops that work along an axis: Reduce* (Sum, Mean, Max, Min, Prod, L1, L2, LogSum,
// LogSumExp, SumSquare), ArgMax/ArgMin, Softmax/LogSoftmax/Hardmax, CumSum, CumProd, TopK.
//
// Shape rules:
//   Reduce*: the reduced axes become 1 (keepdims=1) or disappear (keepdims=0); no axes means all axes
//            unless noop_with_empty_axes=1, which makes the op elementwise (shape kept).
//   ArgMax/ArgMin: like a reduction over the single `axis`; output int64.
//   Softmax family, CumSum, CumProd: output shape equals the input's.
//   TopK: the input's shape with dims[axis] = k, for both outputs (values T, indices int64).
//
// Along-axis ops view the input as [outer, len, inner] around the axis; opset<13 Softmax/LogSoftmax/
// Hardmax coerce to 2-D at `axis`, which is the same view with len = prod(dims[axis:]) and inner = 1.
#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "runtime/cpu/kernels/common.h"
#include "runtime/cpu/kernels/vector_loops.h"
#include "runtime/cpu/kernels/kernels.h"

namespace tunnx::cpu {
namespace {

// A value as the type comparisons and arithmetic use: double for floats, the integer itself otherwise.
template <typename T> auto compute_value(T v) {
  if constexpr (kIsFloat<T>) return to_double(v);
  else return v;
}

// A double result stored as T. Unlike from_double (common.h), integers truncate toward zero (as the
// spec's reference, numpy's astype, does); NaN and out-of-range values become 0 (the spec leaves them
// undefined, and the C++ conversion would be undefined behaviour).
template <typename T> T store_reduced(double v) {
  if constexpr (kIsFloat<T>) {
    return from_double<T>(v);
  } else {
    if (!(v >= static_cast<double>(std::numeric_limits<T>::lowest()) &&
          v < std::ldexp(1.0, std::numeric_limits<T>::digits)))
      return T(0);
    return static_cast<T>(v);
  }
}

// ---------------------------------------------------------------------------------------------------
// Reduce*

enum class ReduceOp { kSum, kMean, kMax, kMin, kProd, kL1, kL2, kLogSum, kLogSumExp, kSumSquare };

// Which input element lands in which output element.
struct ReduceGeometry {
  std::vector<int64_t> in_dims;
  std::vector<int64_t> out_strides;  // per input axis; 0 on reduced axes
  std::vector<int64_t> out_dims;
  int64_t out_numel = 1;
  int64_t count = 1;  // input elements per output element
};

ReduceGeometry reduce_geometry(const std::vector<int64_t>& dims, std::vector<int64_t> axes, bool keepdims,
                               bool noop_with_empty_axes, const KernelContext& ctx) {
  const int64_t rank = static_cast<int64_t>(dims.size());
  std::vector<bool> reduced(dims.size(), false);
  if (axes.empty()) {
    if (!noop_with_empty_axes) std::fill(reduced.begin(), reduced.end(), true);
  } else {
    for (int64_t a : axes) {
      if (a < -rank || a >= rank)
        throw ctx.error("axis " + std::to_string(a) + " is out of range for rank " + std::to_string(rank));
      size_t n = static_cast<size_t>(a < 0 ? a + rank : a);
      if (reduced[n]) throw ctx.error("axis " + std::to_string(a) + " appears more than once in axes");
      reduced[n] = true;
    }
  }
  ReduceGeometry g;
  g.in_dims = dims;
  std::vector<int64_t> kept_dims(dims.size());
  for (size_t i = 0; i < dims.size(); ++i) {
    kept_dims[i] = reduced[i] ? 1 : dims[i];
    if (reduced[i]) g.count *= dims[i];
    else g.out_numel *= dims[i];
    if (!reduced[i] || keepdims) g.out_dims.push_back(kept_dims[i]);
  }
  g.out_strides = strides_of(kept_dims);
  for (size_t i = 0; i < dims.size(); ++i)
    if (reduced[i]) g.out_strides[i] = 0;
  return g;
}

// Calls fn(in_index, out_index) for every input element, in row-major input order.
template <typename Fn> void for_each_element(const ReduceGeometry& g, Fn fn) {
  const size_t rank = g.in_dims.size();
  if (rank == 0) {
    fn(int64_t{0}, int64_t{0});
    return;
  }
  int64_t total = 1;
  for (int64_t d : g.in_dims) total *= d;
  if (total == 0) return;
  const int64_t last = g.in_dims[rank - 1], last_stride = g.out_strides[rank - 1];
  std::vector<int64_t> index(rank, 0);
  int64_t out = 0;
  for (int64_t base = 0; base < total; base += last) {
    for (int64_t j = 0; j < last; ++j) fn(base + j, out + j * last_stride);
    for (size_t a = rank - 1; a-- > 0;) {  // odometer over all axes but the last
      out += g.out_strides[a];
      if (++index[a] < g.in_dims[a]) break;
      out -= g.out_strides[a] * g.in_dims[a];
      index[a] = 0;
    }
  }
}

// The accumulator: double for floats and for integer ops whose result is not an integer; uint64 for
// integer sums and products (modular, so the cast back to T wraps like T's own arithmetic would,
// without signed-overflow UB); T itself for Max/Min of integers
// (uint8 for bool: std::vector<bool> has no references).
template <ReduceOp Op, typename T> struct AccOf {
  using type = std::conditional_t<
      kIsFloat<T> || Op == ReduceOp::kMean || Op == ReduceOp::kL2 || Op == ReduceOp::kLogSum ||
          Op == ReduceOp::kLogSumExp,
      double,
      std::conditional_t<Op == ReduceOp::kMax || Op == ReduceOp::kMin,
                         std::conditional_t<std::is_same_v<T, bool>, uint8_t, T>, uint64_t>>;
};

// Sum, mean, max or min of float over one contiguous block of reduced axes with kept axes after it:
// X seen as [outer, count, inner] (a channels-last global average or max pool: [1, H*W, C]). Each
// output adds its inputs in the order the general loop does, in double, so the result is the same
// (max and min: NaN wins, as there); the inner loop runs over contiguous columns and vectorizes, and
// column blocks are split among threads. False, with nothing written, for other layouts.
template <ReduceOp Op> bool reduce_rows_of_block(const float* in, float* out, const ReduceGeometry& g) {
  const size_t rank = g.in_dims.size();
  size_t first = rank, last = 0;
  for (size_t i = 0; i < rank; ++i)
    if (g.out_strides[i] == 0 && g.in_dims[i] != 1) {
      first = std::min(first, i);
      last = i;
    }
  if (first == rank || last + 1 == rank) return false;  // nothing reduced, or no kept axes after it
  for (size_t i = first; i <= last; ++i)
    if (g.out_strides[i] != 0 && g.in_dims[i] != 1) return false;  // kept axes inside the block
  int64_t outer = 1, inner = 1;
  for (size_t i = 0; i < first; ++i) outer *= g.in_dims[i];
  for (size_t i = last + 1; i < rank; ++i) inner *= g.in_dims[i];
  const int64_t count = g.count;
  if (outer * count * inner == 0) return false;
  for_column_blocks(outer, count, inner, [&](int64_t o, int64_t c0, int64_t c1) {
    const float* base = in + o * count * inner;
    if constexpr (Op == ReduceOp::kMax || Op == ReduceOp::kMin) {
      float* best = out + o * inner + c0;
      std::copy_n(base + c0, c1 - c0, best);
      extreme_rows(base + inner + c0, count - 1, inner, c1 - c0, best, Op == ReduceOp::kMax, /*nan_wins=*/true);
    } else {
      double acc[kColumnBlock] = {};
      accumulate_rows(base + c0, count, inner, c1 - c0, acc);
      for (int64_t c = c0; c < c1; ++c)
        out[o * inner + c] = static_cast<float>(Op == ReduceOp::kMean ? acc[c - c0] / static_cast<double>(count) : acc[c - c0]);
    }
  });
  return true;
}

template <ReduceOp Op, typename T> void reduce_typed(const Tensor& x, Tensor& y, const ReduceGeometry& g) {
  using Acc = typename AccOf<Op, T>::type;
  const T* in = data<T>(x);
  T* out = mutable_data<T>(y);
  const size_t n = static_cast<size_t>(g.out_numel);

  if constexpr (Op == ReduceOp::kLogSumExp) {
    // Shift by the maximum so exp() cannot overflow.
    std::vector<double> shift(n, -std::numeric_limits<double>::infinity());
    for_each_element(g, [&](int64_t i, int64_t o) {
      double v = static_cast<double>(compute_value(in[i]));
      if (std::isnan(v) || v > shift[o]) shift[o] = std::isnan(shift[o]) ? shift[o] : v;
    });
    for (double& s : shift)
      if (!std::isfinite(s)) s = std::isnan(s) ? s : 0.0;
    std::vector<double> sum(n, 0.0);
    for_each_element(g, [&](int64_t i, int64_t o) {
      sum[o] += std::exp(static_cast<double>(compute_value(in[i])) - shift[o]);
    });
    for (size_t o = 0; o < n; ++o) out[o] = store_reduced<T>(std::log(sum[o]) + shift[o]);
    return;
  } else {
    if constexpr ((Op == ReduceOp::kSum || Op == ReduceOp::kMean || Op == ReduceOp::kMax || Op == ReduceOp::kMin) &&
                  std::is_same_v<T, float>) {
      if (reduce_rows_of_block<Op>(in, out, g)) return;
    }
    Acc init{};
    if constexpr (Op == ReduceOp::kProd) init = Acc(1);
    if constexpr (Op == ReduceOp::kMax) {
      if constexpr (std::is_floating_point_v<Acc>) init = -std::numeric_limits<Acc>::infinity();
      else init = std::numeric_limits<Acc>::lowest();
    }
    if constexpr (Op == ReduceOp::kMin) {
      if constexpr (std::is_floating_point_v<Acc>) init = std::numeric_limits<Acc>::infinity();
      else init = std::numeric_limits<Acc>::max();
    }
    std::vector<Acc> acc(n, init);
    for_each_element(g, [&](int64_t i, int64_t o) {
      const auto c = compute_value(in[i]);
      Acc v = static_cast<Acc>(c);
      Acc& a = acc[static_cast<size_t>(o)];
      if constexpr (Op == ReduceOp::kMax) {
        if (is_nan(v) || v > a) a = is_nan(a) ? a : v;  // NaN propagates, like numpy
      } else if constexpr (Op == ReduceOp::kMin) {
        if (is_nan(v) || v < a) a = is_nan(a) ? a : v;
      } else if constexpr (Op == ReduceOp::kProd) {
        a *= v;
      } else if constexpr (Op == ReduceOp::kL1) {
        if constexpr (std::is_signed_v<decltype(c)>) a += c < 0 ? Acc(0) - v : v;
        else a += v;
      } else if constexpr (Op == ReduceOp::kL2 || Op == ReduceOp::kSumSquare) {
        a += v * v;
      } else {
        a += v;  // Sum, Mean, LogSum
      }
    });
    for (size_t o = 0; o < n; ++o) {
      Acc a = acc[o];
      if constexpr (Op == ReduceOp::kMean) {
        out[o] = store_reduced<T>(a / static_cast<double>(g.count));  // empty: 0/0 = NaN (undefined)
      } else if constexpr (Op == ReduceOp::kL2) {
        out[o] = store_reduced<T>(std::sqrt(a));
      } else if constexpr (Op == ReduceOp::kLogSum) {
        out[o] = store_reduced<T>(std::log(a));
      } else if constexpr (std::is_same_v<Acc, double>) {
        out[o] = store_reduced<T>(a);
      } else {
        out[o] = static_cast<T>(a);  // modular: wraps like T's arithmetic
      }
    }
  }
}

template <ReduceOp Op> void reduce_dispatch(const Tensor& x, Tensor& y, const ReduceGeometry& g,
                                            const KernelContext& ctx) {
  auto body = [&](auto tag) {
    using T = typename decltype(tag)::type;
    if constexpr (std::is_same_v<T, bool>) {
      if constexpr (Op == ReduceOp::kMax || Op == ReduceOp::kMin) reduce_typed<Op, T>(x, y, g);
      else throw ctx.error("bool inputs are only supported by ReduceMax and ReduceMin");
    } else {
      reduce_typed<Op, T>(x, y, g);
    }
  };
  dispatch<float, double, Float16, BFloat16, int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t,
           uint64_t, bool>(x.dtype(), ctx, body);
}

void run_reduce(ReduceOp op, const Tensor& x, Tensor& y, const ReduceGeometry& g, const KernelContext& ctx) {
  switch (op) {
    case ReduceOp::kSum: return reduce_dispatch<ReduceOp::kSum>(x, y, g, ctx);
    case ReduceOp::kMean: return reduce_dispatch<ReduceOp::kMean>(x, y, g, ctx);
    case ReduceOp::kMax: return reduce_dispatch<ReduceOp::kMax>(x, y, g, ctx);
    case ReduceOp::kMin: return reduce_dispatch<ReduceOp::kMin>(x, y, g, ctx);
    case ReduceOp::kProd: return reduce_dispatch<ReduceOp::kProd>(x, y, g, ctx);
    case ReduceOp::kL1: return reduce_dispatch<ReduceOp::kL1>(x, y, g, ctx);
    case ReduceOp::kL2: return reduce_dispatch<ReduceOp::kL2>(x, y, g, ctx);
    case ReduceOp::kLogSum: return reduce_dispatch<ReduceOp::kLogSum>(x, y, g, ctx);
    case ReduceOp::kLogSumExp: return reduce_dispatch<ReduceOp::kLogSumExp>(x, y, g, ctx);
    case ReduceOp::kSumSquare: return reduce_dispatch<ReduceOp::kSumSquare>(x, y, g, ctx);
  }
}

// Reduce* over the axes of the `axes` attribute (before `axes_input_since`) or of the optional second
// input (from then on).
KernelFactory reduce_factory(ReduceOp op, int64_t axes_input_since) {
  return [op, axes_input_since](const KernelInit& init) {
    const bool axes_from_input = init.opset() >= axes_input_since;
    const std::vector<int64_t> attr_axes = axes_from_input ? std::vector<int64_t>{} : init.attr_ints("axes");
    const bool keepdims = init.attr_int("keepdims", 1) != 0;
    const bool noop = axes_from_input && init.attr_int("noop_with_empty_axes", 0) != 0;
    return make_kernel([op, axes_from_input, attr_axes, keepdims, noop](KernelContext& ctx) {
      const Tensor& x = ctx.input(0);
      std::vector<int64_t> axes = attr_axes;
      if (axes_from_input && ctx.has_input(1)) axes = read_int_values(ctx.input(1), ctx);
      ReduceGeometry g = reduce_geometry(x.dims(), axes, keepdims, noop, ctx);
      Tensor& y = ctx.allocate_output(0, x.dtype(), g.out_dims);
      run_reduce(op, x, y, g, ctx);
    });
  };
}

// ---------------------------------------------------------------------------------------------------
// ArgMax / ArgMin

KernelFactory arg_factory(bool is_max) {
  return [is_max](const KernelInit& init) {
    const int64_t axis_attr = init.attr_int("axis", 0);
    const bool keepdims = init.attr_int("keepdims", 1) != 0;
    const bool select_last = init.opset() >= 12 && init.attr_int("select_last_index", 0) != 0;
    return make_kernel([is_max, axis_attr, keepdims, select_last](KernelContext& ctx) {
      const Tensor& x = ctx.input(0);
      const int64_t rank = static_cast<int64_t>(x.rank());
      if (rank == 0) throw ctx.error("input must have rank >= 1");
      const int64_t axis = normalize_axis(axis_attr, rank, ctx);
      const AxisView v = axis_view(x.dims(), axis);
      std::vector<int64_t> out_dims = x.dims();
      if (keepdims) out_dims[static_cast<size_t>(axis)] = 1;
      else out_dims.erase(out_dims.begin() + axis);
      Tensor& y = ctx.allocate_output(0, DataType::kInt64, out_dims);
      if (y.numel() == 0) return;
      if (v.len == 0) throw ctx.error("cannot take the arg" + std::string(is_max ? "max" : "min") + " of an empty axis");
      int64_t* out = mutable_data<int64_t>(y);
      dispatch<float, double, Float16, BFloat16, int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t,
               uint64_t>(x.dtype(), ctx, [&](auto tag) {
        using T = typename decltype(tag)::type;
        using V = decltype(compute_value(T{}));
        const T* in = data<T>(x);
        std::vector<V> best(static_cast<size_t>(v.inner));
        for (int64_t o = 0; o < v.outer; ++o) {
          const T* block = in + o * v.len * v.inner;
          int64_t* idx = out + o * v.inner;
          for (int64_t i = 0; i < v.inner; ++i) {
            best[static_cast<size_t>(i)] = compute_value(block[i]);
            idx[i] = 0;
          }
          for (int64_t j = 1; j < v.len; ++j)
            for (int64_t i = 0; i < v.inner; ++i) {
              V c = compute_value(block[j * v.inner + i]);
              V& b = best[static_cast<size_t>(i)];
              if (is_nan(b)) continue;  // the first NaN wins, like numpy
              bool better = is_nan(c) || (is_max ? c > b : c < b) || (select_last && c == b);
              if (better) {
                b = c;
                idx[i] = j;
              }
            }
        }
      });
    });
  };
}

// ---------------------------------------------------------------------------------------------------
// Softmax / LogSoftmax / Hardmax

enum class SoftmaxKind { kSoftmax, kLogSoftmax, kHardmax };

// Softmax of one [len, inner] block of 16-bit floats as numpy computes it in their own type, which the
// ONNX reference (and so the node tests' expected outputs, and function bodies such as Attention's run
// op by op) does: x - max, exp and the quotient each rounded to T, the sum rounded at every addition,
// except float16 along a contiguous axis (inner == 1), which numpy's half reduction sums in float.
// Computing in double and rounding once is off by an ulp of bfloat16 (0.4%), past the tolerance.
template <typename T> void softmax_rounded(const T* x, T* y, int64_t len, int64_t inner) {
  auto round = [](float v) { return static_cast<float>(static_cast<T>(v)); };
  const bool float_sum = std::is_same_v<T, Float16> && inner == 1;
  for (int64_t i = 0; i < inner; ++i) {
    float mx = -std::numeric_limits<float>::infinity();
    for (int64_t j = 0; j < len; ++j)
      if (load(x[j * inner + i]) > mx) mx = load(x[j * inner + i]);
    float sum = 0;
    for (int64_t j = 0; j < len; ++j) {
      const float e = round(std::exp(round(load(x[j * inner + i]) - mx)));
      y[j * inner + i] = static_cast<T>(e);
      sum = float_sum ? sum + e : round(sum + e);
    }
    sum = round(sum);
    for (int64_t j = 0; j < len; ++j) y[j * inner + i] = static_cast<T>(load(y[j * inner + i]) / sum);
  }
}

KernelFactory softmax_factory(SoftmaxKind kind) {
  return [kind](const KernelInit& init) {
    const bool coerce_2d = init.opset() < 13;
    const int64_t axis_attr = init.attr_int("axis", coerce_2d ? 1 : -1);
    return make_kernel([kind, coerce_2d, axis_attr](KernelContext& ctx) {
      const Tensor& x = ctx.input(0);
      const int64_t rank = static_cast<int64_t>(x.rank());
      AxisView v;
      if (coerce_2d) {
        // [prod(dims[:axis]), prod(dims[axis:])]; axis == rank is allowed and gives rows of one.
        if (axis_attr < -rank || axis_attr > rank)
          throw ctx.error("axis " + std::to_string(axis_attr) + " is out of range for rank " + std::to_string(rank));
        const int64_t axis = axis_attr < 0 ? axis_attr + rank : axis_attr;
        v.len = 1;
        for (int64_t i = 0; i < rank; ++i) (i < axis ? v.outer : v.len) *= x.dims()[static_cast<size_t>(i)];
      } else {
        if (rank == 0) throw ctx.error("input must have rank >= 1");
        v = axis_view(x.dims(), normalize_axis(axis_attr, rank, ctx));
      }
      Tensor& y = ctx.allocate_output(0, x.dtype(), x.dims());
      if (y.numel() == 0) return;
      dispatch(x.dtype(), ctx, FloatTypes{}, [&](auto tag) {
        using T = typename decltype(tag)::type;
        const T* in = data<T>(x);
        T* out = mutable_data<T>(y);
        const size_t inner = static_cast<size_t>(v.inner);
        std::vector<double> mx(inner), sum(inner);
        std::vector<int64_t> arg(inner);
        for (int64_t o = 0; o < v.outer; ++o) {
          const T* xb = in + o * v.len * v.inner;
          T* yb = out + o * v.len * v.inner;
          if constexpr (kIs16BitFloat<T>) {
            if (kind == SoftmaxKind::kSoftmax) {
              softmax_rounded(xb, yb, v.len, v.inner);
              continue;
            }
          }
          std::fill(mx.begin(), mx.end(), -std::numeric_limits<double>::infinity());
          std::fill(arg.begin(), arg.end(), 0);
          for (int64_t j = 0; j < v.len; ++j)
            for (size_t i = 0; i < inner; ++i) {
              double c = compute_value(xb[j * v.inner + static_cast<int64_t>(i)]);
              if (c > mx[i]) {
                mx[i] = c;
                arg[i] = j;
              }
            }
          if (kind == SoftmaxKind::kHardmax) {  // 1 at the first maximum of each row
            for (size_t i = 0; i < inner; ++i) yb[arg[i] * v.inner + static_cast<int64_t>(i)] = T(1.0f);
            continue;
          }
          std::fill(sum.begin(), sum.end(), 0.0);
          for (int64_t j = 0; j < v.len; ++j)
            for (size_t i = 0; i < inner; ++i)
              sum[i] += std::exp(static_cast<double>(compute_value(xb[j * v.inner + static_cast<int64_t>(i)])) - mx[i]);
          for (int64_t j = 0; j < v.len; ++j)
            for (size_t i = 0; i < inner; ++i) {
              const int64_t k = j * v.inner + static_cast<int64_t>(i);
              double shifted = static_cast<double>(compute_value(xb[k])) - mx[i];
              yb[k] = store_reduced<T>(kind == SoftmaxKind::kSoftmax ? std::exp(shifted) / sum[i]
                                                                   : shifted - std::log(sum[i]));
            }
        }
      });
    });
  };
}

// ---------------------------------------------------------------------------------------------------
// CumSum, CumProd (opset 26): the running sum or product along the scalar `axis` input; exclusive=1
// starts from the identity (0 or 1), reverse=1 runs from the end of the axis.

template <typename... Ts> std::unique_ptr<Kernel> cumulative_kernel(const KernelInit& init, bool product) {
  const bool exclusive = init.attr_int("exclusive", 0) != 0;
  const bool reverse = init.attr_int("reverse", 0) != 0;
  return make_kernel([exclusive, reverse, product](KernelContext& ctx) {
    const Tensor& x = ctx.input(0);
    const Tensor& axis_t = ctx.input(1);
    if (axis_t.numel() != 1) throw ctx.error("axis must be a single value, got shape " + dims_to_string(axis_t.dims()));
    const int64_t rank = static_cast<int64_t>(x.rank());
    if (rank == 0) throw ctx.error("input must have rank >= 1");
    const int64_t axis = normalize_axis(read_int_values(axis_t, ctx)[0], rank, ctx);
    const AxisView v = axis_view(x.dims(), axis);
    Tensor& y = ctx.allocate_output(0, x.dtype(), x.dims());
    if (y.numel() == 0) return;
    dispatch<Ts...>(x.dtype(), ctx, [&](auto tag) {
      using T = typename decltype(tag)::type;
      using Acc = std::conditional_t<kIsFloat<T>, double, uint64_t>;  // uint64: modular, no overflow UB
      const T* in = data<T>(x);
      T* out = mutable_data<T>(y);
      auto store = [](Acc a) {
        if constexpr (kIsFloat<T>) return store_reduced<T>(a);
        else return static_cast<T>(a);
      };
      std::vector<Acc> acc(static_cast<size_t>(v.inner));
      for (int64_t o = 0; o < v.outer; ++o) {
        std::fill(acc.begin(), acc.end(), Acc(product ? 1 : 0));
        for (int64_t step = 0; step < v.len; ++step) {
          const int64_t j = reverse ? v.len - 1 - step : step;
          const int64_t base = (o * v.len + j) * v.inner;
          for (int64_t i = 0; i < v.inner; ++i) {
            Acc& a = acc[static_cast<size_t>(i)];
            Acc c = static_cast<Acc>(compute_value(in[base + i]));
            if (exclusive) out[base + i] = store(a);
            a = product ? a * c : a + c;
            if (!exclusive) out[base + i] = store(a);
          }
        }
      }
    });
  });
}

// ---------------------------------------------------------------------------------------------------
// TopK

std::unique_ptr<Kernel> topk_kernel(const KernelInit& init) {
  const bool k_from_input = init.opset() >= 10;
  const int64_t k_attr = k_from_input ? 0 : init.required_attr("k").i;
  const int64_t axis_attr = init.attr_int("axis", -1);
  const bool largest = init.opset() < 11 || init.attr_int("largest", 1) != 0;
  // sorted=0 leaves the order undefined; the sorted order is as good an answer as any.
  init.accept_attrs({"sorted"});
  return make_kernel([k_from_input, k_attr, axis_attr, largest](KernelContext& ctx) {
    const Tensor& x = ctx.input(0);
    int64_t k = k_attr;
    if (k_from_input) {
      const Tensor& kt = ctx.input(1);
      if (kt.numel() != 1) throw ctx.error("K must hold a single value, got shape " + dims_to_string(kt.dims()));
      k = read_int_values(kt, ctx)[0];
    }
    const int64_t rank = static_cast<int64_t>(x.rank());
    if (rank == 0) throw ctx.error("input must have rank >= 1");
    const int64_t axis = normalize_axis(axis_attr, rank, ctx);
    const AxisView v = axis_view(x.dims(), axis);
    if (k < 0 || k > v.len)
      throw ctx.error("k = " + std::to_string(k) + " is outside [0, " + std::to_string(v.len) + "] (the size of axis " +
                      std::to_string(axis) + ")");
    std::vector<int64_t> out_dims = x.dims();
    out_dims[static_cast<size_t>(axis)] = k;
    Tensor& values = ctx.allocate_output(0, x.dtype(), out_dims);
    Tensor* indices = ctx.num_outputs() > 1 ? &ctx.allocate_output(1, DataType::kInt64, out_dims) : nullptr;
    if (values.numel() == 0) return;
    dispatch<float, double, Float16, BFloat16, int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t,
             uint64_t>(x.dtype(), ctx, [&](auto tag) {
      using T = typename decltype(tag)::type;
      using V = decltype(compute_value(T{}));
      const T* in = data<T>(x);
      T* out_v = mutable_data<T>(values);
      int64_t* out_i = indices ? mutable_data<int64_t>(*indices) : nullptr;
      std::vector<V> row(static_cast<size_t>(v.len));
      std::vector<int64_t> order(static_cast<size_t>(v.len));
      // A strict weak order: NaN above every number, ties broken by the lower index first.
      auto comes_first = [&](int64_t a, int64_t b) {
        V va = row[static_cast<size_t>(a)], vb = row[static_cast<size_t>(b)];
        bool na = is_nan(va), nb = is_nan(vb);
        if (na != nb) return largest ? na : nb;
        if (!na && va != vb) return largest ? va > vb : va < vb;
        return a < b;
      };
      for (int64_t o = 0; o < v.outer; ++o)
        for (int64_t i = 0; i < v.inner; ++i) {
          const int64_t base = o * v.len * v.inner + i;
          for (int64_t j = 0; j < v.len; ++j) row[static_cast<size_t>(j)] = compute_value(in[base + j * v.inner]);
          std::iota(order.begin(), order.end(), int64_t{0});
          std::partial_sort(order.begin(), order.begin() + k, order.end(), comes_first);
          const int64_t out_base = o * k * v.inner + i;
          for (int64_t j = 0; j < k; ++j) {
            const int64_t src = order[static_cast<size_t>(j)];
            out_v[out_base + j * v.inner] = in[base + src * v.inner];
            if (out_i) out_i[out_base + j * v.inner] = src;
          }
        }
    });
  });
}

}  // namespace

void register_reduce_kernels(KernelRegistry& r) {
  std::vector<DataType> numeric = numeric_types();
  std::vector<DataType> numeric_and_bool = numeric;
  numeric_and_bool.push_back(DataType::kBool);

  // ReduceSum took its axes as an input from opset 13; the others from opset 18.
  add_kernel(r, "ReduceSum", 1, INT_MAX, numeric, reduce_factory(ReduceOp::kSum, 13));
  add_kernel(r, "ReduceMean", 1, INT_MAX, numeric, reduce_factory(ReduceOp::kMean, 18));
  add_kernel(r, "ReduceMax", 1, INT_MAX, numeric_and_bool, reduce_factory(ReduceOp::kMax, 18));
  add_kernel(r, "ReduceMin", 1, INT_MAX, numeric_and_bool, reduce_factory(ReduceOp::kMin, 18));
  add_kernel(r, "ReduceProd", 1, INT_MAX, numeric, reduce_factory(ReduceOp::kProd, 18));
  add_kernel(r, "ReduceL1", 1, INT_MAX, numeric, reduce_factory(ReduceOp::kL1, 18));
  add_kernel(r, "ReduceL2", 1, INT_MAX, numeric, reduce_factory(ReduceOp::kL2, 18));
  add_kernel(r, "ReduceLogSum", 1, INT_MAX, numeric, reduce_factory(ReduceOp::kLogSum, 18));
  add_kernel(r, "ReduceLogSumExp", 1, INT_MAX, numeric, reduce_factory(ReduceOp::kLogSumExp, 18));
  add_kernel(r, "ReduceSumSquare", 1, INT_MAX, numeric, reduce_factory(ReduceOp::kSumSquare, 18));

  // select_last_index exists from opset 12; negative axes from 11 (accepted earlier too).
  add_kernel(r, "ArgMax", 1, INT_MAX, numeric, arg_factory(true));
  add_kernel(r, "ArgMin", 1, INT_MAX, numeric, arg_factory(false));

  // Before opset 13 these coerce the input to 2-D at `axis` (default 1); from 13 they work along
  // `axis` (default -1).
  add_kernel(r, "Softmax", 1, INT_MAX, kFloatTypes, softmax_factory(SoftmaxKind::kSoftmax));
  add_kernel(r, "LogSoftmax", 1, INT_MAX, kFloatTypes, softmax_factory(SoftmaxKind::kLogSoftmax));
  add_kernel(r, "Hardmax", 1, INT_MAX, kFloatTypes, softmax_factory(SoftmaxKind::kHardmax));

  add_kernel(r, "CumSum", 11, INT_MAX, numeric, [](const KernelInit& init) {
    return cumulative_kernel<float, double, Float16, BFloat16, int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t,
                             uint32_t, uint64_t>(init, false);
  });
  add_kernel(r, "CumProd", 26, INT_MAX,
             {DataType::kFloat32, DataType::kFloat64, DataType::kFloat16, DataType::kBFloat16, DataType::kInt32,
              DataType::kInt64, DataType::kUInt32, DataType::kUInt64},
             [](const KernelInit& init) {
               return cumulative_kernel<float, double, Float16, BFloat16, int32_t, int64_t, uint32_t, uint64_t>(init, true);
             });

  // K is an attribute in opset 1, an input from 10; `largest` and `sorted` exist from 11.
  add_kernel(r, "TopK", 1, INT_MAX, numeric, topk_kernel);
}

}  // namespace tunnx::cpu
