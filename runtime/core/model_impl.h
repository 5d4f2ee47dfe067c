// What a tunnx::Model holds: the graph IR and the store of its initializers.
#pragma once

#include <filesystem>

#include "runtime/core/graph.h"
#include "runtime/core/parameter_store.h"
#include "tunnx/model.h"

namespace tunnx {

struct Model::Impl {
  ir::ModelIR ir;
  ParameterStore store;
  std::filesystem::path path;  // file it was loaded from; empty when loaded from bytes
  std::string onnx_checker;    // "passed" or why it was skipped
};

}  // namespace tunnx
