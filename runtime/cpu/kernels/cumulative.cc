// CumProd (opset 26): the running product of X along the scalar `axis` input, as CumSum in
// reduce.cc walks it; Y has X's shape and dtype. exclusive=1 starts from 1 (the product of nothing),
// reverse=1 runs from the end of the axis.
#include <algorithm>

#include "runtime/cpu/kernels/common.h"
#include "runtime/cpu/kernels/kernels.h"

namespace tunnx::cpu {
namespace {

using CumProdTypes = Types<float, double, Float16, BFloat16, int32_t, int64_t, uint32_t, uint64_t>;

std::unique_ptr<Kernel> cumprod_kernel(const KernelInit& init) {
  const bool exclusive = init.attr_int("exclusive", 0) != 0;
  const bool reverse = init.attr_int("reverse", 0) != 0;
  return make_kernel([exclusive, reverse](KernelContext& ctx) {
    const Tensor& x = ctx.input(0);
    const Tensor& axis_t = ctx.input(1);
    if (axis_t.numel() != 1) throw ctx.error("axis must be a single value, got shape " + dims_to_string(axis_t.dims()));
    const int64_t rank = static_cast<int64_t>(x.rank());
    if (rank == 0) throw ctx.error("input must have rank >= 1");
    const int64_t axis = normalize_axis(read_int_values(axis_t, ctx)[0], rank, ctx);
    const AxisView v = axis_view(x.dims(), axis);
    Tensor& y = ctx.allocate_output(0, x.dtype(), x.dims());
    if (y.numel() == 0) return;
    dispatch(x.dtype(), ctx, CumProdTypes{}, [&](auto tag) {
      using T = typename decltype(tag)::type;
      // Floats multiply in double; integers in uint64, which wraps (modulo 2^64) instead of overflowing.
      using Acc = std::conditional_t<kIsFloat<T>, double, uint64_t>;
      const T* in = data<T>(x);
      T* out = mutable_data<T>(y);
      auto store = [](Acc a) {
        if constexpr (kIsFloat<T>) return from_double<T>(a);
        else return static_cast<T>(a);
      };
      std::vector<Acc> acc(static_cast<size_t>(v.inner));
      for (int64_t o = 0; o < v.outer; ++o) {
        std::fill(acc.begin(), acc.end(), Acc(1));
        for (int64_t step = 0; step < v.len; ++step) {
          const int64_t j = reverse ? v.len - 1 - step : step;
          const int64_t base = (o * v.len + j) * v.inner;
          for (int64_t i = 0; i < v.inner; ++i) {
            Acc& a = acc[static_cast<size_t>(i)];
            const Acc c = static_cast<Acc>(load(in[base + i]));
            if (exclusive) {
              out[base + i] = store(a);
              a *= c;
            } else {
              a *= c;
              out[base + i] = store(a);
            }
          }
        }
      }
    });
  });
}

}  // namespace

void register_cumulative_kernels(KernelRegistry& r) {
  add_kernel(r, "CumProd", 26, INT_MAX, dtypes(CumProdTypes{}), cumprod_kernel);
}

}  // namespace tunnx::cpu
