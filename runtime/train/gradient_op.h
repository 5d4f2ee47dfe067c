// ONNX's own training op, ai.onnx.preview.training:Gradient, lowered into backward nodes by autodiff
// when a graph is prepared: the node's outputs become the gradients of `y` with respect to `xs`
// (seeded with ones), computed by the nodes before it.
#pragma once

#include <map>
#include <string>

#include "runtime/core/graph.h"
#include "runtime/core/parameter_store.h"

namespace tunnx::train {

inline constexpr const char* kPreviewTrainingDomain = "ai.onnx.preview.training";

// Replaces every Gradient node of the main graph; returns how many there were.
int lower_gradient_ops(ir::Graph& graph, const std::map<std::string, int64_t>& opsets, const ParameterStore& store);

}  // namespace tunnx::train
