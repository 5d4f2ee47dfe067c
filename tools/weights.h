// Trained weights from a safetensors file applied to a loaded model, for `tunnx run --weights` and
// `tunnx export --weights`.
#pragma once

#include <filesystem>

#include "tunnx/model.h"

namespace tunnx::cli {

// Every tensor of the file must name a Parameter or buffer of the model, with its shape and dtype;
// throws Error naming the file and the tensor otherwise, before the model changes.
void apply_weights_file(Model& model, const std::filesystem::path& file);

}  // namespace tunnx::cli
