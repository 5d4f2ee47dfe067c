// Hugging Face safetensors: an 8-byte little-endian header length, a JSON header naming each
// tensor's dtype, shape and [begin, end) byte range, then the data. The checks are the reference
// implementation's (the `safetensors` crate's `validate`), so a file one accepts the other does too.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <set>
#include <tuple>

#include <nlohmann/json.hpp>

#include "importer/atomic_file.h"
#include "importer/mapped_file.h"
#include "tunnx/io.h"

namespace tunnx {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;  // keeps the header's order, for metadata and for writing

constexpr uint64_t kMaxHeaderSize = 100'000'000;  // the reference implementation's MAX_HEADER_SIZE
constexpr const char* kMetadataKey = "__metadata__";
// {name: {"shape": [dims]}}: anything nested deeper is not a safetensors header.
constexpr int kMaxDepth = 3;

struct DtypeName {
  const char* name;
  DataType dtype;
};
constexpr DtypeName kDtypes[] = {
    {"F64", DataType::kFloat64}, {"F32", DataType::kFloat32}, {"F16", DataType::kFloat16},
    {"BF16", DataType::kBFloat16}, {"I64", DataType::kInt64}, {"I32", DataType::kInt32},
    {"I16", DataType::kInt16},   {"I8", DataType::kInt8},     {"U64", DataType::kUInt64},
    {"U32", DataType::kUInt32},  {"U16", DataType::kUInt16},  {"U8", DataType::kUInt8},
    {"BOOL", DataType::kBool},
};

const char* dtype_name(DataType dtype) {
  for (const auto& d : kDtypes)
    if (d.dtype == dtype) return d.name;
  return nullptr;
}

std::string known_dtypes() {
  std::string names;
  for (const auto& d : kDtypes) names += (names.empty() ? "" : " ") + std::string(d.name);
  return names;
}

struct Entry {
  std::string name;
  DataType dtype = DataType::kUndefined;
  std::vector<int64_t> dims;
  uint64_t begin = 0, end = 0;
};

class HeaderReader {
 public:
  explicit HeaderReader(std::string file) : file_(std::move(file)) {}

  Error bad(const std::string& why, const std::string& tensor = {}) const {
    return Error(ErrorCode::kInvalidArgument, why, {.file = file_, .tensor = tensor});
  }

  // JSON with nothing nested past kMaxDepth and no name given twice (a plain parse would keep the
  // last of two and silently drop the other).
  json parse(std::string_view text) const {
    std::set<std::string> names;
    std::string duplicate;
    auto check = [&](int depth, json::parse_event_t event, json& parsed) {
      if ((event == json::parse_event_t::object_start || event == json::parse_event_t::array_start) &&
          depth >= kMaxDepth)
        throw bad("header is nested too deeply for a safetensors header");
      if (event == json::parse_event_t::key && depth == 1 && !names.insert(parsed.get<std::string>()).second &&
          duplicate.empty())
        duplicate = parsed.get<std::string>();
      return true;
    };
    json header;
    try {
      header = json::parse(text.begin(), text.end(), check);
    } catch (const json::exception& e) {
      throw bad(std::string("header is not valid JSON: ") + e.what());
    }
    if (!duplicate.empty()) throw bad("is named twice in the header", duplicate);
    if (!header.is_object()) throw bad("header is not a JSON object");
    return header;
  }

  std::vector<std::pair<std::string, std::string>> metadata(const json& value) const {
    if (!value.is_object()) throw bad("__metadata__ is not an object of strings");
    std::vector<std::pair<std::string, std::string>> out;
    for (const auto& [key, text] : value.items()) {
      if (!text.is_string()) throw bad("__metadata__ '" + key + "' is not a string");
      out.emplace_back(key, text.get<std::string>());
    }
    return out;
  }

  Entry entry(const std::string& name, const json& info) const {
    if (!info.is_object()) throw bad("is not an object with dtype, shape and data_offsets", name);
    Entry e;
    e.name = name;
    const auto dtype = info.find("dtype");
    if (dtype == info.end() || !dtype->is_string()) throw bad("has no dtype string", name);
    for (const auto& d : kDtypes)
      if (*dtype == d.name) e.dtype = d.dtype;
    if (e.dtype == DataType::kUndefined)
      throw Error(ErrorCode::kUnsupported,
                  "dtype '" + dtype->get<std::string>() + "' is not supported (" + known_dtypes() + ")",
                  {.file = file_, .tensor = name});

    const auto shape = info.find("shape");
    if (shape == info.end() || !shape->is_array()) throw bad("has no shape list", name);
    for (const auto& dim : *shape) e.dims.push_back(count(dim, name, "shape"));
    try {
      checked_element_count(e.dims);
    } catch (const Error& error) {
      throw error.with_context({.file = file_, .tensor = name});
    }

    const auto offsets = info.find("data_offsets");
    if (offsets == info.end() || !offsets->is_array() || offsets->size() != 2)
      throw bad("has no data_offsets [begin, end]", name);
    e.begin = static_cast<uint64_t>(count((*offsets)[0], name, "data_offsets"));
    e.end = static_cast<uint64_t>(count((*offsets)[1], name, "data_offsets"));
    if (e.end < e.begin) throw bad("data_offsets " + range(e) + " end before they begin", name);
    return e;
  }

  static std::string range(const Entry& e) {
    return "[" + std::to_string(e.begin) + ", " + std::to_string(e.end) + ")";
  }

 private:
  int64_t count(const json& value, const std::string& name, const char* field) const {
    if (value.is_number_integer() && !value.is_number_unsigned())
      throw bad(std::string(field) + " holds a negative number", name);
    if (!value.is_number_unsigned()) throw bad(std::string(field) + " holds something other than integers", name);
    const auto n = value.get<uint64_t>();
    if (n > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      throw bad(std::string(field) + " holds " + std::to_string(n) + ", too large", name);
    return static_cast<int64_t>(n);
  }

  std::string file_;
};

// Like the reference: sorted by offsets, each tensor starts where the previous ended, its byte
// count matches its shape, and together they cover exactly the data section.
void check_layout(std::vector<Entry>& entries, uint64_t data_size, const HeaderReader& reader) {
  std::sort(entries.begin(), entries.end(),
            [](const Entry& a, const Entry& b) { return std::tie(a.begin, a.end) < std::tie(b.begin, b.end); });
  uint64_t next = 0;
  for (const Entry& e : entries) {
    if (e.begin < next)
      throw reader.bad("data_offsets " + HeaderReader::range(e) + " overlap the tensor before, which ends at " +
                           std::to_string(next),
                       e.name);
    if (e.begin > next)
      throw reader.bad("data_offsets " + HeaderReader::range(e) + " leave a gap after byte " + std::to_string(next),
                       e.name);
    if (e.end > data_size)
      throw reader.bad("data_offsets " + HeaderReader::range(e) + " run past the end of the " +
                           std::to_string(data_size) + "-byte data section",
                       e.name);
    uint64_t needed = 0;
    const uint64_t numel = static_cast<uint64_t>(checked_element_count(e.dims));
    const bool overflow = __builtin_mul_overflow(numel, element_size(e.dtype), &needed);
    if (overflow || needed != e.end - e.begin)
      throw reader.bad("data_offsets " + HeaderReader::range(e) + " hold " + std::to_string(e.end - e.begin) +
                           " bytes, shape " + dims_to_string(e.dims) + " of " + dtype_name(e.dtype) + " needs " +
                           (overflow ? "more than 2^64" : std::to_string(needed)),
                       e.name);
    next = e.end;
  }
  if (next != data_size)
    throw reader.bad("the data section holds " + std::to_string(data_size) + " bytes but the tensors cover " +
                     std::to_string(next));
}

// A view on the mapping, as external data is: a large file costs no copy until a tensor is written.
// Views must be aligned for their element type; a misaligned tensor is copied once, here.
Tensor tensor_in(const std::shared_ptr<MappedFile>& file, uint64_t offset, const Entry& e, const HeaderReader& reader) {
  const std::byte* bytes = file->data() + offset;
  const size_t nbytes = e.end - e.begin;
  if (e.dtype == DataType::kBool)
    for (size_t i = 0; i < nbytes; ++i)
      if (std::to_integer<unsigned>(bytes[i]) > 1)
        throw reader.bad("BOOL at flat index " + std::to_string(i) + " is " +
                             std::to_string(std::to_integer<unsigned>(bytes[i])) + ", not 0 or 1",
                         e.name);
  if (nbytes == 0 || reinterpret_cast<uintptr_t>(bytes) % element_size(e.dtype) != 0) {
    Tensor copy(e.dtype, e.dims);
    if (nbytes) std::memcpy(copy.mutable_data(), bytes, nbytes);
    return copy;
  }
  return Tensor::view(e.dtype, e.dims, bytes, file);
}

uint64_t read_u64le(const std::byte* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = v << 8 | std::to_integer<uint64_t>(p[i]);
  return v;
}

}  // namespace

SafetensorsFile load_safetensors(const fs::path& path) {
  const HeaderReader reader(path.string());
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) throw Error(ErrorCode::kNotFound, "no such file", {.file = path.string()});
  const std::shared_ptr<MappedFile> file = MappedFile::open(path);
  const uint64_t size = file->size();
  if (size < 8)
    throw reader.bad("not a safetensors file: " + std::to_string(size) + " bytes, too short for the header length");
  const uint64_t header_size = read_u64le(file->data());
  if (header_size > kMaxHeaderSize)
    throw reader.bad("header length " + std::to_string(header_size) + " is over the " +
                     std::to_string(kMaxHeaderSize) + "-byte limit (not a safetensors file?)");
  if (header_size > size - 8)
    throw reader.bad("header length " + std::to_string(header_size) + " runs past the end of the " +
                     std::to_string(size) + "-byte file (truncated?)");
  const json header =
      reader.parse(std::string_view(reinterpret_cast<const char*>(file->data()) + 8, static_cast<size_t>(header_size)));

  SafetensorsFile result;
  std::vector<Entry> entries;
  for (const auto& [name, info] : header.items()) {
    if (name == kMetadataKey) result.metadata = reader.metadata(info);
    else entries.push_back(reader.entry(name, info));
  }
  const uint64_t data_start = 8 + header_size;
  check_layout(entries, size - data_start, reader);
  for (const Entry& e : entries) result.tensors.emplace_back(e.name, tensor_in(file, data_start + e.begin, e, reader));
  return result;
}

void save_safetensors(const fs::path& path, const StateDict& tensors,
                      const std::vector<std::pair<std::string, std::string>>& metadata) {
  const std::string file = path.string();
  json header = json::object();
  if (!metadata.empty()) {
    json values = json::object();
    for (const auto& [key, value] : metadata) {
      if (values.contains(key))
        throw Error(ErrorCode::kInvalidArgument, "metadata key '" + key + "' is given twice", {.file = file});
      values[key] = value;
    }
    header[kMetadataKey] = std::move(values);
  }
  uint64_t offset = 0;
  for (const auto& [name, tensor] : tensors) {
    const ErrorContext where{.file = file, .tensor = name};
    if (name == kMetadataKey) throw Error(ErrorCode::kInvalidArgument, "is the name safetensors keeps for metadata", where);
    if (header.contains(name)) throw Error(ErrorCode::kInvalidArgument, "is named twice", where);
    const char* dtype = dtype_name(tensor.dtype());
    if (!dtype)
      throw Error(ErrorCode::kUnsupported,
                  std::string("is ") + to_string(tensor.dtype()) + "; safetensors holds only " + known_dtypes(), where);
    header[name] = {{"dtype", dtype}, {"shape", tensor.dims()}, {"data_offsets", {offset, offset + tensor.nbytes()}}};
    offset += tensor.nbytes();
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const json::exception& e) {
    throw Error(ErrorCode::kInvalidArgument, std::string("a name or metadata string is not valid UTF-8: ") + e.what(),
                {.file = file});
  }
  text.append((8 - text.size() % 8) % 8, ' ');  // the data starts 8-byte aligned, as the reference writes it
  write_file_atomically(path, [&](std::ostream& out) {
    char length[8];
    for (int i = 0; i < 8; ++i) length[i] = static_cast<char>(static_cast<uint64_t>(text.size()) >> (8 * i) & 0xFF);
    out.write(length, 8);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
    for (const auto& [name, tensor] : tensors)
      if (tensor.nbytes()) out.write(static_cast<const char*>(tensor.data()), static_cast<std::streamsize>(tensor.nbytes()));
  });
}

}  // namespace tunnx
