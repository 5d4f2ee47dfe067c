// com.tunnx gradient kernels of the reduce family (contracts in runtime/core/ops/gradient_ops.md):
//   ReduceGrad     dY, shape (X's), [axes]  -> dY broadcast back to X's shape (/ count when mean=1)
//   ReduceMaxGrad  dY, X, Y, [axes]         -> dY routed to the maxima (or minima) of X, ties split
// Axes come from input `axes` when given, else from the `axes` attribute (the forward op's, for the
// opsets where it was one). Empty axes reduce everything, unless noop_with_empty_axes.
#include <algorithm>
#include <climits>

#include "runtime/cpu/kernels/common.h"
#include "runtime/cpu/kernels/grad_common.h"
#include "runtime/cpu/kernels/kernels.h"

namespace tunnx::cpu {
namespace {


struct ReduceAttrs {
  std::vector<int64_t> axes;
  bool keepdims = true, noop_with_empty_axes = false, mean = false;

  static ReduceAttrs of(const KernelInit& init) {
    ReduceAttrs a;
    a.axes = init.attr_ints("axes");
    a.keepdims = init.attr_int("keepdims", 1) != 0;
    a.noop_with_empty_axes = init.attr_int("noop_with_empty_axes", 0) != 0;
    a.mean = init.attr_int("mean", 0) != 0;
    return a;
  }
};

// Where each element of X (the reduction's input) finds its element of Y (the reduction's output).
struct Geometry {
  std::vector<int64_t> x_dims;
  std::vector<int64_t> y_dims;     // as the forward op gave them (keepdims or not)
  std::vector<int64_t> y_strides;  // per axis of X; 0 on reduced axes
  int64_t count = 1;               // X elements per Y element
};

Geometry geometry(std::vector<int64_t> x_dims, const ReduceAttrs& attrs, const std::vector<int64_t>& axes,
                  const KernelContext& ctx) {
  const int64_t rank = static_cast<int64_t>(x_dims.size());
  std::vector<bool> reduced(x_dims.size(), axes.empty() && !attrs.noop_with_empty_axes);
  for (int64_t a : axes) {
    if (a < -rank || a >= rank)
      throw ctx.error("axis " + std::to_string(a) + " is out of range for rank " + std::to_string(rank));
    const size_t n = static_cast<size_t>(a < 0 ? a + rank : a);
    if (reduced[n]) throw ctx.error("axis " + std::to_string(a) + " appears more than once in axes");
    reduced[n] = true;
  }
  Geometry g;
  std::vector<int64_t> kept(x_dims.size());
  for (size_t i = 0; i < x_dims.size(); ++i) {
    if (x_dims[i] < 0) throw ctx.error("shape " + dims_to_string(x_dims) + " has a negative dim");
    kept[i] = reduced[i] ? 1 : x_dims[i];
    if (reduced[i]) g.count *= x_dims[i];
    if (!reduced[i] || attrs.keepdims) g.y_dims.push_back(kept[i]);
  }
  g.y_strides = strides_of(kept);
  for (size_t i = 0; i < x_dims.size(); ++i)
    if (reduced[i]) g.y_strides[i] = 0;
  g.x_dims = std::move(x_dims);
  return g;
}

std::vector<int64_t> axes_of(const KernelContext& ctx, size_t axes_input, const ReduceAttrs& attrs) {
  return ctx.has_input(axes_input) ? read_int_values(ctx.input(axes_input), ctx) : attrs.axes;
}

void require_y_shape(const KernelContext& ctx, const char* what, const Tensor& t, const Geometry& g) {
  if (t.dims() != g.y_dims)
    throw ctx.error(std::string(what) + " has shape " + dims_to_string(t.dims()) + ", the reduction of " +
                    dims_to_string(g.x_dims) + " gives " + dims_to_string(g.y_dims));
}

// Calls fn(x_index, y_index) for every element of X in row-major order; the last axis is the inner loop.
template <typename Fn> void for_each_element(const Geometry& g, Fn fn) {
  const size_t rank = g.x_dims.size();
  if (rank == 0) {
    fn(int64_t{0}, int64_t{0});
    return;
  }
  const int64_t total = product(g.x_dims);
  if (total == 0) return;
  const int64_t last = g.x_dims[rank - 1], last_stride = g.y_strides[rank - 1];
  std::vector<int64_t> index(rank, 0);
  int64_t y = 0;
  for (int64_t base = 0; base < total; base += last) {
    for (int64_t j = 0; j < last; ++j) fn(base + j, y + j * last_stride);
    for (size_t a = rank - 1; a-- > 0;) {  // odometer over all axes but the last
      y += g.y_strides[a];
      if (++index[a] < g.x_dims[a]) break;
      y -= g.y_strides[a] * g.x_dims[a];
      index[a] = 0;
    }
  }
}

// ReduceGrad(dY, shape, [axes]): dX[i] = dY[y(i)] (/ count when mean).
std::unique_ptr<Kernel> make_reduce_grad(const KernelInit& init) {
  const ReduceAttrs attrs = ReduceAttrs::of(init);
  return make_kernel([attrs](KernelContext& ctx) {
    const Tensor& dy = ctx.input(0);
    const std::vector<int64_t> axes = axes_of(ctx, 2, attrs);
    const Geometry g = geometry(read_int_values(ctx.input(1), ctx), attrs, axes, ctx);
    require_y_shape(ctx, "dY", dy, g);
    if (axes.empty() && attrs.noop_with_empty_axes) {  // the forward op was the identity
      ctx.set_output(0, dy);
      return;
    }
    Tensor& dx = ctx.allocate_output(0, dy.dtype(), g.x_dims);
    dispatch(dy.dtype(), ctx, FloatTypes{}, [&](auto tag) {
      using T = typename decltype(tag)::type;
      using Acc = FloatAcc<T>;
      const T* in = data<T>(dy);
      T* out = mutable_data<T>(dx);
      if (attrs.mean && g.count > 0) {
        const Acc inv = Acc(1) / static_cast<Acc>(g.count);
        for_each_element(g, [&](int64_t i, int64_t o) {
          out[i] = static_cast<T>(static_cast<Acc>(load(in[o])) * inv);
        });
      } else {
        for_each_element(g, [&](int64_t i, int64_t o) { out[i] = in[o]; });
      }
    });
  });
}

// ReduceMaxGrad(dY, X, Y, [axes]): dY[o] split equally among the elements of X equal to Y[o]
// (torch's amax/amin backward). Serves ReduceMin, whose Y is the minimum.
std::unique_ptr<Kernel> make_reduce_max_grad(const KernelInit& init) {
  const ReduceAttrs attrs = ReduceAttrs::of(init);
  return make_kernel([attrs](KernelContext& ctx) {
    const Tensor& dy = ctx.input(0);
    const Tensor& x = ctx.input(1);
    const Tensor& y = ctx.input(2);
    require_same_dtype(ctx, dy, x);
    require_same_dtype(ctx, dy, y);
    const std::vector<int64_t> axes = axes_of(ctx, 3, attrs);
    const Geometry g = geometry(x.dims(), attrs, axes, ctx);
    require_y_shape(ctx, "dY", dy, g);
    require_y_shape(ctx, "Y", y, g);
    if (axes.empty() && attrs.noop_with_empty_axes) {
      ctx.set_output(0, dy);
      return;
    }
    Tensor& dx = ctx.allocate_output(0, dy.dtype(), g.x_dims);
    dispatch(dy.dtype(), ctx, FloatTypes{}, [&](auto tag) {
      using T = typename decltype(tag)::type;
      using Acc = FloatAcc<T>;
      const T* pdy = data<T>(dy);
      const T* px = data<T>(x);
      const T* py = data<T>(y);
      T* out = mutable_data<T>(dx);
      std::vector<int64_t> ties(static_cast<size_t>(dy.numel()), 0);
      for_each_element(g, [&](int64_t i, int64_t o) { ties[static_cast<size_t>(o)] += load(px[i]) == load(py[o]); });
      for_each_element(g, [&](int64_t i, int64_t o) {
        if (load(px[i]) == load(py[o]))
          out[i] = static_cast<T>(static_cast<Acc>(load(pdy[o])) / static_cast<Acc>(ties[static_cast<size_t>(o)]));
      });
    });
  });
}

}  // namespace

void register_reduce_grad_kernels(KernelRegistry& registry) {
  add_grad_kernel(registry, "ReduceGrad", make_reduce_grad);
  add_grad_kernel(registry, "ReduceMaxGrad", make_reduce_max_grad);
}

}  // namespace tunnx::cpu
