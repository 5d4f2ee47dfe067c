// com.tunnx gradient helpers and the gradients of shape and movement ops; contracts in
// runtime/core/ops/gradient_ops.md. Reference kernels: float32 and float64 (16-bit floats through float).
#include <algorithm>
#include <climits>

#include "runtime/cpu/kernels/cast.h"
#include "runtime/cpu/kernels/common.h"
#include "runtime/cpu/kernels/grad_common.h"
#include "runtime/cpu/kernels/kernels.h"

namespace tunnx::cpu {
namespace {


// SumToShape(G, shape) -> G summed over the dims broadcasting added or stretched to reach G's shape.
//   G [g0..gk], shape [r] with r <= k+1 and shape right-aligned against G (each dim equal or 1).
void sum_to_shape(KernelContext& ctx) {
  const Tensor& g = ctx.input(0);
  std::vector<int64_t> target = read_int_values(ctx.input(1), ctx);
  const std::vector<int64_t>& gd = g.dims();
  if (target.size() > gd.size())
    throw ctx.error("target shape " + dims_to_string(target) + " has more dims than the gradient " + dims_to_string(gd));
  const size_t lead = gd.size() - target.size();
  for (size_t i = 0; i < target.size(); ++i)
    if (target[i] != gd[lead + i] && target[i] != 1)
      throw ctx.error("gradient " + dims_to_string(gd) + " does not reduce to " + dims_to_string(target));
  if (target == gd) {
    ctx.set_output(0, g);
    return;
  }
  // Summing whole leading dims away (a bias gradient: [rows, N] -> [N]) is column sums of a
  // [rows, inner] matrix; each column adds its rows in order, as the general loop below does, so the
  // result is the same, and columns split among threads.
  size_t keep_from = gd.size();
  while (keep_from > lead && target[keep_from - 1 - lead] == gd[keep_from - 1]) --keep_from;
  bool leading_only = true;
  for (size_t i = lead; i < keep_from; ++i) leading_only = leading_only && target[i - lead] == 1;
  if (leading_only) {
    int64_t inner = 1;
    for (size_t i = keep_from; i < gd.size(); ++i) inner *= gd[i];
    const int64_t rows = inner ? g.numel() / inner : 0;
    Tensor& out = ctx.allocate_output(0, g.dtype(), target);
    dispatch(g.dtype(), ctx, FloatTypes{}, [&](auto tag) {
      using T = typename decltype(tag)::type;
      using Acc = FloatAcc<T>;
      const T* in = data<T>(g);
      T* o = mutable_data<T>(out);
      constexpr int64_t kColumns = 64;  // a block of running sums stays in registers; a bias of 768 is 12 blocks
      const int64_t blocks = (inner + kColumns - 1) / kColumns;
      const int threads = g.numel() >= kParallelElements ? max_threads() : 1;
#pragma omp parallel for schedule(static) num_threads(threads)
      for (int64_t blk = 0; blk < blocks; ++blk) {
        const int64_t c0 = blk * kColumns, c1 = std::min(c0 + kColumns, inner);
        Acc sum[kColumns] = {};
        for (int64_t r = 0; r < rows; ++r) {
          const T* row = in + r * inner;
          for (int64_t c = c0; c < c1; ++c) sum[c - c0] += static_cast<Acc>(load(row[c]));
        }
        for (int64_t c = c0; c < c1; ++c) o[c] = static_cast<T>(sum[c - c0]);
      }
    });
    return;
  }
  // The target padded with leading 1s to G's rank, and its flat index for each element of G.
  std::vector<int64_t> padded(lead, 1);
  padded.insert(padded.end(), target.begin(), target.end());
  const std::vector<int64_t> index = broadcast_index_map(padded, gd);
  Tensor& out = ctx.allocate_output(0, g.dtype(), target);
  dispatch(g.dtype(), ctx, FloatTypes{}, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using Acc = FloatAcc<T>;
    std::vector<Acc> sum(static_cast<size_t>(out.numel()), Acc(0));
    const T* in = data<T>(g);
    for (int64_t i = 0; i < g.numel(); ++i) sum[static_cast<size_t>(index[static_cast<size_t>(i)])] += static_cast<Acc>(load(in[i]));
    T* o = mutable_data<T>(out);
    for (size_t i = 0; i < sum.size(); ++i) o[i] = static_cast<T>(sum[i]);
  });
}

// Scale(X; alpha) -> alpha * X.
std::unique_ptr<Kernel> make_scale(const KernelInit& init) {
  const double alpha = init.attr_float("alpha", 1.0f);
  return make_kernel([alpha](KernelContext& ctx) {
    const Tensor& x = ctx.input(0);
    Tensor& out = ctx.allocate_output(0, x.dtype(), x.dims());
    dispatch(x.dtype(), ctx, FloatTypes{}, [&](auto tag) {
      using T = typename decltype(tag)::type;
      using Acc = FloatAcc<T>;
      const T* in = data<T>(x);
      T* o = mutable_data<T>(out);
      const Acc a = static_cast<Acc>(alpha);
      for (int64_t i = 0; i < x.numel(); ++i) o[i] = static_cast<T>(a * static_cast<Acc>(load(in[i])));
    });
  });
}

// ZerosLike(X) / OnesLike(X): X's shape and dtype.
void fill_like(KernelContext& ctx, double value) {
  const Tensor& x = ctx.input(0);
  Tensor& out = ctx.allocate_output(0, x.dtype(), x.dims());
  if (value == 0) return;  // allocate_output zero-fills
  dispatch(x.dtype(), ctx, FloatTypes{}, [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* o = mutable_data<T>(out);
    for (int64_t i = 0; i < out.numel(); ++i) o[i] = from_double<T>(value);
  });
}

using Dims = std::vector<int64_t>;

// dX[sum_d offsets[d][i_d]] += dY[i_0..i_{r-1}] for every element of dY (dims `dy_dims`); a negative
// entry drops that element. The adjoint of tensor.cc's gather_axes: Slice, Pad and Tile differ only in
// their offset tables. Sums in FloatAcc, so repeated targets (Tile, reflect pads) lose no precision.
void scatter_add_axes(KernelContext& ctx, const Tensor& dy, const Dims& dx_dims, const std::vector<Dims>& offsets) {
  Tensor& dx = ctx.allocate_output(0, dy.dtype(), dx_dims);
  dispatch(dy.dtype(), ctx, FloatTypes{}, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using Acc = FloatAcc<T>;
    std::vector<Acc> sum(static_cast<size_t>(dx.numel()), Acc(0));
    const T* in = data<T>(dy);
    const Dims& dims = dy.dims();
    const size_t rank = dims.size();
    if (dy.numel() > 0 && rank == 0) {
      sum[0] += static_cast<Acc>(load(in[0]));
    } else if (dy.numel() > 0) {
      const int64_t inner = dims[rank - 1];
      const Dims& last = offsets[rank - 1];
      Dims index(rank - 1, 0);
      for (int64_t o = 0; o < dy.numel(); o += inner) {
        int64_t base = 0;
        bool outside = false;
        for (size_t d = 0; d + 1 < rank; ++d) {
          const int64_t off = offsets[d][static_cast<size_t>(index[d])];
          outside |= off < 0;
          base += off;
        }
        if (!outside)
          for (int64_t i = 0; i < inner; ++i)
            if (last[static_cast<size_t>(i)] >= 0)
              sum[static_cast<size_t>(base + last[static_cast<size_t>(i)])] += static_cast<Acc>(load(in[o + i]));
        for (size_t d = rank - 1; d-- > 0;) {
          if (++index[d] < dims[d]) break;
          index[d] = 0;
        }
      }
    }
    T* out = mutable_data<T>(dx);
    for (size_t i = 0; i < sum.size(); ++i) out[i] = static_cast<T>(sum[i]);
  });
}

// A shape input (int64 [r]) checked for negative dims.
Dims shape_input(const KernelContext& ctx, size_t i) {
  Dims dims = read_int_values(ctx.input(i), ctx);
  for (int64_t d : dims)
    if (d < 0) throw ctx.error("shape input " + std::to_string(i) + " " + dims_to_string(dims) + " has a negative dim");
  return dims;
}

void require_dims(const KernelContext& ctx, const Tensor& dy, const Dims& expected, const std::string& what) {
  if (dy.dims() != expected)
    throw ctx.error("gradient " + dims_to_string(dy.dims()) + " does not match " + what + " " +
                    dims_to_string(expected));
}

// An index along a dim of `n`, negative ones wrapped; throws when outside [-n, n).
int64_t wrap_index(int64_t index, int64_t n, const KernelContext& ctx) {
  if (index < -n || index >= n)
    throw ctx.error("index " + std::to_string(index) + " is out of range [" + std::to_string(-n) + ", " +
                    std::to_string(n) + ")");
  return index < 0 ? index + n : index;
}

// dX[flat[i]] += dY[i] into zeros of `dx_dims` (flat indices already checked).
void scatter_flat(KernelContext& ctx, const Tensor& dy, const Dims& dx_dims, const std::vector<int64_t>& flat) {
  Tensor& dx = ctx.allocate_output(0, dy.dtype(), dx_dims);
  dispatch(dy.dtype(), ctx, FloatTypes{}, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using Acc = FloatAcc<T>;
    std::vector<Acc> sum(static_cast<size_t>(dx.numel()), Acc(0));
    const T* in = data<T>(dy);
    for (size_t i = 0; i < flat.size(); ++i) sum[static_cast<size_t>(flat[i])] += static_cast<Acc>(load(in[i]));
    T* out = mutable_data<T>(dx);
    for (size_t i = 0; i < sum.size(); ++i) out[i] = static_cast<T>(sum[i]);
  });
}

// GatherGrad(dY, shape, indices; axis): dY is shape[:axis] + indices.shape + shape[axis+1:].
void gather_grad(KernelContext& ctx, int64_t axis_attr) {
  const Tensor& dy = ctx.input(0);
  const Dims shape = shape_input(ctx, 1);
  const Tensor& idx = ctx.input(2);
  if (shape.empty()) throw ctx.error("data must have rank >= 1");
  const size_t axis = static_cast<size_t>(normalize_axis(axis_attr, static_cast<int64_t>(shape.size()), ctx));
  Dims expected(shape.begin(), shape.begin() + static_cast<int64_t>(axis));
  expected.insert(expected.end(), idx.dims().begin(), idx.dims().end());
  expected.insert(expected.end(), shape.begin() + static_cast<int64_t>(axis) + 1, shape.end());
  require_dims(ctx, dy, expected,
               "data " + dims_to_string(shape) + " gathered by indices " + dims_to_string(idx.dims()) + " on axis " +
                   std::to_string(axis) + ":");
  const Dims indices = read_int_values(idx, ctx);
  const int64_t outer = product(shape, 0, axis), len = shape[axis], inner = product(shape, axis + 1);
  const int64_t n = static_cast<int64_t>(indices.size());
  std::vector<int64_t> wrapped(indices.size());
  for (size_t j = 0; j < indices.size(); ++j) wrapped[j] = wrap_index(indices[j], len, ctx);
  std::vector<int64_t> flat(static_cast<size_t>(dy.numel()));
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t j = 0; j < n; ++j)
      for (int64_t i = 0; i < inner; ++i)
        flat[static_cast<size_t>((o * n + j) * inner + i)] = (o * len + wrapped[static_cast<size_t>(j)]) * inner + i;
  scatter_flat(ctx, dy, shape, flat);
}

// GatherElementsGrad(dY, shape, indices; axis): dY and indices share a shape of shape's rank.
void gather_elements_grad(KernelContext& ctx, int64_t axis_attr) {
  const Tensor& dy = ctx.input(0);
  const Dims shape = shape_input(ctx, 1);
  const Tensor& idx = ctx.input(2);
  if (shape.empty() || idx.rank() != shape.size())
    throw ctx.error("indices " + dims_to_string(idx.dims()) + " must have the rank of data " + dims_to_string(shape) +
                    " (>= 1)");
  require_dims(ctx, dy, idx.dims(), "indices");
  const size_t axis = static_cast<size_t>(normalize_axis(axis_attr, static_cast<int64_t>(shape.size()), ctx));
  for (size_t d = 0; d < shape.size(); ++d)
    if (d != axis && idx.dims()[d] > shape[d])
      throw ctx.error("indices " + dims_to_string(idx.dims()) + " exceed data " + dims_to_string(shape) +
                      " outside the axis");
  std::vector<int64_t> flat = read_int_values(idx, ctx);
  const Dims strides = strides_of(shape);
  Dims coord(shape.size(), 0);
  for (size_t i = 0; i < flat.size(); ++i) {
    int64_t offset = wrap_index(flat[i], shape[axis], ctx) * strides[axis];
    for (size_t d = 0; d < shape.size(); ++d)
      if (d != axis) offset += coord[d] * strides[d];
    flat[i] = offset;
    for (size_t d = coord.size(); d-- > 0;) {
      if (++coord[d] < idx.dims()[d]) break;
      coord[d] = 0;
    }
  }
  scatter_flat(ctx, dy, shape, flat);
}

// SliceGrad(dY, shape, starts, ends, [axes], [steps]): dY written back where Slice (opset 10+) read.
// The clamping repeats tensor.cc's slice_kernel, so both agree on every start/end/step.
void slice_grad(KernelContext& ctx) {
  const Tensor& dy = ctx.input(0);
  const Dims shape = shape_input(ctx, 1);
  const Dims starts = read_int_values(ctx.input(2), ctx), ends = read_int_values(ctx.input(3), ctx);
  const int64_t rank = static_cast<int64_t>(shape.size());
  Dims axes;
  if (ctx.has_input(4)) {
    axes = read_int_values(ctx.input(4), ctx);
  } else {
    for (size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<int64_t>(i));
  }
  const Dims steps = ctx.has_input(5) ? read_int_values(ctx.input(5), ctx) : Dims(starts.size(), 1);
  if (ends.size() != starts.size() || axes.size() != starts.size() || steps.size() != starts.size())
    throw ctx.error("starts, ends, axes and steps must have the same length");
  Dims first(shape.size(), 0), step(shape.size(), 1), out_dims = shape;
  std::vector<bool> seen(shape.size(), false);
  for (size_t i = 0; i < axes.size(); ++i) {
    const size_t a = static_cast<size_t>(normalize_axis(axes[i], rank, ctx));
    if (seen[a]) throw ctx.error("axis " + std::to_string(a) + " is repeated");
    seen[a] = true;
    const int64_t n = shape[a], st = std::max<int64_t>(steps[i], -INT64_MAX);
    if (st == 0) throw ctx.error("slice step must not be 0");
    if (n == 0) {  // nothing to read (and clamping to [0, n - 1] would have lo > hi)
      out_dims[a] = 0;
      continue;
    }
    int64_t s = starts[i] < 0 ? starts[i] + n : starts[i], e = ends[i] < 0 ? ends[i] + n : ends[i];
    if (st > 0) {
      s = std::clamp<int64_t>(s, 0, n);
      e = std::clamp<int64_t>(e, 0, n);
      out_dims[a] = e > s ? (e - s - 1) / st + 1 : 0;
    } else {
      s = std::clamp<int64_t>(s, 0, n - 1);
      e = std::clamp<int64_t>(e, -1, n - 1);
      out_dims[a] = s > e ? (s - e - 1) / -st + 1 : 0;
    }
    first[a] = s;
    step[a] = st;
  }
  require_dims(ctx, dy, out_dims, "the slice of " + dims_to_string(shape));
  const Dims strides = strides_of(shape);
  std::vector<Dims> offsets(shape.size());
  for (size_t d = 0; d < shape.size(); ++d)
    for (int64_t i = 0; i < out_dims[d]; ++i) offsets[d].push_back((first[d] + i * step[d]) * strides[d]);
  scatter_add_axes(ctx, dy, shape, offsets);
}

enum class PadMode { kConstant, kReflect, kEdge, kWrap };

// Source index along a dim of size n for padded position j, as tensor.cc's Pad reads it; -1: constant.
int64_t pad_source(int64_t j, int64_t n, PadMode mode) {
  if (j >= 0 && j < n) return j;
  if (n <= 0) return -1;
  switch (mode) {
    case PadMode::kConstant: return -1;
    case PadMode::kEdge: return j < 0 ? 0 : n - 1;
    case PadMode::kWrap: return ((j % n) + n) % n;
    case PadMode::kReflect: {
      if (n == 1) return 0;
      const int64_t period = 2 * (n - 1);
      j = ((j % period) + period) % period;
      return j < n ? j : period - j;
    }
  }
  return -1;
}

// PadGrad(dY, pads, [axes]; mode): X's dims are dY's less the pads. Constant mode crops (negative pads
// leave zeros); reflect/edge/wrap also add each padded element back onto the element it copied.
void pad_grad(KernelContext& ctx, PadMode mode) {
  const Tensor& dy = ctx.input(0);
  const Dims pads = read_int_values(ctx.input(1), ctx);
  const int64_t rank = static_cast<int64_t>(dy.rank());
  Dims axes;
  if (ctx.has_input(2)) {
    axes = read_int_values(ctx.input(2), ctx);
    for (int64_t& a : axes) a = normalize_axis(a, rank, ctx);
  } else {
    for (int64_t i = 0; i < rank; ++i) axes.push_back(i);
  }
  if (pads.size() != 2 * axes.size())
    throw ctx.error("pads has " + std::to_string(pads.size()) + " values, expected " + std::to_string(2 * axes.size()));
  Dims begin(dy.rank(), 0), end(dy.rank(), 0);
  for (size_t i = 0; i < axes.size(); ++i) {
    begin[static_cast<size_t>(axes[i])] = pads[i];
    end[static_cast<size_t>(axes[i])] = pads[axes.size() + i];
  }
  Dims x_dims(dy.rank());
  for (size_t d = 0; d < dy.rank(); ++d) {
    x_dims[d] = dy.dims()[d] - begin[d] - end[d];
    if (x_dims[d] < 0)
      throw ctx.error("pads " + dims_to_string(pads) + " do not fit the gradient " + dims_to_string(dy.dims()));
  }
  const Dims strides = strides_of(x_dims);
  std::vector<Dims> offsets(dy.rank());
  for (size_t d = 0; d < dy.rank(); ++d)
    for (int64_t j = 0; j < dy.dims()[d]; ++j) {
      const int64_t s = pad_source(j - begin[d], x_dims[d], mode);
      offsets[d].push_back(s < 0 ? -1 : s * strides[d]);
    }
  scatter_add_axes(ctx, dy, x_dims, offsets);
}

// ConcatGrad(dY, shape_1..shape_n; axis): output i is dY's slab along `axis` of input i's extent.
void concat_grad(KernelContext& ctx, int64_t axis_attr) {
  const Tensor& dy = ctx.input(0);
  const size_t n = ctx.num_inputs() - 1;
  if (n != ctx.num_outputs())
    throw ctx.error("ConcatGrad has " + std::to_string(n) + " shapes but " + std::to_string(ctx.num_outputs()) +
                    " outputs");
  if (dy.rank() == 0) throw ctx.error("the gradient of a concatenation cannot be a scalar");
  const size_t axis = static_cast<size_t>(normalize_axis(axis_attr, static_cast<int64_t>(dy.rank()), ctx));
  std::vector<Dims> shapes(n);
  int64_t total = 0;
  for (size_t i = 0; i < n; ++i) {
    shapes[i] = shape_input(ctx, i + 1);
    bool fits = shapes[i].size() == dy.rank();
    for (size_t d = 0; fits && d < dy.rank(); ++d) fits = d == axis || shapes[i][d] == dy.dims()[d];
    if (!fits)
      throw ctx.error("input " + std::to_string(i) + " " + dims_to_string(shapes[i]) +
                      " is not a part of the gradient " + dims_to_string(dy.dims()) + " along axis " +
                      std::to_string(axis));
    total += shapes[i][axis];
  }
  if (total != dy.dims()[axis])
    throw ctx.error("the inputs' extents along axis " + std::to_string(axis) + " sum to " + std::to_string(total) +
                    ", the gradient has " + std::to_string(dy.dims()[axis]));
  const int64_t outer = product(dy.dims(), 0, axis), inner = product(dy.dims(), axis + 1);
  int64_t offset = 0;
  for (size_t i = 0; i < n; ++i) {
    const int64_t block = shapes[i][axis] * inner;
    if (ctx.output_wanted(i)) {
      Tensor& out = ctx.allocate_output(i, dy.dtype(), shapes[i]);
      dispatch_by_size(dy.dtype(), [&](auto tag) {
        using T = typename decltype(tag)::type;
        const T* in = data<T>(dy);
        T* o = mutable_data<T>(out);
        for (int64_t b = 0; b < outer; ++b) std::copy_n(in + b * total * inner + offset, block, o + b * block);
      });
    }
    offset += block;
  }
}

// TileGrad(dY, shape): dY [shape[d] * repeats[d]] summed over the repeats.
void tile_grad(KernelContext& ctx) {
  const Tensor& dy = ctx.input(0);
  const Dims shape = shape_input(ctx, 1);
  bool fits = shape.size() == dy.rank();
  for (size_t d = 0; fits && d < shape.size(); ++d)
    fits = shape[d] == 0 ? dy.dims()[d] == 0 : dy.dims()[d] % shape[d] == 0;
  if (!fits) throw ctx.error("gradient " + dims_to_string(dy.dims()) + " is not a tiling of " + dims_to_string(shape));
  const Dims strides = strides_of(shape);
  std::vector<Dims> offsets(shape.size());
  for (size_t d = 0; d < shape.size(); ++d)
    for (int64_t i = 0; i < dy.dims()[d]; ++i) offsets[d].push_back((i % shape[d]) * strides[d]);
  scatter_add_axes(ctx, dy, shape, offsets);
}

// CastLike(X, like): X converted to like's dtype. ONNX's CastLike only exists from opset 15, and
// Cast-1 names types by string: the backward graph of a Cast uses this one at every opset.
void cast_like(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const DataType to = ctx.input(1).dtype();
  if (x.dtype() == to) return ctx.set_output(0, x);
  cast_into(x, ctx.allocate_output(0, to, x.dims()), ctx);
}

}  // namespace

void register_tensor_grad_kernels(KernelRegistry& registry) {
  add_grad_kernel(registry, "SumToShape", [](const KernelInit&) { return make_kernel(sum_to_shape); });
  add_grad_kernel(registry, "Scale", make_scale);
  add_grad_kernel(registry, "ZerosLike", [](const KernelInit&) { return make_kernel([](KernelContext& ctx) { fill_like(ctx, 0); }); });
  add_grad_kernel(registry, "OnesLike", [](const KernelInit&) { return make_kernel([](KernelContext& ctx) { fill_like(ctx, 1); }); });
  add_grad_kernel(registry, "GatherGrad", [](const KernelInit& init) {
    const int64_t axis = init.attr_int("axis", 0);
    return make_kernel([axis](KernelContext& ctx) { gather_grad(ctx, axis); });
  });
  add_grad_kernel(registry, "GatherElementsGrad", [](const KernelInit& init) {
    const int64_t axis = init.attr_int("axis", 0);
    return make_kernel([axis](KernelContext& ctx) { gather_elements_grad(ctx, axis); });
  });
  add_grad_kernel(registry, "SliceGrad", [](const KernelInit&) { return make_kernel(slice_grad); });
  add_grad_kernel(registry, "PadGrad", [](const KernelInit& init) {
    const std::string name = init.attr_string("mode", "constant");
    PadMode mode;
    if (name == "constant") mode = PadMode::kConstant;
    else if (name == "reflect") mode = PadMode::kReflect;
    else if (name == "edge") mode = PadMode::kEdge;
    else if (name == "wrap") mode = PadMode::kWrap;
    else throw init.error("unknown pad mode '" + name + "'");
    return make_kernel([mode](KernelContext& ctx) { pad_grad(ctx, mode); });
  });
  add_grad_kernel(registry, "ConcatGrad", [](const KernelInit& init) {
    if (!init.has_attr("axis")) throw init.error("attribute 'axis' is required");
    const int64_t axis = init.attr_int("axis", 0);
    return make_kernel([axis](KernelContext& ctx) { concat_grad(ctx, axis); });
  });
  add_grad_kernel(registry, "TileGrad", [](const KernelInit&) { return make_kernel(tile_grad); });
  add_grad_kernel(registry, "CastLike", [](const KernelInit&) { return make_kernel(cast_like); });
}

}  // namespace tunnx::cpu
