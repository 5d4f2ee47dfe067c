// Train-mode rewrites of an inference (eval-form) graph, so exported models train without edits:
// - BatchNormalization -> com.tunnx:BatchNormTrain: normalises with batch statistics and returns the
//   updated running statistics, which the trainer writes back into the buffers (PyTorch's rule).
// - Dropout -> com.tunnx:TrainDropout: drops with a generator seeded per step (a graph input).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "runtime/core/graph.h"
#include "runtime/core/parameter_store.h"

namespace tunnx::train {

inline constexpr const char* kDropoutSeedInput = "__tunnx_dropout_seed";

struct TrainModeGraph {
  // Per running-statistics buffer (store key), the graph value holding its updated value.
  std::vector<std::pair<std::string, std::string>> running_updates;
  int dropouts = 0;  // TrainDropout nodes made (they read kDropoutSeedInput, an int64 scalar)
};

// Rewrites the main graph in place. Throws Error naming the node when a Dropout ratio is not a
// constant or a BatchNormalization uses a form this cannot train (opset < 7's spatial=0).
TrainModeGraph rewrite_for_training(ir::Graph& graph, int64_t onnx_opset, const ParameterStore& store);

// Removes nodes none of whose outputs is read (directly or through other nodes) by a graph output.
void remove_unused_nodes(ir::Graph& graph);

}  // namespace tunnx::train
