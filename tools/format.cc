#include "tools/format.h"

#include <algorithm>
#include <array>
#include <cstdio>

#include "tunnx/status.h"

namespace tunnx::cli {
namespace {

// Display width of UTF-8 text: continuation bytes (10xxxxxx) do not start a character.
size_t display_width(std::string_view text) {
  return static_cast<size_t>(std::count_if(text.begin(), text.end(), [](char c) {
    return (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  }));
}

}  // namespace

std::string with_thousands(int64_t value) {
  // Unsigned magnitude so INT64_MIN does not overflow when negated.
  uint64_t magnitude = value < 0 ? uint64_t{0} - static_cast<uint64_t>(value) : static_cast<uint64_t>(value);
  std::string digits = std::to_string(magnitude);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return value < 0 ? "-" + out : out;
}

std::string human_bytes(uint64_t bytes) {
  static constexpr std::array<const char*, 6> kUnits = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  if (bytes < 1024) return std::to_string(bytes) + " B";
  double scaled = static_cast<double>(bytes);
  size_t unit = 0;
  // Stop one short of rounding up to "1024.0 KiB": move on once the value would print as 1024.0.
  while (scaled >= 1023.95 && unit + 1 < kUnits.size()) {
    scaled /= 1024.0;
    ++unit;
  }
  std::array<char, 32> text{};
  std::snprintf(text.data(), text.size(), "%.1f %s", scaled, kUnits[unit]);
  return text.data();
}

std::string shape_text(const ValueSummary& value) {
  return value.has_shape ? value.shape.to_string() : "?";
}

std::string pretty_json(const nlohmann::ordered_json& value) {
  return value.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + '\n';
}

std::string single_line(std::string_view text) {
  std::string out;
  bool pending_space = false;
  for (char c : text) {
    if (c == '\n' || c == '\r' || c == '\t' || c == ' ') {
      pending_space = !out.empty();
      continue;
    }
    if (pending_space) out += ' ';
    pending_space = false;
    out += c;
  }
  return out;
}

TextTable::TextTable(std::vector<std::string> header, std::vector<Align> align)
    : columns_(header.size()), header_(std::move(header)), align_(std::move(align)) {
  if (columns_ == 0) columns_ = align_.size();
  align_.resize(columns_, Align::kLeft);
}

void TextTable::add_row(std::vector<std::string> cells) {
  if (columns_ == 0) {
    columns_ = cells.size();
    align_.resize(columns_, Align::kLeft);
  }
  if (cells.size() != columns_) {
    throw Error(ErrorCode::kInternal, "table row has " + std::to_string(cells.size()) +
                                          " cells, the table has " + std::to_string(columns_) + " columns");
  }
  rows_.push_back(std::move(cells));
}

std::string TextTable::render(std::string_view indent) const {
  std::vector<size_t> widths(columns_, 0);
  auto widen = [&](const std::vector<std::string>& cells) {
    for (size_t c = 0; c < cells.size(); ++c) widths[c] = std::max(widths[c], display_width(cells[c]));
  };
  widen(header_);
  for (const auto& row : rows_) widen(row);

  auto render_row = [&](const std::vector<std::string>& cells) {
    std::string line(indent);
    for (size_t c = 0; c < cells.size(); ++c) {
      std::string padding(widths[c] - display_width(cells[c]), ' ');
      bool last = c + 1 == cells.size();
      if (align_[c] == Align::kRight) {
        line += padding + cells[c];
      } else {
        line += cells[c];
        if (!last) line += padding;
      }
      if (!last) line += "  ";
    }
    return line + '\n';
  };

  std::string out;
  if (!header_.empty()) {
    out += render_row(header_);
    size_t total = 0;
    for (size_t w : widths) total += w;
    total += 2 * (columns_ - 1);
    out += std::string(indent) + std::string(total, '-') + '\n';
  }
  for (const auto& row : rows_) out += render_row(row);
  return out;
}


std::string fixed(double value, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, value);
  return buf;
}

std::string profile_text(const SessionStats& stats) {
  double kernel_ms = 0;
  bool timed = false;
  for (const auto& k : stats.kernels) {
    if (k.depth == 0) kernel_ms += k.total_ms;  // a body's time is inside its node's
    timed = timed || k.calls > 0;
  }
  // A body's nodes are indented under the node that runs them.
  auto label = [](const SessionStats::NodeKernel& k) {
    return std::string(static_cast<size_t>(2 * k.depth), ' ') + (k.node.empty() ? "<unnamed>" : k.node);
  };
  std::string out = "Profile:\n";
  if (!timed) {
    TextTable table({"node", "op", "kernel"});
    for (const auto& k : stats.kernels) table.add_row({label(k), k.op_type, k.kernel});
    out += table.render("  ");
  } else {
    TextTable table({"node", "op", "kernel", "calls", "ms/call", "share"},
                    {Align::kLeft, Align::kLeft, Align::kLeft, Align::kRight, Align::kRight, Align::kRight});
    for (const auto& k : stats.kernels)
      table.add_row({label(k), k.op_type, k.kernel, std::to_string(k.calls),
                     k.calls ? fixed(k.total_ms / static_cast<double>(k.calls), 4) : "-",
                     kernel_ms > 0 ? fixed(100.0 * k.total_ms / kernel_ms, 1) + "%" : "-"});
    out += table.render("  ");
    if (stats.runs > 0) {
      const double runs = static_cast<double>(stats.runs);
      out += "  per run: " + fixed(stats.total_run_ms / runs, 4) + " ms, of which kernels " + fixed(kernel_ms / runs, 4) +
             " ms and executor overhead " + fixed((stats.total_run_ms - kernel_ms) / runs, 4) + " ms (mean of " +
             std::to_string(stats.runs) + " runs)\n";
    }
  }
  out += "  plans built: " + std::to_string(stats.plans_built) + "\n";
  out += "  bytes allocated in the last run: " + with_thousands(stats.last_run_bytes_allocated) + "\n";
  out += "  last run: " + fixed(stats.last_run_ms, 3) + " ms on " + std::to_string(stats.last_run_threads) + " threads\n";
  if (stats.released_initializers > 0)
    out += "  weights freed once packed: " + std::to_string(stats.released_initializers) + " (" +
           with_thousands(stats.released_bytes) + " bytes)\n";
  return out;
}

}  // namespace tunnx::cli
