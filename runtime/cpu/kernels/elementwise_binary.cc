// Broadcasting elementwise ops: binary arithmetic (Add Sub Mul Div Mod Pow BitShift), logic (And Or
// Xor), comparison (Equal Greater GreaterOrEqual Less LessOrEqual), PRelu, variadic Max/Min/Sum/Mean
// and Where. Shape rule: the numpy-style broadcast of the inputs' shapes; opset < 7 binary ops with
// broadcast=1 and an `axis` first place B's dims at that axis of A's (see Alignment).
#include "runtime/cpu/kernels/elementwise_binary.h"

#include <array>
#include <cmath>
#include <limits>
#include <optional>

#include "runtime/cpu/kernels/common.h"
#include "runtime/cpu/kernels/vector_loops.h"

namespace tunnx::cpu {
namespace {

using UnsignedTypes = Types<uint8_t, uint16_t, uint32_t, uint64_t>;
using BoolType = Types<bool>;
using EqualTypes = Types<float, double, Float16, BFloat16, int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t,
                         uint32_t, uint64_t, bool, std::string>;

// A double converted to T; out-of-range and NaN values saturate (NaN to 0) where a bare cast would be
// undefined.
template <typename T> T saturate(double v) {
  if constexpr (std::is_integral_v<T>) {
    if (std::isnan(v)) return T(0);
    if (v <= static_cast<double>(std::numeric_limits<T>::lowest())) return std::numeric_limits<T>::lowest();
    if (v >= static_cast<double>(std::numeric_limits<T>::max())) return std::numeric_limits<T>::max();
  }
  return static_cast<T>(v);
}

struct SameType {
  template <typename T> using type = T;
};
struct BoolResult {
  template <typename T> using type = bool;
};

// The output of `out_dims` as few dims as possible: consecutive dims merge where every input steps
// through them as one (same-shape and scalar operands become one flat dim). strides[k][i] is input
// k's step along dims[i], 0 where it repeats. Never empty: a scalar output is one dim of 1.
template <size_t N> struct Coalesced {
  std::vector<int64_t> dims;
  std::array<std::vector<int64_t>, N> strides;
};

template <size_t N>
Coalesced<N> coalesce(const std::vector<int64_t>& out_dims, const std::array<std::vector<int64_t>, N>& in_dims) {
  const size_t rank = out_dims.size();
  std::array<std::vector<int64_t>, N> full;  // input strides over the output's dims; 0 where repeated
  for (size_t k = 0; k < N; ++k) {
    const std::vector<int64_t>& in = in_dims[k];
    std::vector<int64_t> in_strides = strides_of(in);
    full[k].assign(rank, 0);
    for (size_t i = 0; i < in.size(); ++i)
      if (in[i] != 1) full[k][rank - in.size() + i] = in_strides[i];
  }
  Coalesced<N> c;
  for (size_t i = 0; i < rank; ++i) {
    if (out_dims[i] == 1) continue;
    bool merge = !c.dims.empty();
    for (size_t k = 0; k < N && merge; ++k) merge = c.strides[k].back() == full[k][i] * out_dims[i];
    if (merge) {
      c.dims.back() *= out_dims[i];
      for (size_t k = 0; k < N; ++k) c.strides[k].back() = full[k][i];
    } else {
      c.dims.push_back(out_dims[i]);
      for (size_t k = 0; k < N; ++k) c.strides[k].push_back(full[k][i]);
    }
  }
  if (c.dims.empty()) {
    c.dims.push_back(1);
    for (size_t k = 0; k < N; ++k) c.strides[k].push_back(0);
  }
  return c;
}

// Walks the output of `out_dims` in row-major order and calls fn(out_index, offsets) where offsets[k]
// is the flat index of the element of input k (dims `in_dims[k]`, broadcast to `out_dims`).
template <size_t N, typename Fn>
void for_each_broadcast(const std::vector<int64_t>& out_dims, const std::array<std::vector<int64_t>, N>& in_dims,
                        Fn&& fn) {
  int64_t total = 1;
  for (int64_t d : out_dims) total *= d;
  if (total == 0) return;
  auto [dims, strides] = coalesce<N>(out_dims, in_dims);
  const size_t r = dims.size();
  const int64_t inner = dims[r - 1];
  std::array<int64_t, N> inner_stride{};
  for (size_t k = 0; k < N; ++k) inner_stride[k] = strides[k][r - 1];
  // The common rows of two operands (same shape, or one repeated along the row: a bias) as loops
  // whose offsets the compiler sees, so it vectorizes them; false for any other pattern.
  auto run_contiguous_row = [&](int64_t o, const std::array<int64_t, N>& base) {
    if constexpr (N == 2) {
      const int64_t b0 = base[0], b1 = base[1];
      if (inner_stride[0] == 1 && inner_stride[1] == 1) {
        for (int64_t j = 0; j < inner; ++j) fn(o + j, std::array<int64_t, 2>{b0 + j, b1 + j});
        return true;
      }
      if (inner_stride[0] == 1 && inner_stride[1] == 0) {
        for (int64_t j = 0; j < inner; ++j) fn(o + j, std::array<int64_t, 2>{b0 + j, b1});
        return true;
      }
      if (inner_stride[0] == 0 && inner_stride[1] == 1) {
        for (int64_t j = 0; j < inner; ++j) fn(o + j, std::array<int64_t, 2>{b0, b1 + j});
        return true;
      }
    }
    return false;
  };
  // Rows [first, last) of the coalesced [rows, inner] output; each starts from its own index, so
  // rows can be split among threads (every fn call writes its own output element).
  auto run_rows = [&](int64_t first, int64_t last) {
    std::vector<int64_t> index(r, 0);
    std::array<int64_t, N> base{};
    for (int64_t row = first, i = static_cast<int64_t>(r) - 2; i >= 0; --i) {
      index[static_cast<size_t>(i)] = row % dims[static_cast<size_t>(i)];
      row /= dims[static_cast<size_t>(i)];
      for (size_t k = 0; k < N; ++k) base[k] += index[static_cast<size_t>(i)] * strides[k][static_cast<size_t>(i)];
    }
    for (int64_t o = first * inner; o < last * inner; o += inner) {
      if (!run_contiguous_row(o, base)) {
        std::array<int64_t, N> off = base;
        for (int64_t j = 0; j < inner; ++j) {
          fn(o + j, off);
          for (size_t k = 0; k < N; ++k) off[k] += inner_stride[k];
        }
      }
      for (size_t i = r - 1; i-- > 0;) {
        if (++index[i] < dims[i]) {
          for (size_t k = 0; k < N; ++k) base[k] += strides[k][i];
          break;
        }
        index[i] = 0;
        for (size_t k = 0; k < N; ++k) base[k] -= strides[k][i] * (dims[i] - 1);
      }
    }
  };
  const int64_t rows = total / inner;
  const int threads = total >= kParallelElements ? static_cast<int>(std::min<int64_t>(max_threads(), rows)) : 1;
  if (threads <= 1) return run_rows(0, rows);
  // One chunk per requested thread, as loop iterations: a smaller team still runs them all.
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int t = 0; t < threads; ++t) run_rows(rows * t / threads, rows * (t + 1) / threads);
}

// How B lines up with A. Opset < 7 binary ops broadcast B onto A only with broadcast=1; B's dims then
// match A's starting at `axis`, or A's trailing dims when axis is absent (which numpy rules cover).
struct Alignment {
  bool at_axis = false;
  int64_t axis = 0;

  static Alignment of(const KernelInit& init) {
    Alignment a;
    if (init.opset() < 7 && init.attr_int("broadcast", 0) != 0 && init.has_attr("axis")) {
      a.at_axis = true;
      a.axis = init.attr_int("axis", 0);
    }
    return a;
  }

  // B's dims as numpy broadcasting should see them: padded with 1s after the aligned block.
  std::vector<int64_t> b_dims(const std::vector<int64_t>& a, const std::vector<int64_t>& b,
                              const KernelContext& ctx) const {
    if (!at_axis) return b;
    const int64_t rank = static_cast<int64_t>(a.size()), b_rank = static_cast<int64_t>(b.size());
    const int64_t start = axis < 0 ? axis + rank : axis;
    if (start < 0 || start + b_rank > rank)
      throw ctx.error("B of shape " + dims_to_string(b) + " cannot be aligned with A of shape " + dims_to_string(a) +
                      " at axis " + std::to_string(axis));
    std::vector<int64_t> out(b);
    out.resize(static_cast<size_t>(rank - start), 1);
    return out;
  }
};

// c = fn(a, b) with broadcasting; `Out` picks the output type from the input type.
template <typename Out, typename... Ts, typename Fn>
void binary(KernelContext& ctx, const Alignment& alignment, Types<Ts...>, const Fn& fn,
            std::optional<FloatBinaryOp> fast = std::nullopt) {
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(1);
  require_same_dtype(ctx, a, b);
  std::vector<int64_t> aligned_b;  // B's dims as broadcasting sees them, where they differ from b's
  if (alignment.at_axis) aligned_b = alignment.b_dims(a.dims(), b.dims(), ctx);
  const std::vector<int64_t>& b_dims = alignment.at_axis ? aligned_b : b.dims();
  const std::vector<int64_t> dims = a.dims() == b_dims ? a.dims() : broadcast_shapes({a.dims(), b_dims}, ctx);
  dispatch<Ts...>(a.dtype(), ctx, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using R = typename Out::template type<T>;
    Tensor& y = ctx.allocate_output_uninitialized(0, dtype_of<R>(), dims);
    const T* pa = data<T>(a);
    const T* pb = data<T>(b);
    R* out = mutable_data<R>(y);
    if constexpr (std::is_same_v<T, float> && std::is_same_v<R, float>) {
      if (fast && float_binary(*fast, pa, a.dims(), pb, b_dims, out, dims)) return;
    }
    for_each_broadcast<2>(dims, {a.dims(), b_dims}, [&](int64_t i, const std::array<int64_t, 2>& off) {
      out[i] = static_cast<R>(fn(load(pa[off[0]]), load(pb[off[1]])));
    });
  });
}

// Registers a binary op over opsets [since, inf). `bind(init)` parses attributes once and returns the
// per-element function.
template <typename Out, typename... Ts, typename Bind>
void add_binary_with_attrs(KernelRegistry& r, const char* op, int64_t since, Types<Ts...> types, Bind bind,
                           std::optional<FloatBinaryOp> fast = std::nullopt) {
  add_kernel(r, op, since, INT_MAX, dtypes(types), [bind, fast](const KernelInit& init) {
    Alignment alignment = Alignment::of(init);
    auto fn = bind(init);
    return make_kernel(
        [alignment, fn, fast](KernelContext& ctx) { binary<Out>(ctx, alignment, Types<Ts...>{}, fn, fast); });
  });
}

template <typename Out, typename... Ts, typename Fn>
void add_binary(KernelRegistry& r, const char* op, int64_t since, Types<Ts...> types, Fn fn,
                std::optional<FloatBinaryOp> fast = std::nullopt) {
  add_binary_with_attrs<Out>(r, op, since, types, [fn](const KernelInit&) { return fn; }, fast);
}

// Integer Div and Mod have no result for a zero divisor; say so instead of trapping.
void require_nonzero_integer_divisor(const KernelContext& ctx, const Tensor& b) {
  if (is_floating_point(b.dtype())) return;
  dispatch<int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t>(b.dtype(), ctx, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* p = data<T>(b);
    for (int64_t i = 0; i < b.numel(); ++i)
      if (p[i] == 0) throw ctx.error("integer division by zero");
  });
}

// base^exponent for integers, wrapping on overflow; negative exponents truncate toward zero.
template <typename T, typename U> T int_pow(T base, U exponent) {
  if constexpr (std::is_signed_v<U>) {
    if (exponent < 0) {
      if (base == 1) return 1;
      if constexpr (std::is_signed_v<T>) {
        if (base == -1) return (exponent % 2) ? T(-1) : T(1);
      }
      return 0;
    }
  }
  Wide<T> result = 1, b = static_cast<Wide<T>>(base);
  for (auto e = static_cast<uint64_t>(exponent); e; e >>= 1) {
    if (e & 1) result = static_cast<Wide<T>>(result * b);
    b = static_cast<Wide<T>>(b * b);
  }
  return static_cast<T>(result);
}

// Pow: the output has the base's dtype; from opset 12 the exponent may have another dtype.
// Integer^integer is exact (wrapping); anything with a float computes in double.
using PowBaseTypes = Types<float, double, Float16, BFloat16, int32_t, int64_t>;

void pow_kernel(KernelContext& ctx, const Alignment& alignment) {
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(1);
  std::vector<int64_t> b_dims = alignment.b_dims(a.dims(), b.dims(), ctx);
  std::vector<int64_t> dims = broadcast_shapes({a.dims(), b_dims}, ctx);
  dispatch<float, double, Float16, BFloat16, int32_t, int64_t>(a.dtype(), ctx, [&](auto base_tag) {
    using T = typename decltype(base_tag)::type;
    dispatch<float, double, Float16, BFloat16, int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t,
             uint64_t>(b.dtype(), ctx, [&](auto exponent_tag) {
      using U = typename decltype(exponent_tag)::type;
      Tensor& y = ctx.allocate_output_uninitialized(0, a.dtype(), dims);
      const T* pa = data<T>(a);
      const U* pb = data<U>(b);
      T* out = mutable_data<T>(y);
      // x^2 (a spectrum's power, a variance): x * x is pow's correctly rounded result, without a
      // call to pow per element.
      if constexpr (std::is_same_v<T, float>) {
        if (b.numel() == 1 && static_cast<double>(pb[0]) == 2.0 && a.numel() == y.numel()) {
          const int64_t n = y.numel();
#pragma omp parallel for simd schedule(static) num_threads(n >= kParallelElements ? max_threads() : 1)
          for (int64_t i = 0; i < n; ++i) out[i] = pa[i] * pa[i];
          return;
        }
      }
      for_each_broadcast<2>(dims, {a.dims(), b_dims}, [&](int64_t i, const std::array<int64_t, 2>& o) {
        if constexpr (std::is_integral_v<T> && std::is_integral_v<U>)
          out[i] = int_pow(pa[o[0]], pb[o[1]]);
        else
          out[i] = saturate<T>(std::pow(static_cast<double>(pa[o[0]]), static_cast<double>(pb[o[1]])));
      });
    });
  });
}

void register_arithmetic(KernelRegistry& r) {
  // Integer arithmetic goes through Wide so that overflow wraps; 16-bit floats compute in float.
  auto wrap = [](auto a, auto b, auto op) {
    using C = decltype(a);
    if constexpr (std::is_integral_v<C>) return static_cast<C>(op(static_cast<Wide<C>>(a), static_cast<Wide<C>>(b)));
    else return op(a, b);
  };
  add_binary<SameType>(
      r, "Add", 1, NumericTypes{}, [wrap](auto a, auto b) { return wrap(a, b, std::plus<>()); }, FloatBinaryOp::kAdd);
  add_binary<SameType>(
      r, "Sub", 1, NumericTypes{}, [wrap](auto a, auto b) { return wrap(a, b, std::minus<>()); }, FloatBinaryOp::kSub);
  add_binary<SameType>(
      r, "Mul", 1, NumericTypes{}, [wrap](auto a, auto b) { return wrap(a, b, std::multiplies<>()); },
      FloatBinaryOp::kMul);

  // Div: integer division truncates toward zero (C++ semantics match the spec).
  add_kernel(r, "Div", 1, INT_MAX, dtypes(NumericTypes{}), [](const KernelInit& init) {
    Alignment alignment = Alignment::of(init);
    return make_kernel([alignment](KernelContext& ctx) {
      require_nonzero_integer_divisor(ctx, ctx.input(1));
      binary<SameType>(ctx, alignment, NumericTypes{}, [](auto a, auto b) {
        using C = decltype(a);
        if constexpr (std::is_integral_v<C> && std::is_signed_v<C>) {
          if (b == -1) return static_cast<C>(Wide<C>(0) - static_cast<Wide<C>>(a));  // MIN / -1 wraps
        }
        return static_cast<C>(a / b);
      }, FloatBinaryOp::kDiv);
    });
  });

  // Mod: fmod=1 gives the C remainder (sign of the dividend); fmod=0 gives the remainder with the
  // sign of the divisor, like Python's %.
  add_kernel(r, "Mod", 10, INT_MAX, dtypes(NumericTypes{}), [](const KernelInit& init) {
    const bool c_fmod = init.attr_int("fmod", 0) != 0;
    return make_kernel([c_fmod](KernelContext& ctx) {
      require_nonzero_integer_divisor(ctx, ctx.input(1));
      binary<SameType>(ctx, Alignment{}, NumericTypes{}, [c_fmod](auto a, auto b) {
        using C = decltype(a);
        if constexpr (std::is_unsigned_v<C>) {
          return static_cast<C>(a % b);
        } else {
          C rem;
          if constexpr (std::is_integral_v<C>) rem = b == -1 ? C(0) : static_cast<C>(a % b);  // MIN % -1 traps
          else rem = std::fmod(a, b);
          if (!c_fmod && rem != 0 && ((rem < 0) != (b < 0))) rem = static_cast<C>(rem + b);
          return rem;
        }
      });
    });
  });

  add_kernel(r, "Pow", 1, INT_MAX, dtypes(PowBaseTypes{}), [](const KernelInit& init) {
    Alignment alignment = Alignment::of(init);
    return make_kernel([alignment](KernelContext& ctx) { pow_kernel(ctx, alignment); });
  });

  // BitShift: unsigned only; shifting by the bit width or more gives 0.
  add_binary_with_attrs<SameType>(r, "BitShift", 11, UnsignedTypes{}, [](const KernelInit& init) {
    const std::string direction = init.attr_string("direction", "");
    if (direction != "LEFT" && direction != "RIGHT")
      throw init.error("direction must be \"LEFT\" or \"RIGHT\", got \"" + direction + "\"");
    const bool left = direction == "LEFT";
    return [left](auto a, auto b) {
      using C = decltype(a);
      if (b >= sizeof(C) * 8) return C(0);
      const Wide<C> wa = a;
      return static_cast<C>(left ? wa << b : wa >> b);
    };
  });
}

void register_logic_and_comparison(KernelRegistry& r) {
  add_binary<BoolResult>(r, "And", 1, BoolType{}, [](bool a, bool b) { return a && b; });
  add_binary<BoolResult>(r, "Or", 1, BoolType{}, [](bool a, bool b) { return a || b; });
  add_binary<BoolResult>(r, "Xor", 1, BoolType{}, [](bool a, bool b) { return a != b; });
  add_binary<BoolResult>(r, "Equal", 1, EqualTypes{}, [](const auto& a, const auto& b) { return a == b; });
  add_binary<BoolResult>(r, "Greater", 1, NumericTypes{}, [](auto a, auto b) { return a > b; });
  add_binary<BoolResult>(r, "GreaterOrEqual", 12, NumericTypes{}, [](auto a, auto b) { return a >= b; });
  add_binary<BoolResult>(r, "Less", 1, NumericTypes{}, [](auto a, auto b) { return a < b; });
  add_binary<BoolResult>(r, "LessOrEqual", 12, NumericTypes{}, [](auto a, auto b) { return a <= b; });
}

// PRelu: y = x < 0 ? slope * x : x, slope broadcast to x's shape (never the other way). Before opset 7
// a 1-D slope of x's channel count applies per channel (dim 1).
void prelu_kernel(KernelContext& ctx, bool per_channel) {
  const Tensor& x = ctx.input(0);
  const Tensor& slope = ctx.input(1);
  require_same_dtype(ctx, x, slope);
  std::vector<int64_t> slope_dims = slope.dims();
  if (per_channel && slope.rank() == 1 && x.rank() >= 2 && slope.numel() == x.dims()[1] && slope.numel() != 1)
    slope_dims.resize(x.rank() - 1, 1);
  if (broadcast_shapes({x.dims(), slope_dims}, ctx) != x.dims())
    throw ctx.error("slope of shape " + dims_to_string(slope.dims()) + " does not broadcast to the input's shape " +
                    dims_to_string(x.dims()));
  dispatch<float, double, Float16, BFloat16, int32_t, int64_t, uint32_t, uint64_t>(x.dtype(), ctx, [&](auto tag) {
    using T = typename decltype(tag)::type;
    Tensor& y = ctx.allocate_output_uninitialized(0, x.dtype(), x.dims());
    const T* px = data<T>(x);
    const T* ps = data<T>(slope);
    T* out = mutable_data<T>(y);
    for_each_broadcast<2>(x.dims(), {x.dims(), slope_dims}, [&](int64_t i, const std::array<int64_t, 2>& o) {
      auto v = load(px[o[0]]);
      if constexpr (std::is_unsigned_v<T>) out[i] = v;
      else out[i] = static_cast<T>(v < 0 ? load(ps[o[1]]) * v : v);
    });
  });
}

void register_prelu(KernelRegistry& r) {
  add_kernel(r, "PRelu", 1, INT_MAX,
             dtypes(Types<float, double, Float16, BFloat16, int32_t, int64_t, uint32_t, uint64_t>{}),
             [](const KernelInit& init) {
               const bool per_channel = init.opset() < 7;
               return make_kernel([per_channel](KernelContext& ctx) { prelu_kernel(ctx, per_channel); });
             });
}

// Max/Min/Sum/Mean over 1..N inputs of one dtype, all broadcast together. Folds left to right into
// the output; Mean divides at the end.
template <typename... Ts, typename Fn>
void variadic(KernelContext& ctx, Types<Ts...>, const Fn& fn, bool mean) {
  const size_t n = ctx.num_inputs();
  if (n == 0) throw ctx.error("needs at least one input");
  std::vector<std::vector<int64_t>> shapes;
  for (size_t k = 0; k < n; ++k) {
    require_same_dtype(ctx, ctx.input(0), ctx.input(k));
    shapes.push_back(ctx.input(k).dims());
  }
  std::vector<int64_t> dims = broadcast_shapes(shapes, ctx);
  dispatch<Ts...>(ctx.input(0).dtype(), ctx, [&](auto tag) {
    using T = typename decltype(tag)::type;
    Tensor& y = ctx.allocate_output_uninitialized(0, ctx.input(0).dtype(), dims);
    T* out = mutable_data<T>(y);
    const T* first = data<T>(ctx.input(0));
    for_each_broadcast<1>(dims, {shapes[0]}, [&](int64_t i, const std::array<int64_t, 1>& o) { out[i] = first[o[0]]; });
    for (size_t k = 1; k < n; ++k) {
      const T* p = data<T>(ctx.input(k));
      for_each_broadcast<1>(dims, {shapes[k]}, [&](int64_t i, const std::array<int64_t, 1>& o) {
        out[i] = static_cast<T>(fn(load(out[i]), load(p[o[0]])));
      });
    }
    if constexpr (!std::is_integral_v<T>) {
      using C = std::conditional_t<std::is_same_v<T, double>, double, float>;
      if (mean)
        for (int64_t i = 0; i < y.numel(); ++i) out[i] = static_cast<T>(static_cast<C>(out[i]) / static_cast<C>(n));
    }
  });
}

void register_variadic(KernelRegistry& r) {
  // NaN wins in Max/Min, as numpy's maximum/minimum.
  auto max = [](auto a, auto b) { return is_nan(a) || a > b ? a : b; };
  auto min = [](auto a, auto b) { return is_nan(a) || a < b ? a : b; };
  auto sum = [](auto a, auto b) { return a + b; };
  auto add = [](const char* op, KernelRegistry& reg, auto types, auto fn, bool mean) {
    add_kernel(reg, op, 1, INT_MAX, dtypes(types), [types, fn, mean](const KernelInit&) {
      return make_kernel([types, fn, mean](KernelContext& ctx) { variadic(ctx, types, fn, mean); });
    });
  };
  add("Max", r, NumericTypes{}, max, false);
  add("Min", r, NumericTypes{}, min, false);
  add("Sum", r, FloatTypes{}, sum, false);
  add("Mean", r, FloatTypes{}, sum, true);
}

// Where: out = condition ? x : y, all three broadcast together; x and y share any dtype.
void where_kernel(KernelContext& ctx) {
  const Tensor& c = ctx.input(0);
  const Tensor& x = ctx.input(1);
  const Tensor& y = ctx.input(2);
  if (c.dtype() != DataType::kBool) throw ctx.error(std::string("condition must be bool, got ") + to_string(c.dtype()));
  require_same_dtype(ctx, x, y);
  std::vector<int64_t> dims = broadcast_shapes({c.dims(), x.dims(), y.dims()}, ctx);
  dispatch<float, double, Float16, BFloat16, int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t,
           bool, std::string>(x.dtype(), ctx, [&](auto tag) {
    using T = typename decltype(tag)::type;
    Tensor& z = ctx.allocate_output_uninitialized(0, x.dtype(), dims);
    const bool* pc = data<bool>(c);
    const T* px = data<T>(x);
    const T* py = data<T>(y);
    T* out = mutable_data<T>(z);
    for_each_broadcast<3>(dims, {c.dims(), x.dims(), y.dims()}, [&](int64_t i, const std::array<int64_t, 3>& o) {
      out[i] = pc[o[0]] ? px[o[1]] : py[o[2]];
    });
  });
}

void register_where(KernelRegistry& r) {
  add_kernel(
      r, "Where", 9, INT_MAX, all_types(), [](const KernelInit&) { return make_kernel(where_kernel); }, /*type_input=*/1);
}

}  // namespace

bool float_binary(FloatBinaryOp op, const float* a, const std::vector<int64_t>& a_dims, const float* b,
                  const std::vector<int64_t>& b_dims, float* out, const std::vector<int64_t>& out_dims) {
  int64_t total = 1, a_total = 1, b_total = 1;
  for (int64_t d : out_dims) total *= d;
  if (total == 0) return true;
  for (int64_t d : a_dims) a_total *= d;
  for (int64_t d : b_dims) b_total *= d;
  int64_t a_col = 0, b_col = 0, rows = 1, n = total, a_row = 0, b_row = 0;
  if ((a_total == total || a_total == 1) && (b_total == total || b_total == 1) && (a_dims == b_dims || a_total == 1 || b_total == 1)) {
    // Same dims, or a single value against the rest: one flat row, without coalesce's bookkeeping
    // (a dozen small allocations a call: most of a tiny Add's time).
    a_col = a_total == total && total > 1 ? 1 : 0;
    b_col = b_total == total && total > 1 ? 1 : 0;
  } else {
    const Coalesced<2> c = coalesce<2>(out_dims, {a_dims, b_dims});
    const size_t r = c.dims.size();
    if (r > 2) return false;
    a_col = c.strides[0][r - 1];
    b_col = c.strides[1][r - 1];
    if (a_col > 1 || b_col > 1) return false;
    rows = r == 2 ? c.dims[0] : 1;
    n = c.dims[r - 1];
    a_row = r == 2 ? c.strides[0][0] : 0;
    b_row = r == 2 ? c.strides[1][0] : 0;
  }
  const int threads = total >= kParallelElements ? max_threads() : 1;
  if (threads <= 1) {
    float_binary_rows(op, a, a_row, a_col, b, b_row, b_col, out, rows, n);
  } else if (rows == 1) {  // one long row: split its columns
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int t = 0; t < threads; ++t) {
      const int64_t j0 = n * t / threads, j1 = n * (t + 1) / threads;
      float_binary_rows(op, a + j0 * a_col, 0, a_col, b + j0 * b_col, 0, b_col, out + j0, 1, j1 - j0);
    }
  } else {
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int t = 0; t < threads; ++t) {
      const int64_t r0 = rows * t / threads, r1 = rows * (t + 1) / threads;
      float_binary_rows(op, a + r0 * a_row, a_row, a_col, b + r0 * b_row, b_row, b_col, out + r0 * n, r1 - r0, n);
    }
  }
  return true;
}

void register_elementwise_binary_kernels(KernelRegistry& r) {
  register_arithmetic(r);
  register_logic_and_comparison(r);
  register_prelu(r);
  register_variadic(r);
  register_where(r);
}

}  // namespace tunnx::cpu
