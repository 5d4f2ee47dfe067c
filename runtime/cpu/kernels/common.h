// Shared pieces of the reference CPU kernels: 16-bit float types, dtype dispatch, broadcasting,
// axis handling. Reference kernels favour clarity; fast paths (oneDNN) are checked against them.
#pragma once

#include <array>
#include <bit>
#include <cmath>
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <vector>

#include "runtime/core/float16.h"
#include "runtime/core/kernel.h"
#include "runtime/core/kernel_registry.h"

namespace tunnx::cpu {

// Most kernels are a lambda over the few attributes their factory parsed at plan time.
inline std::unique_ptr<Kernel> make_kernel(std::function<void(KernelContext&)> fn) {
  return std::make_unique<FunctionKernel>(std::move(fn));
}

template <typename T> struct TypeTag { using type = T; };

// A list of C++ element types. One list drives both an op's registration (dtypes()) and its
// dispatch (dispatch(dtype, ctx, list, fn)), so the two cannot drift apart.
template <typename... Ts> struct Types {};
using FloatTypes = Types<float, double, Float16, BFloat16>;
using NumericTypes = Types<float, double, Float16, BFloat16, int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t,
                           uint32_t, uint64_t>;

template <typename T> constexpr DataType dtype_of() {
  if constexpr (std::is_same_v<T, Float16>) return DataType::kFloat16;
  else if constexpr (std::is_same_v<T, BFloat16>) return DataType::kBFloat16;
  else return data_type_of<T>();
}

// Calls fn(TypeTag<T>{}) with the C++ type of `dtype`, for the dtypes listed in `Ts`.
// Throws through `ctx` naming the node when `dtype` is not among them.
template <typename... Ts, typename Fn>
void dispatch(DataType dtype, const KernelContext& ctx, Fn&& fn) {
  bool done = false;
  auto try_one = [&](auto tag) {
    using T = typename decltype(tag)::type;
    if (!done && dtype == dtype_of<T>()) {
      fn(tag);
      done = true;
    }
  };
  (try_one(TypeTag<Ts>{}), ...);
  if (!done) throw ctx.error(std::string("dtype ") + to_string(dtype) + " is not supported");
}
template <typename... Ts, typename Fn> void dispatch(DataType dtype, const KernelContext& ctx, Types<Ts...>, Fn&& fn) {
  dispatch<Ts...>(dtype, ctx, std::forward<Fn>(fn));
}
template <typename... Ts> std::vector<DataType> dtypes(Types<Ts...>) { return {dtype_of<Ts>()...}; }

// Calls fn(TypeTag<T>{}) with an unsigned type of the element's size (std::string for strings), for
// code that moves elements without looking at them (gathers, copies, fills). It needs no context, so
// plan-time code can use it too: the error is kUnsupported and the executor adds the node to it.
template <typename Fn> void dispatch_by_size(DataType dtype, Fn&& fn) {
  if (dtype == DataType::kString) return fn(TypeTag<std::string>{});
  switch (dtype == DataType::kUndefined ? 0 : element_size(dtype)) {
    case 1: return fn(TypeTag<uint8_t>{});
    case 2: return fn(TypeTag<uint16_t>{});
    case 4: return fn(TypeTag<uint32_t>{});
    case 8: return fn(TypeTag<uint64_t>{});
    default: throw Error(ErrorCode::kUnsupported, std::string("dtype ") + to_string(dtype) + " is not supported");
  }
}

// ---- Element values -----------------------------------------------------------------------------
// The 16-bit floats have no arithmetic of their own: kernels compute in float (or double) and store back.

template <typename T> constexpr bool kIs16BitFloat = std::is_same_v<T, Float16> || std::is_same_v<T, BFloat16>;
template <typename T> constexpr bool kIsFloat = kIs16BitFloat<T> || std::is_floating_point_v<T>;

// The type arithmetic on a T is done in: float for the 16-bit floats, T itself otherwise.
template <typename T> using Compute = std::conditional_t<kIs16BitFloat<T>, float, T>;
// An element as arithmetic sees it: 16-bit floats widen to float, anything else is read in place.
template <typename T> std::conditional_t<kIs16BitFloat<T>, float, const T&> load(const T& v) { return v; }
// Any numeric element as double.
template <typename T> double to_double(const T& v) { return static_cast<double>(load(v)); }

// A double stored as T. Integers are rounded half to even and saturated (NaN gives 0), as ONNX's
// reference does and where a bare cast would be undefined; bool is v != 0; floats convert.
template <typename T> T from_double(double v) {
  if constexpr (std::is_same_v<T, bool>) {
    return v != 0;
  } else if constexpr (std::is_integral_v<T>) {
    v = std::nearbyint(v);
    if (std::isnan(v)) return T(0);
    if (v <= static_cast<double>(std::numeric_limits<T>::lowest())) return std::numeric_limits<T>::lowest();
    if (v >= static_cast<double>(std::numeric_limits<T>::max())) return std::numeric_limits<T>::max();
    return static_cast<T>(v);
  } else {
    return static_cast<T>(static_cast<Compute<T>>(v));
  }
}

template <typename T> bool is_nan(const T& v) {
  if constexpr (std::is_floating_point_v<T>) return std::isnan(v);
  else return false;
}

// Unsigned type of at least T's width, for integer arithmetic that wraps instead of overflowing
// (signed overflow is undefined in C++; ONNX runtimes wrap).
template <typename T> using Wide = std::conditional_t<sizeof(T) <= 4, uint32_t, uint64_t>;

// The accumulator of float kernels: double for float64, float for float32 and the 16-bit floats.
template <typename T> using FloatAcc = std::conditional_t<std::is_same_v<T, double>, double, float>;

// `p[0..n)` as Acc: the pointer itself when T already is Acc, else a converted copy in `storage`.
template <typename Acc, typename T> const Acc* as_acc(const T* p, int64_t n, std::vector<Acc>& storage) {
  if constexpr (std::is_same_v<T, Acc>) {
    (void)n;
    (void)storage;
    return p;
  } else {
    storage.resize(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) storage[static_cast<size_t>(i)] = static_cast<Acc>(load(p[i]));
    return storage.data();
  }
}

// Numerically stable logistic function (no overflow of exp for large |x|).
template <typename C> C sigmoid(C x) {
  if (x >= 0) return C(1) / (C(1) + std::exp(-x));
  C e = std::exp(x);
  return e / (C(1) + e);
}

// Typed pointers to a tensor's data; 16-bit floats through the wrappers above.
template <typename T> const T* data(const Tensor& t) { return static_cast<const T*>(t.data()); }
template <typename T> T* mutable_data(Tensor& t) { return static_cast<T*>(t.mutable_data()); }

// Dtype lists for registration and dispatch.
inline const std::vector<DataType> kFloatTypes = {DataType::kFloat32, DataType::kFloat16, DataType::kBFloat16,
                                                  DataType::kFloat64};
inline const std::vector<DataType> kIntTypes = {DataType::kInt8,  DataType::kInt16,  DataType::kInt32,
                                                DataType::kInt64, DataType::kUInt8,  DataType::kUInt16,
                                                DataType::kUInt32, DataType::kUInt64};
std::vector<DataType> numeric_types();  // kFloatTypes + kIntTypes
std::vector<DataType> all_types();      // numeric + bool + string
std::vector<DataType> narrow_types();   // float8, float4, int4/uint4, int2/uint2 (runtime/core/narrow_types.h)

// Product of dims[begin, end), both clipped to the rank: element counts of shapes and sub-shapes.
int64_t product(const std::vector<int64_t>& dims, size_t begin = 0, size_t end = SIZE_MAX);

// `dims` seen as [outer, len, inner] around `axis` (already normalized): the layout that every
// per-axis kernel (softmax, cumsum, gather, concat, split, normalization) walks.
struct AxisView {
  int64_t outer = 1, len = 1, inner = 1;
};
AxisView axis_view(const std::vector<int64_t>& dims, int64_t axis);

// Row-major strides of `dims`.
std::vector<int64_t> strides_of(const std::vector<int64_t>& dims);
// The numpy-style broadcast of several shapes; throws through `ctx` when they do not broadcast.
std::vector<int64_t> broadcast_shapes(const std::vector<std::vector<int64_t>>& shapes, const KernelContext& ctx);
// For each element of `out_dims`, the flat index into a tensor of `in_dims` broadcast to it.
std::vector<int64_t> broadcast_index_map(const std::vector<int64_t>& in_dims, const std::vector<int64_t>& out_dims);
// A possibly negative axis made non-negative; throws when outside [-rank, rank).
int64_t normalize_axis(int64_t axis, int64_t rank, const KernelContext& ctx);
int64_t normalize_axis(int64_t axis, int64_t rank, const KernelInit& init);
// An int32/int64 tensor's values as int64 (shape, axes, pads inputs).
std::vector<int64_t> read_int_values(const Tensor& t, const KernelContext& ctx);
// A float tensor's values as double (any float or int dtype).
std::vector<double> read_double_values(const Tensor& t, const KernelContext& ctx);
// out[i] = x[first + i] - zero[(i / run) % zero.size()] for i < n, x int8 or uint8: an integer op's
// operand less its zero points (one for all; one per `run` values, cycling; run 1: one per column),
// each result in [-255, 255]. `zero` is not empty.
void subtract_zero_points(const Tensor& x, int64_t first, int64_t n, const std::vector<int16_t>& zero, int64_t run,
                          int16_t* out);
// An integer op's 8-bit matrix [K, N] (int8, or uint8 less 128: b') for vector_loops' u8s8_matmul,
// with what its zero points' terms need: (a - za)(b - zb) summed over k = sum a b' - za sum b' -
// zb' sum a + K za zb', zb' the zero point less the same shift. `packed` is empty without AVX-512 VNNI.
struct U8S8Weights {
  std::vector<int8_t> packed;
  std::vector<int32_t> column_sums;   // sum over k of b', per column
  std::vector<int32_t> shifted_zero;  // zb' per column
};
// x's [K, N] matrix from element `first` on (x int8 or uint8); `zero`: one zero point or one per column.
U8S8Weights u8s8_weights(const Tensor& x, int64_t first, int64_t K, int64_t N, const std::vector<int32_t>& zero);
// c [M, N] = the wrapping 32-bit sums of (a - a_zero)(b - b's zero points), a uint8 [M, K] and
// `a_zero` one value or one per row: bit for bit the sums int16_matmul gives of the centered operands.
void u8s8_centered_product(const uint8_t* a, int64_t M, int64_t K, const std::vector<int32_t>& a_zero,
                           const U8S8Weights& b, int64_t N, uint32_t* c);
// A scalar (or single-element) input as double.
double read_scalar(const Tensor& t, const KernelContext& ctx);
// A new output `i` of `dtype` (any numeric type) and `dims` holding `values`, stored by from_double.
void write_output(KernelContext& ctx, size_t i, DataType dtype, std::vector<int64_t> dims,
                  const std::vector<double>& values);

// A com.tunnx:FusedConv's affine inputs 8-11 (ops/conv_pool.h): each one's element, or null where
// absent; throws naming the node when one is not a one-element float32 tensor.
std::array<const float*, 4> fused_conv_affine_inputs(const KernelContext& ctx);

// Throws through `ctx` when two inputs that must share a dtype do not.
void require_same_dtype(const KernelContext& ctx, const Tensor& a, const Tensor& b);

// Threads an OpenMP loop may use now (at least 1; 1 without OpenMP): the run's share (RunThreads).
int max_threads();
// The calling thread's index in the OpenMP team it runs in (0 outside one, and without OpenMP).
int thread_index();
// Loops over fewer elements than this stay on one thread: a team's start-up costs more. Low, because
// the ops between oneDNN's products and convolutions read tensors that both cores just wrote: on one
// thread the half in the other core's cache is fetched line by line. In a decoder block at 2 threads
// RotaryEmbedding on [1, 8, 128, 32] took 0.145 ms on one thread (0.016 ms alone) and 0.038 ms split
// between the two; a squeeze-excite Mul of MobileNetV3 on 7x7x576 went from 0.004 ms at 1 thread to
// 0.0095 at 2 while it stayed on one (the bar was 65,536).
inline constexpr int64_t kParallelElements = int64_t{1} << 13;

// dst[0..count) = src[0..count), split among the run's threads when large (a residual copied into
// the output a sum post-op adds to).
void copy_floats(float* dst, const float* src, int64_t count);

// Column reductions over X seen as [outer, count, inner] (a channels-last pool: [N, H*W, C]): calls
// fn(o, c0, c1) for each block of at most kColumnBlock columns [c0, c1) of each o, the blocks split
// among the run's threads when X is large enough.
inline constexpr int64_t kColumnBlock = 256;
template <typename Fn> void for_column_blocks(int64_t outer, int64_t count, int64_t inner, Fn fn) {
  const int64_t blocks = (inner + kColumnBlock - 1) / kColumnBlock, tasks = outer * blocks;
  const int threads = outer * count * inner >= kParallelElements ? max_threads() : 1;
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t o = t / blocks, c0 = t % blocks * kColumnBlock;
    fn(o, c0, std::min(c0 + kColumnBlock, inner));
  }
}

// Output 0 = x with its last two dims swapped (Transpose's most common perm, Einsum "...ij->...ji"),
// tiled for the cache and split among the run's threads. Not for strings.
void swap_last_two_dims(KernelContext& ctx, const Tensor& x);
// y [cols, rows] = x [rows, cols] transposed, with the same tiling and threads (a oneDNN product's
// operand copied into the layout its kernel reads fastest).
void transpose_matrix(const float* x, float* y, int64_t rows, int64_t cols);
// The same for `batch` matrices one after the other (NCHW <-> NHWC: [N, C, H*W] <-> [N, H*W, C]).
void transpose_matrices(const float* x, float* y, int64_t batch, int64_t rows, int64_t cols);

// A reference kernel's own copy of a constant input, derived from it (weights repacked, operands
// centered): made by the first run that asks, and again when the input's version moves or `key` (the
// version of another constant it depends on) changes. A run whose input is not that constant (an
// input fed in its place, or a trained one) gets null and reads the input as it is. Thread-safe: the
// copy a run holds stays valid while another run remakes it.
template <typename Copy> class ConstantCopy {
 public:
  ConstantCopy() = default;  // no constant: never a copy
  ConstantCopy(const KernelInit& init, size_t input) {
    if (const Tensor* c = init.constant_input(input); c && !init.trained_input(input)) constant_ = *c;
  }
  ConstantCopy(const ConstantCopy&) = delete;
  ConstantCopy& operator=(const ConstantCopy&) = delete;

  // Whether `t` is the constant (same storage and dims).
  bool holds(const Tensor& t) const {
    return constant_.defined() && t.shares_storage_with(constant_) && t.dims() == constant_.dims();
  }

  // The copy for this run's `t`, made by make(t) -> Copy when missing or stale; null when `t` is not
  // the constant.
  template <typename Make> std::shared_ptr<const Copy> get(const Tensor& t, uint64_t key, Make make) const {
    if (!holds(t)) return nullptr;
    std::lock_guard<std::mutex> lock(mutex_);
    if (!copy_ || version_ != t.version() || key_ != key) {
      copy_ = std::make_shared<const Copy>(make(t));
      version_ = t.version();
      key_ = key;
    }
    return copy_;
  }

 private:
  Tensor constant_;
  mutable std::mutex mutex_;
  mutable std::shared_ptr<const Copy> copy_;
  mutable uint64_t version_ = 0, key_ = 0;
};

// Registers one kernel for an ONNX-domain op over an opset range.
void add_kernel(KernelRegistry& registry, const std::string& op_type, int64_t since, int64_t until,
                std::vector<DataType> types, KernelFactory factory, int type_input = 0);
// The same for an op of another domain (ai.onnx.ml, com.microsoft).
void add_domain_kernel(KernelRegistry& registry, const std::string& domain, const std::string& op_type, int64_t since,
                       int64_t until, std::vector<DataType> types, KernelFactory factory, int type_input = 0);

}  // namespace tunnx::cpu
