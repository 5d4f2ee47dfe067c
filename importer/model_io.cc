// Model::load and Model::save: file handling around the reader, checks, parameter policy and writer.
#include <climits>

#include "importer/atomic_file.h"
#include "importer/external_data.h"
#include "importer/mapped_file.h"
#include "importer/onnx_reader.h"
#include "importer/onnx_validate.h"
#include "importer/onnx_writer.h"
#include "importer/parameter_policy.h"
#include "runtime/core/graph_order.h"
#include "runtime/core/model_impl.h"

namespace tunnx {
namespace {

namespace fs = std::filesystem;

// Protobuf cannot parse or write a message over 2 GiB; bigger models keep weights in external data.
constexpr uint64_t kProtobufLimit = INT_MAX;

std::unique_ptr<Model::Impl> load_impl(const void* bytes, size_t size, const fs::path& model_dir,
                                       const LoadOptions& options) {
  if (size == 0) throw Error(ErrorCode::kInvalidModel, "file is empty");
  if (size > kProtobufLimit)
    throw Error(ErrorCode::kInvalidModel, "file is larger than protobuf's 2 GiB limit (keep weights in external data)");
  onnx::ModelProto proto;
  if (!proto.ParseFromArray(bytes, static_cast<int>(size)))
    throw Error(ErrorCode::kInvalidModel, "not an ONNX model: protobuf parsing failed (truncated or corrupt file)");
  if (proto.ir_version() <= 0)
    throw Error(ErrorCode::kInvalidModel, "not an ONNX model: ir_version is not set", {.field = "ir_version"});
  if (!proto.has_graph())
    throw Error(ErrorCode::kInvalidModel, "not an ONNX model: it has no graph", {.field = "graph"});

  auto impl = std::make_unique<Model::Impl>();
  ExternalDataResolver external(model_dir);
  TensorReadOptions tensor_options{options.max_tensor_bytes, &external};
  impl->ir = read_model(proto, impl->store, tensor_options);
  ir::sort_and_check(impl->ir.graph);
  impl->onnx_checker = options.run_onnx_checker ? run_onnx_checker(proto, model_dir) : "disabled";
  if (options.run_onnx_checker) infer_value_types(proto, impl->ir.graph);
  assign_parameter_roles(impl->ir, impl->store);
  return impl;
}

}  // namespace

Model Model::load(const fs::path& path, const LoadOptions& options) {
  try {
    std::error_code ec;
    if (!fs::exists(path, ec)) throw Error(ErrorCode::kNotFound, "no such file");
    if (fs::is_directory(path, ec)) throw Error(ErrorCode::kInvalidArgument, "is a directory, not a model file");
    std::shared_ptr<MappedFile> file = MappedFile::open(path);
    auto impl = load_impl(file->data(), file->size(), path.parent_path(), options);
    impl->path = path;
    return Model(std::move(impl));
  } catch (const Error& e) {
    throw e.with_context({.file = path.string()});
  }
}

Model Model::load_from_bytes(std::string_view bytes, const fs::path& base_dir, const LoadOptions& options) {
  return Model(load_impl(bytes.data(), bytes.size(), base_dir, options));
}

void Model::save(const fs::path& path, const SaveOptions& options) const {
  try {
    size_t total = initializer_bytes(impl_->store);
    ExternalDataPlan plan;
    plan.enabled = options.external_data == ExternalDataMode::kAlways ||
                   (options.external_data == ExternalDataMode::kAuto && total > kProtobufLimit - (64u << 20));
    plan.threshold_bytes = options.external_threshold_bytes;
    plan.location = options.external_data_file.empty() ? path.filename().string() + ".data"
                                                        : options.external_data_file;
    std::string data;
    plan.data = &data;
    if (plan.enabled) {
      // The reader's rules apply to what we write too: the data file stays in the model's folder.
      fs::path rel(plan.location);
      fs::path normal = rel.lexically_normal();
      if (rel.is_absolute() || normal.empty() || *normal.begin() == ".." || normal.has_parent_path())
        throw Error(ErrorCode::kInvalidArgument, "external data file '" + plan.location +
                                                     "' must be a plain file name in the model's folder");
    }
    onnx::ModelProto proto = write_model(impl_->ir, impl_->store, plan);
    if (proto.ByteSizeLong() > kProtobufLimit)
      throw Error(ErrorCode::kLimitExceeded,
                  "model is over protobuf's 2 GiB limit; save with external data");
    if (plan.enabled)
      write_file_atomically(path.parent_path() / plan.location,
                            [&data](std::ostream& out) { out.write(data.data(), static_cast<std::streamsize>(data.size())); });
    write_file_atomically(path, [&proto](std::ostream& out) {
      if (!proto.SerializeToOstream(&out)) throw Error(ErrorCode::kIo, "serializing the model failed");
    });
  } catch (const Error& e) {
    throw e.with_context({.file = path.string()});
  }
}

}  // namespace tunnx
