// ModelIR + ParameterStore -> ModelProto, with the parameters' current values. Tensors at or above a
// size threshold can be written to one external data file instead of inline.
#pragma once

#include <string>

#include "onnx/onnx_pb.h"
#include "runtime/core/graph.h"
#include "runtime/core/parameter_store.h"

namespace tunnx {

// metadata_props key listing, comma-separated, the initializers registered after load.
inline constexpr const char* kRegisteredInitializersKey = "tunnx.registered_initializers";

struct ExternalDataPlan {
  bool enabled = false;
  std::string location;          // relative to the model's folder
  size_t threshold_bytes = 1024;
  std::string* data = nullptr;   // bytes of the external file, appended to as tensors are written
};

onnx::ModelProto write_model(const ir::ModelIR& model, const ParameterStore& store,
                             ExternalDataPlan& external);

// Total bytes of all initializer data, to decide whether a model needs external data.
size_t initializer_bytes(const ParameterStore& store);

}  // namespace tunnx
