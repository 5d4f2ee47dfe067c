// com.tunnx gradients of convolutions and pools (runtime/core/ops/gradient_ops.md): ConvGrad,
// ConvTransposeGrad, MaxPoolGrad, AveragePoolGrad, GlobalPoolGrad.
//
// ConvGrad, per image n and group (col = im2col of X's patches: C/group * kernel rows, one column per
// output position):   dW += dY x col^T,   dcol = W^T x dY -> col2im -> dX,   dB = sum of dY.
// ConvTransposeGrad is its mirror (dcol = im2col of dY's patches):
//                     dX = W x dcol,      dW += X x dcol^T,                   dB = sum of dY.
// Images run in parallel (OpenMP). Each thread sums dW into a buffer of its own, and the buffers are
// added in thread order afterwards: no atomics, and the same bits for the same thread count.
// Arithmetic is in float (double for float64).
//
// The window geometry (attribute parsing, output sizes, padding) is the forward kernels' own
// (runtime/core/ops/conv_pool.h, read through conv_geometry.h and pool.h): a gradient must read each
// window exactly as the forward kernel did.
#include <algorithm>
#include <cmath>
#include <type_traits>

#include "runtime/cpu/kernels/common.h"
#include "runtime/cpu/kernels/conv_geometry.h"
#include "runtime/cpu/kernels/grad_common.h"
#include "runtime/cpu/kernels/kernels.h"
#include "runtime/cpu/kernels/pool.h"

namespace tunnx::cpu {
namespace {

// ---- Shared pieces of the backward kernels -------------------------------------------------------

template <typename Acc> Acc dot(const Acc* a, const Acc* b, int64_t n) {
  Acc s = 0;
#ifdef _OPENMP
#pragma omp simd reduction(+ : s)
#endif
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

template <typename Acc> void axpy(Acc* y, Acc a, const Acc* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

// y[i, :] += sum over k of w(i, k) * d[k, :], for i < rows and k < depth, where w(i, k) is
// w[i * i_stride + k * k_stride] and y, d have rows of length n: a matrix product whose left factor
// may be read transposed. Four rows of y at a time over a slice of columns, so each value of d read
// serves four products while the slices stay in cache.
template <typename Acc>
void add_product(Acc* y, int64_t rows, const Acc* w, int64_t i_stride, int64_t k_stride, int64_t depth, const Acc* d,
                 int64_t n) {
  constexpr int64_t kSlice = 256;
  for (int64_t p0 = 0; p0 < n; p0 += kSlice) {
    const int64_t len = std::min(kSlice, n - p0);
    int64_t i = 0;
    for (; i + 4 <= rows; i += 4) {
      Acc* y0 = y + i * n + p0;
      Acc* y1 = y0 + n;
      Acc* y2 = y1 + n;
      Acc* y3 = y2 + n;
      for (int64_t k = 0; k < depth; ++k) {
        const Acc* wk = w + i * i_stride + k * k_stride;
        const Acc a0 = wk[0], a1 = wk[i_stride], a2 = wk[2 * i_stride], a3 = wk[3 * i_stride];
        const Acc* src = d + k * n + p0;
        for (int64_t p = 0; p < len; ++p) {
          const Acc v = src[p];
          y0[p] += a0 * v;
          y1[p] += a1 * v;
          y2[p] += a2 * v;
          y3[p] += a3 * v;
        }
      }
    }
    for (; i < rows; ++i)
      for (int64_t k = 0; k < depth; ++k) axpy(y + i * n + p0, w[i * i_stride + k * k_stride], d + k * n + p0, len);
  }
}

// Output i as Acc values: the tensor's own (zeroed) memory when T is Acc, else a buffer that finish()
// stores into the tensor. Null when the output is not wanted.
template <typename T, typename Acc> class AccOutput {
 public:
  AccOutput(KernelContext& ctx, size_t i, DataType dtype, const std::vector<int64_t>& dims) {
    if (i >= ctx.num_outputs() || !ctx.output_wanted(i)) return;
    tensor_ = &ctx.allocate_output(i, dtype, dims);
    if constexpr (std::is_same_v<T, Acc>) {
      p_ = mutable_data<T>(*tensor_);
    } else {
      buffer_.assign(static_cast<size_t>(tensor_->numel()), Acc(0));
      p_ = buffer_.data();
    }
  }
  Acc* get() const { return p_; }
  void finish() {
    if constexpr (!std::is_same_v<T, Acc>) {
      if (!tensor_) return;
      T* out = mutable_data<T>(*tensor_);
      for (size_t i = 0; i < buffer_.size(); ++i) out[i] = T(static_cast<float>(buffer_[i]));
    }
  }

 private:
  Tensor* tensor_ = nullptr;
  std::vector<Acc> buffer_;
  Acc* p_ = nullptr;
};

// A backward loop over the images, in parallel, with per-thread scratch: a col matrix each and, when
// dW is wanted, a dW partial sum each. The scratch is allocated before the loop: nothing in it may throw.
template <typename Acc> class ImageLoop {
 public:
  ImageLoop(int64_t batch, int64_t col_size, int64_t w_size, bool want_dw)
      : batch_(batch),
        threads_(static_cast<int>(std::min<int64_t>(max_threads(), std::max<int64_t>(batch, 1)))),
        col_size_(col_size),
        w_size_(w_size),
        col_(static_cast<size_t>(threads_ * col_size)),
        partial_(want_dw ? static_cast<size_t>(threads_ * w_size) : 0) {}

  // fn(n, col, t) for each image n; col is thread t's col matrix, partial(t) its dW sum.
  template <typename Fn> void run(Fn fn) {
#ifdef _OPENMP
#pragma omp parallel for schedule(static) num_threads(threads_)
#endif
    for (int64_t n = 0; n < batch_; ++n) {
      const int t = thread_index();
      fn(n, col_.data() + t * col_size_, t);
    }
  }
  Acc* partial(int t) { return partial_.data() + t * w_size_; }
  // Adds the partial sums into dw in thread order: the same bits for the same thread count.
  void add_partials(Acc* dw) const {
    for (int t = 0; t < threads_; ++t) axpy(dw, Acc(1), partial_.data() + t * w_size_, w_size_);
  }

 private:
  int64_t batch_;
  int threads_;
  int64_t col_size_, w_size_;
  std::vector<Acc> col_, partial_;
};

// dB[m] = sum of dY over the batch and the spatial positions. dy: (N, M, spatial).
template <typename Acc> void bias_grad(const Acc* dy, int64_t batch, int64_t channels, int64_t spatial, Acc* db) {
  for (int64_t m = 0; m < channels; ++m) {
    Acc s = 0;
    for (int64_t n = 0; n < batch; ++n) {
      const Acc* p = dy + (n * channels + m) * spatial;
      for (int64_t i = 0; i < spatial; ++i) s += p[i];
    }
    db[m] = s;
  }
}

// ---- ConvGrad, ConvTransposeGrad -----------------------------------------------------------------

// Conv backward on Acc values. dy: (N, M, grid), x: (N, C, image), w: (M, C/group, kernel).
// dx (N, C, image) is zero on entry; dx, dw (M, C/group, kernel), db (M) may each be null.
template <typename Acc>
void conv_backward(const ops::ConvGeometry& g, const Acc* dy, const Acc* x, const Acc* w, Acc* dx, Acc* dw,
                   Acc* db) {
  const int64_t image_size = product(g.image), grid_size = product(g.grid), kernel_size = product(g.kernel);
  const int64_t cg = g.in_channels / g.group, mg = g.out_channels / g.group, rows = cg * kernel_size;
  const int64_t col_size = rows * grid_size;
  const auto tables = tap_tables(g);
  ImageLoop<Acc> loop(g.batch, col_size, g.out_channels * rows, dw != nullptr);
  loop.run([&](int64_t n, Acc* c, int t) {
    for (int64_t grp = 0; grp < g.group; ++grp) {
      const Acc* dyg = dy + (n * g.out_channels + grp * mg) * grid_size;
      if (dw) {
        Acc* part = loop.partial(t) + grp * mg * rows;
        patch_transfer<false, Acc>(g, tables, cg, x + (n * g.in_channels + grp * cg) * image_size, c);
        // Row-outer: one col row stays in cache while dY's rows stream past it.
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t m = 0; m < mg; ++m) part[m * rows + r] += dot(dyg + m * grid_size, c + r * grid_size, grid_size);
      }
      if (dx) {
        std::fill(c, c + col_size, Acc(0));
        add_product(c, rows, w + grp * mg * rows, 1, rows, mg, dyg, grid_size);  // dcol = W^T x dY
        patch_transfer<true, Acc>(g, tables, cg, dx + (n * g.in_channels + grp * cg) * image_size, c);
      }
    }
  });
  if (dw) loop.add_partials(dw);
  if (db) bias_grad(dy, g.batch, g.out_channels, grid_size, db);
}

// ConvTranspose backward on Acc values. dy: (N, M, image), x: (N, C, grid), w: (C, M/group, kernel).
// dx (N, C, grid), dw (C, M/group, kernel), db (M) may each be null; dx is zero on entry.
template <typename Acc>
void conv_transpose_backward(const ops::ConvGeometry& g, const Acc* dy, const Acc* x, const Acc* w, Acc* dx,
                             Acc* dw, Acc* db) {
  const int64_t image_size = product(g.image), grid_size = product(g.grid), kernel_size = product(g.kernel);
  const int64_t cg = g.in_channels / g.group, mg = g.out_channels / g.group, rows = mg * kernel_size;
  const auto tables = tap_tables(g);
  ImageLoop<Acc> loop(g.batch, rows * grid_size, g.in_channels * rows, dw != nullptr);
  loop.run([&](int64_t n, Acc* c, int t) {
    for (int64_t grp = 0; grp < g.group; ++grp) {
      if (!dx && !dw) break;
      patch_transfer<false, Acc>(g, tables, mg, dy + (n * g.out_channels + grp * mg) * image_size, c);
      const int64_t ic = grp * cg;
      if (dx) add_product(dx + (n * g.in_channels + ic) * grid_size, cg, w + ic * rows, rows, 1, rows, c, grid_size);
      if (dw)
        for (int64_t k = 0; k < cg; ++k) {
          Acc* part = loop.partial(t) + (ic + k) * rows;
          const Acc* src = x + (n * g.in_channels + ic + k) * grid_size;
          for (int64_t r = 0; r < rows; ++r) part[r] += dot(src, c + r * grid_size, grid_size);
        }
    }
  });
  if (dw) loop.add_partials(dw);
  if (db) bias_grad(dy, g.batch, g.out_channels, image_size, db);
}

// ConvGrad / ConvTransposeGrad: dY, X, W (one float dtype) -> dX, dW, dB.
void run_conv_grad(KernelContext& ctx, const ops::ConvAttrs& attrs, bool transpose) {
  const Tensor& dy = ctx.input(0);
  const Tensor& x = ctx.input(1);
  const Tensor& w = ctx.input(2);
  require_same_dtype(ctx, dy, x);
  require_same_dtype(ctx, x, w);
  const ops::ConvGeometry g = conv_geometry(ctx, attrs, x.dims(), w.dims(), transpose);
  std::vector<int64_t> y_dims = {g.batch, g.out_channels};
  const auto& spatial = transpose ? g.image : g.grid;
  y_dims.insert(y_dims.end(), spatial.begin(), spatial.end());
  if (dy.dims() != y_dims)
    throw ctx.error("dY " + dims_to_string(dy.dims()) + " must have the forward output's shape " +
                    dims_to_string(y_dims) + " (X " + dims_to_string(x.dims()) + ", W " + dims_to_string(w.dims()) + ")");
  dispatch(x.dtype(), ctx, FloatTypes{}, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using Acc = FloatAcc<T>;
    std::vector<Acc> dys, xs, ws;
    const Acc* dyp = as_acc<Acc>(data<T>(dy), dy.numel(), dys);
    const Acc* xp = as_acc<Acc>(data<T>(x), x.numel(), xs);
    const Acc* wp = as_acc<Acc>(data<T>(w), w.numel(), ws);
    AccOutput<T, Acc> dx(ctx, 0, x.dtype(), x.dims()), dw(ctx, 1, x.dtype(), w.dims()),
        db(ctx, 2, x.dtype(), {g.out_channels});
    if (transpose) conv_transpose_backward(g, dyp, xp, wp, dx.get(), dw.get(), db.get());
    else conv_backward(g, dyp, xp, wp, dx.get(), dw.get(), db.get());
    dx.finish();
    dw.finish();
    db.finish();
  });
}

// ---- Pools ---------------------------------------------------------------------------------------

// Every window of one plane as a list: window o reads the in-plane offsets
// offsets[begin[o], begin[o + 1]), and `padded[o]` positions of the padded input.
struct WindowTable {
  std::vector<int64_t> begin, offsets, padded;
};

WindowTable window_table(const PoolWindows& g) {
  WindowTable t;
  t.begin.push_back(0);
  for_each_window(g, [&](int64_t, const std::vector<int64_t>& offsets, int64_t padded) {
    t.offsets.insert(t.offsets.end(), offsets.begin(), offsets.end());
    t.begin.push_back(static_cast<int64_t>(t.offsets.size()));
    t.padded.push_back(padded);
  });
  return t;
}

enum class PoolKind { kAverage, kMax };

// MaxPoolGrad (dY, X) and AveragePoolGrad (dY, X's shape) -> dX. Planes (n, c) run in parallel:
// each writes only its own plane of dX.
void run_pool_grad(KernelContext& ctx, const ops::PoolAttrs& a, PoolKind kind) {
  const Tensor& dy = ctx.input(0);
  std::vector<int64_t> x_dims;
  if (kind == PoolKind::kMax) {
    require_same_dtype(ctx, dy, ctx.input(1));
    x_dims = ctx.input(1).dims();
  } else {
    x_dims = read_int_values(ctx.input(1), ctx);
    checked_element_count(x_dims);
  }
  const PoolWindows g = pool_windows(ctx, a, x_dims);
  const std::vector<int64_t> y_dims = ops::pooled_dims(x_dims, g.out);
  if (dy.dims() != y_dims)
    throw ctx.error("dY " + dims_to_string(dy.dims()) + " must have the forward output's shape " +
                    dims_to_string(y_dims) + " (X " + dims_to_string(x_dims) + ")");
  const WindowTable table = window_table(g);
  const int64_t in_size = product(g.in), out_size = product(g.out);
  dispatch(dy.dtype(), ctx, FloatTypes{}, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using Acc = FloatAcc<T>;
    std::vector<Acc> dys, xs;
    const Acc* dyp = as_acc<Acc>(data<T>(dy), dy.numel(), dys);
    const Acc* xp = kind == PoolKind::kMax ? as_acc<Acc>(data<T>(ctx.input(1)), ctx.input(1).numel(), xs) : nullptr;
    AccOutput<T, Acc> dx(ctx, 0, dy.dtype(), x_dims);
    Acc* dxp = dx.get();
    if (!dxp) return;
#ifdef _OPENMP
#pragma omp parallel for schedule(static)
#endif
    for (int64_t plane = 0; plane < g.planes; ++plane) {
      const Acc* grad = dyp + plane * out_size;
      Acc* dst = dxp + plane * in_size;
      for (int64_t o = 0; o < out_size; ++o) {
        const int64_t* first = table.offsets.data() + table.begin[static_cast<size_t>(o)];
        const int64_t* last = table.offsets.data() + table.begin[static_cast<size_t>(o) + 1];
        if (first == last) continue;
        if (kind == PoolKind::kMax) {
          // The first maximum, as the forward kernel picks it.
          const Acc* src = xp + plane * in_size;
          int64_t best = *first;
          for (const int64_t* p = first + 1; p < last; ++p)
            if (src[*p] > src[best]) best = *p;
          dst[best] += grad[o];
        } else {
          const int64_t count = a.count_include_pad ? table.padded[static_cast<size_t>(o)] : last - first;
          const Acc share = grad[o] / static_cast<Acc>(count);
          for (const int64_t* p = first; p < last; ++p) dst[*p] += share;
        }
      }
    }
    dx.finish();
  });
}

// GlobalPoolGrad (dY (N, C, 1..1), X; mode) -> dX: dY spread evenly over the plane ("average") or
// routed to the plane's first maximum ("max", as GlobalMaxPool is MaxPool over the whole plane).
void run_global_pool_grad(KernelContext& ctx, bool max) {
  const Tensor& dy = ctx.input(0);
  const Tensor& x = ctx.input(1);
  require_same_dtype(ctx, dy, x);
  if (x.rank() < 2) throw ctx.error("X must have rank 2 or more (N, C, spatial...), got " + dims_to_string(x.dims()));
  std::vector<int64_t> y_dims = x.dims();
  std::fill(y_dims.begin() + 2, y_dims.end(), 1);
  if (dy.dims() != y_dims)
    throw ctx.error("dY " + dims_to_string(dy.dims()) + " must be " + dims_to_string(y_dims) + " for X " +
                    dims_to_string(x.dims()));
  const int64_t planes = y_dims[0] * y_dims[1];
  const int64_t size = planes > 0 ? x.numel() / planes : 0;
  dispatch(x.dtype(), ctx, FloatTypes{}, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using Acc = FloatAcc<T>;
    std::vector<Acc> dys, xs;
    const Acc* dyp = as_acc<Acc>(data<T>(dy), dy.numel(), dys);
    const Acc* xp = max ? as_acc<Acc>(data<T>(x), x.numel(), xs) : nullptr;
    AccOutput<T, Acc> dx(ctx, 0, x.dtype(), x.dims());
    Acc* dxp = dx.get();
    if (!dxp || size == 0) return;
#ifdef _OPENMP
#pragma omp parallel for schedule(static)
#endif
    for (int64_t plane = 0; plane < planes; ++plane) {
      Acc* dst = dxp + plane * size;
      if (max) {
        const Acc* src = xp + plane * size;
        int64_t best = 0;
        for (int64_t i = 1; i < size; ++i)
          if (src[i] > src[best]) best = i;
        dst[best] = dyp[plane];
      } else {
        std::fill(dst, dst + size, dyp[plane] / static_cast<Acc>(size));
      }
    }
    dx.finish();
  });
}

}  // namespace

void register_conv_pool_grad_kernels(KernelRegistry& r) {
  add_grad_kernel(r, "ConvGrad", [](const KernelInit& init) {
    const ops::ConvAttrs attrs = ops::parse_conv_attrs(init.node());
    return make_kernel([attrs](KernelContext& ctx) { run_conv_grad(ctx, attrs, false); });
  });
  add_grad_kernel(r, "ConvTransposeGrad", [](const KernelInit& init) {
    const ops::ConvAttrs attrs = ops::parse_conv_attrs(init.node());
    return make_kernel([attrs](KernelContext& ctx) { run_conv_grad(ctx, attrs, true); });
  });
  add_grad_kernel(r, "MaxPoolGrad", [](const KernelInit& init) {
    const ops::PoolAttrs a = ops::parse_pool_attrs(init.node());
    if (a.kernel_shape.empty()) throw init.error("kernel_shape is required");
    return make_kernel([a](KernelContext& ctx) { run_pool_grad(ctx, a, PoolKind::kMax); });
  });
  add_grad_kernel(r, "AveragePoolGrad", [](const KernelInit& init) {
    const ops::PoolAttrs a = ops::parse_pool_attrs(init.node());
    if (a.kernel_shape.empty()) throw init.error("kernel_shape is required");
    return make_kernel([a](KernelContext& ctx) { run_pool_grad(ctx, a, PoolKind::kAverage); });
  });
  add_grad_kernel(r, "GlobalPoolGrad", [](const KernelInit& init) {
    const std::string mode = init.attr_string("mode", "");
    if (mode != "average" && mode != "max")
      throw init.error("mode must be \"average\" or \"max\", got \"" + mode + "\"");
    return make_kernel([max = mode == "max"](KernelContext& ctx) { run_global_pool_grad(ctx, max); });
  });
}

}  // namespace tunnx::cpu
