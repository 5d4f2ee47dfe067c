#include "tools/train_progress.h"

#include <cmath>
#include <cstdio>
#include <iostream>
#include <sstream>
#include <vector>

#include "tools/format.h"
#include "tunnx/status.h"

namespace tunnx::cli {

namespace fs = std::filesystem;

nlohmann::json EpochStats::to_json() const {
  return {{"loss_sum", loss_sum}, {"samples", samples}, {"correct", correct}, {"counted", counted}};
}

EpochStats EpochStats::from_json(const nlohmann::json& j) {
  EpochStats s;
  s.loss_sum = j.value("loss_sum", 0.0);
  s.samples = j.value("samples", int64_t{0});
  s.correct = j.value("correct", int64_t{0});
  s.counted = j.value("counted", int64_t{0});
  return s;
}

MetricsLog::MetricsLog(const fs::path& path) : path_(path) {
  out_.open(path, std::ios::app);
  if (!out_) throw Error(ErrorCode::kIo, "cannot open the metrics file for appending", {.file = path.string()});
}

void MetricsLog::truncate_after(const fs::path& path, int64_t step) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return;
  std::ifstream in(path);
  std::string kept, line;
  while (std::getline(in, line)) {
    // A line the killed run left half-written, or one past the checkpoint, is dropped.
    const nlohmann::json j = nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
    if (j.is_discarded() || !j.is_object()) continue;
    if (j.value("step", int64_t{0}) > step) continue;
    kept += line + "\n";
  }
  const fs::path temp = path.string() + ".tmp";
  {
    std::ofstream out(temp, std::ios::trunc);
    out << kept;
    if (!out) throw Error(ErrorCode::kIo, "cannot rewrite the metrics file", {.file = path.string()});
  }
  fs::rename(temp, path, ec);
  if (ec) throw Error(ErrorCode::kIo, "cannot rewrite the metrics file: " + ec.message(), {.file = path.string()});
}

void MetricsLog::write(const nlohmann::json& line) {
  if (!out_.is_open()) return;
  out_ << line.dump() << '\n';
  out_.flush();
  if (!out_) throw Error(ErrorCode::kIo, "cannot write to the metrics file", {.file = path_.string()});
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const auto total = static_cast<int64_t>(std::llround(seconds));
  char buf[32];
  if (total >= 3600)
    std::snprintf(buf, sizeof buf, "%lld:%02lld:%02lld", static_cast<long long>(total / 3600),
                  static_cast<long long>(total / 60 % 60), static_cast<long long>(total % 60));
  else
    std::snprintf(buf, sizeof buf, "%lld:%02lld", static_cast<long long>(total / 60), static_cast<long long>(total % 60));
  return buf;
}

void ProgressBar::start_epoch(int64_t epoch, int64_t epochs, int64_t batches, int64_t first_batch) {
  epoch_ = epoch;
  epochs_ = epochs;
  batches_ = batches;
  first_batch_ = done_ = first_batch;
  samples_ = 0;
  loss_ = NAN;
  start_ = last_draw_ = std::chrono::steady_clock::now();
  draw(true);
}

void ProgressBar::update(int64_t batch_done, double loss, int64_t samples_done) {
  done_ = batch_done;
  loss_ = loss;
  samples_ = samples_done;
  draw(false);
}

void ProgressBar::draw(bool force) {
  if (!terminal_) return;
  const auto now = std::chrono::steady_clock::now();
  if (!force && now - last_draw_ < std::chrono::milliseconds(100) && done_ < batches_) return;
  last_draw_ = now;
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  constexpr int kWidth = 24;
  const int filled = batches_ ? static_cast<int>(kWidth * done_ / batches_) : kWidth;
  std::string bar(static_cast<size_t>(filled), '=');
  if (filled < kWidth) bar += '>' + std::string(static_cast<size_t>(kWidth - filled - 1), ' ');
  const int64_t run = done_ - first_batch_;
  const double eta = run > 0 ? elapsed / static_cast<double>(run) * static_cast<double>(batches_ - done_) : NAN;
  std::ostringstream line;
  line << "\repoch " << epoch_ << "/" << epochs_ << " [" << bar << "] " << done_ << "/" << batches_;
  if (std::isfinite(loss_)) line << "  loss " << fixed(loss_, 4);
  if (elapsed > 0 && samples_ > 0) line << "  " << fixed(static_cast<double>(samples_) / elapsed, 0) << " samples/s";
  line << "  ETA " << format_duration(eta) << "   ";
  std::cerr << line.str() << std::flush;
}

void ProgressBar::finish_epoch(const std::string& summary) {
  if (terminal_) {
    draw(true);
    std::cerr << "\n";
  }
  std::cout << summary << std::endl;
}

}  // namespace tunnx::cli
