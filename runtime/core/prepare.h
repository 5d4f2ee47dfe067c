// The one preparation pipeline every runnable graph goes through, for inference sessions and
// trainers alike:
//   copy the model's graph -> inline model-local functions -> lower ONNX Runtime's contrib ops
//   (com.microsoft) -> lower ONNX Gradient nodes (autodiff)
//   -> GELU fusion, Linear weight-transpose folding (level 2) -> the caller's rewrite (train mode,
//   loss, backward)
//   -> Linear fusion, Conv fusion and channels-last regions (level 2) -> plan
//   -> for a session, kernels prepared for the input dims it knows (prepare_kernels).
// The model's own graph is never changed: export writes it back as loaded.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <set>
#include <memory>
#include <string>
#include <vector>

#include "runtime/core/executor.h"
#include "runtime/core/graph.h"
#include "runtime/core/model_impl.h"

namespace tunnx {

struct PrepareOptions {
  DeviceType device = DeviceType::kCpu;
  int optimization_level = 2;
  bool profile = false;
  std::atomic<int64_t>* plans_built = nullptr;
  std::set<std::string> trained;  // PlanContext::trained
  // A graph with a backward pass (the trainer's): convolutions stay NCHW, where their gradient kernels
  // read the forward values (channels_last is an inference layout here).
  bool has_backward = false;
  // Runs after inlining and before fusions, on the copy; may add nodes, inputs and outputs.
  // `opsets` maps domain ("" = ai.onnx) to version, com.tunnx included.
  std::function<void(ir::Graph& graph, const std::map<std::string, int64_t>& opsets)> rewrite;
};

struct PreparedGraph {
  std::unique_ptr<ir::Graph> graph;  // the rewritten copy the plan points into
  std::unique_ptr<GraphPlan> plan;
  std::map<std::string, int64_t> opsets;
  int gradient_nodes = 0;  // ONNX Gradient nodes lowered into backward passes
};

// Throws Error naming the model file and the first node that cannot be planned.
PreparedGraph prepare_graph(const ModelImpl& model, const PrepareOptions& options);

// The last step, when a session is made: Kernel::prepare for each step of the main graph with an
// input whose dims shape inference fixed, with the named symbolic dims of `expected_dims` taken at
// their sizes (SessionOptions::expected_dims), so its first run finds the primitives built and the
// weights packed that it would otherwise make itself. `known_dims`: values' dims inferred for the
// expected input dims (SessionOptions::expected_input_dims; a channels-last twin "<v>/nhwc" takes
// v's, channels moved last), which come first. Steps are prepared `threads` at a time (0: OpenMP's
// default), each building for the team of `threads` a run gets; a step whose prepare fails is left
// to its first run, which reports it. With `release` (SessionOptions::release_packed_originals, the
// plan's release_packed_originals() called), each weight is let go as soon as the kernels reading it
// are prepared and hold copies, so a session that owns its model holds about one copy at any time.
// Returns the number of steps whose kernel built something.
int64_t prepare_kernels(const PreparedGraph& prepared, const ParameterStore& store, int threads,
                        const std::map<std::string, int64_t>& expected_dims,
                        const std::map<std::string, std::vector<int64_t>>& known_dims = {}, bool release = false);

// The op types of the model, after functions are inlined and contrib ops lowered as prepare_graph
// does, that no kernel on `device` runs at the model's opset: "Op (opset N)" or "domain:Op (opset N)",
// sorted, each once. Subgraphs included.
std::vector<std::string> ops_without_kernels(const ModelImpl& model, DeviceType device);

}  // namespace tunnx
