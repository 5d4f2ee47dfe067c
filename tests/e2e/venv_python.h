// Cross-checks with the project's .venv Python (NumPy, safetensors, ONNX Runtime; made by
// scripts/setup_venv.sh). Without that Python a cross-check skips, except under CI=true, where a
// missing interpreter or package is a failure.
#pragma once

#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/e2e/subprocess.h"

namespace tunnx::e2e {

inline const std::filesystem::path kVenvPython = std::filesystem::path(TUNNX_SOURCE_DIR) / ".venv" / "bin" / "python";

// True when the venv's Python imports `modules` ("numpy, safetensors"). Otherwise false, after
// recording a failure when CI=true; the caller then skips.
inline bool venv_python_has(const std::string& modules) {
  const std::string command = "'" + kVenvPython.string() + "' -c 'import " + modules + "' 2>/dev/null";
  if (std::system(command.c_str()) == 0) return true;
  if (const char* ci = std::getenv("CI"); ci && std::string(ci) == "true")
    ADD_FAILURE() << "CI=true but " << kVenvPython << " cannot import " << modules << " (scripts/setup_venv.sh)";
  return false;
}

// Runs `script` (written to `folder`/check.py) with the venv's Python and `args`.
inline ProcessResult run_python(const std::filesystem::path& folder, const std::string& script,
                                const std::vector<std::string>& args) {
  const std::filesystem::path file = folder / "check.py";
  std::ofstream(file) << script;
  std::vector<std::string> argv = {kVenvPython.string(), file.string()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_process(argv, std::chrono::seconds(120));
}

}  // namespace tunnx::e2e
