// What a tunnx::Model holds: the graph IR and the store of its initializers.
#pragma once

#include <filesystem>
#include <memory>
#include <shared_mutex>

#include "runtime/core/graph.h"
#include "runtime/core/parameter_store.h"
#include "tunnx/model.h"

namespace tunnx {

struct Model::Impl {
  ir::ModelIR ir;
  ParameterStore store;
  std::filesystem::path path;  // file it was loaded from; empty when loaded from bytes
  std::string onnx_checker;    // "passed" or why it was skipped
  // Runs hold it shared while they read parameters; an optimizer step or a running-statistics update
  // holds it exclusively, so no run sees a half-applied step.
  // Shared with sessions and trainers, which may outlive the Model object.
  std::shared_ptr<std::shared_mutex> parameters_mutex = std::make_shared<std::shared_mutex>();
};

}  // namespace tunnx
