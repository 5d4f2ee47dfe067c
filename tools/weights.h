// Trained weights from a safetensors file applied to a loaded model, for `tunnx run --weights` and
// `tunnx export --weights`.
#pragma once

#include <filesystem>

#include "tunnx/model.h"

namespace tunnx::cli {

// Every tensor of the file must name a Parameter or buffer of the model, with its shape and dtype;
// throws Error naming the file and the tensor otherwise, before the model changes.
void apply_weights_file(Model& model, const std::filesystem::path& file);

// Whether `tunnx run` and `bench` make their session free each weight once packed
// (SessionOptions::release_packed_originals), their default: not with --keep-weights, nor for a graph
// with ONNX Gradient nodes, whose kernels read the weights as they lie.
bool releases_packed_weights(const ModelInfo& info, bool keep_weights);

}  // namespace tunnx::cli
