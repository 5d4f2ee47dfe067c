// ONNX's own checker and shape inference, applied where Debian's libonnx knows the opsets.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "onnx/onnx_pb.h"
#include "runtime/core/graph.h"

namespace tunnx {

// Builds libonnx's operator schema registry (with the schemas tunnx adds to it) if no call has yet:
// ~7 ms, on the first use in a process. Thread-safe; Model::load runs it on a second thread while it
// reads the file, and waits for it before anything reads a schema.
void prepare_onnx_schemas();

// Runs ONNX's checker. Returns "passed", or why it was skipped (an opset or IR version newer than
// the library knows). Throws Error(kInvalidModel) with the checker's first line when it fails.
std::string run_onnx_checker(const onnx::ModelProto& model, const std::filesystem::path& model_dir);

// Runs ONNX shape inference on the parsed model, which it consumes: the weights' data (all but the
// integer initializers, which shapes are computed from, and values of up to 64 bytes written inline,
// such as a Resize's scales) is dropped first, so a big model is not held a third time, and inference
// writes its findings into it. Records the types found for the main graph's values in
// graph.inferred_types. Failures only mean fewer known types. Returns whether inference ran (false
// where the library cannot judge the model).
bool infer_value_types(onnx::ModelProto& model, ir::Graph& graph);

// The main graph's values whose dims ONNX's shape inference fixes when the inputs named in
// `input_dims` have those dims (others as declared), by name. `model` is as infer_value_types left
// it, with its value_info cleared (what load inferred would be merged in); it stays unchanged. A
// symbolic or "?" dim lost to inference at load (a Resize of a symbolic batch, a Paddle2ONNX input's
// "?") is then known. Empty when inference fails.
std::map<std::string, std::vector<int64_t>> infer_fixed_dims(const onnx::ModelProto& model,
                                                            const std::map<std::string, std::vector<int64_t>>& input_dims);

}  // namespace tunnx
