// External data: tensors whose bytes live in a separate file next to the model. Paths must stay
// inside the model's folder (no absolute paths, no `..` escapes, no symlinks leading out); offset and
// length are checked against the file; the file is mmapped once and tensors are views into it.
#pragma once

#include <filesystem>
#include <map>
#include <memory>

#include "importer/mapped_file.h"
#include "importer/tensor_proto.h"

namespace tunnx {

class ExternalDataResolver {
 public:
  explicit ExternalDataResolver(std::filesystem::path model_dir);

  // A view on the mapped file, or an owned copy when the offset breaks the dtype's alignment.
  Tensor load(const onnx::TensorProto& proto, const TensorLayout& layout);

  // Resolves `location` inside the model folder; throws Error naming the tensor on any escape.
  std::filesystem::path resolve(const std::string& location, const std::string& tensor_name) const;

 private:
  std::filesystem::path model_dir_;      // as given
  std::filesystem::path canonical_dir_;  // symlinks resolved
  std::map<std::filesystem::path, std::shared_ptr<MappedFile>> files_;
};

}  // namespace tunnx
