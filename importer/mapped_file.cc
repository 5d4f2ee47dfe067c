#include "importer/mapped_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "tunnx/status.h"

namespace tunnx {

std::shared_ptr<MappedFile> MappedFile::open(const std::filesystem::path& path) {
  auto fail = [&path](const std::string& what) {
    return Error(ErrorCode::kIo, what + ": " + std::strerror(errno), {.file = path.string()});
  };
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw fail("cannot open");
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    Error e = fail("cannot stat");
    ::close(fd);
    throw e;
  }
  std::shared_ptr<MappedFile> file(new MappedFile());
  file->path_ = path;
  file->size_ = static_cast<size_t>(st.st_size);
  if (file->size_ > 0) {
    void* p = ::mmap(nullptr, file->size_, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      Error e = fail("cannot map");
      ::close(fd);
      throw e;
    }
    file->data_ = static_cast<const std::byte*>(p);
  }
  ::close(fd);  // the mapping keeps the file alive
  return file;
}

void MappedFile::drop_pages(size_t offset, size_t length) const {
  if (!data_ || offset >= size_) return;
  static const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  const size_t begin = (offset + page - 1) / page * page, end = std::min(size_, offset + length) / page * page;
  // Advice only: a failure leaves the pages resident, which is what not asking would.
  if (begin < end) ::madvise(const_cast<std::byte*>(data_) + begin, end - begin, MADV_DONTNEED);
}

MappedFile::~MappedFile() {
  if (data_) ::munmap(const_cast<std::byte*>(data_), size_);
}

}  // namespace tunnx
