// Text helpers shared by the CLI commands: numbers people can read, shapes, and aligned tables.
// Commands build their whole output with these before printing, so a failure never leaves half a
// table on the terminal.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "tunnx/model.h"
#include "tunnx/session.h"

namespace tunnx::cli {

std::string with_thousands(int64_t value);    // 33570 -> "33,570"
std::string human_bytes(uint64_t bytes);      // 134348 -> "131.2 KiB"; under 1 KiB: "512 B"
std::string fixed(double value, int digits);  // fixed(3.14159, 2) -> "3.14"
// A declared graph input/output shape, "[batch,3,224,224]", or "?" when the file declares none.
std::string shape_text(const ValueSummary& value);
// `--json` output: indent 2 and a final newline. Names come from the model file and may not be valid
// UTF-8; those bytes are replaced instead of failing after the model loaded fine.
std::string pretty_json(const nlohmann::ordered_json& value);
// Folds a multi-line message (the ONNX checker writes several) into one line.
std::string single_line(std::string_view text);

// A profiled session's nodes (name, op, kernel, calls, ms per call, share of kernel time) and the
// executor's overhead per run: run time outside the kernels. Without profiling: the kernel per node.
std::string profile_text(const SessionStats& stats);

enum class Align { kLeft, kRight };

// Columns padded to their widest cell and separated by two spaces. Widths count UTF-8 code points,
// so tensor names in other scripts still line up.
class TextTable {
 public:
  // An empty header gives a table with no header row and no rule under it.
  explicit TextTable(std::vector<std::string> header, std::vector<Align> align = {});
  // Throws Error(kInternal) when the row has a different number of cells than the table.
  void add_row(std::vector<std::string> cells);
  bool empty() const { return rows_.empty(); }
  // Every line starts with `indent`; no line has trailing spaces.
  std::string render(std::string_view indent = "") const;

 private:
  size_t columns_;
  std::vector<std::string> header_;
  std::vector<Align> align_;
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace tunnx::cli
