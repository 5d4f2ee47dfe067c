// TensorProto / TypeProto <-> tunnx types. Every tensor is checked against its declared shape and a
// size cap before anything is allocated.
#pragma once

#include <cstdint>

#include "onnx/onnx_pb.h"
#include "runtime/core/graph.h"
#include "tunnx/tensor.h"

namespace tunnx {

class ExternalDataResolver;

struct TensorReadOptions {
  uint64_t max_tensor_bytes = uint64_t{16} << 30;
  ExternalDataResolver* external = nullptr;  // null: external data is an error
};

// Decodes raw_data, typed fields or external data. Throws Error naming the tensor and the field.
Tensor tensor_from_proto(const onnx::TensorProto& proto, const TensorReadOptions& options);
// Dtype and dims of a TensorProto, validated (known dtype, non-negative dims, size under the cap).
struct TensorLayout {
  DataType dtype;
  std::vector<int64_t> dims;
  int64_t numel;
  uint64_t nbytes;
};
TensorLayout tensor_layout_from_proto(const onnx::TensorProto& proto, uint64_t max_tensor_bytes);

// Writes `tensor` as raw_data (typed string_data for strings). Name and external data are the caller's.
void tensor_to_proto(const Tensor& tensor, onnx::TensorProto* proto);

ir::TypeInfo type_from_proto(const onnx::TypeProto& proto);
void type_to_proto(const ir::TypeInfo& type, onnx::TypeProto* proto);

}  // namespace tunnx
