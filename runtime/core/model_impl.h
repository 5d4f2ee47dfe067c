// What a tunnx::Model holds: the graph IR and the store of its initializers.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
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
  // The main graph's values whose dims shape inference fixes when the named inputs have the given
  // dims (importer/onnx_validate.h, infer_fixed_dims, on the graph as loaded): what a session made
  // ready for such inputs prepares its kernels with. Unset where load ran no inference; not for a
  // graph edited since (`edits`).
  std::function<std::map<std::string, std::vector<int64_t>>(const std::map<std::string, std::vector<int64_t>>&)>
      fixed_dims_for;
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
