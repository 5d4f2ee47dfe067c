#include "importer/tensor_proto.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>

#include "importer/external_data.h"

namespace tunnx {
namespace {

static_assert(std::endian::native == std::endian::little,
              "ONNX raw_data is little-endian; tunnx reads it in place");

using onnx::TensorProto;

Error tensor_error(const TensorProto& proto, ErrorCode code, const std::string& message,
                   const std::string& field = {}) {
  return Error(code, message, {.tensor = proto.name(), .field = field});
}

// Copies `count` values of a repeated field into `out`, narrowing each to T.
template <typename T, typename Repeated>
void copy_typed(const Repeated& values, int64_t count, Tensor& out) {
  T* dst = out.mutable_data_as<T>();
  for (int64_t i = 0; i < count; ++i) dst[i] = static_cast<T>(values.Get(static_cast<int>(i)));
}

// 16-bit floats are stored as their bit patterns in int32_data.
void copy_bits16(const google::protobuf::RepeatedField<int32_t>& values, int64_t count, Tensor& out) {
  auto* dst = static_cast<uint16_t*>(out.mutable_data());
  for (int64_t i = 0; i < count; ++i) dst[i] = static_cast<uint16_t>(values.Get(static_cast<int>(i)));
}

void check_count(const TensorProto& proto, int64_t have, int64_t want, const char* field) {
  if (have != want)
    throw tensor_error(proto, ErrorCode::kInvalidModel,
                       "declares " + std::to_string(want) + " values for shape " +
                           dims_to_string({proto.dims().begin(), proto.dims().end()}) + " but holds " +
                           std::to_string(have),
                       field);
}

// How many values the typed field for `dtype` holds, in elements, and that field's name.
std::pair<int64_t, const char*> typed_field_count(const TensorProto& proto, DataType dtype) {
  switch (dtype) {
    case DataType::kFloat32: return {proto.float_data_size(), "float_data"};
    case DataType::kFloat64: return {proto.double_data_size(), "double_data"};
    case DataType::kComplex64: return {proto.float_data_size() / 2, "float_data"};
    case DataType::kComplex128: return {proto.double_data_size() / 2, "double_data"};
    case DataType::kInt64: return {proto.int64_data_size(), "int64_data"};
    case DataType::kUInt32:
    case DataType::kUInt64: return {proto.uint64_data_size(), "uint64_data"};
    case DataType::kString: return {proto.string_data_size(), "string_data"};
    default: return {proto.int32_data_size(), "int32_data"};
  }
}

}  // namespace

TensorLayout tensor_layout_from_proto(const TensorProto& proto, uint64_t max_tensor_bytes) {
  if (proto.data_type() == TensorProto::UNDEFINED)
    throw tensor_error(proto, ErrorCode::kInvalidModel, "data_type is not set", "data_type");
  if (!is_known_data_type(proto.data_type()))
    throw tensor_error(proto, ErrorCode::kUnsupported,
                       "data type " + std::to_string(proto.data_type()) + " is not supported",
                       "data_type");
  TensorLayout layout;
  layout.dtype = static_cast<DataType>(proto.data_type());
  layout.dims.assign(proto.dims().begin(), proto.dims().end());
  try {
    layout.numel = checked_element_count(layout.dims);
  } catch (const Error& e) {
    throw e.with_context({.tensor = proto.name(), .field = "dims"});
  }
  // Strings have no fixed size; count their elements against the cap as pointers would take.
  const uint64_t bytes_per_element = std::max<uint64_t>(1, element_bits(layout.dtype) / 8);  // sub-byte: under 1
  if (static_cast<uint64_t>(layout.numel) > std::numeric_limits<uint64_t>::max() / bytes_per_element ||
      storage_bytes(layout.dtype, layout.numel) > max_tensor_bytes) {
    throw tensor_error(proto, ErrorCode::kLimitExceeded,
                       "declares " + std::to_string(layout.numel) + " elements of " +
                           to_string(layout.dtype) + ", over the limit of " +
                           std::to_string(max_tensor_bytes) + " bytes per tensor",
                       "dims");
  }
  layout.nbytes = storage_bytes(layout.dtype, layout.numel);
  return layout;
}

Tensor tensor_from_proto(const TensorProto& proto, const TensorReadOptions& options, bool borrow) {
  TensorLayout layout = tensor_layout_from_proto(proto, options.max_tensor_bytes);

  if (proto.data_location() == TensorProto::EXTERNAL) {
    if (!options.external)
      throw tensor_error(proto, ErrorCode::kInvalidModel,
                         "external data is not allowed here (no model folder to resolve it in)",
                         "external_data");
    if (layout.dtype == DataType::kString)
      throw tensor_error(proto, ErrorCode::kInvalidModel, "string tensors cannot use external data",
                         "external_data");
    return options.external->load(proto, layout);
  }

  const int64_t n = layout.numel;
  if (proto.has_raw_data()) {
    if (layout.dtype == DataType::kString)
      throw tensor_error(proto, ErrorCode::kInvalidModel, "string tensors cannot use raw_data", "raw_data");
    if (proto.raw_data().size() != layout.nbytes)
      throw tensor_error(proto, ErrorCode::kInvalidModel,
                         "raw_data has " + std::to_string(proto.raw_data().size()) + " bytes but shape " +
                             dims_to_string(layout.dims) + " of " + to_string(layout.dtype) + " needs " +
                             std::to_string(layout.nbytes),
                         "raw_data");
    const size_t element_bytes = std::max<size_t>(1, element_bits(layout.dtype) / 8);
    if (borrow && options.raw_data && RawDataStrings::takes(layout.dtype, layout.nbytes) &&
        reinterpret_cast<uintptr_t>(proto.raw_data().data()) % element_bytes == 0)
      return options.raw_data->view(proto, layout);
    Tensor t = Tensor::uninitialized(layout.dtype, layout.dims);  // every byte is copied in next
    if (layout.nbytes) std::memcpy(t.mutable_data(), proto.raw_data().data(), layout.nbytes);
    return t;
  }

  // Check the data is all there before allocating what the dims declare. Sub-byte types keep one
  // packed byte per int32_data entry (two int4 or four int2 elements).
  auto [have, field] = typed_field_count(proto, layout.dtype);
  const int64_t entries = element_bits(layout.dtype) < 8 ? static_cast<int64_t>(layout.nbytes) : n;
  check_count(proto, have, entries, field);
  Tensor t(layout.dtype, layout.dims);
  switch (layout.dtype) {
    case DataType::kFloat32:
      copy_typed<float>(proto.float_data(), n, t);
      break;
    case DataType::kFloat64:
      copy_typed<double>(proto.double_data(), n, t);
      break;
    case DataType::kComplex64:
      std::memcpy(t.mutable_data(), proto.float_data().data(), t.nbytes());
      break;
    case DataType::kComplex128:
      std::memcpy(t.mutable_data(), proto.double_data().data(), t.nbytes());
      break;
    case DataType::kInt64:
      copy_typed<int64_t>(proto.int64_data(), n, t);
      break;
    case DataType::kUInt32:
      copy_typed<uint32_t>(proto.uint64_data(), n, t);
      break;
    case DataType::kUInt64:
      copy_typed<uint64_t>(proto.uint64_data(), n, t);
      break;
    case DataType::kInt32:
      copy_typed<int32_t>(proto.int32_data(), n, t);
      break;
    case DataType::kInt16:
      copy_typed<int16_t>(proto.int32_data(), n, t);
      break;
    case DataType::kInt8:
      copy_typed<int8_t>(proto.int32_data(), n, t);
      break;
    case DataType::kUInt16:
      copy_typed<uint16_t>(proto.int32_data(), n, t);
      break;
    case DataType::kUInt8:
      copy_typed<uint8_t>(proto.int32_data(), n, t);
      break;
    case DataType::kBool:
      copy_typed<bool>(proto.int32_data(), n, t);
      break;
    case DataType::kFloat16:
    case DataType::kBFloat16:
      copy_bits16(proto.int32_data(), n, t);
      break;
    case DataType::kFloat8E4M3FN:
    case DataType::kFloat8E4M3FNUZ:
    case DataType::kFloat8E5M2:
    case DataType::kFloat8E5M2FNUZ:
    case DataType::kFloat8E8M0:
    case DataType::kInt4:
    case DataType::kUInt4:
    case DataType::kFloat4E2M1:
    case DataType::kInt2:
    case DataType::kUInt2: {  // one byte (one element, or one packed group) per entry
      auto* dst = static_cast<uint8_t*>(t.mutable_data());
      for (int64_t i = 0; i < entries; ++i) dst[i] = static_cast<uint8_t>(proto.int32_data(static_cast<int>(i)));
      break;
    }
    case DataType::kString: {
      auto* dst = t.mutable_data_as<std::string>();
      for (int64_t i = 0; i < n; ++i) dst[i] = proto.string_data(static_cast<int>(i));
      break;
    }
    case DataType::kUndefined:
      break;
  }
  return t;
}

bool RawDataStrings::takes(DataType dtype, uint64_t bytes) {
  // Past what any standard library keeps inside the string object (libstdc++: 15 characters).
  constexpr uint64_t kInObject = 64;
  return bytes >= kInObject && dtype != DataType::kInt64 && dtype != DataType::kInt32 && dtype != DataType::kString;
}

Tensor RawDataStrings::view(const TensorProto& proto, const TensorLayout& layout) {
  const std::string& bytes = proto.raw_data();
  auto holder = std::make_shared<std::string>();
  viewed_.emplace(&bytes, Viewed{bytes.data(), holder});
  return Tensor::view(layout.dtype, layout.dims, bytes.data(), std::move(holder));
}

void RawDataStrings::adopt(onnx::GraphProto& graph) {
  size_t adopted = 0;
  for (TensorProto& init : *graph.mutable_initializer()) {
    if (!init.has_raw_data()) continue;
    auto it = viewed_.find(&init.raw_data());
    if (it == viewed_.end()) continue;
    std::unique_ptr<std::string> released(init.release_raw_data());  // the same string: no arena
    it->second.holder->swap(*released);  // a heap buffer changes owner, not address
    if (it->second.holder->data() != it->second.bytes)
      throw Error(ErrorCode::kInternal, "raw_data moved while viewed", {.tensor = init.name()});
    ++adopted;
  }
  if (adopted != viewed_.size())
    throw Error(ErrorCode::kInternal, std::to_string(viewed_.size() - adopted) +
                                          " viewed initializer strings are no longer in the graph");
  viewed_.clear();
}

void tensor_to_proto(const Tensor& tensor, TensorProto* proto) {
  proto->set_data_type(static_cast<int32_t>(tensor.dtype()));
  proto->clear_dims();
  for (int64_t d : tensor.dims()) proto->add_dims(d);
  if (tensor.dtype() == DataType::kString) {
    const auto* strings = tensor.data_as<std::string>();
    for (int64_t i = 0; i < tensor.numel(); ++i) proto->add_string_data(strings[i]);
    return;
  }
  proto->set_raw_data(static_cast<const char*>(tensor.data()), tensor.nbytes());
}

ir::TypeInfo type_from_proto(const onnx::TypeProto& proto) {
  using Kind = ir::TypeInfo::Kind;
  ir::TypeInfo t;
  t.denotation = proto.denotation();
  auto read_shape = [](const onnx::TensorShapeProto& shape) {
    Shape s;
    for (const auto& d : shape.dim()) {
      if (d.has_dim_value()) s.dims.push_back(Dim::fixed(d.dim_value()));
      else if (d.has_dim_param()) s.dims.push_back(Dim::symbolic(d.dim_param()));
      else s.dims.push_back(Dim::unknown());
      s.dims.back().denotation = d.denotation();
    }
    return s;
  };
  auto element = [](const onnx::TypeProto& p) { return std::make_shared<ir::TypeInfo>(type_from_proto(p)); };
  switch (proto.value_case()) {
    case onnx::TypeProto::kTensorType:
      t.kind = Kind::kTensor;
      t.elem_type = static_cast<DataType>(proto.tensor_type().elem_type());
      if (proto.tensor_type().has_shape()) t.shape = read_shape(proto.tensor_type().shape());
      break;
    case onnx::TypeProto::kSparseTensorType:
      t.kind = Kind::kSparseTensor;
      t.elem_type = static_cast<DataType>(proto.sparse_tensor_type().elem_type());
      if (proto.sparse_tensor_type().has_shape()) t.shape = read_shape(proto.sparse_tensor_type().shape());
      break;
    case onnx::TypeProto::kSequenceType:
      t.kind = Kind::kSequence;
      if (proto.sequence_type().has_elem_type()) t.element = element(proto.sequence_type().elem_type());
      break;
    case onnx::TypeProto::kOptionalType:
      t.kind = Kind::kOptional;
      if (proto.optional_type().has_elem_type()) t.element = element(proto.optional_type().elem_type());
      break;
    case onnx::TypeProto::kMapType:
      t.kind = Kind::kMap;
      t.key_type = static_cast<DataType>(proto.map_type().key_type());
      if (proto.map_type().has_value_type()) t.element = element(proto.map_type().value_type());
      break;
    case onnx::TypeProto::kOpaqueType:
      t.kind = Kind::kOpaque;
      t.opaque_domain = proto.opaque_type().domain();
      t.opaque_name = proto.opaque_type().name();
      break;
    case onnx::TypeProto::VALUE_NOT_SET:
      break;
  }
  return t;
}

void type_to_proto(const ir::TypeInfo& t, onnx::TypeProto* proto) {
  using Kind = ir::TypeInfo::Kind;
  if (!t.denotation.empty()) proto->set_denotation(t.denotation);
  auto write_shape = [](const Shape& s, onnx::TensorShapeProto* out) {
    for (const auto& d : s.dims) {
      auto* dim = out->add_dim();
      if (d.is_fixed()) dim->set_dim_value(d.value);
      else if (!d.symbol.empty()) dim->set_dim_param(d.symbol);
      if (!d.denotation.empty()) dim->set_denotation(d.denotation);
    }
  };
  switch (t.kind) {
    case Kind::kTensor: {
      auto* tt = proto->mutable_tensor_type();
      tt->set_elem_type(static_cast<int32_t>(t.elem_type));
      if (t.shape) write_shape(*t.shape, tt->mutable_shape());
      break;
    }
    case Kind::kSparseTensor: {
      auto* st = proto->mutable_sparse_tensor_type();
      st->set_elem_type(static_cast<int32_t>(t.elem_type));
      if (t.shape) write_shape(*t.shape, st->mutable_shape());
      break;
    }
    case Kind::kSequence: {
      auto* seq = proto->mutable_sequence_type();
      if (t.element) type_to_proto(*t.element, seq->mutable_elem_type());
      break;
    }
    case Kind::kOptional: {
      auto* opt = proto->mutable_optional_type();
      if (t.element) type_to_proto(*t.element, opt->mutable_elem_type());
      break;
    }
    case Kind::kMap: {
      auto* map = proto->mutable_map_type();
      map->set_key_type(static_cast<int32_t>(t.key_type));
      if (t.element) type_to_proto(*t.element, map->mutable_value_type());
      break;
    }
    case Kind::kOpaque: {
      auto* op = proto->mutable_opaque_type();
      op->set_domain(t.opaque_domain);
      op->set_name(t.opaque_name);
      break;
    }
    case Kind::kUnknown:
      break;
  }
}

}  // namespace tunnx
