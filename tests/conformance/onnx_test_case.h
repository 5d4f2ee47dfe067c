// ONNX backend test cases (model.onnx + test_data_set_N/{input,output}_N.pb) read and run in-process,
// outputs compared with ONNX's tolerances. Used by the conformance suite and its ctest.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "tunnx/tunnx.h"

namespace tunnx_conformance {

enum class Outcome { kPass, kFail, kUnsupported, kError };
const char* to_string(Outcome outcome);

struct CaseResult {
  std::string name;      // "node/test_relu"
  Outcome outcome = Outcome::kError;
  std::string detail;    // first mismatch or error, one line
  std::vector<std::string> op_types;
};

struct Tolerance {
  double rtol = tunnx::kTestDataRtol;
  double atol = tunnx::kTestDataAtol;
};

// Runs every test_data_set_* of one case folder.
CaseResult run_case(const std::filesystem::path& case_dir, const std::string& name, const Tolerance& tol,
                    int optimization_level = 1);

}  // namespace tunnx_conformance
