// Indexing ops: Gather, GatherElements, GatherND, Scatter/ScatterElements, ScatterND, TensorScatter,
// NonZero, OneHot, Compress, Unique, Trilu. Index tensors are int32 or int64; negative indices count
// from the end of their axis, and an index outside [-dim, dim) is an error naming the index, the axis
// and its size.
// Each op's shape rule is written next to its kernel.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "runtime/cpu/kernels/common.h"
#include "runtime/cpu/kernels/kernels.h"

namespace tunnx::cpu {
namespace {

// Calls fn(TypeTag<T>{}) with the value type of `dtype`, for ops that compare or combine values.
template <typename Fn>
void dispatch_values(DataType dtype, const KernelContext& ctx, Fn&& fn) {
  dispatch<float, double, Float16, BFloat16, int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t,
           uint64_t, bool, std::string>(dtype, ctx, fn);
}

// An index made non-negative; throws when outside [-dim, dim).
int64_t fix_index(int64_t index, int64_t dim, int64_t axis, const KernelContext& ctx) {
  if (index < -dim || index >= dim)
    throw ctx.error("index " + std::to_string(index) + " is out of range [" + std::to_string(-dim) + ", " +
                    std::to_string(dim) + ") along axis " + std::to_string(axis));
  return index < 0 ? index + dim : index;
}

const Tensor& index_input(const KernelContext& ctx, size_t i) {
  const Tensor& t = ctx.input(i);
  if (t.dtype() != DataType::kInt32 && t.dtype() != DataType::kInt64)
    throw ctx.error(std::string("indices must be int32 or int64, got ") + to_string(t.dtype()));
  return t;
}

// ---- Gather: out = data[:axis] + indices.shape + data[axis+1:] -----------------------------------

void run_gather(KernelContext& ctx, int64_t axis_attr) {
  const Tensor& x = ctx.input(0);
  const Tensor& idx_t = index_input(ctx, 1);
  const auto rank = static_cast<int64_t>(x.rank());
  if (rank == 0) throw ctx.error("data must have rank >= 1");
  const int64_t axis = normalize_axis(axis_attr, rank, ctx);
  const auto a = static_cast<size_t>(axis);
  std::vector<int64_t> indices = read_int_values(idx_t, ctx);
  const int64_t dim = x.dims()[a];
  for (int64_t& i : indices) i = fix_index(i, dim, axis, ctx);

  std::vector<int64_t> out_dims(x.dims().begin(), x.dims().begin() + axis);
  out_dims.insert(out_dims.end(), idx_t.dims().begin(), idx_t.dims().end());
  out_dims.insert(out_dims.end(), x.dims().begin() + axis + 1, x.dims().end());
  const int64_t outer = product(x.dims(), 0, a), inner = product(x.dims(), a + 1, x.rank());
  const auto n = static_cast<int64_t>(indices.size());
  dispatch_by_size(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    Tensor& y = ctx.allocate_output(0, x.dtype(), out_dims);
    const T* in = data<T>(x);
    T* out = mutable_data<T>(y);
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t j = 0; j < n; ++j) {
        const T* src = in + (o * dim + indices[static_cast<size_t>(j)]) * inner;
        std::copy(src, src + inner, out + (o * n + j) * inner);
      }
  });
}

// ---- GatherElements / ScatterElements: indices and data have the same rank; element i of indices
// addresses data at i's coordinates with the axis coordinate replaced by the index. -----------------

// For each element of `idx_dims`, the flat offset into a tensor of `data_dims` with the axis
// coordinate zeroed, and the checked axis index from `indices`.
void element_offsets(const std::vector<int64_t>& data_dims, const std::vector<int64_t>& idx_dims, size_t axis,
                     std::vector<int64_t>& indices, const KernelContext& ctx) {
  const std::vector<int64_t> strides = strides_of(data_dims);
  std::vector<int64_t> coord(idx_dims.size(), 0);
  for (size_t i = 0; i < indices.size(); ++i) {
    int64_t offset = 0;
    for (size_t d = 0; d < coord.size(); ++d)
      if (d != axis) offset += coord[d] * strides[d];
    indices[i] = offset + fix_index(indices[i], data_dims[axis], static_cast<int64_t>(axis), ctx) * strides[axis];
    for (size_t d = coord.size(); d-- > 0;) {
      if (++coord[d] < idx_dims[d]) break;
      coord[d] = 0;
    }
  }
}

void check_element_shapes(const Tensor& x, const Tensor& idx, size_t axis, const KernelContext& ctx) {
  if (x.rank() == 0 || idx.rank() != x.rank())
    throw ctx.error("indices rank " + std::to_string(idx.rank()) + " must equal data rank " +
                    std::to_string(x.rank()) + " (>= 1)");
  for (size_t d = 0; d < x.rank(); ++d)
    if (d != axis && idx.dims()[d] > x.dims()[d])
      throw ctx.error("indices shape " + dims_to_string(idx.dims()) + " exceeds data shape " +
                      dims_to_string(x.dims()) + " outside the axis");
}

void run_gather_elements(KernelContext& ctx, int64_t axis_attr) {
  const Tensor& x = ctx.input(0);
  const Tensor& idx_t = index_input(ctx, 1);
  const auto axis = static_cast<size_t>(normalize_axis(axis_attr, static_cast<int64_t>(x.rank()), ctx));
  check_element_shapes(x, idx_t, axis, ctx);
  std::vector<int64_t> offsets = read_int_values(idx_t, ctx);
  element_offsets(x.dims(), idx_t.dims(), axis, offsets, ctx);
  dispatch_by_size(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    Tensor& y = ctx.allocate_output(0, x.dtype(), idx_t.dims());
    const T* in = data<T>(x);
    T* out = mutable_data<T>(y);
    for (size_t i = 0; i < offsets.size(); ++i) out[i] = in[offsets[i]];
  });
}

// ---- Scatter reductions ---------------------------------------------------------------------------

enum class Reduction { kNone, kAdd, kMul, kMax, kMin };

Reduction parse_reduction(const KernelInit& init) {
  const std::string r = init.attr_string("reduction", "none");
  if (r == "none") return Reduction::kNone;
  if (r == "add") return Reduction::kAdd;
  if (r == "mul") return Reduction::kMul;
  if (r == "max" && init.opset() >= 18) return Reduction::kMax;
  if (r == "min" && init.opset() >= 18) return Reduction::kMin;
  throw init.error("reduction '" + r + "' is not supported at opset " + std::to_string(init.opset()));
}

// `dst` combined with `src` by the reduction; bool add/mul act as or/and.
template <typename T> void combine(Reduction r, T& dst, const T& src) {
  if constexpr (std::is_same_v<T, std::string>) {
    dst = src;  // run_scatter rejects string reductions other than none
    (void)r;
  } else {
    switch (r) {
      case Reduction::kNone: dst = src; break;
      case Reduction::kAdd: dst = static_cast<T>(dst + src); break;
      case Reduction::kMul: dst = static_cast<T>(dst * src); break;
      case Reduction::kMax: if (src > dst) dst = src; break;
      case Reduction::kMin: if (src < dst) dst = src; break;
    }
  }
}

// output = data, then output[offsets[i] + k] (op)= updates[i * block + k], in index order (so
// duplicate indices with reduction none keep the last update).
void scatter_blocks(KernelContext& ctx, const Tensor& x, const Tensor& updates, const std::vector<int64_t>& offsets,
                    int64_t block, Reduction reduction) {
  if (updates.dtype() != x.dtype())
    throw ctx.error(std::string("updates dtype ") + to_string(updates.dtype()) + " differs from data dtype " +
                    to_string(x.dtype()));
  if (reduction != Reduction::kNone && x.dtype() == DataType::kString)
    throw ctx.error("reductions are not defined for strings");
  dispatch_values(x.dtype(), ctx, [&](auto tag) {
    using T = typename decltype(tag)::type;
    Tensor& y = ctx.allocate_output(0, x.dtype(), x.dims());
    const T* in = data<T>(x);
    const T* up = data<T>(updates);
    T* out = mutable_data<T>(y);
    std::copy(in, in + x.numel(), out);
    for (size_t i = 0; i < offsets.size(); ++i)
      for (int64_t k = 0; k < block; ++k) combine(reduction, out[offsets[i] + k], up[static_cast<int64_t>(i) * block + k]);
  });
}

void run_scatter_elements(KernelContext& ctx, int64_t axis_attr, Reduction reduction) {
  const Tensor& x = ctx.input(0);
  const Tensor& idx_t = index_input(ctx, 1);
  const Tensor& updates = ctx.input(2);
  const auto axis = static_cast<size_t>(normalize_axis(axis_attr, static_cast<int64_t>(x.rank()), ctx));
  check_element_shapes(x, idx_t, axis, ctx);
  if (updates.dims() != idx_t.dims())
    throw ctx.error("updates shape " + dims_to_string(updates.dims()) + " must equal indices shape " +
                    dims_to_string(idx_t.dims()));
  std::vector<int64_t> offsets = read_int_values(idx_t, ctx);
  element_offsets(x.dims(), idx_t.dims(), axis, offsets, ctx);
  scatter_blocks(ctx, x, updates, offsets, 1, reduction);
}

// ---- GatherND / ScatterND: the last dim of indices (k) addresses data[b..b+k); each index tuple
// picks a slice data[batch, i0..ik-1, ...]. GatherND out = indices[:-1] + data[b+k:]. -------------

// Flat offsets of the slices that the index tuples of `idx_t` address, one per tuple.
std::vector<int64_t> nd_offsets(const Tensor& x, const Tensor& idx_t, int64_t batch_dims, int64_t& slice,
                                const KernelContext& ctx) {
  const auto r = static_cast<int64_t>(x.rank()), q = static_cast<int64_t>(idx_t.rank());
  if (r < 1 || q < 1) throw ctx.error("data and indices must have rank >= 1");
  if (batch_dims < 0 || batch_dims >= std::min(r, q))
    throw ctx.error("batch_dims " + std::to_string(batch_dims) + " must be less than both ranks");
  const auto b = static_cast<size_t>(batch_dims);
  for (size_t d = 0; d < b; ++d)
    if (x.dims()[d] != idx_t.dims()[d])
      throw ctx.error("batch dims of data " + dims_to_string(x.dims()) + " and indices " +
                      dims_to_string(idx_t.dims()) + " differ");
  const int64_t k = idx_t.dims().back();
  if (k < 1 || k > r - batch_dims)
    throw ctx.error("indices last dim " + std::to_string(k) + " must be in [1, " + std::to_string(r - batch_dims) + "]");
  const std::vector<int64_t> tuples = read_int_values(idx_t, ctx);
  const std::vector<int64_t> strides = strides_of(x.dims());
  slice = product(x.dims(), b + static_cast<size_t>(k), x.rank());
  const int64_t batch_size = product(x.dims(), b, x.rank());
  const int64_t per_batch = product(idx_t.dims(), b, idx_t.rank() - 1);
  const int64_t count = product(idx_t.dims(), 0, idx_t.rank() - 1);
  std::vector<int64_t> offsets(static_cast<size_t>(count));
  for (int64_t t = 0; t < count; ++t) {
    int64_t offset = (t / per_batch) * batch_size;
    for (int64_t j = 0; j < k; ++j) {
      const auto axis = b + static_cast<size_t>(j);
      offset += fix_index(tuples[static_cast<size_t>(t * k + j)], x.dims()[axis], static_cast<int64_t>(axis), ctx) *
                strides[axis];
    }
    offsets[static_cast<size_t>(t)] = offset;
  }
  return offsets;
}

void run_gather_nd(KernelContext& ctx, int64_t batch_dims) {
  const Tensor& x = ctx.input(0);
  const Tensor& idx_t = index_input(ctx, 1);
  int64_t slice = 1;
  const std::vector<int64_t> offsets = nd_offsets(x, idx_t, batch_dims, slice, ctx);
  std::vector<int64_t> out_dims(idx_t.dims().begin(), idx_t.dims().end() - 1);
  out_dims.insert(out_dims.end(), x.dims().begin() + batch_dims + idx_t.dims().back(), x.dims().end());
  dispatch_by_size(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    Tensor& y = ctx.allocate_output(0, x.dtype(), out_dims);
    const T* in = data<T>(x);
    T* out = mutable_data<T>(y);
    for (size_t t = 0; t < offsets.size(); ++t)
      std::copy(in + offsets[t], in + offsets[t] + slice, out + static_cast<int64_t>(t) * slice);
  });
}

void run_scatter_nd(KernelContext& ctx, Reduction reduction) {
  const Tensor& x = ctx.input(0);
  const Tensor& idx_t = index_input(ctx, 1);
  const Tensor& updates = ctx.input(2);
  int64_t slice = 1;
  const std::vector<int64_t> offsets = nd_offsets(x, idx_t, 0, slice, ctx);
  std::vector<int64_t> expected(idx_t.dims().begin(), idx_t.dims().end() - 1);
  expected.insert(expected.end(), x.dims().begin() + idx_t.dims().back(), x.dims().end());
  if (updates.dims() != expected)
    throw ctx.error("updates shape " + dims_to_string(updates.dims()) + " must be " + dims_to_string(expected));
  scatter_blocks(ctx, x, updates, offsets, slice, reduction);
}

// ---- TensorScatter (opset 24): present = past with update's `seq` rows written along `axis` from
// write_indices[batch] on (0 without them), wrapping around max_seq in circular mode. past and
// update are [batch, ..., max_seq | seq, ...]; present has past's shape. -------------------------

void run_tensor_scatter(KernelContext& ctx, int64_t axis_attr, bool circular) {
  const Tensor& past = ctx.input(0);
  const Tensor& update = ctx.input(1);
  const auto rank = static_cast<int64_t>(past.rank());
  if (rank < 2) throw ctx.error("past_cache must have rank >= 2, got " + dims_to_string(past.dims()));
  const auto axis = static_cast<size_t>(normalize_axis(axis_attr, rank, ctx));
  if (axis == 0) throw ctx.error("axis must not be the batch dim 0");
  if (update.dtype() != past.dtype())
    throw ctx.error(std::string("update dtype ") + to_string(update.dtype()) + " differs from past_cache dtype " +
                    to_string(past.dtype()));
  bool fits = update.rank() == past.rank() && update.dims()[axis] <= past.dims()[axis];
  for (size_t d = 0; fits && d < past.rank(); ++d) fits = d == axis || update.dims()[d] == past.dims()[d];
  if (!fits)
    throw ctx.error("update shape " + dims_to_string(update.dims()) + " must be past_cache shape " +
                    dims_to_string(past.dims()) + " with at most " + std::to_string(past.dims()[axis]) +
                    " along axis " + std::to_string(axis));
  const int64_t batch = past.dims()[0], max_seq = past.dims()[axis], seq = update.dims()[axis];
  std::vector<int64_t> starts(static_cast<size_t>(batch), 0);
  if (ctx.has_input(2)) {
    const Tensor& w = ctx.input(2);
    if (w.dtype() != DataType::kInt64 || w.dims() != std::vector<int64_t>{batch})
      throw ctx.error("write_indices must be int64 [" + std::to_string(batch) + "], got " + to_string(w.dtype()) +
                      " " + dims_to_string(w.dims()));
    starts = read_int_values(w, ctx);
  }
  for (int64_t& start : starts) {
    if (circular) {
      if (max_seq > 0) start = ((start % max_seq) + max_seq) % max_seq;
    } else if (start < 0 || start + seq > max_seq) {
      throw ctx.error("write index " + std::to_string(start) + " plus " + std::to_string(seq) +
                      " updates does not fit max_sequence_length " + std::to_string(max_seq) + " in linear mode");
    }
  }
  const int64_t outer = product(past.dims(), 0, axis), inner = product(past.dims(), axis + 1);
  const int64_t per_batch = batch > 0 ? outer / batch : 0;
  dispatch_by_size(past.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    Tensor& y = ctx.allocate_output(0, past.dtype(), past.dims());
    const T* up = data<T>(update);
    T* out = mutable_data<T>(y);
    std::copy(data<T>(past), data<T>(past) + past.numel(), out);
    if (seq == 0) return;  // circular mode would divide by max_seq: nothing to write anyway
    for (int64_t o = 0; o < outer; ++o) {
      const int64_t start = starts[static_cast<size_t>(o / per_batch)];
      for (int64_t s = 0; s < seq; ++s) {
        const int64_t row = circular ? (start + s) % max_seq : start + s;
        std::copy_n(up + (o * seq + s) * inner, inner, out + (o * max_seq + row) * inner);
      }
    }
  });
}

// ---- NonZero: out int64 [rank, count], the coordinates of non-zero elements in row-major order ---

void run_nonzero(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  std::vector<int64_t> hits;
  dispatch_values(x.dtype(), ctx, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* in = data<T>(x);
    for (int64_t i = 0; i < x.numel(); ++i) {
      bool nz;
      if constexpr (std::is_same_v<T, std::string>) nz = !in[i].empty();
      else if constexpr (std::is_same_v<T, Float16> || std::is_same_v<T, BFloat16>) nz = static_cast<float>(in[i]) != 0;
      else nz = in[i] != T(0);
      if (nz) hits.push_back(i);
    }
  });
  const auto count = static_cast<int64_t>(hits.size());
  Tensor& y = ctx.allocate_output(0, DataType::kInt64, {static_cast<int64_t>(x.rank()), count});
  int64_t* out = mutable_data<int64_t>(y);
  for (int64_t j = 0; j < count; ++j) {
    int64_t flat = hits[static_cast<size_t>(j)];
    for (size_t d = x.rank(); d-- > 0;) {
      out[static_cast<int64_t>(d) * count + j] = flat % x.dims()[d];
      flat /= x.dims()[d];
    }
  }
}

// ---- OneHot: out = indices.shape with depth inserted at axis; dtype of values ([off, on]) ---------

void run_onehot(KernelContext& ctx, int64_t axis_attr) {
  const Tensor& idx_t = ctx.input(0);
  const Tensor& values = ctx.input(2);
  const double depth_value = read_scalar(ctx.input(1), ctx);
  if (!(depth_value >= 1)) throw ctx.error("depth must be >= 1, got " + std::to_string(depth_value));
  const auto depth = static_cast<int64_t>(depth_value);
  if (values.numel() != 2) throw ctx.error("values must hold [off_value, on_value]");
  const auto rank = static_cast<int64_t>(idx_t.rank());
  if (axis_attr < -rank - 1 || axis_attr > rank)
    throw ctx.error("axis " + std::to_string(axis_attr) + " is out of range for output rank " + std::to_string(rank + 1));
  const auto axis = static_cast<size_t>(axis_attr < 0 ? axis_attr + rank + 1 : axis_attr);
  const std::vector<double> indices = read_double_values(idx_t, ctx);
  std::vector<int64_t> out_dims = idx_t.dims();
  out_dims.insert(out_dims.begin() + static_cast<std::ptrdiff_t>(axis), depth);
  const int64_t inner = product(idx_t.dims(), axis, idx_t.rank());
  dispatch_by_size(values.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    Tensor& y = ctx.allocate_output(0, values.dtype(), out_dims);
    const T* v = data<T>(values);
    T* out = mutable_data<T>(y);
    std::fill(out, out + y.numel(), v[0]);
    for (size_t i = 0; i < indices.size(); ++i) {
      auto index = static_cast<int64_t>(indices[i]);
      if (index < 0) index += depth;
      if (index < 0 || index >= depth) continue;  // out of range: all off_value, per the spec
      const int64_t o = static_cast<int64_t>(i) / inner, in = static_cast<int64_t>(i) % inner;
      out[(o * depth + index) * inner + in] = v[1];
    }
  });
}

// ---- Compress: keeps the slices along axis (or the flattened elements) whose condition is true ----

void run_compress(KernelContext& ctx, bool has_axis, int64_t axis_attr) {
  const Tensor& x = ctx.input(0);
  const Tensor& cond = ctx.input(1);
  if (cond.dtype() != DataType::kBool) throw ctx.error("condition must be bool");
  if (cond.rank() != 1) throw ctx.error("condition must be 1-D, got " + dims_to_string(cond.dims()));
  std::vector<int64_t> dims = has_axis ? x.dims() : std::vector<int64_t>{x.numel()};
  const auto axis = has_axis ? static_cast<size_t>(normalize_axis(axis_attr, static_cast<int64_t>(x.rank()), ctx)) : 0;
  const bool* c = data<bool>(cond);
  std::vector<int64_t> kept;
  for (int64_t i = 0; i < cond.numel(); ++i) {
    if (!c[i]) continue;
    if (i >= dims[axis])
      throw ctx.error("condition selects index " + std::to_string(i) + " past the axis size " + std::to_string(dims[axis]));
    kept.push_back(i);
  }
  const int64_t outer = product(dims, 0, axis), inner = product(dims, axis + 1, dims.size()), dim = dims[axis];
  dims[axis] = static_cast<int64_t>(kept.size());
  dispatch_by_size(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    Tensor& y = ctx.allocate_output(0, x.dtype(), dims);
    const T* in = data<T>(x);
    T* out = mutable_data<T>(y);
    for (int64_t o = 0; o < outer; ++o)
      for (int64_t k : kept) {
        const T* src = in + (o * dim + k) * inner;
        out = std::copy(src, src + inner, out);
      }
  });
}

// ---- Unique: the distinct elements (or slices along axis), sorted or in first-occurrence order;
// Y, indices (first occurrence), inverse_indices, counts. ----------------------------------------

// A strict weak order that puts NaN after every number and treats all NaNs as equal.
template <typename T> bool value_less(const T& a, const T& b) {
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double> || std::is_same_v<T, Float16> ||
                std::is_same_v<T, BFloat16>) {
    const double x = static_cast<double>(a), y = static_cast<double>(b);
    if (std::isnan(x)) return false;
    if (std::isnan(y)) return true;
    return x < y;
  } else {
    return a < b;
  }
}

void run_unique(KernelContext& ctx, bool has_axis, int64_t axis_attr, bool sorted) {
  const Tensor& x = ctx.input(0);
  std::vector<int64_t> dims = has_axis ? x.dims() : std::vector<int64_t>{x.numel()};
  const auto axis = has_axis ? static_cast<size_t>(normalize_axis(axis_attr, static_cast<int64_t>(x.rank()), ctx)) : 0;
  const int64_t outer = product(dims, 0, axis), inner = product(dims, axis + 1, dims.size()), n = dims[axis];
  dispatch_values(x.dtype(), ctx, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* in = data<T>(x);
    // Unit u is the slice in[o, u, :] for every o; units compare lexicographically.
    auto unit_less = [&](int64_t u, int64_t v) {
      for (int64_t o = 0; o < outer; ++o)
        for (int64_t i = 0; i < inner; ++i) {
          const T& a = in[(o * n + u) * inner + i];
          const T& b = in[(o * n + v) * inner + i];
          if (value_less(a, b)) return true;
          if (value_less(b, a)) return false;
        }
      return false;
    };
    std::vector<int64_t> order(static_cast<size_t>(n));
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), unit_less);
    // Runs of equal units in `order`; the first of each run is its first occurrence.
    std::vector<int64_t> first, counts, group_of(static_cast<size_t>(n));
    for (size_t i = 0; i < order.size(); ++i) {
      if (i == 0 || unit_less(order[i - 1], order[i])) {
        first.push_back(order[i]);
        counts.push_back(0);
      }
      group_of[static_cast<size_t>(order[i])] = static_cast<int64_t>(first.size()) - 1;
      ++counts.back();
    }
    // Output position of each group: sorted order, or order of first occurrence.
    const size_t groups = first.size();
    std::vector<int64_t> pos(groups);
    std::iota(pos.begin(), pos.end(), 0);
    if (!sorted) {
      std::vector<int64_t> by_first(groups);
      std::iota(by_first.begin(), by_first.end(), 0);
      std::sort(by_first.begin(), by_first.end(), [&](int64_t a, int64_t b) { return first[a] < first[b]; });
      for (size_t p = 0; p < groups; ++p) pos[static_cast<size_t>(by_first[p])] = static_cast<int64_t>(p);
    }
    std::vector<int64_t> y_dims = dims;
    y_dims[axis] = static_cast<int64_t>(groups);
    Tensor& y = ctx.allocate_output(0, x.dtype(), y_dims);
    T* out = mutable_data<T>(y);
    const auto g_count = static_cast<int64_t>(groups);
    for (size_t g = 0; g < groups; ++g)
      for (int64_t o = 0; o < outer; ++o) {
        const T* src = in + (o * n + first[g]) * inner;
        std::copy(src, src + inner, out + (o * g_count + pos[g]) * inner);
      }
    if (ctx.num_outputs() > 1 && ctx.output_wanted(1)) {
      int64_t* p = mutable_data<int64_t>(ctx.allocate_output(1, DataType::kInt64, {g_count}));
      for (size_t g = 0; g < groups; ++g) p[pos[g]] = first[g];
    }
    if (ctx.num_outputs() > 2 && ctx.output_wanted(2)) {
      int64_t* p = mutable_data<int64_t>(ctx.allocate_output(2, DataType::kInt64, {n}));
      for (int64_t u = 0; u < n; ++u) p[u] = pos[static_cast<size_t>(group_of[static_cast<size_t>(u)])];
    }
    if (ctx.num_outputs() > 3 && ctx.output_wanted(3)) {
      int64_t* p = mutable_data<int64_t>(ctx.allocate_output(3, DataType::kInt64, {g_count}));
      for (size_t g = 0; g < groups; ++g) p[pos[g]] = counts[g];
    }
  });
}

// ---- Trilu: keeps the upper (col - row >= k) or lower (col - row <= k) triangle of the last two
// dims; the rest is zero. ---------------------------------------------------------------------------

void run_trilu(KernelContext& ctx, bool upper) {
  const Tensor& x = ctx.input(0);
  if (x.rank() < 2) throw ctx.error("input must have rank >= 2, got " + dims_to_string(x.dims()));
  const int64_t k = ctx.has_input(1) ? static_cast<int64_t>(read_scalar(ctx.input(1), ctx)) : 0;
  const int64_t rows = x.dims()[x.rank() - 2], cols = x.dims()[x.rank() - 1];
  const int64_t mats = product(x.dims(), 0, x.rank() - 2);
  dispatch_by_size(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    Tensor& y = ctx.allocate_output(0, x.dtype(), x.dims());  // zero-filled
    const T* in = data<T>(x);
    T* out = mutable_data<T>(y);
    for (int64_t m = 0; m < mats; ++m)
      for (int64_t r = 0; r < rows; ++r) {
        // Kept columns: [r + k, cols) for upper, [0, r + k] for lower, clamped to the row.
        const int64_t begin = upper ? std::clamp<int64_t>(r + k, 0, cols) : 0;
        const int64_t end = upper ? cols : std::clamp<int64_t>(r + k + 1, 0, cols);
        const int64_t row = (m * rows + r) * cols;
        std::copy(in + row + begin, in + row + end, out + row + begin);
      }
  });
}

}  // namespace

void register_indexing_kernels(KernelRegistry& r) {
  const std::vector<DataType> all = all_types();

  // Gather: opset 1 had no negative indices; they are accepted everywhere.
  add_kernel(r, "Gather", 1, INT_MAX, all, [](const KernelInit& init) {
    const int64_t axis = init.attr_int("axis", 0);
    return make_kernel([axis](KernelContext& ctx) { run_gather(ctx, axis); });
  });

  add_kernel(r, "GatherElements", 11, INT_MAX, all, [](const KernelInit& init) {
    const int64_t axis = init.attr_int("axis", 0);
    return make_kernel([axis](KernelContext& ctx) { run_gather_elements(ctx, axis); });
  });

  // GatherND: batch_dims arrived in opset 12.
  add_kernel(r, "GatherND", 11, INT_MAX, all, [](const KernelInit& init) {
    const int64_t batch_dims = init.opset() >= 12 ? init.attr_int("batch_dims", 0) : 0;
    return make_kernel([batch_dims](KernelContext& ctx) { run_gather_nd(ctx, batch_dims); });
  });

  // Scatter (deprecated in opset 11) is ScatterElements without reduction.
  add_kernel(r, "Scatter", 9, INT_MAX, all, [](const KernelInit& init) {
    const int64_t axis = init.attr_int("axis", 0);
    return make_kernel([axis](KernelContext& ctx) { run_scatter_elements(ctx, axis, Reduction::kNone); });
  });

  // ScatterElements / ScatterND: reduction add/mul from opset 16, max/min from 18.
  add_kernel(r, "ScatterElements", 11, INT_MAX, all, [](const KernelInit& init) {
    const int64_t axis = init.attr_int("axis", 0);
    const Reduction reduction = parse_reduction(init);
    return make_kernel([axis, reduction](KernelContext& ctx) { run_scatter_elements(ctx, axis, reduction); });
  });

  add_kernel(r, "ScatterND", 11, INT_MAX, all, [](const KernelInit& init) {
    const Reduction reduction = parse_reduction(init);
    return make_kernel([reduction](KernelContext& ctx) { run_scatter_nd(ctx, reduction); });
  });

  add_kernel(r, "TensorScatter", 24, INT_MAX, all, [](const KernelInit& init) {
    const int64_t axis = init.attr_int("axis", -2);
    const std::string mode = init.attr_string("mode", "linear");
    if (mode != "linear" && mode != "circular")
      throw init.error("mode must be \"linear\" or \"circular\", got \"" + mode + "\"");
    return make_kernel([axis, mode](KernelContext& ctx) { run_tensor_scatter(ctx, axis, mode == "circular"); });
  });

  add_kernel(r, "NonZero", 9, INT_MAX, all, [](const KernelInit&) { return make_kernel(run_nonzero); });

  // OneHot: indices and depth of any numeric dtype, values of any dtype; selected by the values.
  add_kernel(
      r, "OneHot", 9, INT_MAX, all,
      [](const KernelInit& init) {
        const int64_t axis = init.attr_int("axis", -1);
        return make_kernel([axis](KernelContext& ctx) { run_onehot(ctx, axis); });
      },
      2);

  add_kernel(r, "Compress", 9, INT_MAX, all, [](const KernelInit& init) {
    const bool has_axis = init.has_attr("axis");
    const int64_t axis = init.attr_int("axis", 0);
    return make_kernel([has_axis, axis](KernelContext& ctx) { run_compress(ctx, has_axis, axis); });
  });

  add_kernel(r, "Unique", 11, INT_MAX, all, [](const KernelInit& init) {
    const bool has_axis = init.has_attr("axis");
    const int64_t axis = init.attr_int("axis", 0);
    const bool sorted = init.attr_int("sorted", 1) != 0;
    return make_kernel([has_axis, axis, sorted](KernelContext& ctx) { run_unique(ctx, has_axis, axis, sorted); });
  });

  add_kernel(r, "Trilu", 14, INT_MAX, all, [](const KernelInit& init) {
    const bool upper = init.attr_int("upper", 1) != 0;
    return make_kernel([upper](KernelContext& ctx) { run_trilu(ctx, upper); });
  });
}

}  // namespace tunnx::cpu
