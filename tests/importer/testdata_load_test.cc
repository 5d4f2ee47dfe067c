// Every model of ONNX's backend test data (libonnx-testdata) loads: 1072 files in four folders.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <string>
#include <vector>

#include "tunnx/tunnx.h"

namespace tunnx_test {
namespace {

namespace fs = std::filesystem;

TEST(TestData, EveryBackendTestModelLoads) {
  const std::vector<std::string> folders{"node", "pytorch-converted", "pytorch-operator", "simple"};
  std::vector<fs::path> files;
  for (const auto& folder : folders) {
    fs::path root = fs::path(TUNNX_TESTDATA_DIR) / folder;
    ASSERT_TRUE(fs::is_directory(root)) << root << " is missing (install libonnx-testdata)";
    for (const auto& entry : fs::directory_iterator(root))
      if (fs::exists(entry.path() / "model.onnx")) files.push_back(entry.path() / "model.onnx");
  }
  std::sort(files.begin(), files.end());

  std::string failures;
  size_t loaded = 0;
  for (const auto& file : files) {
    try {
      tunnx::Model model = tunnx::Model::load(file);
      ++loaded;
    } catch (const std::exception& e) {  // anything, not only tunnx::Error, is a failure to report
      failures += std::string("\n  ") + e.what();
    }
  }
  EXPECT_EQ(files.size(), 1072u) << "the test data changed; update the expected count";
  EXPECT_EQ(loaded, files.size()) << (files.size() - loaded) << " models failed to load:" << failures;
}

}  // namespace
}  // namespace tunnx_test
