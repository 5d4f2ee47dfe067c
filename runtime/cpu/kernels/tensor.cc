// Shape and data-movement ops, constants, Cast and Dropout. Each op's shape rule sits next to its
// kernel. Movement ops are dtype-blind: they move elements by size (strings as std::string), so one
// kernel serves every dtype. Pure views (Identity, Reshape, Flatten, Squeeze, Unsqueeze) share the
// input's storage instead of copying it.
#include <algorithm>
#include <charconv>
#include <climits>
#include <cmath>
#include <cstring>
#include <limits>
#include <optional>
#include <random>
#include <set>

#include "runtime/cpu/kernels/cast.h"
#include "runtime/cpu/kernels/common.h"
#include "runtime/cpu/kernels/kernels.h"

namespace tunnx::cpu {
namespace {

using Dims = std::vector<int64_t>;

// out[i_0..i_{r-1}] = src[sum_d offsets[d][i_d]], where offsets[d] (one entry per output index along
// dim d) holds source index times source stride; a negative entry means "outside the source" and
// yields `fill` (Pad's constant). Transpose, Slice, Expand, Tile, Pad and DepthToSpace are this one
// loop with different offset tables.
template <typename T>
void gather_axes(const T* src, T* out, const Dims& out_dims, const std::vector<Dims>& offsets, const T& fill) {
  const int64_t total = product(out_dims);
  if (total == 0) return;
  const size_t rank = out_dims.size();
  if (rank == 0) {
    out[0] = src[0];
    return;
  }
  const int64_t inner = out_dims[rank - 1];
  const Dims& last = offsets[rank - 1];
  Dims index(rank - 1, 0);
  for (int64_t o = 0; o < total; o += inner) {
    int64_t base = 0;
    bool outside = false;
    for (size_t d = 0; d + 1 < rank; ++d) {
      int64_t off = offsets[d][static_cast<size_t>(index[d])];
      outside |= off < 0;
      base += off;
    }
    T* dst = out + o;
    for (int64_t i = 0; i < inner; ++i) dst[i] = outside || last[i] < 0 ? fill : src[base + last[i]];
    for (size_t d = rank - 1; d-- > 0;) {
      if (++index[d] < out_dims[d]) break;
      index[d] = 0;
    }
  }
}

// Allocates output 0 with `out_dims` (`final_dims` when the gather ran on a higher-rank view) and
// fills it by gather_axes; `fill` is a one-element tensor of x's dtype, or null for zero / "".
void gather_output(KernelContext& ctx, const Tensor& x, const Dims& out_dims, const std::vector<Dims>& offsets,
                   const Tensor* fill = nullptr, const Dims* final_dims = nullptr) {
  Tensor& y = ctx.allocate_output(0, x.dtype(), final_dims ? *final_dims : out_dims);
  dispatch_by_size(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    T f{};
    if (fill && fill->numel() > 0) f = data<T>(*fill)[0];
    gather_axes(data<T>(x), mutable_data<T>(y), out_dims, offsets, f);
  });
}

// Offsets of `dims` (row-major) read through permutation `perm`; sets the permuted dims.
std::vector<Dims> transpose_offsets(const Dims& dims, const Dims& perm, Dims& out_dims) {
  Dims strides = strides_of(dims);
  std::vector<Dims> offsets(perm.size());
  out_dims.assign(perm.size(), 0);
  for (size_t d = 0; d < perm.size(); ++d) {
    const size_t axis = static_cast<size_t>(perm[d]);
    out_dims[d] = dims[axis];
    for (int64_t i = 0; i < dims[axis]; ++i) offsets[d].push_back(i * strides[axis]);
  }
  return offsets;
}

// Transpose with the last axis kept last (attention's head split and merge, [b, s, h, d] <->
// [b, h, s, d]): whole rows of the last dim are copied, split among the run's threads, instead of
// one gathered element at a time.
void transpose_keeping_rows(KernelContext& ctx, const Tensor& x, const Dims& perm) {
  const size_t rank = x.rank();
  Dims out_dims(rank);
  for (size_t i = 0; i < rank; ++i) out_dims[i] = x.dims()[static_cast<size_t>(perm[i])];
  Tensor& y = ctx.allocate_output_uninitialized(0, x.dtype(), out_dims);
  if (y.numel() == 0) return;
  const Dims in_strides = strides_of(x.dims());
  const size_t bytes = element_size(x.dtype());
  const int64_t inner = x.dims().back(), rows = x.numel() / inner;
  const char* src = static_cast<const char*>(x.data());
  char* dst = static_cast<char*>(y.mutable_data());
  const int threads = x.numel() >= kParallelElements ? max_threads() : 1;
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t row = 0; row < rows; ++row) {
    int64_t offset = 0;
    for (int64_t rest = row, i = static_cast<int64_t>(rank) - 2; i >= 0; --i) {
      const int64_t dim = out_dims[static_cast<size_t>(i)];
      offset += (rest % dim) * in_strides[static_cast<size_t>(perm[static_cast<size_t>(i)])];
      rest /= dim;
    }
    std::memcpy(dst + static_cast<size_t>(row * inner) * bytes, src + static_cast<size_t>(offset) * bytes,
                static_cast<size_t>(inner) * bytes);
  }
}

// Whether `perm` keeps every dim but swaps the last two.
bool swaps_last_two(const Dims& perm) {
  const size_t rank = perm.size();
  if (rank < 2 || perm[rank - 2] != static_cast<int64_t>(rank) - 1 || perm[rank - 1] != static_cast<int64_t>(rank) - 2)
    return false;
  for (size_t i = 0; i + 2 < rank; ++i)
    if (perm[i] != static_cast<int64_t>(i)) return false;
  return true;
}

// Size-1 dims do not move memory, and input dims that stay next to each other, in order, move as
// one. With those dropped and merged, what is left of `perm` may be no move at all (a view, as
// tf2onnx's [N, C, L, 1] -> [N, L, C, 1] for N = 1 is not), a swap of the last two dims (NCHW <->
// NHWC: [N, C, H*W] <-> [N, H*W, C]), or a perm that keeps the last dim: each has a fast path. False,
// with nothing written, otherwise.
bool transpose_reduced(KernelContext& ctx, const Tensor& x, const Dims& perm) {
  const size_t rank = perm.size();
  if (x.numel() == 0) return false;
  Dims kept, reduced, out_dims(rank);
  std::vector<int64_t> position(rank, -1);
  for (size_t i = 0; i < rank; ++i)
    if (x.dims()[i] != 1) {
      position[i] = static_cast<int64_t>(kept.size());
      kept.push_back(x.dims()[i]);
    }
  for (size_t i = 0; i < rank; ++i) {
    const size_t from = static_cast<size_t>(perm[i]);
    out_dims[i] = x.dims()[from];
    if (position[from] >= 0) reduced.push_back(position[from]);
  }
  // Runs of kept input axes that follow each other in the output: (first axis, count), output order.
  std::vector<std::pair<int64_t, int64_t>> runs;
  for (int64_t a : reduced)
    if (!runs.empty() && a == runs.back().first + runs.back().second) ++runs.back().second;
    else runs.emplace_back(a, 1);
  if (kept.size() == rank && runs.size() == rank) return false;  // nothing to drop or merge: the general paths
  std::vector<size_t> by_input(runs.size());
  for (size_t i = 0; i < runs.size(); ++i) by_input[i] = i;
  std::sort(by_input.begin(), by_input.end(), [&](size_t a, size_t b) { return runs[a].first < runs[b].first; });
  Dims merged(runs.size()), merged_perm(runs.size());
  for (size_t k = 0; k < by_input.size(); ++k) {
    const auto [first, count] = runs[by_input[k]];
    merged[k] = 1;
    for (int64_t a = first; a < first + count; ++a) merged[k] *= kept[static_cast<size_t>(a)];
    merged_perm[by_input[k]] = static_cast<int64_t>(k);
  }
  if (merged.size() <= 1) {  // every dim in place
    ctx.set_output(0, Value(x.reshaped(out_dims)));
    return true;
  }
  const Tensor view = x.reshaped(merged);
  if (swaps_last_two(merged_perm)) {
    swap_last_two_dims(ctx, view);
  } else if (merged_perm.back() == static_cast<int64_t>(merged.size()) - 1 && merged.back() >= 16) {
    transpose_keeping_rows(ctx, view, merged_perm);
  } else {
    return false;
  }
  ctx.reshape_output(0, out_dims);
  return true;
}

// Axes normalized into [0, rank) and checked for repeats (a scalar has no axis 0 here).
Dims normalize_axes(Dims axes, int64_t rank, const KernelContext& ctx) {
  std::set<int64_t> seen;
  for (int64_t& a : axes) {
    if (a < -rank || a >= rank)
      throw ctx.error("axis " + std::to_string(a) + " is out of range for rank " + std::to_string(rank));
    a = a < 0 ? a + rank : a;
    if (!seen.insert(a).second) throw ctx.error("axis " + std::to_string(a) + " is repeated");
  }
  return axes;
}

// An optional int list that is an attribute before `input_since` and input `input_index` from then on.
std::optional<Dims> attr_or_input(const KernelContext& ctx, int64_t opset, int64_t input_since, size_t input_index,
                                  const std::optional<Dims>& attr) {
  if (opset < input_since) return attr;
  if (!ctx.has_input(input_index)) return std::nullopt;
  return read_int_values(ctx.input(input_index), ctx);
}

std::optional<Dims> optional_ints(const KernelInit& init, const std::string& name) {
  if (!init.has_attr(name)) return std::nullopt;
  return init.attr_ints(name);
}

// The value 1 (true) as a one-element tensor of `dtype`.
Tensor one_of(DataType dtype, const KernelContext& ctx) {
  Tensor one(dtype, {1});
  cast_into(Tensor::from_vector<bool>({1}, {true}), one, ctx);
  return one;
}

// Every element of `y` set to the single element of `value` (same dtype).
void fill_with(Tensor& y, const Tensor& value) {
  dispatch_by_size(y.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    std::fill_n(mutable_data<T>(y), y.numel(), data<T>(value)[0]);
  });
}

// ---- Constants ---------------------------------------------------------------------------------

// A sparse_value attribute as a dense tensor. Indices are [NNZ] (linearized) or [NNZ, rank].
Tensor densify(const ir::SparseTensor& sparse, const KernelInit& init) {
  Tensor dense(sparse.values.dtype(), sparse.dims);
  const Tensor& idx = sparse.indices;
  const int64_t nnz = sparse.values.numel(), rank = static_cast<int64_t>(sparse.dims.size());
  const bool linear = idx.rank() == 1;
  if (idx.dtype() != DataType::kInt64 || (linear && idx.numel() != nnz) || (!linear && idx.numel() != nnz * rank))
    throw init.error("sparse_value indices " + dims_to_string(idx.dims()) + " do not fit " + std::to_string(nnz) +
                     " values of rank " + std::to_string(rank));
  const int64_t* ip = data<int64_t>(idx);
  const Dims strides = strides_of(sparse.dims);
  dispatch_by_size(dense.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* values = data<T>(sparse.values);
    T* out = mutable_data<T>(dense);
    for (int64_t k = 0; k < nnz; ++k) {
      int64_t flat = 0;
      if (linear) {
        flat = ip[k];
      } else {
        for (int64_t d = 0; d < rank; ++d) {
          const int64_t i = ip[k * rank + d];
          if (i < 0 || i >= sparse.dims[static_cast<size_t>(d)]) flat = -1;
          if (flat >= 0) flat += i * strides[static_cast<size_t>(d)];
        }
      }
      if (flat < 0 || flat >= dense.numel()) throw init.error("sparse_value index out of range");
      out[flat] = values[k];
    }
  });
  return dense;
}

// The value of a Constant node, from whichever value attribute it carries.
Tensor constant_value(const KernelInit& init) {
  for (const ir::Attribute& a : init.node().attributes) {
    if (a.name == "value") return a.t;
    if (a.name == "sparse_value") return densify(a.sparse_tensor, init);
    if (a.name == "value_float") return Tensor::from_vector<float>({}, {a.f});
    if (a.name == "value_floats") return Tensor::from_vector<float>({static_cast<int64_t>(a.floats.size())}, a.floats);
    if (a.name == "value_int") return Tensor::from_vector<int64_t>({}, {a.i});
    if (a.name == "value_ints") return Tensor::from_vector<int64_t>({static_cast<int64_t>(a.ints.size())}, a.ints);
    if (a.name == "value_string") return Tensor::from_vector<std::string>({}, {a.s});
    if (a.name == "value_strings")
      return Tensor::from_vector<std::string>({static_cast<int64_t>(a.strings.size())}, a.strings);
  }
  throw init.error("Constant needs one of the attributes value, sparse_value, value_float(s), value_int(s), "
                   "value_string(s)");
}

// ---- Pad ---------------------------------------------------------------------------------------

enum class PadMode { kConstant, kReflect, kEdge, kWrap };

// Source index along a dim of size n for padded position j (j may lie outside [0, n)); -1: constant.
int64_t pad_source(int64_t j, int64_t n, PadMode mode) {
  if (j >= 0 && j < n) return j;
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

void pad_kernel(KernelContext& ctx, int64_t opset, PadMode mode, const Dims& attr_pads, float attr_value) {
  const Tensor& x = ctx.input(0);
  const int64_t rank = static_cast<int64_t>(x.rank());
  Dims pads = opset < 11 ? attr_pads : read_int_values(ctx.input(1), ctx);
  Dims axes(static_cast<size_t>(rank));
  for (int64_t i = 0; i < rank; ++i) axes[static_cast<size_t>(i)] = i;
  if (opset >= 18 && ctx.has_input(3)) axes = normalize_axes(read_int_values(ctx.input(3), ctx), rank, ctx);
  const size_t n_axes = axes.size();
  if (pads.size() != 2 * n_axes)
    throw ctx.error("pads has " + std::to_string(pads.size()) + " values, expected " + std::to_string(2 * n_axes));
  Dims begin(static_cast<size_t>(rank), 0), end(static_cast<size_t>(rank), 0);
  for (size_t i = 0; i < n_axes; ++i) {
    begin[static_cast<size_t>(axes[i])] = pads[i];
    end[static_cast<size_t>(axes[i])] = pads[n_axes + i];
  }
  const Dims strides = strides_of(x.dims());
  Dims out_dims(static_cast<size_t>(rank));
  std::vector<Dims> offsets(static_cast<size_t>(rank));
  for (size_t d = 0; d < static_cast<size_t>(rank); ++d) {
    const int64_t n = x.dims()[d];
    out_dims[d] = n + begin[d] + end[d];
    if (out_dims[d] < 0) throw ctx.error("pads remove more than dim " + std::to_string(d) + " holds");
    if (n == 0 && out_dims[d] > 0 && mode != PadMode::kConstant)
      throw ctx.error("cannot pad an empty dim in this mode");
    for (int64_t j = 0; j < out_dims[d]; ++j) {
      const int64_t s = pad_source(j - begin[d], n, mode);
      offsets[d].push_back(s < 0 ? -1 : s * strides[d]);
    }
  }
  Tensor fill;
  if (opset < 11) {
    if (x.dtype() != DataType::kString) {
      fill = Tensor(x.dtype(), {1});
      cast_into(Tensor::from_vector<float>({1}, {attr_value}), fill, ctx);
    }
  } else if (ctx.has_input(2)) {
    fill = ctx.input(2);
    if (fill.dtype() != x.dtype()) throw ctx.error("constant_value must have the dtype of data");
  }
  gather_output(ctx, x, out_dims, offsets, fill.defined() ? &fill : nullptr);
}

// CenterCropPad (opset 18): each listed axis becomes shape[i] long, cropped or zero-padded about its
// centre. An odd difference cuts or pads one more on the right: the left side moves by
// floor(|dim - target| / 2) either way.
void center_crop_pad_kernel(KernelContext& ctx, const std::optional<Dims>& axes_attr) {
  const Tensor& x = ctx.input(0);
  const int64_t rank = static_cast<int64_t>(x.rank());
  const Dims shape = read_int_values(ctx.input(1), ctx);
  Dims axes(static_cast<size_t>(rank));
  for (int64_t i = 0; i < rank; ++i) axes[static_cast<size_t>(i)] = i;
  if (axes_attr) axes = normalize_axes(*axes_attr, rank, ctx);
  if (shape.size() != axes.size())
    throw ctx.error("shape has " + std::to_string(shape.size()) + " values for " + std::to_string(axes.size()) +
                    " axes of input " + dims_to_string(x.dims()));
  Dims out_dims = x.dims();
  for (size_t i = 0; i < axes.size(); ++i) {
    if (shape[i] < 0) throw ctx.error("shape " + dims_to_string(shape) + " has a negative dim");
    out_dims[static_cast<size_t>(axes[i])] = shape[i];
  }
  const Dims strides = strides_of(x.dims());
  std::vector<Dims> offsets(static_cast<size_t>(rank));
  for (size_t d = 0; d < static_cast<size_t>(rank); ++d) {
    const int64_t n = x.dims()[d], m = out_dims[d];
    const int64_t shift = n >= m ? (n - m) / 2 : -((m - n) / 2);  // source index of output index 0
    for (int64_t j = 0; j < m; ++j) {
      const int64_t s = j + shift;
      offsets[d].push_back(s >= 0 && s < n ? s * strides[d] : -1);
    }
  }
  gather_output(ctx, x, out_dims, offsets);
}

// ---- Slice -------------------------------------------------------------------------------------

void slice_kernel(KernelContext& ctx, const Dims& starts, const Dims& ends, std::optional<Dims> axes_in,
                  std::optional<Dims> steps_in) {
  const Tensor& x = ctx.input(0);
  const int64_t rank = static_cast<int64_t>(x.rank());
  if (starts.size() != ends.size()) throw ctx.error("starts and ends differ in length");
  Dims axes = axes_in ? *axes_in : Dims();
  if (!axes_in)
    for (size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<int64_t>(i));
  axes = normalize_axes(axes, rank, ctx);
  Dims steps = steps_in ? *steps_in : Dims(starts.size(), 1);
  if (axes.size() != starts.size() || steps.size() != starts.size())
    throw ctx.error("starts, ends, axes and steps must have the same length");
  Dims first(static_cast<size_t>(rank), 0), step(static_cast<size_t>(rank), 1), out_dims = x.dims();
  for (size_t i = 0; i < axes.size(); ++i) {
    const size_t a = static_cast<size_t>(axes[i]);
    const int64_t n = x.dims()[a], st = std::max<int64_t>(steps[i], -INT64_MAX);
    if (st == 0) throw ctx.error("slice step must not be 0");
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
  if (out_dims == x.dims() && std::all_of(step.begin(), step.end(), [](int64_t s) { return s == 1; })) {
    ctx.set_output(0, Value(x));  // the whole tensor (exporters write such slices): shared, not copied
    return;
  }
  const Dims strides = strides_of(x.dims());
  std::vector<Dims> offsets(static_cast<size_t>(rank));
  for (size_t d = 0; d < static_cast<size_t>(rank); ++d)
    for (int64_t i = 0; i < out_dims[d]; ++i) offsets[d].push_back((first[d] + i * step[d]) * strides[d]);
  if (rank >= 1 && step.back() == 1 && x.dtype() != DataType::kString) {
    // The last dim read forwards: whole runs of it are contiguous in X, copied as rows (the slices of
    // a recurrent layer's weights and state that exporters write take most of a small model's run).
    Tensor& y = ctx.allocate_output_uninitialized(0, x.dtype(), out_dims);
    if (y.numel() == 0) return;
    const size_t bytes = element_size(x.dtype());
    const int64_t inner = out_dims.back(), rows = y.numel() / inner;
    const char* src = static_cast<const char*>(x.data());
    char* dst = static_cast<char*>(y.mutable_data());
    const int threads = y.numel() >= kParallelElements ? max_threads() : 1;
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t row = 0; row < rows; ++row) {
      int64_t offset = offsets.back()[0];
      for (int64_t rest = row, d = rank - 2; d >= 0; --d) {
        const size_t dd = static_cast<size_t>(d);
        offset += offsets[dd][static_cast<size_t>(rest % out_dims[dd])];
        rest /= out_dims[dd];
      }
      std::memcpy(dst + static_cast<size_t>(row * inner) * bytes, src + static_cast<size_t>(offset) * bytes,
                  static_cast<size_t>(inner) * bytes);
    }
    return;
  }
  gather_output(ctx, x, out_dims, offsets);
}

// ---- Split / Concat ----------------------------------------------------------------------------

// An output whose every element the kernel writes: not zero-filled first (strings still start empty).
Tensor& allocate_every_element_written(KernelContext& ctx, size_t i, DataType dtype, const Dims& dims) {
  return dtype == DataType::kString ? ctx.allocate_output(i, dtype, dims) : ctx.allocate_output_uninitialized(i, dtype, dims);
}

void split_kernel(KernelContext& ctx, int64_t axis_attr, std::optional<Dims> split, int64_t num_outputs) {
  const Tensor& x = ctx.input(0);
  if (x.rank() == 0) throw ctx.error("cannot split a scalar");
  const size_t axis = static_cast<size_t>(normalize_axis(axis_attr, static_cast<int64_t>(x.rank()), ctx));
  const int64_t n = x.dims()[axis];
  const size_t outputs = ctx.num_outputs();
  if (num_outputs > 0 && static_cast<size_t>(num_outputs) != outputs)
    throw ctx.error("num_outputs is " + std::to_string(num_outputs) + " but the node has " + std::to_string(outputs));
  Dims sizes;
  if (split) {
    sizes = *split;
    int64_t sum = 0;
    for (int64_t s : sizes) {
      if (s < 0) throw ctx.error("split sizes must not be negative");
      sum += s;
    }
    if (sizes.size() != outputs || sum != n)
      throw ctx.error("split " + dims_to_string(sizes) + " does not divide a dim of " + std::to_string(n) + " into " +
                      std::to_string(outputs) + " outputs");
  } else {  // equal parts; when uneven (opset 18's num_outputs) the last one is smaller
    const int64_t chunk = (n + static_cast<int64_t>(outputs) - 1) / static_cast<int64_t>(outputs);
    for (size_t i = 0, left = static_cast<size_t>(n); i < outputs; ++i) {
      sizes.push_back(std::min<int64_t>(chunk, static_cast<int64_t>(left)));
      left -= static_cast<size_t>(sizes.back());
    }
  }
  const int64_t outer = product(x.dims(), 0, axis), inner = product(x.dims(), axis + 1);
  int64_t offset = 0;
  for (size_t o = 0; o < outputs; ++o) {
    Dims dims = x.dims();
    dims[axis] = sizes[o];
    if (ctx.output_wanted(o)) {
      Tensor& y = allocate_every_element_written(ctx, o, x.dtype(), dims);
      dispatch_by_size(x.dtype(), [&](auto tag) {
        using T = typename decltype(tag)::type;
        const T* in = data<T>(x);
        T* out = mutable_data<T>(y);
        const int64_t block = sizes[o] * inner;
        const int threads = outer * block >= kParallelElements && outer > 1 ? max_threads() : 1;
#pragma omp parallel for schedule(static) num_threads(threads)
        for (int64_t b = 0; b < outer; ++b) std::copy_n(in + b * n * inner + offset * inner, block, out + b * block);
      });
    }
    offset += sizes[o];
  }
}

void concat_kernel(KernelContext& ctx, int64_t axis_attr) {
  const Tensor& first = ctx.input(0);
  const int64_t rank = static_cast<int64_t>(first.rank());
  if (rank == 0) throw ctx.error("cannot concatenate scalars");
  const size_t axis = static_cast<size_t>(normalize_axis(axis_attr, rank, ctx));
  Dims dims = first.dims();
  dims[axis] = 0;
  for (size_t i = 0; i < ctx.num_inputs(); ++i) {
    const Tensor& t = ctx.input(i);
    bool fits = t.dtype() == first.dtype() && t.rank() == first.rank();
    for (size_t d = 0; fits && d < t.rank(); ++d) fits = d == axis || t.dims()[d] == first.dims()[d];
    if (!fits) throw ctx.error("inputs " + dims_to_string(first.dims()) + " and " + dims_to_string(t.dims()) +
                               " cannot be concatenated on axis " + std::to_string(axis));
    dims[axis] += t.dims()[axis];
  }
  Tensor& y = allocate_every_element_written(ctx, 0, first.dtype(), dims);
  const int64_t outer = product(dims, 0, axis), inner = product(dims, axis + 1);
  dispatch_by_size(first.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* out = mutable_data<T>(y);
    // Each output row [outer index] gathers one block of every input: rows are split among threads.
    std::vector<const T*> ins;
    std::vector<int64_t> blocks;
    for (size_t i = 0; i < ctx.num_inputs(); ++i) {
      ins.push_back(data<T>(ctx.input(i)));
      blocks.push_back(ctx.input(i).dims()[axis] * inner);
    }
    const int64_t row = dims[axis] * inner;
    const int threads = outer * row >= kParallelElements && outer > 1 ? max_threads() : 1;
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t b = 0; b < outer; ++b) {
      T* dst = out + b * row;
      for (size_t i = 0; i < ins.size(); ++i) {
        std::copy_n(ins[i] + b * blocks[i], blocks[i], dst);
        dst += blocks[i];
      }
    }
  });
}

// ---- DepthToSpace / SpaceToDepth -----------------------------------------------------------------

// Both are a reshape to 6-D, a transpose and a reshape back to 4-D.
void block_rearrange(KernelContext& ctx, int64_t bs, bool to_space, bool crd) {
  const Tensor& x = ctx.input(0);
  if (x.rank() != 4) throw ctx.error("input must be 4-D (N, C, H, W)");
  const int64_t n = x.dims()[0], c = x.dims()[1], h = x.dims()[2], w = x.dims()[3];
  Dims view, perm, out_dims;
  if (to_space) {
    if (c % (bs * bs) != 0) throw ctx.error("channels must be a multiple of blocksize squared");
    const int64_t oc = c / (bs * bs);
    if (crd) view = {n, oc, bs, bs, h, w}, perm = {0, 1, 4, 2, 5, 3};
    else view = {n, bs, bs, oc, h, w}, perm = {0, 3, 4, 1, 5, 2};
    out_dims = {n, oc, h * bs, w * bs};
  } else {
    if (h % bs != 0 || w % bs != 0) throw ctx.error("height and width must be multiples of blocksize");
    view = {n, c, h / bs, bs, w / bs, bs};
    perm = crd ? Dims{0, 1, 3, 5, 2, 4} : Dims{0, 3, 5, 1, 2, 4};
    out_dims = {n, c * bs * bs, h / bs, w / bs};
  }
  Dims permuted;
  std::vector<Dims> offsets = transpose_offsets(view, perm, permuted);
  gather_output(ctx, x, permuted, offsets, nullptr, &out_dims);
}

// ---- Squeeze / Unsqueeze / Reshape ---------------------------------------------------------------

Dims squeeze_dims(const Dims& in, const std::optional<Dims>& axes_in, const KernelContext& ctx) {
  std::vector<bool> drop(in.size(), false);
  if (axes_in) {
    for (int64_t a : normalize_axes(*axes_in, static_cast<int64_t>(in.size()), ctx)) {
      if (in[static_cast<size_t>(a)] != 1)
        throw ctx.error("cannot squeeze axis " + std::to_string(a) + " of size " + std::to_string(in[a]));
      drop[static_cast<size_t>(a)] = true;
    }
  } else {
    for (size_t d = 0; d < in.size(); ++d) drop[d] = in[d] == 1;
  }
  Dims out;
  for (size_t d = 0; d < in.size(); ++d)
    if (!drop[d]) out.push_back(in[d]);
  return out;
}

Dims unsqueeze_dims(const Dims& in, const Dims& axes_in, const KernelContext& ctx) {
  const int64_t out_rank = static_cast<int64_t>(in.size() + axes_in.size());
  std::vector<bool> added(static_cast<size_t>(out_rank), false);
  for (int64_t a : normalize_axes(axes_in, out_rank, ctx)) added[static_cast<size_t>(a)] = true;
  Dims out;
  for (size_t d = 0, next = 0; d < added.size(); ++d) out.push_back(added[d] ? 1 : in[next++]);
  return out;
}

Dims reshape_dims(const Tensor& x, const Dims& shape, bool allow_zero, const KernelContext& ctx) {
  Dims out = shape;
  int64_t infer = -1, known = 1;
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == 0 && !allow_zero) {
      if (i >= x.rank()) throw ctx.error("shape " + dims_to_string(shape) + " copies a dim the input lacks");
      out[i] = x.dims()[i];
    }
    if (out[i] == -1) {
      if (infer >= 0) throw ctx.error("shape " + dims_to_string(shape) + " has more than one -1");
      infer = static_cast<int64_t>(i);
    } else if (out[i] < 0) {
      throw ctx.error("shape " + dims_to_string(shape) + " has a negative dim");
    } else {
      known *= out[i];
    }
  }
  if (infer >= 0) {
    if (known == 0 || x.numel() % known != 0)
      throw ctx.error("cannot reshape " + dims_to_string(x.dims()) + " to " + dims_to_string(shape));
    out[static_cast<size_t>(infer)] = x.numel() / known;
  }
  if (product(out) != x.numel())
    throw ctx.error("cannot reshape " + dims_to_string(x.dims()) + " to " + dims_to_string(shape));
  return out;
}

// ---- Dropout -----------------------------------------------------------------------------------

// Opset 1-6's is_test defaults to training, but exporters of that era left it unset on inference
// graphs; a session runs inference, so only opset 12's training_mode input selects training.
// Training: each element is kept with probability 1 - ratio and scaled by 1 / (1 - ratio); `seed`
// makes the mask the same on every run, otherwise each run draws a new one.
void dropout_kernel(KernelContext& ctx, int64_t opset, std::optional<int64_t> seed) {
  const Tensor& x = ctx.input(0);
  const bool training = opset >= 12 && ctx.has_input(2) && read_scalar(ctx.input(2), ctx) != 0;
  const double ratio = opset >= 12 && ctx.has_input(1) ? read_scalar(ctx.input(1), ctx) : 0.5;
  const bool want_mask = ctx.num_outputs() > 1 && ctx.output_wanted(1);
  if (training && ratio != 0) {  // ratio 0 drops nothing: the same as inference
    if (!(ratio > 0 && ratio < 1)) throw ctx.error("ratio must be in [0, 1) in training mode, got " + std::to_string(ratio));
    std::mt19937_64 rng(seed ? static_cast<uint64_t>(*seed) : std::random_device{}());
    std::uniform_real_distribution<double> uniform(0.0, 1.0);
    std::vector<bool> keep(static_cast<size_t>(x.numel()));
    for (size_t i = 0; i < keep.size(); ++i) keep[i] = uniform(rng) >= ratio;
    const double scale = 1.0 / (1.0 - ratio);
    dispatch(x.dtype(), ctx, FloatTypes{}, [&](auto tag) {
      using T = typename decltype(tag)::type;
      const T* in = data<T>(x);
      T* out = mutable_data<T>(ctx.allocate_output(0, x.dtype(), x.dims()));
      for (size_t i = 0; i < keep.size(); ++i)
        out[i] = keep[i] ? static_cast<T>(static_cast<double>(in[i]) * scale) : static_cast<T>(0.0);
    });
    if (want_mask) {
      bool* mask = mutable_data<bool>(ctx.allocate_output(1, DataType::kBool, x.dims()));
      for (size_t i = 0; i < keep.size(); ++i) mask[i] = keep[i];
    }
    return;
  }
  ctx.set_output(0, x);
  if (want_mask) {
    if (opset < 10) {  // the mask had the data's type then
      Tensor& mask = ctx.allocate_output(1, x.dtype(), x.dims());
      fill_with(mask, one_of(x.dtype(), ctx));
    } else {
      Tensor& mask = ctx.allocate_output(1, DataType::kBool, x.dims());
      std::fill_n(mutable_data<bool>(mask), mask.numel(), true);
    }
  }
}

// ---- ReverseSequence ---------------------------------------------------------------------------

void reverse_sequence_kernel(KernelContext& ctx, int64_t batch_axis, int64_t time_axis) {
  const Tensor& x = ctx.input(0);
  if (x.rank() < 2) throw ctx.error("input must have rank 2 or more");
  const Dims lens = read_int_values(ctx.input(1), ctx);
  const int64_t batch = x.dims()[static_cast<size_t>(batch_axis)], time = x.dims()[static_cast<size_t>(time_axis)];
  if (static_cast<int64_t>(lens.size()) != batch) throw ctx.error("sequence_lens must have one entry per batch");
  const int64_t inner = product(x.dims(), 2);
  Tensor& y = ctx.allocate_output(0, x.dtype(), x.dims());
  dispatch_by_size(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* in = data<T>(x);
    T* out = mutable_data<T>(y);
    for (int64_t b = 0; b < batch; ++b) {
      const int64_t len = lens[static_cast<size_t>(b)];
      if (len < 0 || len > time) throw ctx.error("sequence_lens entry " + std::to_string(len) + " is out of range");
      for (int64_t t = 0; t < time; ++t) {
        const int64_t src_t = t < len ? len - 1 - t : t;
        auto at = [&](int64_t tt) { return (batch_axis == 0 ? b * time + tt : tt * batch + b) * inner; };
        std::copy_n(in + at(src_t), inner, out + at(t));
      }
    }
  });
}

}  // namespace

void register_tensor_kernels(KernelRegistry& r) {
  register_cast_kernels(r);
  const std::vector<DataType> any = all_types();

  // Constant: the attribute's tensor, built once; every run hands out the same storage.
  add_kernel(r, "Constant", 1, INT_MAX, {}, [](const KernelInit& init) {
    // constant_value walks the attributes itself: one of these is the value.
    init.accept_attrs({"value", "sparse_value", "value_float", "value_floats", "value_int", "value_ints", "value_string",
                       "value_strings"});
    Tensor value = constant_value(init);
    return make_kernel([value](KernelContext& ctx) { ctx.set_output(0, value); });
  }, -1);

  // ConstantOfShape: dims from the int64 input, every element `value` (default float32 0).
  add_kernel(r, "ConstantOfShape", 9, INT_MAX, {DataType::kInt64}, [](const KernelInit& init) {
    const Tensor* attr = init.attr_tensor("value");
    Tensor value = attr ? *attr : Tensor::from_vector<float>({1}, {0.0f});
    if (value.numel() != 1) throw init.error("'value' must hold exactly one element");
    return make_kernel([value](KernelContext& ctx) {
      fill_with(ctx.allocate_output(0, value.dtype(), read_int_values(ctx.input(0), ctx)), value);
    });
  });

  // EyeLike: a 2-D tensor shaped like the input with ones on diagonal k.
  add_kernel(r, "EyeLike", 9, INT_MAX, any, [](const KernelInit& init) {
    const int64_t k = init.attr_int("k", 0);
    const int64_t dtype = init.attr_int("dtype", 0);
    if (dtype != 0 && (!is_known_data_type(static_cast<int32_t>(dtype)) || dtype == int64_t(DataType::kString)))
      throw init.error("unsupported dtype " + std::to_string(dtype));
    return make_kernel([k, dtype](KernelContext& ctx) {
      const Tensor& x = ctx.input(0);
      if (x.rank() != 2) throw ctx.error("input must be 2-D");
      Tensor& y = ctx.allocate_output(0, dtype ? static_cast<DataType>(dtype) : x.dtype(), x.dims());
      const int64_t rows = x.dims()[0], cols = x.dims()[1];
      const Tensor one = one_of(y.dtype(), ctx);
      dispatch_by_size(y.dtype(), [&](auto tag) {
        using T = typename decltype(tag)::type;
        T* out = mutable_data<T>(y);
        for (int64_t i = std::max<int64_t>(0, -k); i < rows && i + k < cols; ++i) out[i * cols + i + k] = data<T>(one)[0];
      });
    });
  });

  // Range: ceil((limit - start) / delta) values start, start + delta, ... The 16-bit floats compute in
  // float (stash_type 1, the default) or, with stash_type naming their own dtype (opset 27), round to
  // it after each operation as the spec's loop in that type would.
  add_kernel(r, "Range", 11, INT_MAX, {DataType::kFloat32, DataType::kFloat64, DataType::kInt16, DataType::kInt32,
                                       DataType::kInt64, DataType::kFloat16, DataType::kBFloat16},
             [](const KernelInit& init) {
    const int64_t stash = init.attr_int("stash_type", 1);
    return make_kernel([stash](KernelContext& ctx) {
      const Tensor& start_t = ctx.input(0);
      dispatch<float, double, int16_t, int32_t, int64_t, Float16, BFloat16>(start_t.dtype(), ctx, [&](auto tag) {
        using T = typename decltype(tag)::type;
        using C = Compute<T>;
        for (size_t i = 0; i < 3; ++i)
          if (ctx.input(i).dtype() != start_t.dtype() || ctx.input(i).numel() != 1)
            throw ctx.error("start, limit and delta must be scalars of one dtype");
        const C start = load(data<T>(ctx.input(0))[0]), limit = load(data<T>(ctx.input(1))[0]);
        const C delta = load(data<T>(ctx.input(2))[0]);
        if (delta == C(0)) throw ctx.error("delta must not be 0");
        const double count = std::ceil((static_cast<double>(limit) - static_cast<double>(start)) / static_cast<double>(delta));
        Tensor& y = ctx.allocate_output(0, start_t.dtype(), {std::max<int64_t>(0, static_cast<int64_t>(count))});
        T* out = mutable_data<T>(y);
        const bool round_each_step = kIs16BitFloat<T> && stash == static_cast<int64_t>(start_t.dtype());
        for (int64_t i = 0; i < y.numel(); ++i) {
          if (round_each_step) {
            const C step = load(static_cast<T>(load(static_cast<T>(static_cast<C>(i))) * delta));
            out[i] = static_cast<T>(start + step);
          } else {
            out[i] = static_cast<T>(start + static_cast<C>(i) * delta);
          }
        }
      });
    });
  });

  // Identity: any value (tensor, sequence, optional) passes through, sharing storage.
  add_kernel(r, "Identity", 1, INT_MAX, {}, [](const KernelInit&) {
    return make_kernel([](KernelContext& ctx) { ctx.set_output(0, ctx.has_input(0) ? ctx.input_value(0) : Value()); });
  }, -1);

  // Ops that only look at dims or view the same bytes with other dims also take the narrow types,
  // packed ones included (a view keeps ONNX's packing).
  std::vector<DataType> viewable = any;
  for (DataType t : narrow_types()) viewable.push_back(t);

  // Shape: the input's dims as int64[], sliced by start/end (opset 15) with Slice's clamping.
  add_kernel(r, "Shape", 1, INT_MAX, viewable, [](const KernelInit& init) {
    const int64_t start = init.attr_int("start", 0), end = init.attr_int("end", INT64_MAX);
    return make_kernel([start, end](KernelContext& ctx) {
      const Dims& dims = ctx.input(0).dims();
      const int64_t rank = static_cast<int64_t>(dims.size());
      auto clamp = [rank](int64_t i) { return std::clamp<int64_t>(i < 0 ? i + rank : i, 0, rank); };
      const int64_t s = clamp(start), e = std::max(s, clamp(end));
      ctx.set_output(0, Tensor::from_vector<int64_t>({e - s}, Dims(dims.begin() + s, dims.begin() + e)));
    });
  });

  add_kernel(r, "Size", 1, INT_MAX, viewable, [](const KernelInit&) {
    return make_kernel([](KernelContext& ctx) { ctx.set_output(0, Tensor::from_vector<int64_t>({}, {ctx.input(0).numel()})); });
  });

  // Reshape: 0 copies the input's dim (unless allowzero, opset 14), -1 is inferred. Opset 1-4 took
  // the shape as an attribute.
  add_kernel(r, "Reshape", 1, INT_MAX, viewable, [](const KernelInit& init) {
    const int64_t opset = init.opset();
    const Dims attr_shape = init.attr_ints("shape");
    const bool allow_zero = init.attr_int("allowzero", 0) != 0;
    return make_kernel([opset, attr_shape, allow_zero](KernelContext& ctx) {
      const Tensor& x = ctx.input(0);
      const Dims shape = opset < 5 ? attr_shape : read_int_values(ctx.input(1), ctx);
      ctx.set_output(0, x.reshaped(reshape_dims(x, shape, allow_zero, ctx)));
    });
  });

  // Flatten: 2-D (prod(dims[:axis]), prod(dims[axis:])); axis in [-rank, rank].
  add_kernel(r, "Flatten", 1, INT_MAX, viewable, [](const KernelInit& init) {
    const int64_t axis = init.attr_int("axis", 1);
    return make_kernel([axis](KernelContext& ctx) {
      const Tensor& x = ctx.input(0);
      const int64_t rank = static_cast<int64_t>(x.rank());
      if (axis < -rank || axis > rank) throw ctx.error("axis " + std::to_string(axis) + " is out of range");
      const size_t a = static_cast<size_t>(axis < 0 ? axis + rank : axis);
      ctx.set_output(0, x.reshaped({product(x.dims(), 0, a), product(x.dims(), a)}));
    });
  });

  // Squeeze / Unsqueeze: axes attribute before opset 13, input from 13.
  add_kernel(r, "Squeeze", 1, INT_MAX, viewable, [](const KernelInit& init) {
    const int64_t opset = init.opset();
    const std::optional<Dims> attr_axes = optional_ints(init, "axes");
    return make_kernel([opset, attr_axes](KernelContext& ctx) {
      const Tensor& x = ctx.input(0);
      ctx.set_output(0, x.reshaped(squeeze_dims(x.dims(), attr_or_input(ctx, opset, 13, 1, attr_axes), ctx)));
    });
  });
  add_kernel(r, "Unsqueeze", 1, INT_MAX, viewable, [](const KernelInit& init) {
    const int64_t opset = init.opset();
    const std::optional<Dims> attr_axes = optional_ints(init, "axes");
    return make_kernel([opset, attr_axes](KernelContext& ctx) {
      const Tensor& x = ctx.input(0);
      const std::optional<Dims> axes = attr_or_input(ctx, opset, 13, 1, attr_axes);
      if (!axes) throw ctx.error("axes are required");
      ctx.set_output(0, x.reshaped(unsqueeze_dims(x.dims(), *axes, ctx)));
    });
  });

  // Transpose: perm defaults to reversing the dims.
  add_kernel(r, "Transpose", 1, INT_MAX, any, [](const KernelInit& init) {
    const std::optional<Dims> attr_perm = optional_ints(init, "perm");
    return make_kernel([attr_perm](KernelContext& ctx) {
      const Tensor& x = ctx.input(0);
      const int64_t rank = static_cast<int64_t>(x.rank());
      Dims perm;
      if (attr_perm) perm = normalize_axes(*attr_perm, rank, ctx);
      else
        for (int64_t i = rank; i-- > 0;) perm.push_back(i);
      if (static_cast<int64_t>(perm.size()) != rank) throw ctx.error("perm must have one entry per dim");
      if (swaps_last_two(perm) && x.dtype() != DataType::kString) {
        swap_last_two_dims(ctx, x);
        return;
      }
      if (x.dtype() != DataType::kString && transpose_reduced(ctx, x, perm)) return;
      if (rank >= 2 && perm.back() == rank - 1 && x.dtype() != DataType::kString && x.dims().back() >= 16) {
        transpose_keeping_rows(ctx, x, perm);
        return;
      }
      Dims out_dims;
      std::vector<Dims> offsets = transpose_offsets(x.dims(), perm, out_dims);
      gather_output(ctx, x, out_dims, offsets);
    });
  });

  // Concat: axis defaulted to 1 in opset 1 and is required since 4.
  add_kernel(r, "Concat", 1, INT_MAX, any, [](const KernelInit& init) {
    if (init.opset() >= 4 && !init.has_attr("axis")) throw init.error("attribute 'axis' is required");
    const int64_t axis = init.attr_int("axis", 1);
    return make_kernel([axis](KernelContext& ctx) { concat_kernel(ctx, axis); });
  });

  // Split: sizes from input 1 (opset 1 and 13+) or the `split` attribute (1-12), else equal parts
  // (opset 18's num_outputs allows an uneven last part).
  add_kernel(r, "Split", 1, INT_MAX, any, [](const KernelInit& init) {
    const int64_t opset = init.opset(), axis = init.attr_int("axis", 0), num_outputs = init.attr_int("num_outputs", 0);
    const std::optional<Dims> attr_split = optional_ints(init, "split");
    return make_kernel([opset, axis, num_outputs, attr_split](KernelContext& ctx) {
      std::optional<Dims> split = attr_or_input(ctx, opset, 13, 1, attr_split);
      if (opset == 1 && ctx.has_input(1)) split = read_int_values(ctx.input(1), ctx);
      if (split && split->empty()) split.reset();
      split_kernel(ctx, axis, split, num_outputs);
    });
  });

  // Slice: starts/ends/axes attributes in opset 1-9; inputs (plus steps) from 10.
  add_kernel(r, "Slice", 1, INT_MAX, any, [](const KernelInit& init) {
    const int64_t opset = init.opset();
    const Dims starts = init.attr_ints("starts"), ends = init.attr_ints("ends");
    std::optional<Dims> axes = optional_ints(init, "axes");
    if (axes && axes->empty()) axes.reset();
    return make_kernel([opset, starts, ends, axes](KernelContext& ctx) {
      if (opset < 10) return slice_kernel(ctx, starts, ends, axes, std::nullopt);
      auto optional_input = [&](size_t i) -> std::optional<Dims> {
        if (!ctx.has_input(i)) return std::nullopt;
        return read_int_values(ctx.input(i), ctx);
      };
      slice_kernel(ctx, read_int_values(ctx.input(1), ctx), read_int_values(ctx.input(2), ctx), optional_input(3),
                   optional_input(4));
    });
  });

  // Expand: the input broadcast (both ways) with `shape`.
  add_kernel(r, "Expand", 8, INT_MAX, any, [](const KernelInit&) {
    return make_kernel([](KernelContext& ctx) {
      const Tensor& x = ctx.input(0);
      const Dims out_dims = broadcast_shapes({x.dims(), read_int_values(ctx.input(1), ctx)}, ctx);
      const Dims strides = strides_of(x.dims());
      const size_t lead = out_dims.size() - x.rank();
      std::vector<Dims> offsets(out_dims.size());
      for (size_t d = 0; d < out_dims.size(); ++d)
        for (int64_t i = 0; i < out_dims[d]; ++i)
          offsets[d].push_back(d < lead || x.dims()[d - lead] == 1 ? 0 : i * strides[d - lead]);
      gather_output(ctx, x, out_dims, offsets);
    });
  });

  // Tile: repeats per dim (opset 6+); opset 1 repeated `tiles` times along one `axis` (both inputs).
  add_kernel(r, "Tile", 1, INT_MAX, any, [](const KernelInit& init) {
    const int64_t opset = init.opset();
    return make_kernel([opset](KernelContext& ctx) {
      const Tensor& x = ctx.input(0);
      const int64_t rank = static_cast<int64_t>(x.rank());
      Dims repeats;
      if (opset < 6) {
        repeats.assign(x.rank(), 1);
        const int64_t axis = normalize_axis(static_cast<int64_t>(read_scalar(ctx.input(2), ctx)), rank, ctx);
        repeats[static_cast<size_t>(axis)] = static_cast<int64_t>(read_scalar(ctx.input(1), ctx));
      } else {
        repeats = read_int_values(ctx.input(1), ctx);
      }
      if (static_cast<int64_t>(repeats.size()) != rank) throw ctx.error("repeats must have one entry per dim");
      const Dims strides = strides_of(x.dims());
      Dims out_dims(x.rank());
      std::vector<Dims> offsets(x.rank());
      for (size_t d = 0; d < x.rank(); ++d) {
        if (repeats[d] < 0) throw ctx.error("repeats must not be negative");
        out_dims[d] = x.dims()[d] * repeats[d];
        for (int64_t i = 0; i < out_dims[d]; ++i) offsets[d].push_back((i % x.dims()[d]) * strides[d]);
      }
      gather_output(ctx, x, out_dims, offsets);
    });
  });

  // Pad: constant / reflect / edge / wrap. Opset 1 `paddings`, 2-10 `pads` and `value` attributes;
  // from 11 pads and constant_value are inputs, from 18 an axes input too.
  add_kernel(r, "Pad", 1, INT_MAX, any, [](const KernelInit& init) {
    const int64_t opset = init.opset();
    const std::string mode_name = init.attr_string("mode", "constant");
    PadMode mode;
    if (mode_name == "constant") mode = PadMode::kConstant;
    else if (mode_name == "reflect") mode = PadMode::kReflect;
    else if (mode_name == "edge") mode = PadMode::kEdge;
    else if (mode_name == "wrap") mode = PadMode::kWrap;
    else throw init.error("unknown pad mode '" + mode_name + "'");
    const Dims pads = init.attr_ints(opset == 1 ? "paddings" : "pads");
    const float value = init.attr_float("value", 0.0f);
    return make_kernel([opset, mode, pads, value](KernelContext& ctx) { pad_kernel(ctx, opset, mode, pads, value); });
  });

  // DepthToSpace (DCR, or CRD from opset 11).
  add_kernel(r, "DepthToSpace", 1, INT_MAX, any, [](const KernelInit& init) {
    const int64_t bs = init.required_attr("blocksize").i;
    const std::string mode = init.attr_string("mode", "DCR");
    if (bs <= 0) throw init.error("blocksize must be positive");
    if (mode != "DCR" && mode != "CRD") throw init.error("unknown mode '" + mode + "'");
    return make_kernel([bs, mode](KernelContext& ctx) { block_rearrange(ctx, bs, true, mode == "CRD"); });
  });
  // SpaceToDepth: DCR, or CRD from opset 28 (before it the attribute did not exist).
  add_kernel(r, "SpaceToDepth", 1, INT_MAX, any, [](const KernelInit& init) {
    const int64_t bs = init.required_attr("blocksize").i;
    const std::string mode = init.opset() >= 28 ? init.attr_string("mode", "DCR") : "DCR";
    if (bs <= 0) throw init.error("blocksize must be positive");
    if (mode != "DCR" && mode != "CRD") throw init.error("unknown mode '" + mode + "'");
    return make_kernel([bs, mode](KernelContext& ctx) { block_rearrange(ctx, bs, false, mode == "CRD"); });
  });

  // CenterCropPad: shape is an input, axes an attribute (default: every axis).
  add_kernel(r, "CenterCropPad", 18, INT_MAX, any, [](const KernelInit& init) {
    const std::optional<Dims> axes = optional_ints(init, "axes");
    return make_kernel([axes](KernelContext& ctx) { center_crop_pad_kernel(ctx, axes); });
  });

  // ReverseSequence: reverse the first sequence_lens[b] steps along time_axis for each batch b.
  add_kernel(r, "ReverseSequence", 10, INT_MAX, any, [](const KernelInit& init) {
    const int64_t batch_axis = init.attr_int("batch_axis", 1), time_axis = init.attr_int("time_axis", 0);
    if (!((batch_axis == 0 && time_axis == 1) || (batch_axis == 1 && time_axis == 0)))
      throw init.error("batch_axis and time_axis must be 0 and 1 in some order");
    return make_kernel([batch_axis, time_axis](KernelContext& ctx) { reverse_sequence_kernel(ctx, batch_axis, time_axis); });
  });

  // Dropout: at inference the output is the input and the mask all true. Opset 1-6 had is_test (0
  // means training), 7-11 a ratio attribute, 12+ ratio and training_mode inputs and a seed.
  add_kernel(r, "Dropout", 1, INT_MAX, kFloatTypes, [](const KernelInit& init) {
    const int64_t opset = init.opset();
    std::optional<int64_t> seed;
    if (init.has_attr("seed")) seed = init.attr_int("seed", 0);
    // Before opset 12 a session's Dropout is the identity (see dropout_kernel): the ratio and is_test
    // of those opsets cannot change the output.
    if (opset < 12) init.accept_attrs({"ratio", "is_test"});
    return make_kernel([opset, seed](KernelContext& ctx) { dropout_kernel(ctx, opset, seed); });
  });
}

}  // namespace tunnx::cpu
