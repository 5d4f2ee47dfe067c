// Tensors: a dtype, concrete dims and storage that is either owned or a read-only view on memory the
// tensor does not own (an mmapped external-data file, the bytes protobuf parsed a model's weights into).
// A view is copied on its first write, so loading a large model costs no copy until training touches a
// weight.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "tunnx/status.h"

namespace tunnx {

// Values match ONNX's TensorProto.DataType so files and the API speak the same numbers.
enum class DataType : int32_t {
  kUndefined = 0,
  kFloat32 = 1,
  kUInt8 = 2,
  kInt8 = 3,
  kUInt16 = 4,
  kInt16 = 5,
  kInt32 = 6,
  kInt64 = 7,
  kString = 8,
  kBool = 9,
  kFloat16 = 10,
  kFloat64 = 11,
  kUInt32 = 12,
  kUInt64 = 13,
  kComplex64 = 14,
  kComplex128 = 15,
  kBFloat16 = 16,
  // Narrow types (runtime/core/narrow_types.h): no arithmetic, converted by Cast and (De)QuantizeLinear.
  kFloat8E4M3FN = 17,
  kFloat8E4M3FNUZ = 18,
  kFloat8E5M2 = 19,
  kFloat8E5M2FNUZ = 20,
  kUInt4 = 21,  // packed two per byte, first element in the low nibble, as ONNX stores them
  kInt4 = 22,
  kFloat4E2M1 = 23,
  kFloat8E8M0 = 24,
  kUInt2 = 25,  // packed four per byte, low bits first
  kInt2 = 26,
};

const char* to_string(DataType dtype);         // "float32", "int64", ...
DataType data_type_from_string(const std::string& name);  // inverse; throws on unknown names
size_t element_size(DataType dtype);           // bytes per element; sizeof(std::string) for strings;
                                               // throws for the packed sub-byte types
size_t element_bits(DataType dtype);           // 4 for int4/uint4/float4e2m1, 2 for int2/uint2, else 8 * size
// Bytes that `numel` elements take: ceil(numel * bits / 8) (ONNX's packing for sub-byte types).
size_t storage_bytes(DataType dtype, int64_t numel);
bool is_floating_point(DataType dtype);        // float16, bfloat16, float32, float64
bool is_known_data_type(int32_t value);        // a value this enum names (other than kUndefined)

template <typename T> constexpr DataType data_type_of();
template <> constexpr DataType data_type_of<float>() { return DataType::kFloat32; }
template <> constexpr DataType data_type_of<double>() { return DataType::kFloat64; }
template <> constexpr DataType data_type_of<int8_t>() { return DataType::kInt8; }
template <> constexpr DataType data_type_of<int16_t>() { return DataType::kInt16; }
template <> constexpr DataType data_type_of<int32_t>() { return DataType::kInt32; }
template <> constexpr DataType data_type_of<int64_t>() { return DataType::kInt64; }
template <> constexpr DataType data_type_of<uint8_t>() { return DataType::kUInt8; }
template <> constexpr DataType data_type_of<uint16_t>() { return DataType::kUInt16; }
template <> constexpr DataType data_type_of<uint32_t>() { return DataType::kUInt32; }
template <> constexpr DataType data_type_of<uint64_t>() { return DataType::kUInt64; }
template <> constexpr DataType data_type_of<bool>() { return DataType::kBool; }
template <> constexpr DataType data_type_of<std::string>() { return DataType::kString; }

// One dimension of a declared shape: a fixed size, a named symbol ("batch") or unknown.
struct Dim {
  int64_t value = -1;  // >= 0 when fixed
  std::string symbol;  // set when symbolic
  std::string denotation;  // ONNX dimension denotation ("DATA_BATCH", ...), kept for export

  static Dim fixed(int64_t v) { return {v, {}, {}}; }
  static Dim symbolic(std::string name) { return {-1, std::move(name), {}}; }
  static Dim unknown() { return {}; }
  bool is_fixed() const { return value >= 0; }
  bool is_symbolic() const { return value < 0 && !symbol.empty(); }
  // A symbol that names one size wherever it appears (every input, every axis). "?", which exporters
  // such as Paddle2ONNX write for an anonymous size, names none: each "?" is a size of its own.
  bool is_named() const { return is_symbolic() && symbol != "?"; }
  std::string to_string() const;  // "3", "batch", "?"
  bool operator==(const Dim&) const = default;
};

// A declared shape as graph inputs/outputs carry it: fixed and symbolic dims.
struct Shape {
  std::vector<Dim> dims;

  Shape() = default;
  explicit Shape(std::vector<Dim> d) : dims(std::move(d)) {}
  static Shape of(const std::vector<int64_t>& fixed_dims);
  size_t rank() const { return dims.size(); }
  bool is_fixed() const;
  std::string to_string() const;  // "[batch,3,224,224]"
  bool operator==(const Shape&) const = default;
};

std::string dims_to_string(const std::vector<int64_t>& dims);  // "[2,3]"
// Product of dims; throws Error(kLimitExceeded) on overflow and Error(kInvalidArgument) on negatives.
int64_t checked_element_count(const std::vector<int64_t>& dims);

class Tensor {
 public:
  Tensor() = default;  // undefined: no dtype, no storage
  // An owning tensor, zero-filled (empty strings for kString).
  Tensor(DataType dtype, std::vector<int64_t> dims);
  // An owning tensor whose numeric elements are not set (torch.empty), for a writer that overwrites
  // every one of them; strings are still empty.
  static Tensor uninitialized(DataType dtype, std::vector<int64_t> dims);

  // A read-only view on `data`, kept alive by `keep_alive`. The first mutable access copies it.
  static Tensor view(DataType dtype, std::vector<int64_t> dims, const void* data,
                     std::shared_ptr<const void> keep_alive);

  // A tensor with a dtype and dims but no data: reading or writing its data throws Error(kInternal).
  // What a session keeps of a weight it freed (SessionOptions::release_packed_originals): its kernels
  // recognise it by its storage and compute from copies of their own.
  static Tensor placeholder(DataType dtype, std::vector<int64_t> dims);

  template <typename T>
  static Tensor from_vector(std::vector<int64_t> dims, const std::vector<T>& values) {
    Tensor t(data_type_of<T>(), std::move(dims));
    t.check_count(values.size());
    T* out = t.mutable_data_as<T>();
    for (size_t i = 0; i < values.size(); ++i) out[i] = values[i];
    return t;
  }

  bool defined() const { return storage_ != nullptr; }
  DataType dtype() const { return dtype_; }
  const std::vector<int64_t>& dims() const { return dims_; }
  size_t rank() const { return dims_.size(); }
  int64_t numel() const { return numel_; }
  size_t nbytes() const;  // storage_bytes(dtype, numel) (for strings: numel * sizeof(std::string))

  // True while the data still lives in memory the tensor does not own (not yet copied on write).
  bool is_view() const;
  // True when both tensors share one storage (a write through one is seen by the other).
  bool shares_storage_with(const Tensor& other) const { return storage_ && storage_ == other.storage_; }

  const void* data() const;
  void* mutable_data();  // copies a view into owned memory first; bumps version()

  // A counter of the storage, shared by every tensor on it, that each mutable access bumps (as
  // torch's tensor._version). Caches derived from the data (weights a kernel keeps in another
  // layout) compare it to see writes, so write through a pointer from mutable_data() obtained
  // after the last run, not one kept from before.
  uint64_t version() const;

  template <typename T> const T* data_as() const {
    check_type(data_type_of<T>());
    return static_cast<const T*>(data());
  }
  template <typename T> T* mutable_data_as() {
    check_type(data_type_of<T>());
    return static_cast<T*>(mutable_data());
  }

  Tensor clone() const;  // a deep, owning copy
  // The same data with other dims (same element count): shares storage, copies nothing.
  Tensor reshaped(std::vector<int64_t> dims) const;
  // Byte-wise equality of dtype, dims and data (strings compared by value).
  bool equals(const Tensor& other) const;

 private:
  struct Storage;
  void check_type(DataType requested) const;
  void check_count(size_t count) const;

  DataType dtype_ = DataType::kUndefined;
  std::vector<int64_t> dims_;
  int64_t numel_ = 0;
  std::shared_ptr<Storage> storage_;
};

}  // namespace tunnx
