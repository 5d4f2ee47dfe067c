// What the CLI end-to-end tests share: the binary's path, a way to run it, a temp folder.
#pragma once

#include <stdlib.h>

#include <chrono>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include "tests/e2e/subprocess.h"

namespace tunnx::e2e {

namespace fs = std::filesystem;

inline const fs::path kCli = TUNNX_CLI_PATH;
inline const fs::path kExampleModel = fs::path(TUNNX_SOURCE_DIR) / "examples" / "digits_cnn.onnx";
inline const fs::path kTestData = TUNNX_TESTDATA_DIR;

inline ProcessResult run_cli(const std::vector<std::string>& args,
                             std::chrono::milliseconds deadline = std::chrono::seconds(120)) {
  std::vector<std::string> argv{kCli.string()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_process(argv, deadline);
}

inline bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// A fresh folder under the system temp dir, removed with everything in it. Models go in a subfolder
// whose name has a space, so paths with spaces are exercised everywhere.
class TempFolder {
 public:
  TempFolder() {
    std::string pattern = (fs::temp_directory_path() / "tunnx_e2e_XXXXXX").string();
    if (!::mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
    root_ = pattern;
    fs::create_directory(model_dir());
  }
  ~TempFolder() {
    std::error_code ignored;
    fs::remove_all(root_, ignored);
  }
  TempFolder(const TempFolder&) = delete;
  TempFolder& operator=(const TempFolder&) = delete;

  const fs::path& root() const { return root_; }
  fs::path model_dir() const { return root_ / "models dir"; }

 private:
  fs::path root_;
};

}  // namespace tunnx::e2e
