#include "tools/weights.h"

#include <map>

#include "tunnx/io.h"
#include "tunnx/status.h"

namespace tunnx::cli {

void apply_weights_file(Model& model, const std::filesystem::path& file) {
  const SafetensorsFile weights = load_safetensors(file);
  std::map<std::string, Tensor> current;
  for (auto& [name, tensor] : model.state_dict()) current.emplace(name, tensor);
  for (const auto& [name, tensor] : weights.tensors) {
    auto it = current.find(name);
    const Tensor* found = it == current.end() ? nullptr : &it->second;
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

bool releases_packed_weights(const ModelInfo& info, bool keep_weights) {
  return !keep_weights && !info.op_histogram.count("ai.onnx.preview.training:Gradient");
}

}  // namespace tunnx::cli
