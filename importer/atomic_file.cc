#include "importer/atomic_file.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>

#include "tunnx/status.h"

namespace tunnx {
namespace {

namespace fs = std::filesystem;

void fsync_path(const fs::path& path, int flags) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

fs::path folder_of(const fs::path& path) { return path.parent_path().empty() ? fs::path(".") : path.parent_path(); }

void remove_quietly(const fs::path& path) {
  std::error_code ignored;
  fs::remove(path, ignored);
}

}  // namespace

StagedFile::StagedFile(fs::path path, const std::function<void(std::ostream&)>& write) : path_(std::move(path)) {
  // The rename in commit() would fail on a directory; say so before anything is written.
  std::error_code ec;
  if (fs::is_directory(path_, ec))
    throw Error(ErrorCode::kIo, "is a directory; cannot write a file there", {.file = path_.string()});
  std::random_device rd;
  temp_ = folder_of(path_) / ("." + path_.filename().string() + ".tmp" + std::to_string(::getpid()) + "-" +
                              std::to_string(rd()));
  auto fail = [&](const std::string& what) {
    remove_quietly(temp_);
    return Error(ErrorCode::kIo, what, {.file = path_.string()});
  };
  try {
    std::ofstream out(temp_, std::ios::binary | std::ios::trunc);
    if (!out) throw fail(std::string("cannot create a file in this folder: ") + std::strerror(errno));
    write(out);
    out.flush();
    if (!out) throw fail("write failed (disk full?)");
    out.close();
    if (out.fail()) throw fail("write failed on close");
  } catch (const Error&) {
    remove_quietly(temp_);
    throw;
  } catch (const std::exception& e) {
    throw fail(e.what());
  }
  fsync_path(temp_, O_RDONLY);
}

StagedFile::~StagedFile() {
  if (!committed_) remove_quietly(temp_);
}

void StagedFile::commit() {
  std::error_code ec;
  fs::rename(temp_, path_, ec);
  if (ec) {
    remove_quietly(temp_);
    throw Error(ErrorCode::kIo, "cannot rename the temporary file into place: " + ec.message(),
                {.file = path_.string()});
  }
  committed_ = true;
  fsync_path(folder_of(path_), O_RDONLY | O_DIRECTORY);
}

void sync_directory(const fs::path& folder) { fsync_path(folder, O_RDONLY | O_DIRECTORY); }

void write_file_atomically(const fs::path& path, const std::function<void(std::ostream&)>& write) {
  StagedFile(path, write).commit();
}

}  // namespace tunnx
