// What the `tunnx train` end-to-end tests share: real data (scikit-learn's digits as .npz, made at
// build time from Debian's python3-sklearn; the PyTorch parity fixtures), metrics files, models.
#pragma once

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/e2e/cli_harness.h"
#include "tunnx/tunnx.h"

namespace tunnx::e2e {

inline const fs::path kDigits = TUNNX_DIGITS_DIR;  // train.npz, test.npz: input [N,1,8,8], label [N]
inline const fs::path kFreshDigitsModel = fs::path(TUNNX_SOURCE_DIR) / "examples" / "digits_cnn_init.onnx";
inline const fs::path kTrainFixtures = fs::path(TUNNX_SOURCE_DIR) / "tests" / "models" / "train";

// The first `n` samples of every array of a digits file, written as a new .npz.
inline fs::path digits_subset(const fs::path& folder, const std::string& name, int64_t n,
                              const fs::path& from = kDigits / "train.npz") {
  const Dataset data = Dataset::load_npz(from);
  std::vector<int64_t> first(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) first[static_cast<size_t>(i)] = i;
  StateDict arrays;
  for (const auto& [key, value] : data.batch(first)) arrays.emplace_back(key, value.tensor());
  const fs::path out = folder / name;
  save_npz(out, arrays);
  return out;
}

inline std::vector<nlohmann::json> read_metrics(const fs::path& file) {
  std::vector<nlohmann::json> lines;
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

inline std::vector<nlohmann::json> metrics_of_kind(const fs::path& file, const std::string& kind) {
  std::vector<nlohmann::json> out;
  for (auto& j : read_metrics(file))
    if (j["kind"] == kind) out.push_back(j);
  return out;
}

inline std::map<std::string, Tensor> tensors_of(const fs::path& model_file) {
  std::map<std::string, Tensor> out;
  for (auto& [name, t] : Model::load(model_file).state_dict()) out.emplace(name, t);
  return out;
}

// One stderr line starting "tunnx: error: ", exit 1.
inline ::testing::AssertionResult refused_with(const ProcessResult& r, const std::string& message) {
  if (!r.exited || r.exit_code != 1) return ::testing::AssertionFailure() << "expected exit 1\n" << r.describe();
  if (r.err.rfind("tunnx: error: ", 0) != 0 || r.err.find('\n') != r.err.size() - 1)
    return ::testing::AssertionFailure() << "expected one error line\n" << r.describe();
  if (r.err.find(message) == std::string::npos)
    return ::testing::AssertionFailure() << "expected the message to contain: " << message << "\n" << r.describe();
  return ::testing::AssertionSuccess();
}

}  // namespace tunnx::e2e
