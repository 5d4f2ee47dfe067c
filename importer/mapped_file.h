// A read-only memory map of a whole file: external data is viewed in place, never copied at load.
#pragma once

#include <cstddef>
#include <filesystem>
#include <memory>

namespace tunnx {

class MappedFile {
 public:
  // Throws Error(kIo) naming the file when it cannot be opened or mapped.
  static std::shared_ptr<MappedFile> open(const std::filesystem::path& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const std::byte* data() const { return data_; }
  size_t size() const { return size_; }
  const std::filesystem::path& path() const { return path_; }

  // Lets go of the resident pages wholly inside [offset, offset + length): the mapping stays valid
  // and a later read faults them in again from the file. For a reader that passed them for good (a
  // parse that has copied what it needs), so the file's pages do not stay resident beside the copies.
  void drop_pages(size_t offset, size_t length) const;

 private:
  MappedFile() = default;
  const std::byte* data_ = nullptr;
  size_t size_ = 0;
  std::filesystem::path path_;
};

}  // namespace tunnx
