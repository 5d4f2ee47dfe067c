// .npy and ONNX .pb tensor files (include/tunnx/io.h).
#include <cmath>
#include <cstring>
#include <fstream>
#include <regex>
#include <sstream>

#include "importer/atomic_file.h"
#include "importer/tensor_proto.h"
#include "onnx/onnx-data_pb.h"
#include "runtime/core/float16.h"
#include "tunnx/io.h"

namespace tunnx {
namespace {

namespace fs = std::filesystem;

struct NpyType {
  const char* descr;
  DataType dtype;
};
// Little-endian descriptors; one-byte types use '|'.
constexpr NpyType kNpyTypes[] = {
    {"|b1", DataType::kBool},    {"|i1", DataType::kInt8},    {"<i2", DataType::kInt16},
    {"<i4", DataType::kInt32},   {"<i8", DataType::kInt64},   {"|u1", DataType::kUInt8},
    {"<u2", DataType::kUInt16},  {"<u4", DataType::kUInt32},  {"<u8", DataType::kUInt64},
    {"<f2", DataType::kFloat16}, {"<f4", DataType::kFloat32}, {"<f8", DataType::kFloat64},
};

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
    default: break;
  }
  return out;
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
  if (!is_floating_point(expected.dtype())) {
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

Tensor load_npy(const fs::path& path) {
  std::string bytes = read_all(path);
  auto bad = [&path](const std::string& why) { return Error(ErrorCode::kInvalidArgument, why, {.file = path.string()}); };
  if (bytes.size() < 10 || bytes.compare(0, 6, "\x93NUMPY") != 0) throw bad("not a .npy file");
  int major = static_cast<unsigned char>(bytes[6]);
  size_t header_len, header_start;
  if (major == 1) {
    header_len = static_cast<unsigned char>(bytes[8]) | static_cast<size_t>(static_cast<unsigned char>(bytes[9])) << 8;
    header_start = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) throw bad("truncated .npy header");
    header_len = 0;
    for (int i = 3; i >= 0; --i) header_len = header_len << 8 | static_cast<unsigned char>(bytes[8 + i]);
    header_start = 12;
  } else {
    throw bad(".npy version " + std::to_string(major) + " is not supported");
  }
  if (header_start + header_len > bytes.size()) throw bad("truncated .npy header");
  std::string header = bytes.substr(header_start, header_len);

  std::smatch m;
  if (!std::regex_search(header, m, std::regex(R"('descr'\s*:\s*'([^']*)')"))) throw bad(".npy header has no descr");
  std::string descr = m[1];
  if (descr.size() == 3 && descr[0] == '=') descr[0] = '<';
  if (descr == "<b1" || descr == "<i1" || descr == "<u1") descr[0] = '|';
  DataType dtype = DataType::kUndefined;
  for (const auto& t : kNpyTypes)
    if (descr == t.descr) dtype = t.dtype;
  if (dtype == DataType::kUndefined) throw bad(".npy dtype '" + descr + "' is not supported");
  if (std::regex_search(header, m, std::regex(R"('fortran_order'\s*:\s*True)")))
    throw bad("Fortran-ordered .npy arrays are not supported (save with np.ascontiguousarray)");
  if (!std::regex_search(header, m, std::regex(R"('shape'\s*:\s*\(([^)]*)\))"))) throw bad(".npy header has no shape");
  std::vector<int64_t> dims;
  std::string shape_text = m[1];
  static const std::regex digits(R"(\d+)");
  for (std::sregex_iterator it(shape_text.begin(), shape_text.end(), digits), end; it != end; ++it)
    dims.push_back(std::stoll(it->str()));

  int64_t numel = checked_element_count(dims);
  size_t data_start = header_start + header_len;
  size_t nbytes = static_cast<size_t>(numel) * element_size(dtype);
  if (bytes.size() - data_start != nbytes)
    throw bad(".npy data has " + std::to_string(bytes.size() - data_start) + " bytes, shape " + dims_to_string(dims) +
              " of " + to_string(dtype) + " needs " + std::to_string(nbytes));
  Tensor t(dtype, dims);
  if (nbytes) std::memcpy(t.mutable_data(), bytes.data() + data_start, nbytes);
  return t;
}

void save_npy(const fs::path& path, const Tensor& tensor) {
  const char* descr = nullptr;
  for (const auto& t : kNpyTypes)
    if (t.dtype == tensor.dtype()) descr = t.descr;
  if (!descr)
    throw Error(ErrorCode::kUnsupported, std::string(to_string(tensor.dtype())) + " tensors cannot be written as .npy",
                {.file = path.string()});
  std::string shape = "(";
  for (size_t i = 0; i < tensor.dims().size(); ++i) shape += std::to_string(tensor.dims()[i]) + ", ";
  if (tensor.dims().size() > 1) shape.resize(shape.size() - 2);
  else if (tensor.dims().size() == 1) shape.resize(shape.size() - 1);
  shape += ")";
  std::string header = std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
  // Pad with spaces so magic + length + header + '\n' is a multiple of 64 (NumPy's alignment).
  size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  write_file_atomically(path, [&](std::ostream& out) {
    out.write("\x93NUMPY\x01\x00", 8);
    char len[2] = {static_cast<char>(header.size() & 0xff), static_cast<char>(header.size() >> 8)};
    out.write(len, 2);
    out.write(header.data(), static_cast<std::streamsize>(header.size()));
    out.write(static_cast<const char*>(tensor.data()), static_cast<std::streamsize>(tensor.nbytes()));
  });
}

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
