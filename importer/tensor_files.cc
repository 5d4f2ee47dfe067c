// .npy and ONNX .pb tensor files (include/tunnx/io.h).
#include <cmath>
#include <fstream>
#include <sstream>

#include "importer/atomic_file.h"
#include "importer/npy_format.h"
#include "importer/tensor_proto.h"
#include "onnx/onnx-data_pb.h"
#include "runtime/core/float16.h"
#include "runtime/core/narrow_types.h"
#include "tunnx/io.h"

namespace tunnx {
namespace {

namespace fs = std::filesystem;

std::string read_all(const fs::path& path) {
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) throw Error(ErrorCode::kNotFound, "no such file", {.file = path.string()});
  std::ifstream in(path, std::ios::binary);
  std::ostringstream bytes;
  bytes << in.rdbuf();
  if (!in && !in.eof()) throw Error(ErrorCode::kIo, "cannot read", {.file = path.string()});
  return bytes.str();
}

Value value_of(const onnx::SequenceProto& seq) {
  std::vector<Tensor> items;
  for (const auto& t : seq.tensor_values()) items.push_back(tensor_from_proto(t, {}));
  DataType elem = items.empty() ? DataType::kUndefined : items.front().dtype();
  return Value::sequence(elem, std::move(items));
}

std::vector<double> as_doubles(const Tensor& t) {
  std::vector<double> out(static_cast<size_t>(t.numel()));
  auto fill = [&](auto zero) {
    using T = decltype(zero);
    const T* p = static_cast<const T*>(t.data());
    for (int64_t i = 0; i < t.numel(); ++i) out[static_cast<size_t>(i)] = static_cast<double>(p[i]);
  };
  switch (t.dtype()) {
    case DataType::kFloat32: fill(float{}); break;
    case DataType::kFloat64: fill(double{}); break;
    case DataType::kFloat16: fill(Float16{}); break;
    case DataType::kBFloat16: fill(BFloat16{}); break;
    default:
      if (is_narrow_float(t.dtype()))
        for (int64_t i = 0; i < t.numel(); ++i)
          out[static_cast<size_t>(i)] = narrow_value(t.dtype(), t.data(), i);
      break;
  }
  return out;
}

// Packed integers compare by element: the padding bits of the last byte do not count.
bool same_packed_elements(const Tensor& a, const Tensor& b) {
  for (int64_t i = 0; i < a.numel(); ++i)
    if (read_code(a.dtype(), a.data(), i) != read_code(b.dtype(), b.data(), i)) return false;
  return true;
}

Comparison compare_tensors(const Tensor& expected, const Tensor& actual, double rtol, double atol) {
  Comparison c;
  auto fail = [&c](std::string why) {
    c.ok = false;
    if (c.detail.empty()) c.detail = std::move(why);
  };
  if (expected.dtype() != actual.dtype()) {
    fail(std::string("dtype ") + to_string(actual.dtype()) + ", expected " + to_string(expected.dtype()));
    return c;
  }
  if (expected.dims() != actual.dims()) {
    fail("shape " + dims_to_string(actual.dims()) + ", expected " + dims_to_string(expected.dims()));
    return c;
  }
  if (is_packed_integer(expected.dtype())) {
    if (!same_packed_elements(expected, actual)) fail("values differ");
    return c;
  }
  if (!is_floating_point(expected.dtype()) && !is_narrow_float(expected.dtype())) {
    if (!expected.equals(actual)) fail("values differ");
    return c;
  }
  std::vector<double> e = as_doubles(expected), a = as_doubles(actual);
  for (size_t i = 0; i < e.size(); ++i) {
    bool bad = false;
    if (std::isnan(e[i]) || std::isnan(a[i])) {
      bad = std::isnan(e[i]) != std::isnan(a[i]);
    } else if (std::isinf(e[i]) || std::isinf(a[i])) {
      bad = e[i] != a[i];
    } else {
      double diff = std::fabs(a[i] - e[i]);
      c.max_abs_error = std::max(c.max_abs_error, diff);
      if (e[i] != 0) c.max_rel_error = std::max(c.max_rel_error, diff / std::fabs(e[i]));
      bad = diff > atol + rtol * std::fabs(e[i]);
    }
    if (bad) {
      std::ostringstream why;
      why << "value " << a[i] << " at flat index " << i << ", expected " << e[i];
      fail(why.str());
    }
  }
  return c;
}

}  // namespace

Tensor load_npy(const fs::path& path) { return parse_npy(read_all(path), {.file = path.string()}); }

void save_npy(const fs::path& path, const Tensor& tensor) {
  NpyBytes npy;
  try {
    npy = encode_npy(tensor);
  } catch (const Error& e) {
    throw e.with_context({.file = path.string()});
  }
  write_file_atomically(path, [&npy](std::ostream& out) {
    out.write(npy.head.data(), static_cast<std::streamsize>(npy.head.size()));
    out.write(npy.tail.data(), static_cast<std::streamsize>(npy.tail.size()));
  });
}

void save_tensor_pb(const fs::path& path, const Tensor& tensor, const std::string& name) {
  onnx::TensorProto proto;
  tensor_to_proto(tensor, &proto);
  if (!name.empty()) proto.set_name(name);
  const std::string bytes = proto.SerializeAsString();
  write_file_atomically(path, [&bytes](std::ostream& out) { out.write(bytes.data(), static_cast<std::streamsize>(bytes.size())); });
}

bool npy_can_hold(DataType dtype) { return npy_writes(dtype); }

Value load_value(const fs::path& path, ValueKind kind) {
  if (path.extension() == ".npy") return load_npy(path);
  std::string bytes = read_all(path);
  auto not_a = [&path](const char* what) {
    return Error(ErrorCode::kInvalidArgument, std::string("not an ONNX ") + what, {.file = path.string()});
  };
  auto optional_value = [](const onnx::OptionalProto& optional) -> Value {
    if (optional.has_tensor_value()) return tensor_from_proto(optional.tensor_value(), {});
    if (optional.has_sequence_value()) return value_of(optional.sequence_value());
    return Value();  // an optional without a value
  };
  try {
    switch (kind) {
      case ValueKind::kTensor: {
        onnx::TensorProto tensor;
        if (!tensor.ParseFromString(bytes)) throw not_a("TensorProto");
        return tensor_from_proto(tensor, {});
      }
      case ValueKind::kSequence: {
        onnx::SequenceProto sequence;
        if (!sequence.ParseFromString(bytes)) throw not_a("SequenceProto");
        return value_of(sequence);
      }
      case ValueKind::kOptional: {
        onnx::OptionalProto optional;
        if (!optional.ParseFromString(bytes)) throw not_a("OptionalProto");
        return optional_value(optional);
      }
      case ValueKind::kAny: break;
    }
    onnx::TensorProto tensor;
    if (tensor.ParseFromString(bytes) && tensor.data_type() != 0) return tensor_from_proto(tensor, {});
    onnx::OptionalProto optional;
    if (optional.ParseFromString(bytes) && optional.elem_type() != 0) return optional_value(optional);
    onnx::SequenceProto sequence;
    if (sequence.ParseFromString(bytes) && sequence.elem_type() != 0) return value_of(sequence);
  } catch (const Error& e) {
    throw e.with_context({.file = path.string()});
  }
  throw Error(ErrorCode::kInvalidArgument, "not a .npy file or an ONNX TensorProto/SequenceProto/OptionalProto",
              {.file = path.string()});
}

Comparison compare(const Value& expected, const Value& actual, double rtol, double atol) {
  if (expected.kind() != actual.kind())
    return {false, 0, 0, "got " + actual.describe() + ", expected " + expected.describe()};
  if (expected.is_tensor()) return compare_tensors(expected.tensor(), actual.tensor(), rtol, atol);
  Comparison all;
  if (expected.is_sequence()) {
    if (expected.items().size() != actual.items().size())
      return {false, 0, 0, "sequence of " + std::to_string(actual.items().size()) + ", expected " +
                               std::to_string(expected.items().size())};
    for (size_t i = 0; i < expected.items().size(); ++i) {
      Comparison c = compare_tensors(expected.items()[i], actual.items()[i], rtol, atol);
      all.max_abs_error = std::max(all.max_abs_error, c.max_abs_error);
      all.max_rel_error = std::max(all.max_rel_error, c.max_rel_error);
      if (!c.ok && all.ok) {
        all.ok = false;
        all.detail = "item " + std::to_string(i) + ": " + c.detail;
      }
    }
  }
  return all;
}

}  // namespace tunnx
