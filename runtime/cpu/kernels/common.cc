#include "runtime/cpu/kernels/common.h"

#include "runtime/cpu/kernels/vector_loops.h"

#include <algorithm>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace tunnx::cpu {

int max_threads() {
#ifdef _OPENMP
  return std::max(1, omp_get_max_threads());
#else
  return 1;
#endif
}

int thread_index() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

void copy_floats(float* dst, const float* src, int64_t count) {
  constexpr int64_t kChunk = 16384;  // 64 KiB a task
  const int64_t chunks = (count + kChunk - 1) / kChunk;
  const int threads = count >= kParallelElements ? max_threads() : 1;
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t c = 0; c < chunks; ++c) std::copy(src + c * kChunk, src + std::min(count, (c + 1) * kChunk), dst + c * kChunk);
}


std::vector<DataType> numeric_types() {
  std::vector<DataType> all = kFloatTypes;
  all.insert(all.end(), kIntTypes.begin(), kIntTypes.end());
  return all;
}

std::vector<DataType> narrow_types() {
  return {DataType::kFloat8E4M3FN, DataType::kFloat8E4M3FNUZ, DataType::kFloat8E5M2, DataType::kFloat8E5M2FNUZ,
          DataType::kFloat8E8M0,   DataType::kFloat4E2M1,      DataType::kInt4,       DataType::kUInt4,
          DataType::kInt2,         DataType::kUInt2};
}

std::vector<DataType> all_types() {
  std::vector<DataType> all = numeric_types();
  all.push_back(DataType::kBool);
  all.push_back(DataType::kString);
  return all;
}

int64_t product(const std::vector<int64_t>& dims, size_t begin, size_t end) {
  int64_t p = 1;
  for (size_t i = begin; i < end && i < dims.size(); ++i) p *= dims[i];
  return p;
}

AxisView axis_view(const std::vector<int64_t>& dims, int64_t axis) {
  const auto a = static_cast<size_t>(axis);
  AxisView v;
  v.outer = product(dims, 0, a);
  if (a < dims.size()) v.len = dims[a];
  v.inner = product(dims, a + 1);
  return v;
}

std::vector<int64_t> strides_of(const std::vector<int64_t>& dims) {
  std::vector<int64_t> strides(dims.size(), 1);
  for (size_t i = dims.size(); i-- > 1;) strides[i - 1] = strides[i] * dims[i];
  return strides;
}

std::vector<int64_t> broadcast_shapes(const std::vector<std::vector<int64_t>>& shapes, const KernelContext& ctx) {
  size_t rank = 0;
  for (const auto& s : shapes) rank = std::max(rank, s.size());
  std::vector<int64_t> out(rank, 1);
  for (const auto& s : shapes) {
    for (size_t i = 0; i < s.size(); ++i) {
      int64_t& o = out[rank - s.size() + i];
      int64_t d = s[i];
      if (d == o || d == 1) continue;
      if (o == 1) {
        o = d;
        continue;
      }
      std::string all;
      for (const auto& t : shapes) all += (all.empty() ? "" : " and ") + dims_to_string(t);
      throw ctx.error("shapes " + all + " do not broadcast");
    }
  }
  return out;
}

std::vector<int64_t> broadcast_index_map(const std::vector<int64_t>& in_dims, const std::vector<int64_t>& out_dims) {
  int64_t total = 1;
  for (int64_t d : out_dims) total *= d;
  std::vector<int64_t> map(static_cast<size_t>(total));
  size_t rank = out_dims.size(), offset = rank - in_dims.size();
  std::vector<int64_t> in_strides = strides_of(in_dims);
  std::vector<int64_t> index(rank, 0);
  for (int64_t flat = 0; flat < total; ++flat) {
    int64_t src = 0;
    for (size_t i = offset; i < rank; ++i)
      if (in_dims[i - offset] != 1) src += index[i] * in_strides[i - offset];
    map[static_cast<size_t>(flat)] = src;
    for (size_t i = rank; i-- > 0;) {
      if (++index[i] < out_dims[i]) break;
      index[i] = 0;
    }
  }
  return map;
}

int64_t normalize_axis(int64_t axis, int64_t rank, const KernelContext& ctx) {
  if (axis < -rank || axis >= std::max<int64_t>(rank, 1))
    throw ctx.error("axis " + std::to_string(axis) + " is out of range for rank " + std::to_string(rank));
  return axis < 0 ? axis + rank : axis;
}

int64_t normalize_axis(int64_t axis, int64_t rank, const KernelInit& init) {
  if (axis < -rank || axis >= std::max<int64_t>(rank, 1))
    throw init.error("axis " + std::to_string(axis) + " is out of range for rank " + std::to_string(rank));
  return axis < 0 ? axis + rank : axis;
}

std::vector<int64_t> read_int_values(const Tensor& t, const KernelContext& ctx) {
  std::vector<int64_t> out(static_cast<size_t>(t.numel()));
  if (t.dtype() == DataType::kInt64) std::memcpy(out.data(), t.data(), t.nbytes());
  else if (t.dtype() == DataType::kInt32)
    for (int64_t i = 0; i < t.numel(); ++i) out[static_cast<size_t>(i)] = data<int32_t>(t)[i];
  else throw ctx.error(std::string("expected an int32 or int64 tensor, got ") + to_string(t.dtype()));
  return out;
}

void subtract_zero_points(const Tensor& x, int64_t first, int64_t n, const std::vector<int16_t>& zero, int64_t run,
                          int16_t* out) {
  const auto subtract = [&](const auto* v) {
    v += first;
    const int64_t count = static_cast<int64_t>(zero.size());
    if (count == 1) {
      for (int64_t i = 0; i < n; ++i) out[i] = static_cast<int16_t>(v[i] - zero[0]);
    } else if (run == 1) {  // one zero point per column: rows of `count` values
      for (int64_t i = 0; i < n; i += count)
        for (int64_t j = 0; j < std::min(count, n - i); ++j) out[i + j] = static_cast<int16_t>(v[i + j] - zero[static_cast<size_t>(j)]);
    } else {
      for (int64_t i = 0, block = 0; i < n; i += run, ++block) {
        const int16_t z = zero[static_cast<size_t>(block % count)];
        for (int64_t j = i; j < std::min(n, i + run); ++j) out[j] = static_cast<int16_t>(v[j] - z);
      }
    }
  };
  if (x.dtype() == DataType::kInt8) subtract(data<int8_t>(x));
  else subtract(data<uint8_t>(x));
}

U8S8Weights u8s8_weights(const Tensor& x, int64_t first, int64_t K, int64_t N, const std::vector<int32_t>& zero) {
  const bool is_signed = x.dtype() == DataType::kInt8;
  const int32_t shift = is_signed ? 0 : 128;
  U8S8Weights w;
  std::vector<int8_t> shifted(static_cast<size_t>(K * N));
  w.column_sums.assign(static_cast<size_t>(N), 0);
  for (int64_t i = 0; i < K * N; ++i) {
    const int32_t v = is_signed ? data<int8_t>(x)[first + i] : data<uint8_t>(x)[first + i] - shift;
    shifted[static_cast<size_t>(i)] = static_cast<int8_t>(v);
    w.column_sums[static_cast<size_t>(i % N)] += v;
  }
  w.shifted_zero.resize(static_cast<size_t>(N));
  for (int64_t j = 0; j < N; ++j) w.shifted_zero[static_cast<size_t>(j)] = zero[zero.size() == 1 ? 0 : static_cast<size_t>(j)] - shift;
  w.packed = u8s8_pack(shifted.data(), K, N);
  return w;
}

void u8s8_centered_product(const uint8_t* a, int64_t M, int64_t K, const std::vector<int32_t>& a_zero,
                           const U8S8Weights& b, int64_t N, uint32_t* c) {
  u8s8_matmul(a, M, K, b.packed, N, reinterpret_cast<int32_t*>(c));
  for (int64_t r = 0; r < M; ++r) {  // unsigned: wrapping, as the centered sums do
    uint32_t a_sum = 0;
    for (int64_t k = 0; k < K; ++k) a_sum += a[r * K + k];
    const auto za = static_cast<uint32_t>(a_zero[a_zero.size() == 1 ? 0 : static_cast<size_t>(r)]);
    for (int64_t j = 0; j < N; ++j) {
      const auto zb = static_cast<uint32_t>(b.shifted_zero[static_cast<size_t>(j)]);
      c[r * N + j] += static_cast<uint32_t>(K) * za * zb - za * static_cast<uint32_t>(b.column_sums[static_cast<size_t>(j)]) -
                      zb * a_sum;
    }
  }
}

std::vector<double> read_double_values(const Tensor& t, const KernelContext& ctx) {
  std::vector<double> out(static_cast<size_t>(t.numel()));
  dispatch<float, double, Float16, BFloat16, int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t,
           uint64_t, bool>(t.dtype(), ctx, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* p = data<T>(t);
    for (int64_t i = 0; i < t.numel(); ++i) out[static_cast<size_t>(i)] = static_cast<double>(p[i]);
  });
  return out;
}

double read_scalar(const Tensor& t, const KernelContext& ctx) {
  if (t.numel() != 1) throw ctx.error("expected a single value, got shape " + dims_to_string(t.dims()));
  return read_double_values(t, ctx)[0];
}

void require_same_dtype(const KernelContext& ctx, const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype())
    throw ctx.error(std::string("input dtypes differ: ") + to_string(a.dtype()) + " and " + to_string(b.dtype()));
}

void write_output(KernelContext& ctx, size_t i, DataType dtype, std::vector<int64_t> dims,
                  const std::vector<double>& values) {
  dispatch(dtype, ctx, NumericTypes{}, [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* out = mutable_data<T>(ctx.allocate_output(i, dtype, std::move(dims)));
    for (size_t k = 0; k < values.size(); ++k) out[k] = from_double<T>(values[k]);
  });
}

void add_domain_kernel(KernelRegistry& registry, const std::string& domain, const std::string& op_type, int64_t since,
                       int64_t until, std::vector<DataType> types, KernelFactory factory, int type_input) {
  KernelDef def;
  def.domain = domain;
  def.op_type = op_type;
  def.since_version = since;
  def.until_version = until;
  def.types = std::move(types);
  def.type_input = type_input;
  def.factory = std::move(factory);
  registry.add(std::move(def));
}

void add_kernel(KernelRegistry& registry, const std::string& op_type, int64_t since, int64_t until,
                std::vector<DataType> types, KernelFactory factory, int type_input) {
  add_domain_kernel(registry, "", op_type, since, until, std::move(types), std::move(factory), type_input);
}

// Y [batch, cols, rows] = X [batch, rows, cols] with the last two dims swapped: a weight's W^T, the
// attention products' K^T, and most of the transposes backward passes make. The general gather reads
// one source column per output row, a cache miss per element on large matrices; 32x32 tiles keep
// both sides in cache, and tiles are split among the run's threads.
namespace {

// Columns [c0, c1) of a [Rows, cols] matrix into rows of y [cols, Rows]: each output row is written
// whole from `Rows` forward streams, with Rows known to the compiler.
template <int64_t Rows, typename T>
void interleave_rows(const T* x, T* y, int64_t cols, int64_t c0, int64_t c1) {
  for (int64_t c = c0; c < c1; ++c)
    for (int64_t r = 0; r < Rows; ++r) y[c * Rows + r] = x[r * cols + c];
}

template <typename T>
void swap_last_two(const T* x, T* y, int64_t batch, int64_t rows, int64_t cols) {
  // A few long rows (an RGB image to channels-last: [3, H*W] -> [H*W, 3]): each output row takes one
  // value of every input row, read as `rows` forward streams; tiles would be a few values tall.
  if (rows <= 8) {
    constexpr int64_t kBlock = 4096;  // columns per task
    const int64_t blocks = (cols + kBlock - 1) / kBlock, tasks = batch * blocks;
    const int threads = batch * rows * cols >= kParallelElements ? max_threads() : 1;
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t t = 0; t < tasks; ++t) {
      const int64_t b = t / blocks, c0 = t % blocks * kBlock, c1 = std::min(c0 + kBlock, cols);
      const T* xb = x + b * rows * cols;
      T* yb = y + b * rows * cols;
      switch (rows) {
        case 1: interleave_rows<1>(xb, yb, cols, c0, c1); break;
        case 2: interleave_rows<2>(xb, yb, cols, c0, c1); break;
        case 3: interleave_rows<3>(xb, yb, cols, c0, c1); break;
        case 4: interleave_rows<4>(xb, yb, cols, c0, c1); break;
        default:
          for (int64_t r = 0; r < rows; ++r) {
            const T* xr = xb + r * cols;
            for (int64_t c = c0; c < c1; ++c) yb[c * rows + r] = xr[c];
          }
      }
    }
    return;
  }
  constexpr int64_t kTile = 32;
  const int64_t tiles_r = (rows + kTile - 1) / kTile, tiles_c = (cols + kTile - 1) / kTile;
  const int64_t tiles = batch * tiles_r * tiles_c;
  const int threads = batch * rows * cols >= kParallelElements ? max_threads() : 1;
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t t = 0; t < tiles; ++t) {
    const int64_t b = t / (tiles_r * tiles_c), in_matrix = t % (tiles_r * tiles_c);
    const int64_t r0 = in_matrix / tiles_c * kTile, c0 = in_matrix % tiles_c * kTile;
    const int64_t r1 = std::min(r0 + kTile, rows), c1 = std::min(c0 + kTile, cols);
    const T* xb = x + b * rows * cols;
    T* yb = y + b * rows * cols;
    for (int64_t c = c0; c < c1; ++c)
      for (int64_t r = r0; r < r1; ++r) yb[c * rows + r] = xb[r * cols + c];
  }
}

}  // namespace

void swap_last_two_dims(KernelContext& ctx, const Tensor& x) {
  const size_t rank = x.rank();
  if (rank < 2) throw ctx.error("swapping the last two dims needs rank 2 or more, got " + dims_to_string(x.dims()));
  const int64_t rows = x.dims()[rank - 2], cols = x.dims()[rank - 1];
  std::vector<int64_t> out_dims = x.dims();
  std::swap(out_dims[rank - 2], out_dims[rank - 1]);
  Tensor& y = ctx.allocate_output_uninitialized(0, x.dtype(), out_dims);
  if (y.numel() == 0) return;
  dispatch_by_size(x.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    swap_last_two(data<T>(x), mutable_data<T>(y), x.numel() / (rows * cols), rows, cols);
  });
}

void transpose_matrix(const float* x, float* y, int64_t rows, int64_t cols) { swap_last_two(x, y, 1, rows, cols); }

void transpose_matrices(const float* x, float* y, int64_t batch, int64_t rows, int64_t cols) {
  swap_last_two(x, y, batch, rows, cols);
}

}  // namespace tunnx::cpu
