#include "importer/external_data.h"

#include <algorithm>
#include <charconv>
#include <cstring>

namespace tunnx {
namespace {

namespace fs = std::filesystem;

struct ExternalEntry {
  std::string location;
  uint64_t offset = 0;
  bool has_length = false;
  uint64_t length = 0;
};

uint64_t parse_size(const std::string& text, const std::string& key, const std::string& tensor) {
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size())
    throw Error(ErrorCode::kInvalidModel, "external data " + key + " '" + text + "' is not a non-negative integer",
                {.tensor = tensor, .field = "external_data." + key});
  return value;
}

ExternalEntry parse_entry(const onnx::TensorProto& proto) {
  ExternalEntry e;
  for (const auto& kv : proto.external_data()) {
    if (kv.key() == "location") e.location = kv.value();
    else if (kv.key() == "offset") e.offset = parse_size(kv.value(), "offset", proto.name());
    else if (kv.key() == "length") {
      e.length = parse_size(kv.value(), "length", proto.name());
      e.has_length = true;
    }
  }
  if (e.location.empty())
    throw Error(ErrorCode::kInvalidModel, "external data has no location",
                {.tensor = proto.name(), .field = "external_data.location"});
  return e;
}

bool is_inside(const fs::path& dir, const fs::path& path) {
  auto d = dir.begin(), p = path.begin();
  for (; d != dir.end(); ++d, ++p)
    if (p == path.end() || *d != *p) return false;
  return true;
}

}  // namespace

ExternalDataResolver::ExternalDataResolver(fs::path model_dir) : model_dir_(std::move(model_dir)) {
  std::error_code ec;
  canonical_dir_ = fs::weakly_canonical(model_dir_.empty() ? fs::path(".") : model_dir_, ec);
  if (ec) canonical_dir_ = fs::absolute(model_dir_).lexically_normal();
}

fs::path ExternalDataResolver::resolve(const std::string& location, const std::string& tensor) const {
  auto reject = [&](const std::string& why) {
    return Error(ErrorCode::kInvalidModel, "external data location '" + location + "' " + why,
                 {.tensor = tensor, .field = "external_data.location"});
  };
  if (location.find('\0') != std::string::npos) throw reject("contains a NUL byte");
  fs::path rel(location);
  if (rel.is_absolute() || rel.has_root_name() || rel.has_root_directory())
    throw reject("is an absolute path; it must be relative to the model's folder");
  fs::path normal = rel.lexically_normal();
  if (normal.empty() || *normal.begin() == "..")
    throw reject("leaves the model's folder");
  fs::path full = (model_dir_.empty() ? fs::path(".") : model_dir_) / normal;
  std::error_code ec;
  fs::path real = fs::weakly_canonical(full, ec);
  if (ec) throw reject("cannot be resolved: " + ec.message());
  if (!is_inside(canonical_dir_, real)) throw reject("leaves the model's folder through a symlink");
  if (!fs::exists(real, ec)) throw reject("names a file that does not exist");
  if (!fs::is_regular_file(real, ec)) throw reject("is not a regular file");
  return real;
}

Tensor ExternalDataResolver::load(const onnx::TensorProto& proto, const TensorLayout& layout) {
  ExternalEntry entry = parse_entry(proto);
  fs::path path = resolve(entry.location, proto.name());
  // The model file goes in the context (added by Model::load); the data file is named in the text.
  ErrorContext where{.tensor = proto.name(), .field = "external_data"};
  const std::string in_file = " in '" + entry.location + "'";

  if (entry.has_length && entry.length != layout.nbytes)
    throw Error(ErrorCode::kInvalidModel,
                "external data length " + std::to_string(entry.length) + " does not match the " +
                    std::to_string(layout.nbytes) + " bytes that " + dims_to_string(layout.dims) + " of " +
                    to_string(layout.dtype) + " needs" + in_file,
                where);

  std::shared_ptr<MappedFile>& file = files_[path];
  if (!file) file = MappedFile::open(path);
  if (entry.offset > file->size() || layout.nbytes > file->size() - entry.offset)
    throw Error(ErrorCode::kInvalidModel,
                "external data [offset " + std::to_string(entry.offset) + ", +" +
                    std::to_string(layout.nbytes) + " bytes) runs past the end of the " +
                    std::to_string(file->size()) + "-byte file '" + entry.location + "'",
                where);
  if (layout.nbytes == 0) return Tensor(layout.dtype, layout.dims);

  const std::byte* bytes = file->data() + entry.offset;
  // Views must be aligned for their element type; a misaligned tensor is copied once, here.
  if (reinterpret_cast<uintptr_t>(bytes) % std::max<size_t>(1, element_bits(layout.dtype) / 8) != 0) {
    Tensor copy(layout.dtype, layout.dims);
    std::memcpy(copy.mutable_data(), bytes, layout.nbytes);
    return copy;
  }
  return Tensor::view(layout.dtype, layout.dims, bytes, file);
}

}  // namespace tunnx
