#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

#include "runtime/core/host_memory.h"
#include "tunnx/tensor.h"

namespace tunnx {
namespace {

// The bytes of numel elements (packed for sub-byte types), refusing sizes no allocation could hold.
size_t checked_byte_size(int64_t numel, DataType dtype, const std::vector<int64_t>& dims) {
  const size_t bytes_per_element = std::max<size_t>(1, element_bits(dtype) / 8);  // sub-byte types: under 1
  if (static_cast<uint64_t>(numel) > SIZE_MAX / bytes_per_element)
    throw Error(ErrorCode::kLimitExceeded, std::string("byte size of ") + to_string(dtype) + " tensor overflows",
                {.shapes = dims_to_string(dims)});
  return storage_bytes(dtype, numel);
}

}  // namespace

// Memory behind a tensor. Numeric data sits in `bytes` (64-byte aligned, owned) or is borrowed from
// `borrowed` while `keep_alive` holds its owner; strings live in `strings`.
struct Tensor::Storage {
  void* bytes = nullptr;
  size_t size = 0;
  const void* borrowed = nullptr;
  std::shared_ptr<const void> keep_alive;
  std::vector<std::string> strings;
  bool placeholder = false;  // Tensor::placeholder: no data, `size` bytes declared
  // Bumped by every mutable access, as torch's tensor._version: what is derived from the data
  // (weights packed for a kernel) is rebuilt when it changes.
  std::atomic<uint64_t> version{0};

  Storage() = default;
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  ~Storage() { release(); }

  void allocate(size_t n, bool zero = true) {
    release();
    size = n;
    bytes = n ? host_memory::allocate(n) : nullptr;
    if (n && zero) std::memset(bytes, 0, n);
  }
  void release() {
    if (bytes) host_memory::deallocate(bytes, size);
    bytes = nullptr;
  }
  const void* read() const {
    if (placeholder) no_data();
    return borrowed ? borrowed : bytes;
  }
  // Copy-on-write: turn a borrowed view into owned memory, in place, so every tensor sharing this
  // storage sees the same (now owned) data.
  void* write() {
    if (placeholder) no_data();
    version.fetch_add(1, std::memory_order_relaxed);
    if (borrowed) {
      const void* src = borrowed;
      allocate(size);
      if (size) std::memcpy(bytes, src, size);
      borrowed = nullptr;
      keep_alive.reset();
    }
    return bytes;
  }
  [[noreturn]] static void no_data() {
    throw Error(ErrorCode::kInternal,
                "a weight's data was read after the session freed it (SessionOptions::release_packed_originals): "
                "a kernel that held a copy of it read the original");
  }
};

Tensor::Tensor(DataType dtype, std::vector<int64_t> dims)
    : dtype_(dtype), dims_(std::move(dims)), numel_(checked_element_count(dims_)) {
  storage_ = std::make_shared<Storage>();
  if (dtype_ == DataType::kString) {
    storage_->strings.resize(static_cast<size_t>(numel_));
  } else {
    storage_->allocate(checked_byte_size(numel_, dtype_, dims_));
  }
}

Tensor Tensor::uninitialized(DataType dtype, std::vector<int64_t> dims) {
  if (dtype == DataType::kString) return Tensor(dtype, std::move(dims));
  Tensor t;
  t.dtype_ = dtype;
  t.dims_ = std::move(dims);
  t.numel_ = checked_element_count(t.dims_);
  t.storage_ = std::make_shared<Storage>();
  t.storage_->allocate(checked_byte_size(t.numel_, dtype, t.dims_), /*zero=*/false);
  return t;
}

Tensor Tensor::view(DataType dtype, std::vector<int64_t> dims, const void* data,
                    std::shared_ptr<const void> keep_alive) {
  if (dtype == DataType::kString)
    throw Error(ErrorCode::kInvalidArgument, "string tensors cannot be views on raw memory");
  Tensor t;
  t.dtype_ = dtype;
  t.dims_ = std::move(dims);
  t.numel_ = checked_element_count(t.dims_);
  t.storage_ = std::make_shared<Storage>();
  t.storage_->borrowed = data;
  t.storage_->size = checked_byte_size(t.numel_, dtype, t.dims_);
  t.storage_->keep_alive = std::move(keep_alive);
  return t;
}

Tensor Tensor::placeholder(DataType dtype, std::vector<int64_t> dims) {
  if (dtype == DataType::kString) throw Error(ErrorCode::kInvalidArgument, "string tensors have no placeholders");
  Tensor t = view(dtype, std::move(dims), nullptr, nullptr);  // a view on nothing, marked so that reads throw
  t.storage_->placeholder = true;
  return t;
}

size_t Tensor::nbytes() const {
  return dtype_ == DataType::kUndefined ? 0 : storage_bytes(dtype_, numel_);
}

bool Tensor::is_view() const { return storage_ && storage_->borrowed != nullptr; }

const void* Tensor::data() const {
  if (!storage_) return nullptr;
  if (dtype_ == DataType::kString) return storage_->strings.data();
  return storage_->read();
}

uint64_t Tensor::version() const { return storage_ ? storage_->version.load(std::memory_order_relaxed) : 0; }

void* Tensor::mutable_data() {
  if (!storage_) return nullptr;
  if (dtype_ == DataType::kString) {
    storage_->version.fetch_add(1, std::memory_order_relaxed);
    return storage_->strings.data();
  }
  return storage_->write();
}

Tensor Tensor::clone() const {
  if (!storage_) return {};
  Tensor copy(dtype_, dims_);
  if (dtype_ == DataType::kString) {
    copy.storage_->strings = storage_->strings;
  } else if (nbytes()) {
    std::memcpy(copy.storage_->bytes, data(), nbytes());
  }
  return copy;
}

Tensor Tensor::reshaped(std::vector<int64_t> dims) const {
  int64_t count = checked_element_count(dims);
  if (count != numel_)
    throw Error(ErrorCode::kInvalidArgument,
                "cannot view " + std::to_string(numel_) + " elements as " + std::to_string(count),
                {.shapes = dims_to_string(dims_) + " -> " + dims_to_string(dims)});
  Tensor view = *this;
  view.dims_ = std::move(dims);
  return view;
}

bool Tensor::equals(const Tensor& other) const {
  if (defined() != other.defined()) return false;
  if (!defined()) return true;
  if (dtype_ != other.dtype_ || dims_ != other.dims_) return false;
  if (dtype_ == DataType::kString) return storage_->strings == other.storage_->strings;
  return nbytes() == 0 || std::memcmp(data(), other.data(), nbytes()) == 0;
}

void Tensor::check_type(DataType requested) const {
  if (requested != dtype_)
    throw Error(ErrorCode::kInvalidArgument, std::string("tensor holds ") + to_string(dtype_) +
                                                 ", accessed as " + to_string(requested));
}

void Tensor::check_count(size_t count) const {
  if (static_cast<int64_t>(count) != numel_)
    throw Error(ErrorCode::kInvalidArgument,
                std::to_string(count) + " values given for " + std::to_string(numel_) + " elements",
                {.shapes = dims_to_string(dims_)});
}

}  // namespace tunnx
