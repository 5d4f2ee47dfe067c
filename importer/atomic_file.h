// Atomic writes: data goes to a temporary file in the destination's folder, is flushed to disk, and
// only then renamed over the destination, so a failure never leaves a partial file behind.
#pragma once

#include <filesystem>
#include <functional>
#include <ostream>

namespace tunnx {

// Calls `write` with a stream on a temp file, then renames it to `path`. On any failure the temp
// file is removed and Error(kIo) names `path`.
void write_file_atomically(const std::filesystem::path& path,
                           const std::function<void(std::ostream&)>& write);

}  // namespace tunnx
