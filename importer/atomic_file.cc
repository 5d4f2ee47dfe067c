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

void fsync_path(const std::filesystem::path& path, int flags) {
  int fd = ::open(path.c_str(), flags | O_CLOEXEC);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

}  // namespace

void write_file_atomically(const std::filesystem::path& path,
                           const std::function<void(std::ostream&)>& write) {
  namespace fs = std::filesystem;
  fs::path dir = path.parent_path().empty() ? fs::path(".") : path.parent_path();
  std::random_device rd;
  fs::path temp = dir / ("." + path.filename().string() + ".tmp" + std::to_string(::getpid()) + "-" +
                         std::to_string(rd()));
  auto fail = [&](const std::string& what) {
    std::error_code ignored;
    fs::remove(temp, ignored);
    return Error(ErrorCode::kIo, what, {.file = path.string()});
  };
  try {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    if (!out) throw fail(std::string("cannot create a file in this folder: ") + std::strerror(errno));
    write(out);
    out.flush();
    if (!out) throw fail("write failed (disk full?)");
    out.close();
    if (out.fail()) throw fail("write failed on close");
  } catch (const Error&) {
    std::error_code ignored;
    fs::remove(temp, ignored);
    throw;
  } catch (const std::exception& e) {
    throw fail(e.what());
  }
  fsync_path(temp, O_RDONLY);
  std::error_code ec;
  fs::rename(temp, path, ec);
  if (ec) throw fail("cannot rename the temporary file into place: " + ec.message());
  fsync_path(dir, O_RDONLY | O_DIRECTORY);
}

}  // namespace tunnx
