// What a tunnx::Model holds: the graph IR and the store of its initializers.
#pragma once

#include <filesystem>
#include <functional>
#include <string>
#include <vector>
#include <memory>
#include <shared_mutex>
#include <utility>

#include "runtime/core/graph.h"
#include "runtime/core/parameter_store.h"
#include "tunnx/extend.h"
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
  // Graph edits made after load (tunnx/extend.h), one line each, for checkpoints to record.
  std::vector<std::string> edits;
  // Set by the LoRA extension (runtime/train): the model to write when SaveOptions::merge_lora asks
  // for adapters folded into their weights. Save stays free of the extension's details.
  std::function<std::unique_ptr<Impl>(const Impl&)> merged_for_export;
  std::vector<LoraAdapter> lora;      // every adapter added, in order
  std::vector<LoraOptions> lora_calls;  // the add_lora calls that made them
};

// What the runtime reaches inside a Model through; the public header shows only a forward declaration.
struct ModelInternals {
  using Impl = Model::Impl;
  static Impl& of(Model& m) { return *m.impl_; }
  static const Impl& of(const Model& m) { return *m.impl_; }
  static Model make(std::unique_ptr<Impl> impl) { return Model(std::move(impl)); }
};
using ModelImpl = ModelInternals::Impl;
inline ModelImpl& model_impl(Model& m) { return ModelInternals::of(m); }
inline const ModelImpl& model_impl(const Model& m) { return ModelInternals::of(m); }

}  // namespace tunnx
