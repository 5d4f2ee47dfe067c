// ModelProto -> ModelIR. Initializers go into the ParameterStore (as buffers; the parameter policy
// decides roles afterwards); everything else is kept as the file had it.
#pragma once

#include "importer/tensor_proto.h"
#include "runtime/core/graph.h"
#include "runtime/core/parameter_store.h"

namespace tunnx {

ir::ModelIR read_model(const onnx::ModelProto& proto, ParameterStore& store,
                       const TensorReadOptions& tensor_options);

}  // namespace tunnx
