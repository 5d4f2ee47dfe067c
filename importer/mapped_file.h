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

 private:
  MappedFile() = default;
  const std::byte* data_ = nullptr;
  size_t size_ = 0;
  std::filesystem::path path_;
};

}  // namespace tunnx
