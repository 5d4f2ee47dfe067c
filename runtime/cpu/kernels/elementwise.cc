// Elementwise ops: unary math and activations, Clip, SwiGLU. Shape rule: the output keeps the input's
// shape (and dtype, except IsInf/IsNaN which give bool). The broadcasting ops (binary arithmetic,
// logic and comparison, PRelu, variadic Max/Min/Sum/Mean, Where) live in elementwise_binary.cc, the
// integer bitwise ops in bitwise.cc.
#include <cmath>
#include <limits>
#include <numbers>
#include <optional>
#include <type_traits>

#include "runtime/cpu/kernels/common.h"
#include "runtime/cpu/kernels/elementwise_binary.h"
#include "runtime/cpu/kernels/kernels.h"
#include "runtime/cpu/kernels/vector_loops.h"

namespace tunnx::cpu {
namespace {

using SignedTypes = Types<float, double, Float16, BFloat16, int8_t, int16_t, int32_t, int64_t>;

// A float32 op's vector loop (vector_loops.h) with its attributes; other dtypes run `fn`.
struct FloatLoop {
  FloatUnaryOp op;
  float alpha = 0, beta = 0;
};

// out[i] = fn(in[i]) with `fn` taking and returning Compute<T>; the output has the input's dtype.
// float32 runs `loop` instead where given, on whole 16-value blocks per thread.
template <typename... Ts, typename Fn>
void unary(KernelContext& ctx, Types<Ts...>, Fn fn, std::optional<FloatLoop> loop = std::nullopt) {
  const Tensor& x = ctx.input(0);
  dispatch<Ts...>(x.dtype(), ctx, [&](auto tag) {
    using T = typename decltype(tag)::type;
    Tensor& y = ctx.allocate_output_uninitialized(0, x.dtype(), x.dims());
    const T* in = data<T>(x);
    T* out = mutable_data<T>(y);
    const int64_t n = x.numel();
    const int threads = n >= kParallelElements ? max_threads() : 1;
    if constexpr (std::is_same_v<T, float>) {
      if (loop) {
        const int64_t share = ((n + threads - 1) / threads + 15) / 16 * 16;
#pragma omp parallel for schedule(static) num_threads(threads)
        for (int t = 0; t < threads; ++t) {
          const int64_t begin = std::min(n, t * share), end = std::min(n, begin + share);
          if (begin < end) float_unary(loop->op, in + begin, out + begin, end - begin, loop->alpha, loop->beta);
        }
        return;
      }
    }
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t i = 0; i < n; ++i) out[i] = static_cast<T>(fn(static_cast<Compute<T>>(in[i])));
  });
}

// A bool tensor of the input's shape: out[i] = fn(in[i]) for float inputs (IsInf, IsNaN).
template <typename Fn>
void float_predicate(KernelContext& ctx, Fn fn) {
  const Tensor& x = ctx.input(0);
  dispatch(x.dtype(), ctx, FloatTypes{}, [&](auto tag) {
    using T = typename decltype(tag)::type;
    Tensor& y = ctx.allocate_output(0, DataType::kBool, x.dims());
    const T* in = data<T>(x);
    bool* out = mutable_data<bool>(y);
    for (int64_t i = 0; i < x.numel(); ++i) out[i] = fn(static_cast<Compute<T>>(in[i]));
  });
}

// Registers an op without attributes over opsets [since, inf): y = fn(x) for the dtypes `types`.
template <typename... Ts, typename Fn>
void add_unary(KernelRegistry& r, const char* op, int64_t since, Types<Ts...> types, Fn fn) {
  add_kernel(r, op, since, INT_MAX, dtypes(types), [fn](const KernelInit&) {
    return make_kernel([fn](KernelContext& ctx) { unary(ctx, Types<Ts...>{}, fn); });
  });
}

// The same with a float32 vector loop.
template <typename... Ts, typename Fn>
void add_unary(KernelRegistry& r, const char* op, int64_t since, Types<Ts...> types, Fn fn, FloatUnaryOp loop) {
  add_kernel(r, op, since, INT_MAX, dtypes(types), [fn, loop](const KernelInit&) {
    return make_kernel([fn, loop](KernelContext& ctx) { unary(ctx, Types<Ts...>{}, fn, FloatLoop{loop}); });
  });
}

// Registers an op whose function depends on attributes: `bind(init)` parses them once and returns
// the per-element function.
template <typename... Ts, typename Bind>
void add_unary_with_attrs(KernelRegistry& r, const char* op, int64_t since, Types<Ts...> types, Bind bind) {
  add_kernel(r, op, since, INT_MAX, dtypes(types), [bind](const KernelInit& init) {
    auto fn = bind(init);
    return make_kernel([fn](KernelContext& ctx) { unary(ctx, Types<Ts...>{}, fn); });
  });
}

// Round half to even, independent of the floating-point environment's rounding mode.
template <typename C> C round_half_even(C x) {
  C r = std::round(x);  // halves away from zero
  if (std::fabs(x - std::trunc(x)) == C(0.5)) r = C(2) * std::round(x / C(2));
  return r;
}

void register_math(KernelRegistry& r) {
  add_unary(r, "Abs", 1, NumericTypes{}, [](auto x) {
    using C = decltype(x);
    if constexpr (std::is_unsigned_v<C>) return x;
    else if constexpr (std::is_integral_v<C>) return x < 0 ? static_cast<C>(Wide<C>(0) - static_cast<Wide<C>>(x)) : x;
    else return std::fabs(x);
  });
  add_unary(r, "Neg", 1, SignedTypes{}, [](auto x) {
    using C = decltype(x);
    if constexpr (std::is_integral_v<C>) return static_cast<C>(Wide<C>(0) - static_cast<Wide<C>>(x));
    else return -x;
  });
  add_unary(r, "Sign", 9, NumericTypes{}, [](auto x) {
    using C = decltype(x);
    if constexpr (std::is_unsigned_v<C>) return static_cast<C>(x != 0);
    else if constexpr (std::is_integral_v<C>) return static_cast<C>((0 < x) - (x < 0));
    else return std::isnan(x) ? x : static_cast<C>((C(0) < x) - (x < C(0)));
  });
  add_unary(r, "Acos", 7, FloatTypes{}, [](auto x) { return std::acos(x); });
  add_unary(r, "Acosh", 9, FloatTypes{}, [](auto x) { return std::acosh(x); });
  add_unary(r, "Asin", 7, FloatTypes{}, [](auto x) { return std::asin(x); });
  add_unary(r, "Asinh", 9, FloatTypes{}, [](auto x) { return std::asinh(x); });
  add_unary(r, "Atan", 7, FloatTypes{}, [](auto x) { return std::atan(x); });
  add_unary(r, "Atanh", 9, FloatTypes{}, [](auto x) { return std::atanh(x); });
  add_unary(r, "Cos", 7, FloatTypes{}, [](auto x) { return std::cos(x); });
  add_unary(r, "Cosh", 9, FloatTypes{}, [](auto x) { return std::cosh(x); });
  add_unary(r, "Sin", 7, FloatTypes{}, [](auto x) { return std::sin(x); });
  add_unary(r, "Sinh", 9, FloatTypes{}, [](auto x) { return std::sinh(x); });
  add_unary(r, "Tan", 7, FloatTypes{}, [](auto x) { return std::tan(x); });
  add_unary(r, "Tanh", 1, FloatTypes{}, [](auto x) { return std::tanh(x); });
  add_unary(r, "Ceil", 1, FloatTypes{}, [](auto x) { return std::ceil(x); }, FloatUnaryOp::kCeil);
  add_unary(r, "Floor", 1, FloatTypes{}, [](auto x) { return std::floor(x); }, FloatUnaryOp::kFloor);
  add_unary(r, "Round", 11, FloatTypes{}, [](auto x) { return round_half_even(x); }, FloatUnaryOp::kRoundHalfEven);
  add_unary(r, "Erf", 9, FloatTypes{}, [](auto x) { return std::erf(x); }, FloatUnaryOp::kErf);
  add_unary(r, "Exp", 1, FloatTypes{}, [](auto x) { return std::exp(x); });
  add_unary(r, "Log", 1, FloatTypes{}, [](auto x) { return std::log(x); }, FloatUnaryOp::kLog);
  add_unary(r, "Sqrt", 1, FloatTypes{}, [](auto x) { return std::sqrt(x); }, FloatUnaryOp::kSqrt);
  add_unary(r, "Reciprocal", 1, FloatTypes{}, [](auto x) { return decltype(x)(1) / x; });

  add_kernel(r, "Not", 1, INT_MAX, {DataType::kBool}, [](const KernelInit&) {
    return make_kernel([](KernelContext& ctx) { unary(ctx, Types<bool>{}, [](bool x) { return !x; }); });
  });

  // IsInf: which infinities count is chosen by detect_negative / detect_positive (both by default).
  add_kernel(r, "IsInf", 10, INT_MAX, kFloatTypes, [](const KernelInit& init) {
    const bool negative = init.attr_int("detect_negative", 1) != 0;
    const bool positive = init.attr_int("detect_positive", 1) != 0;
    return make_kernel([negative, positive](KernelContext& ctx) {
      float_predicate(ctx, [&](auto x) { return std::isinf(x) && (x > 0 ? positive : negative); });
    });
  });
  add_kernel(r, "IsNaN", 9, INT_MAX, kFloatTypes, [](const KernelInit&) {
    return make_kernel([](KernelContext& ctx) { float_predicate(ctx, [](auto x) { return std::isnan(x); }); });
  });
}

void register_activations(KernelRegistry& r) {
  // Relu: y = max(x, 0). Opset 14 added signed integer types.
  add_unary(r, "Relu", 1, SignedTypes{}, [](auto x) { return x > decltype(x)(0) ? x : decltype(x)(0); });
  add_unary(r, "Sigmoid", 1, FloatTypes{}, [](auto x) { return sigmoid(x); });
  add_unary(r, "Softsign", 1, FloatTypes{}, [](auto x) { return x / (decltype(x)(1) + std::fabs(x)); });
  // Softplus: log(1 + exp(x)), written so that large |x| neither overflows nor loses the result.
  add_unary(r, "Softplus", 1, FloatTypes{}, [](auto x) {
    return x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x));
  }, FloatUnaryOp::kSoftplus);
  // HardSwish: x * HardSigmoid(x) with alpha 1/6, beta 0.5.
  add_unary(r, "HardSwish", 14, FloatTypes{}, [](auto x) {
    using C = decltype(x);
    return x * std::fmax(C(0), std::fmin(C(1), x / C(6) + C(0.5)));
  });

  // Mish: x * tanh(softplus(x)); opset 22 only widened the dtypes.
  add_unary(r, "Mish", 18, FloatTypes{}, [](auto x) {
    using C = decltype(x);
    const C softplus = x > 0 ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x));
    return x * std::tanh(softplus);
  }, FloatUnaryOp::kMish);
  add_unary_with_attrs(r, "Swish", 24, FloatTypes{}, [](const KernelInit& init) {
    const float alpha = init.attr_float("alpha", 1.0f);
    return [alpha](auto x) { return x * sigmoid(static_cast<decltype(x)>(alpha) * x); };
  });

  add_unary_with_attrs(r, "LeakyRelu", 1, FloatTypes{}, [](const KernelInit& init) {
    const float alpha = init.attr_float("alpha", 0.01f);
    return [alpha](auto x) { return x >= 0 ? x : static_cast<decltype(x)>(alpha * x); };
  });
  add_unary_with_attrs(r, "Elu", 1, FloatTypes{}, [](const KernelInit& init) {
    const float alpha = init.attr_float("alpha", 1.0f);
    return [alpha](auto x) { return x >= 0 ? x : static_cast<decltype(x)>(alpha * std::expm1(x)); };
  });
  add_unary_with_attrs(r, "Selu", 1, FloatTypes{}, [](const KernelInit& init) {
    const float alpha = init.attr_float("alpha", 1.67326319217681884765625f);
    const float gamma = init.attr_float("gamma", 1.05070102214813232421875f);
    return [alpha, gamma](auto x) {
      using C = decltype(x);
      return static_cast<C>(x > 0 ? gamma * x : gamma * alpha * std::expm1(x));
    };
  });
  // Celu: max(0, x) + min(0, alpha * (exp(x / alpha) - 1)).
  add_unary_with_attrs(r, "Celu", 12, FloatTypes{}, [](const KernelInit& init) {
    const float alpha = init.attr_float("alpha", 1.0f);
    if (alpha == 0) throw init.error("alpha must not be 0");
    return [alpha](auto x) {
      using C = decltype(x);
      return x > 0 ? x : static_cast<C>(alpha * std::expm1(x / static_cast<C>(alpha)));
    };
  });
  add_unary_with_attrs(r, "ThresholdedRelu", 10, FloatTypes{}, [](const KernelInit& init) {
    const float alpha = init.attr_float("alpha", 1.0f);
    return [alpha](auto x) { return x > alpha ? x : decltype(x)(0); };
  });
  // HardSigmoid: max(0, min(1, alpha * x + beta)).
  add_kernel(r, "HardSigmoid", 1, INT_MAX, dtypes(FloatTypes{}), [](const KernelInit& init) {
    const float alpha = init.attr_float("alpha", 0.2f);
    const float beta = init.attr_float("beta", 0.5f);
    auto fn = [alpha, beta](auto x) {
      using C = decltype(x);
      return std::fmax(C(0), std::fmin(C(1), static_cast<C>(alpha) * x + static_cast<C>(beta)));
    };
    return make_kernel([fn, alpha, beta](KernelContext& ctx) {
      unary(ctx, FloatTypes{}, fn, FloatLoop{FloatUnaryOp::kHardSigmoid, alpha, beta});
    });
  });
  // Shrink: x + bias below -lambd, x - bias above lambd, 0 between. Integers compute through double.
  add_unary_with_attrs(r, "Shrink", 9, NumericTypes{}, [](const KernelInit& init) {
    const double bias = init.attr_float("bias", 0.0f);
    const double lambd = init.attr_float("lambd", 0.5f);
    return [bias, lambd](auto x) {
      const double v = static_cast<double>(x);
      return static_cast<decltype(x)>(v < -lambd ? v + bias : v > lambd ? v - bias : 0.0);
    };
  });
  // Gelu: x * Phi(x), exactly (approximate="none") or with the tanh approximation.
  add_unary_with_attrs(r, "Gelu", 20, FloatTypes{}, [](const KernelInit& init) {
    const std::string approximate = init.attr_string("approximate", "none");
    if (approximate != "none" && approximate != "tanh")
      throw init.error("approximate must be \"none\" or \"tanh\", got \"" + approximate + "\"");
    const bool tanh = approximate == "tanh";
    return [tanh](auto x) {
      using C = decltype(x);
      if (tanh) {
        const C k = static_cast<C>(std::sqrt(2.0 / std::numbers::pi));
        return C(0.5) * x * (C(1) + std::tanh(k * (x + C(0.044715) * x * x * x)));
      }
      return C(0.5) * x * (C(1) + std::erf(x / static_cast<C>(std::numbers::sqrt2)));
    };
  });
}

// Clip: y = min(max(x, lo), hi). Opset < 11 reads the bounds from the min/max attributes; from 11
// they are optional scalar inputs of x's dtype (integer dtypes from 12). When lo > hi every element
// becomes hi, as the spec asks.
void register_clip(KernelRegistry& r) {
  add_kernel(r, "Clip", 1, INT_MAX, numeric_types(), [](const KernelInit& init) {
    const bool bounds_are_attrs = init.opset() < 11;
    const float attr_min = init.attr_float("min", -std::numeric_limits<float>::infinity());
    const float attr_max = init.attr_float("max", std::numeric_limits<float>::infinity());
    return make_kernel([=](KernelContext& ctx) {
      const Tensor& x = ctx.input(0);
      dispatch<float, double, Float16, BFloat16, int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t,
               uint64_t>(x.dtype(), ctx, [&](auto tag) {
        using T = typename decltype(tag)::type;
        using C = Compute<T>;
        C lo = std::numeric_limits<C>::lowest(), hi = std::numeric_limits<C>::max();
        if constexpr (std::is_floating_point_v<C>) {
          lo = -std::numeric_limits<C>::infinity();
          hi = std::numeric_limits<C>::infinity();
        }
        if (bounds_are_attrs) {
          if constexpr (std::is_floating_point_v<C>) {
            lo = static_cast<C>(attr_min);
            hi = static_cast<C>(attr_max);
          }
        } else {
          auto bound = [&](size_t i, C& value) {
            if (!ctx.has_input(i)) return;
            const Tensor& b = ctx.input(i);
            if (b.dtype() != x.dtype())
              throw ctx.error(std::string(i == 1 ? "min" : "max") + " has dtype " + to_string(b.dtype()) +
                              ", input has " + to_string(x.dtype()));
            if (b.numel() != 1)
              throw ctx.error(std::string(i == 1 ? "min" : "max") + " must be a scalar, got shape " +
                              dims_to_string(b.dims()));
            value = static_cast<C>(data<T>(b)[0]);
          };
          bound(1, lo);
          bound(2, hi);
        }
        Tensor& y = ctx.allocate_output_uninitialized(0, x.dtype(), x.dims());
        const T* in = data<T>(x);
        T* out = mutable_data<T>(y);
        for (int64_t i = 0; i < x.numel(); ++i) {
          C v = static_cast<C>(in[i]);
          if (v < lo) v = lo;
          if (v > hi) v = hi;
          out[i] = static_cast<T>(v);
        }
      });
    });
  });
}

// SwiGLU: Y = Swish_alpha(A) * B, A (the gate) and B of one shape; no broadcasting.
void register_swiglu(KernelRegistry& r) {
  add_kernel(r, "SwiGLU", 28, INT_MAX, kFloatTypes, [](const KernelInit& init) {
    const float alpha = init.attr_float("alpha", 1.0f);
    return make_kernel([alpha](KernelContext& ctx) {
      const Tensor& a = ctx.input(0);
      const Tensor& b = ctx.input(1);
      require_same_dtype(ctx, a, b);
      if (a.dims() != b.dims())
        throw ctx.error("A of shape " + dims_to_string(a.dims()) + " and B of shape " + dims_to_string(b.dims()) +
                        " must have the same shape");
      dispatch(a.dtype(), ctx, FloatTypes{}, [&](auto tag) {
        using T = typename decltype(tag)::type;
        using C = Compute<T>;
        Tensor& y = ctx.allocate_output_uninitialized(0, a.dtype(), a.dims());
        const T* pa = data<T>(a);
        const T* pb = data<T>(b);
        T* out = mutable_data<T>(y);
        const C k = static_cast<C>(alpha);
        for (int64_t i = 0; i < a.numel(); ++i) {
          const C g = static_cast<C>(pa[i]);
          out[i] = static_cast<T>(g * sigmoid(k * g) * static_cast<C>(pb[i]));
        }
      });
    });
  });
}

}  // namespace

void register_elementwise_kernels(KernelRegistry& r) {
  register_math(r);
  register_activations(r);
  register_clip(r);
  register_swiglu(r);
  register_bitwise_kernels(r);  // first: its BitShift (opset 28) must win over the unsigned one there
  register_elementwise_binary_kernels(r);
}

}  // namespace tunnx::cpu
