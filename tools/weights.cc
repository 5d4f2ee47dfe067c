#include "tools/weights.h"

#include "tunnx/io.h"
#include "tunnx/status.h"

namespace tunnx::cli {

void apply_weights_file(Model& model, const std::filesystem::path& file) {
  const SafetensorsFile weights = load_safetensors(file);
  const StateDict current = model.state_dict();
  for (const auto& [name, tensor] : weights.tensors) {
    const Tensor* found = nullptr;
    for (const auto& [key, value] : current)
      if (key == name) found = &value;
    if (!found)
      throw Error(ErrorCode::kInvalidArgument, "is not a Parameter or buffer of the model", {.file = file.string(), .tensor = name});
    if (found->dtype() != tensor.dtype() || found->dims() != tensor.dims())
      throw Error(ErrorCode::kInvalidArgument,
                  std::string("is ") + to_string(tensor.dtype()) + dims_to_string(tensor.dims()) + " but the model's is " +
                      to_string(found->dtype()) + dims_to_string(found->dims()),
                  {.file = file.string(), .tensor = name});
  }
  model.load_state_dict(weights.tensors, /*strict=*/false);
}

}  // namespace tunnx::cli
