// Shared pieces of the reference CPU kernels: 16-bit float types, dtype dispatch, broadcasting,
// axis handling. Reference kernels favour clarity; fast paths (oneDNN) are checked against them.
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "runtime/core/float16.h"
#include "runtime/core/kernel.h"
#include "runtime/core/kernel_registry.h"

namespace tunnx::cpu {

template <typename T> struct TypeTag { using type = T; };

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
// A scalar (or single-element) input as double.
double read_scalar(const Tensor& t, const KernelContext& ctx);

// Registers one kernel for an ONNX-domain op over an opset range.
void add_kernel(KernelRegistry& registry, const std::string& op_type, int64_t since, int64_t until,
                std::vector<DataType> types, KernelFactory factory, int type_input = 0);

}  // namespace tunnx::cpu
