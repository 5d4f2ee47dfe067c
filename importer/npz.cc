// NumPy .npz archives (numpy.savez, numpy.savez_compressed): a zip of .npy members, read and
// written with libzip. Member bytes go through the same .npy parser and writer as lone .npy files.
#include <zip.h>

#include <memory>
#include <set>

#include "importer/atomic_file.h"
#include "importer/npy_format.h"
#include "tunnx/io.h"

namespace tunnx {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kSuffix = ".npy";
// Deflate cannot expand data by more than about 1032:1. A member that declares more is damaged or
// hostile, and refusing it before allocating keeps a tiny archive from asking for terabytes.
constexpr uint64_t kMaxDeflateRatio = 1032;
constexpr std::string_view kEmptyArchive("PK\x05\x06\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 22);

struct ArchiveCloser {
  void operator()(zip_t* zip) const { zip_discard(zip); }
};
struct MemberCloser {
  void operator()(zip_file_t* member) const { zip_fclose(member); }
};
struct SourceReleaser {
  void operator()(zip_source_t* source) const { zip_source_free(source); }
};
using Archive = std::unique_ptr<zip_t, ArchiveCloser>;
using Member = std::unique_ptr<zip_file_t, MemberCloser>;
using Source = std::unique_ptr<zip_source_t, SourceReleaser>;

std::string libzip_message(int code) {
  zip_error_t error;
  zip_error_init_with_code(&error, code);
  std::string message = zip_error_strerror(&error);
  zip_error_fini(&error);
  return message;
}

// The whole uncompressed member, its size checked against the archive before the buffer exists.
// libzip checks the CRC when the end of the member is read, so the read goes one byte past it.
std::string read_member(zip_t* zip, zip_uint64_t index, const zip_stat_t& st, uint64_t archive_size,
                        const ErrorContext& where) {
  auto bad = [&where](const std::string& why) { return Error(ErrorCode::kInvalidArgument, why, where); };
  const std::string sizes = std::to_string(st.size) + " bytes in " + std::to_string(st.comp_size) +
                            " compressed bytes of a " + std::to_string(archive_size) + "-byte archive";
  if (st.comp_method != ZIP_CM_STORE && st.comp_method != ZIP_CM_DEFLATE)
    throw Error(ErrorCode::kUnsupported,
                "member uses zip compression method " + std::to_string(st.comp_method) +
                    "; only stored and deflated members are supported",
                where);
  const bool plausible = st.comp_size <= archive_size &&
                         (st.comp_method == ZIP_CM_STORE ? st.size == st.comp_size
                                                          : st.size / kMaxDeflateRatio <= st.comp_size);
  if (!plausible) throw bad("damaged member: it declares " + sizes);

  Member member(zip_fopen_index(zip, index, 0));
  if (!member) throw bad(std::string("damaged member: ") + zip_strerror(zip));
  std::string bytes(st.size, '\0');
  for (size_t got = 0; got < bytes.size();) {
    const zip_int64_t n = zip_fread(member.get(), bytes.data() + got, bytes.size() - got);
    if (n < 0) throw bad(std::string("damaged member: ") + zip_file_strerror(member.get()));
    if (n == 0) throw bad("truncated member: " + std::to_string(got) + " of " + std::to_string(st.size) + " bytes");
    got += static_cast<size_t>(n);
  }
  char past_end;
  const zip_int64_t n = zip_fread(member.get(), &past_end, 1);
  if (n < 0) throw bad(std::string("damaged member: ") + zip_file_strerror(member.get()));
  if (n > 0) throw bad("damaged member: it holds more than the " + sizes + " it declares");
  return bytes;
}

// Builds the archive in memory (members point at the tensors' own bytes, so nothing is copied until
// libzip writes), then hands out its bytes.
class ArchiveWriter {
 public:
  explicit ArchiveWriter(const std::string& file) : file_(file) {
    zip_error_t error;
    zip_error_init(&error);
    buffer_.reset(zip_source_buffer_create(nullptr, 0, 0, &error));
    if (buffer_) zip_.reset(zip_open_from_source(buffer_.get(), ZIP_TRUNCATE, &error));
    const std::string why = zip_error_strerror(&error);
    zip_error_fini(&error);
    if (!zip_) throw Error(ErrorCode::kInternal, "cannot start a zip archive in memory: " + why, {.file = file_});
    zip_source_keep(buffer_.get());  // the archive and this writer each hold the buffer
  }

  void add(const std::string& key, const NpyBytes& npy, bool compressed) {
    std::vector<zip_buffer_fragment_t> pieces;
    for (std::string_view piece : {std::string_view(npy.head), npy.tail})
      if (!piece.empty())  // libzip only reads the fragments (freep = 0); the casts drop const for its API
        pieces.push_back({reinterpret_cast<zip_uint8_t*>(const_cast<char*>(piece.data())), piece.size()});
    zip_source_t* source = zip_source_buffer_fragment(zip_.get(), pieces.data(), pieces.size(), 0);
    if (!source) throw failure(key);
    const zip_int64_t index = zip_file_add(zip_.get(), (key + std::string(kSuffix)).c_str(), source, ZIP_FL_ENC_UTF_8);
    if (index < 0) {
      zip_source_free(source);
      throw failure(key);
    }
    if (zip_set_file_compression(zip_.get(), static_cast<zip_uint64_t>(index),
                                 compressed ? ZIP_CM_DEFLATE : ZIP_CM_STORE, 0) != 0)
      throw failure(key);
  }

  // Finishes the archive and streams its bytes to `out`.
  void finish(std::ostream& out) {
    if (zip_get_num_entries(zip_.get(), 0) == 0) {
      // libzip deletes an archive left empty; NumPy writes (and reads) the bare end record.
      out.write(kEmptyArchive.data(), static_cast<std::streamsize>(kEmptyArchive.size()));
      return;
    }
    if (zip_close(zip_.get()) != 0) throw failure("");
    zip_.release();  // zip_close freed it
    if (zip_source_open(buffer_.get()) != 0)
      throw Error(ErrorCode::kInternal, "cannot read the archive back from memory", {.file = file_});
    std::vector<char> chunk(1 << 20);
    zip_int64_t n;
    while ((n = zip_source_read(buffer_.get(), chunk.data(), chunk.size())) > 0)
      out.write(chunk.data(), static_cast<std::streamsize>(n));
    zip_source_close(buffer_.get());
    if (n < 0) throw Error(ErrorCode::kInternal, "cannot read the archive back from memory", {.file = file_});
  }

 private:
  Error failure(const std::string& key) const {
    return Error(ErrorCode::kInternal, std::string("libzip: ") + zip_strerror(zip_.get()), {.file = file_, .tensor = key});
  }

  std::string file_;
  Source buffer_;
  Archive zip_;  // declared after buffer_, so it is discarded first
};

}  // namespace

StateDict load_npz(const fs::path& path) {
  const std::string file = path.string();
  auto bad = [&file](const std::string& why) { return Error(ErrorCode::kInvalidArgument, why, {.file = file}); };
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) throw Error(ErrorCode::kNotFound, "no such file", {.file = file});
  const uint64_t archive_size = fs::file_size(path, ec);
  if (ec) throw Error(ErrorCode::kIo, "cannot read: " + ec.message(), {.file = file});

  int code = 0;
  Archive zip(zip_open(path.c_str(), ZIP_RDONLY | ZIP_CHECKCONS, &code));
  // libzip's consistency check refuses a name given twice without saying which; the member loop
  // below names it.
  if (!zip && code == ZIP_ER_EXISTS) zip.reset(zip_open(path.c_str(), ZIP_RDONLY, &code));
  if (!zip) {
    if (code == ZIP_ER_NOZIP) throw bad("not a .npz file (not a zip archive, or truncated)");
    if (code == ZIP_ER_OPEN || code == ZIP_ER_READ || code == ZIP_ER_MEMORY)
      throw Error(ErrorCode::kIo, "cannot read: " + libzip_message(code), {.file = file});
    throw bad("damaged .npz archive: " + libzip_message(code));
  }
  const zip_int64_t count = zip_get_num_entries(zip.get(), 0);
  StateDict arrays;
  std::set<std::string> keys;
  for (zip_int64_t i = 0; i < count; ++i) {
    const auto index = static_cast<zip_uint64_t>(i);
    zip_stat_t st;
    zip_stat_init(&st);
    if (zip_stat_index(zip.get(), index, 0, &st) != 0)
      throw bad("damaged .npz archive: member " + std::to_string(i) + ": " + zip_strerror(zip.get()));
    const std::string member = st.name ? st.name : "";
    if (member.size() <= kSuffix.size() || member.compare(member.size() - kSuffix.size(), kSuffix.size(), kSuffix) != 0)
      throw bad("member '" + member + "' is not a .npy array (numpy.savez names members KEY.npy)");
    const std::string key = member.substr(0, member.size() - kSuffix.size());
    if (!keys.insert(key).second) throw bad("member '" + member + "' appears twice");
    const ErrorContext where{.file = file, .tensor = key};
    arrays.emplace_back(key, parse_npy(read_member(zip.get(), index, st, archive_size, where), where));
  }
  return arrays;
}

void save_npz(const fs::path& path, const StateDict& arrays, bool compressed) {
  const std::string file = path.string();
  std::vector<NpyBytes> members;
  members.reserve(arrays.size());
  std::set<std::string> keys;
  for (const auto& [key, tensor] : arrays) {
    if (key.empty()) throw Error(ErrorCode::kInvalidArgument, "an array has an empty name", {.file = file});
    if (!keys.insert(key).second)
      throw Error(ErrorCode::kInvalidArgument, "is named twice", {.file = file, .tensor = key});
    try {
      members.push_back(encode_npy(tensor));
    } catch (const Error& e) {
      throw e.with_context({.file = file, .tensor = key});
    }
  }
  ArchiveWriter archive(file);
  for (size_t i = 0; i < arrays.size(); ++i) archive.add(arrays[i].first, members[i], compressed);
  write_file_atomically(path, [&archive](std::ostream& out) { archive.finish(out); });
}

}  // namespace tunnx
