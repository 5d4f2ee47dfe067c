// Atomic writes: data goes to a temporary file in the destination's folder, is flushed to disk, and
// only then renamed over the destination, so a failure never leaves a partial file behind.
#pragma once

#include <filesystem>
#include <functional>
#include <ostream>

namespace tunnx {

// A file written in full to a temp path beside `path`, put in place only by commit(). Several can be
// staged first and committed together, so a failure in any write replaces none of the files.
class StagedFile {
 public:
  // Writes and flushes the temp file; throws Error(kIo) naming `path` (and removes the temp) on failure.
  StagedFile(std::filesystem::path path, const std::function<void(std::ostream&)>& write);
  ~StagedFile();  // removes the temp file unless committed
  StagedFile(const StagedFile&) = delete;
  StagedFile& operator=(const StagedFile&) = delete;

  void commit();  // renames the temp file over `path`

 private:
  std::filesystem::path path_, temp_;
  bool committed_ = false;
};

// Flushes a folder's entries (new names, renames) to disk; used after renaming a folder into place.
void sync_directory(const std::filesystem::path& folder);

// Stages and commits one file.
void write_file_atomically(const std::filesystem::path& path,
                           const std::function<void(std::ostream&)>& write);

}  // namespace tunnx
