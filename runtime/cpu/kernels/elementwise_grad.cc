// com.tunnx gradient kernels of the elementwise family (contracts in runtime/core/ops/gradient_ops.md):
//   ElementwiseGrad  dY, X, Y, [min], [max] -> dX = dY * f'(x)      (all of dY's shape)
//   PowGrad          dY, X, E               -> dX, dE               (dY's broadcast shape)
//   SoftmaxGrad      dY, Y                  -> Y * (dY - sum(dY*Y, axis))
//   LogSoftmaxGrad   dY, Y                  -> dY - exp(Y) * sum(dY, axis)
// Training runs these on every step, so each is one pass over contiguous memory with the op chosen
// once per run (a template per op), not per element.
#include <algorithm>
#include <climits>
#include <cmath>
#include <limits>
#include <numbers>
#include <utility>

#include "runtime/cpu/kernels/common.h"
#include "runtime/cpu/kernels/grad_common.h"
#include "runtime/cpu/kernels/kernels.h"

namespace tunnx::cpu {
namespace {


// ---- ElementwiseGrad ------------------------------------------------------------------------------

// kEluY is Elu given Y too (f' = y + alpha below 0, no exp); kGeluTanh is Gelu approximate="tanh".
enum class GradOp {
  kRelu, kLeakyRelu, kElu, kEluY, kSelu, kCelu, kSigmoid, kTanh, kErf, kGelu, kGeluTanh, kSoftplus, kSoftsign,
  kHardSigmoid, kHardSwish, kSqrt, kReciprocal, kExp, kLog, kAbs, kSin, kCos, kClip, kThresholdedRelu, kMish,
  kCount
};

// Which of X and Y an op reads. Relu reads "X or Y" (same sign); it is listed as reading X, and the
// kernel hands it Y when X is absent.
constexpr bool reads_x(GradOp op) {
  return op != GradOp::kSigmoid && op != GradOp::kTanh && op != GradOp::kSqrt && op != GradOp::kReciprocal &&
         op != GradOp::kExp;
}
constexpr bool reads_y(GradOp op) {
  return op == GradOp::kEluY || op == GradOp::kSigmoid || op == GradOp::kTanh || op == GradOp::kSqrt ||
         op == GradOp::kReciprocal || op == GradOp::kExp;
}

struct Coeffs {
  double alpha = 0, beta = 0, gamma = 0;
  double lo = -std::numeric_limits<double>::infinity(), hi = std::numeric_limits<double>::infinity();
};

// dY * f'(x) for one element, in C (float, or double for float64).
template <GradOp Op, typename C> inline C grad_of(C dy, C x, C y, C alpha, C beta, C gamma, C lo, C hi) {
  (void)x, (void)y, (void)alpha, (void)beta, (void)gamma, (void)lo, (void)hi;
  if constexpr (Op == GradOp::kRelu) return x > C(0) ? dy : C(0);
  else if constexpr (Op == GradOp::kLeakyRelu) return x >= C(0) ? dy : alpha * dy;  // forward: x >= 0 keeps x
  else if constexpr (Op == GradOp::kElu) return x >= C(0) ? dy : dy * alpha * std::exp(x);
  else if constexpr (Op == GradOp::kEluY) return x >= C(0) ? dy : dy * (y + alpha);
  else if constexpr (Op == GradOp::kSelu) return x > C(0) ? gamma * dy : dy * gamma * alpha * std::exp(x);
  else if constexpr (Op == GradOp::kCelu) return x > C(0) ? dy : dy * std::exp(x / alpha);
  else if constexpr (Op == GradOp::kSigmoid) return dy * y * (C(1) - y);
  else if constexpr (Op == GradOp::kTanh) return dy * (C(1) - y * y);
  else if constexpr (Op == GradOp::kErf) return dy * C(std::numbers::inv_sqrtpi * 2) * std::exp(-x * x);
  else if constexpr (Op == GradOp::kGelu) {
    // d/dx x*Phi(x) = Phi(x) + x*phi(x)
    const C cdf = C(0.5) * (C(1) + std::erf(x * C(std::numbers::sqrt2 / 2)));
    const C pdf = C(std::numbers::inv_sqrtpi / std::numbers::sqrt2) * std::exp(C(-0.5) * x * x);
    return dy * (cdf + x * pdf);
  } else if constexpr (Op == GradOp::kGeluTanh) {
    const C k = C(std::numbers::sqrt2 * std::numbers::inv_sqrtpi);  // sqrt(2/pi)
    const C t = std::tanh(k * (x + C(0.044715) * x * x * x));
    return dy * (C(0.5) * (C(1) + t) + C(0.5) * x * (C(1) - t * t) * k * (C(1) + C(3 * 0.044715) * x * x));
  } else if constexpr (Op == GradOp::kSoftplus) return dy * sigmoid(x);
  else if constexpr (Op == GradOp::kSoftsign) {
    const C d = C(1) + std::fabs(x);
    return dy / (d * d);
  } else if constexpr (Op == GradOp::kHardSigmoid) {
    const C v = alpha * x + beta;
    return v > C(0) && v < C(1) ? dy * alpha : C(0);
  } else if constexpr (Op == GradOp::kHardSwish) {
    if (x < C(-3)) return C(0);
    if (x > C(3)) return dy;
    return dy * (x / C(3) + C(0.5));
  } else if constexpr (Op == GradOp::kSqrt) return dy / (C(2) * y);
  else if constexpr (Op == GradOp::kReciprocal) return -dy * y * y;
  else if constexpr (Op == GradOp::kExp) return dy * y;
  else if constexpr (Op == GradOp::kLog) return dy / x;
  else if constexpr (Op == GradOp::kAbs) return x > C(0) ? dy : x < C(0) ? -dy : C(0);
  else if constexpr (Op == GradOp::kSin) return dy * std::cos(x);
  else if constexpr (Op == GradOp::kCos) return -dy * std::sin(x);
  else if constexpr (Op == GradOp::kClip) return x >= lo && x <= hi ? dy : C(0);  // torch.clamp: bounds pass
  else if constexpr (Op == GradOp::kThresholdedRelu) return x > alpha ? dy : C(0);
  else if constexpr (Op == GradOp::kMish) {
    // mish = x * tanh(softplus(x)); d = tanh(sp) + x * sigmoid(x) * (1 - tanh(sp)^2)
    const C sp = x > C(0) ? x + std::log1p(std::exp(-x)) : std::log1p(std::exp(x));
    const C t = std::tanh(sp);
    return dy * (t + x * sigmoid(x) * (C(1) - t * t));
  } else return C(0);
}

// dx[i] = grad_of<Op>(dy[i], x[i], y[i]) over n elements.
template <GradOp Op, typename T>
void grad_loop(const T* dy, const T* x, const T* y, T* dx, int64_t n, const Coeffs& k) {
  using C = Compute<T>;
  const C alpha = static_cast<C>(k.alpha), beta = static_cast<C>(k.beta), gamma = static_cast<C>(k.gamma);
  const C lo = static_cast<C>(k.lo), hi = static_cast<C>(k.hi);
  const int threads = n >= kParallelElements ? max_threads() : 1;
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t i = 0; i < n; ++i) {
    C xi = C(0), yi = C(0);
    if constexpr (reads_x(Op)) xi = static_cast<C>(load(x[i]));
    if constexpr (reads_y(Op)) yi = static_cast<C>(load(y[i]));
    dx[i] = static_cast<T>(grad_of<Op, C>(static_cast<C>(load(dy[i])), xi, yi, alpha, beta, gamma, lo, hi));
  }
}

// The loop of `op`, picked once: one instantiation per op.
template <typename T, size_t... I>
void run_grad_op(GradOp op, const T* dy, const T* x, const T* y, T* dx, int64_t n, const Coeffs& k,
                 std::index_sequence<I...>) {
  (void)((op == static_cast<GradOp>(I) ? (grad_loop<static_cast<GradOp>(I), T>(dy, x, y, dx, n, k), true) : false) ||
         ...);
}

struct OpName {
  const char* name;
  GradOp op;
};
constexpr OpName kGradOps[] = {
    {"Relu", GradOp::kRelu},           {"LeakyRelu", GradOp::kLeakyRelu},
    {"Elu", GradOp::kElu},             {"Selu", GradOp::kSelu},
    {"Celu", GradOp::kCelu},           {"Sigmoid", GradOp::kSigmoid},
    {"Tanh", GradOp::kTanh},           {"Erf", GradOp::kErf},
    {"Gelu", GradOp::kGelu},           {"Softplus", GradOp::kSoftplus},
    {"Softsign", GradOp::kSoftsign},   {"HardSigmoid", GradOp::kHardSigmoid},
    {"HardSwish", GradOp::kHardSwish}, {"Sqrt", GradOp::kSqrt},
    {"Reciprocal", GradOp::kReciprocal}, {"Exp", GradOp::kExp},
    {"Log", GradOp::kLog},             {"Abs", GradOp::kAbs},
    {"Sin", GradOp::kSin},             {"Cos", GradOp::kCos},
    {"Clip", GradOp::kClip},           {"ThresholdedRelu", GradOp::kThresholdedRelu},
    {"Mish", GradOp::kMish},
};

std::unique_ptr<Kernel> make_elementwise_grad(const KernelInit& init) {
  const std::string name = init.attr_string("op", "");
  GradOp op = GradOp::kCount;
  for (const OpName& o : kGradOps)
    if (name == o.name) op = o.op;
  if (op == GradOp::kCount) throw init.error("op \"" + name + "\" has no ElementwiseGrad");
  if (op == GradOp::kGelu) {
    const std::string approximate = init.attr_string("approximate", "none");
    if (approximate != "none" && approximate != "tanh")
      throw init.error("approximate must be \"none\" or \"tanh\", got \"" + approximate + "\"");
    if (approximate == "tanh") op = GradOp::kGeluTanh;
  }
  if (op == GradOp::kCelu && init.attr_float("alpha", 1.0f) == 0) throw init.error("alpha must not be 0");
  Coeffs k;
  k.alpha = init.attr_float("alpha", 0.0f);
  k.beta = init.attr_float("beta", 0.0f);
  k.gamma = init.attr_float("gamma", 0.0f);
  if (init.has_attr("min")) k.lo = init.attr_float("min", 0.0f);  // Clip before opset 11
  if (init.has_attr("max")) k.hi = init.attr_float("max", 0.0f);
  return make_kernel([op, k, name](KernelContext& ctx) {
    const Tensor& dy = ctx.input(0);
    const bool has_x = ctx.has_input(1), has_y = ctx.has_input(2);
    GradOp run_op = op;
    if (op == GradOp::kElu && has_y) run_op = GradOp::kEluY;
    // Relu reads X or Y (the same sign): Y stands in when X is absent.
    const bool relu_on_y = op == GradOp::kRelu && !has_x && has_y;
    if (reads_x(run_op) && !has_x && !relu_on_y) throw ctx.error("op " + name + " needs X (input 1)");
    if (reads_y(run_op) && !has_y) throw ctx.error("op " + name + " needs Y (input 2)");
    const Tensor& x = relu_on_y ? ctx.input(2) : has_x ? ctx.input(1) : dy;
    const Tensor& y = has_y ? ctx.input(2) : dy;
    for (const Tensor* t : {&x, &y})
      if (t->dims() != dy.dims() || t->dtype() != dy.dtype())
        throw ctx.error("X and Y must have dY's shape and dtype " + dims_to_string(dy.dims()) + " " +
                        to_string(dy.dtype()) + ", got " + dims_to_string(t->dims()) + " " + to_string(t->dtype()));
    Coeffs c = k;
    if (op == GradOp::kClip) {
      if (ctx.has_input(3)) c.lo = read_scalar(ctx.input(3), ctx);
      if (ctx.has_input(4)) c.hi = read_scalar(ctx.input(4), ctx);
    }
    Tensor& dx = ctx.allocate_output_uninitialized(0, dy.dtype(), dy.dims());
    dispatch(dy.dtype(), ctx, FloatTypes{}, [&](auto tag) {
      using T = typename decltype(tag)::type;
      run_grad_op<T>(run_op, data<T>(dy), data<T>(x), data<T>(y), mutable_data<T>(dx), dy.numel(), c,
                     std::make_index_sequence<static_cast<size_t>(GradOp::kCount)>{});
    });
  });
}

// ---- PowGrad ----------------------------------------------------------------------------------------

// dX = dY * E * X^(E-1) and dE = dY * X^E * log(X), both of the broadcast shape, computed in double.
// As torch: dX is 0 where E = 0, and dE is 0 where X = 0 and E >= 0.
void pow_grad(KernelContext& ctx) {
  const Tensor& dy = ctx.input(0);
  const Tensor& x = ctx.input(1);
  const Tensor& e = ctx.input(2);
  const std::vector<int64_t> dims = broadcast_shapes({x.dims(), e.dims()}, ctx);
  if (dy.dims() != dims)
    throw ctx.error("dY has shape " + dims_to_string(dy.dims()) + ", the broadcast of X " + dims_to_string(x.dims()) +
                    " and E " + dims_to_string(e.dims()) + " is " + dims_to_string(dims));
  require_same_dtype(ctx, dy, x);
  const bool want_dx = ctx.output_wanted(0), want_de = ctx.output_wanted(1);
  if (want_de && !is_floating_point(e.dtype()))
    throw ctx.error(std::string("no gradient for an exponent of dtype ") + to_string(e.dtype()));
  std::vector<int64_t> xi, ei;  // broadcast index maps, only when a shape differs
  if (x.dims() != dims) xi = broadcast_index_map(x.dims(), dims);
  if (e.dims() != dims) ei = broadcast_index_map(e.dims(), dims);
  dispatch(x.dtype(), ctx, FloatTypes{}, [&](auto xtag) {
    using T = typename decltype(xtag)::type;
    dispatch<float, double, Float16, BFloat16, int32_t, int64_t>(e.dtype(), ctx, [&](auto etag) {
      using U = typename decltype(etag)::type;
      const T* pdy = data<T>(dy);
      const T* px = data<T>(x);
      const U* pe = data<U>(e);
      T* dx = want_dx ? mutable_data<T>(ctx.allocate_output(0, x.dtype(), dims)) : nullptr;
      U* de = nullptr;
      if constexpr (kIsFloat<U>)
        if (want_de) de = mutable_data<U>(ctx.allocate_output(1, e.dtype(), dims));
      const int64_t n = dy.numel();
      for (int64_t i = 0; i < n; ++i) {
        const double g = to_double(pdy[i]);
        const double xv = to_double(px[xi.empty() ? i : xi[static_cast<size_t>(i)]]);
        const double ev = to_double(pe[ei.empty() ? i : ei[static_cast<size_t>(i)]]);
        if (dx) dx[i] = from_double<T>(ev == 0 ? 0.0 : g * ev * std::pow(xv, ev - 1));
        if constexpr (kIsFloat<U>)
          if (de) de[i] = from_double<U>(xv == 0 && ev >= 0 ? 0.0 : g * std::pow(xv, ev) * std::log(xv));
      }
    });
  });
}

// ---- SoftmaxGrad / LogSoftmaxGrad -------------------------------------------------------------------

// The [outer, len, inner] view of Softmax's axis: coerced to 2-D [prod(d<axis), prod(d>=axis)] before
// opset 13 (coerce_2d), the axis itself from then on.
AxisView softmax_view(const std::vector<int64_t>& dims, int64_t axis, bool coerce_2d, const KernelContext& ctx) {
  const int64_t rank = static_cast<int64_t>(dims.size());
  if (!coerce_2d) {
    if (rank == 0) throw ctx.error("input must have rank >= 1");
    return axis_view(dims, normalize_axis(axis, rank, ctx));
  }
  if (axis < -rank || axis > rank)
    throw ctx.error("axis " + std::to_string(axis) + " is out of range for rank " + std::to_string(rank));
  const size_t a = static_cast<size_t>(axis < 0 ? axis + rank : axis);
  AxisView v;
  v.outer = product(dims, 0, a);
  v.len = product(dims, a);
  return v;
}

// sum of term(j) for j in [0, n), in 8 running sums: without -ffast-math the compiler keeps one sum's
// order and will not vectorize it; eight independent ones it does (1.6x on a row of 1024 floats).
template <typename Acc, typename Term> Acc row_sum(int64_t n, const Term& term) {
  Acc part[8] = {};
  int64_t j = 0;
  for (; j + 8 <= n; j += 8)
    for (int k = 0; k < 8; ++k) part[k] += term(j + k);
  Acc s = 0;
  for (; j < n; ++j) s += term(j);
  for (Acc p : part) s += p;
  return s;
}

// Softmax: dx = y * (dy - sum(dy*y)); LogSoftmax: dx = dy - exp(y) * sum(dy). Rows along the axis
// are contiguous when inner == 1 (the usual last axis); otherwise `inner` sums run side by side.
template <bool Log, typename T> void softmax_grad_typed(const T* dy, const T* y, T* dx, const AxisView& v) {
  using Acc = FloatAcc<T>;
  auto term = [](T g, T o) {
    if constexpr (Log) return static_cast<Acc>(load(g));
    else return static_cast<Acc>(load(g)) * static_cast<Acc>(load(o));
  };
  auto result = [](T g, T o, Acc s) {
    const Acc gv = static_cast<Acc>(load(g)), ov = static_cast<Acc>(load(o));
    if constexpr (Log) return static_cast<T>(gv - std::exp(ov) * s);
    else return static_cast<T>(ov * (gv - s));
  };
  const int64_t block = v.len * v.inner;
  // Rows are independent: split among the run's threads (attention's [b, h, s, s] has b*h*s of them).
  const int threads = v.outer > 1 && v.outer * block >= kParallelElements ? max_threads() : 1;
  // Per thread: `inner` running sums (allocated here: nothing in the parallel loop may throw).
  std::vector<Acc> all_sums(v.inner == 1 ? 0 : static_cast<size_t>(v.inner) * static_cast<size_t>(threads));
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t o = 0; o < v.outer; ++o) {
    const T* g = dy + o * block;
    const T* out = y + o * block;
    T* d = dx + o * block;
    if (v.inner == 1) {
      const Acc s = row_sum<Acc>(v.len, [&](int64_t j) { return term(g[j], out[j]); });
      for (int64_t j = 0; j < v.len; ++j) d[j] = result(g[j], out[j], s);
      continue;
    }
    Acc* sums = all_sums.data() + static_cast<size_t>(thread_index()) * static_cast<size_t>(v.inner);
    std::fill(sums, sums + v.inner, Acc(0));
    for (int64_t j = 0; j < v.len; ++j)
      for (int64_t i = 0; i < v.inner; ++i)
        sums[static_cast<size_t>(i)] += term(g[j * v.inner + i], out[j * v.inner + i]);
    for (int64_t j = 0; j < v.len; ++j)
      for (int64_t i = 0; i < v.inner; ++i) {
        const int64_t k = j * v.inner + i;
        d[k] = result(g[k], out[k], sums[static_cast<size_t>(i)]);
      }
  }
}

KernelFactory softmax_grad_factory(bool log) {
  return [log](const KernelInit& init) {
    const int64_t axis = init.attr_int("axis", -1);
    const bool coerce_2d = init.attr_int("coerce_2d", 0) != 0;
    return make_kernel([log, axis, coerce_2d](KernelContext& ctx) {
      const Tensor& dy = ctx.input(0);
      const Tensor& y = ctx.input(1);
      if (dy.dims() != y.dims() || dy.dtype() != y.dtype())
        throw ctx.error("dY " + dims_to_string(dy.dims()) + " " + to_string(dy.dtype()) + " and Y " +
                        dims_to_string(y.dims()) + " " + to_string(y.dtype()) + " must match");
      const AxisView v = softmax_view(y.dims(), axis, coerce_2d, ctx);
      Tensor& dx = ctx.allocate_output_uninitialized(0, dy.dtype(), dy.dims());
      if (dx.numel() == 0) return;
      dispatch(dy.dtype(), ctx, FloatTypes{}, [&](auto tag) {
        using T = typename decltype(tag)::type;
        if (log) softmax_grad_typed<true, T>(data<T>(dy), data<T>(y), mutable_data<T>(dx), v);
        else softmax_grad_typed<false, T>(data<T>(dy), data<T>(y), mutable_data<T>(dx), v);
      });
    });
  };
}

}  // namespace

void register_elementwise_grad_kernels(KernelRegistry& registry) {
  add_grad_kernel(registry, "ElementwiseGrad", make_elementwise_grad);
  add_grad_kernel(registry, "PowGrad", [](const KernelInit&) { return make_kernel(pow_grad); });
  add_grad_kernel(registry, "SoftmaxGrad", softmax_grad_factory(false));
  add_grad_kernel(registry, "LogSoftmaxGrad", softmax_grad_factory(true));
}

}  // namespace tunnx::cpu
