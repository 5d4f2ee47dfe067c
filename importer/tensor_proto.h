// TensorProto / TypeProto <-> tunnx types. Every tensor is checked against its declared shape and a
// size cap before anything is allocated.
#pragma once

#include <cstdint>
#include <memory>
#include <unordered_map>

#include "onnx/onnx_pb.h"
#include "runtime/core/graph.h"
#include "tunnx/tensor.h"

namespace tunnx {

class ExternalDataResolver;
class RawDataStrings;

struct TensorReadOptions {
  uint64_t max_tensor_bytes = uint64_t{16} << 30;
  ExternalDataResolver* external = nullptr;  // null: external data is an error
  // Non-null: the graph's own float (and other non-integer) initializers view their raw_data in place
  // instead of copying it, and this takes the strings over (RawDataStrings::adopt).
  RawDataStrings* raw_data = nullptr;
};

// Decodes raw_data, typed fields or external data. Throws Error naming the tensor and the field.
// With `borrow` (options.raw_data), raw_data that RawDataStrings takes becomes a view on the proto's string.
Tensor tensor_from_proto(const onnx::TensorProto& proto, const TensorReadOptions& options, bool borrow = false);
// Dtype and dims of a TensorProto, validated (known dtype, non-negative dims, size under the cap).
struct TensorLayout {
  DataType dtype;
  std::vector<int64_t> dims;
  int64_t numel;
  uint64_t nbytes;
};
TensorLayout tensor_layout_from_proto(const onnx::TensorProto& proto, uint64_t max_tensor_bytes);

// The raw_data strings of a parsed model that its initializers view: a file's weights were otherwise
// copied twice at load (protobuf's parse, then into each tensor), a third of BERT-2L's load time in
// fresh pages. The strings stay in the proto while ONNX's checker reads them; adopt() then moves each
// into the holder its view keeps alive, before anything changes or drops them in the proto. A tensor
// kept after its model holds its own bytes only.
class RawDataStrings {
 public:
  // Whether raw_data of `bytes` bytes of `dtype` is viewed: not the integers, which ONNX's shape
  // inference reads from the proto after adopt() (a Reshape's shape), and not what fits inside a
  // std::string's own object (its bytes would move with it); those are copied.
  static bool takes(DataType dtype, uint64_t bytes);
  // A read-only view on proto.raw_data() (its size already checked against `layout`).
  Tensor view(const onnx::TensorProto& proto, const TensorLayout& layout);
  // Moves every viewed string out of `graph`'s initializers into its view's holder, leaving their
  // raw_data unset. Throws Error(kInternal) when a viewed string is no longer there or its bytes
  // moved (its view would dangle).
  void adopt(onnx::GraphProto& graph);

 private:
  struct Viewed {
    const char* bytes;                     // where the view points
    std::shared_ptr<std::string> holder;   // what the view keeps alive; adopt() fills it
  };
  std::unordered_map<const std::string*, Viewed> viewed_;  // by the proto's string
};

// Writes `tensor` as raw_data (typed string_data for strings). Name and external data are the caller's.
void tensor_to_proto(const Tensor& tensor, onnx::TensorProto* proto);

ir::TypeInfo type_from_proto(const onnx::TypeProto& proto);
void type_to_proto(const ir::TypeInfo& type, onnx::TypeProto* proto);

}  // namespace tunnx
