// What `tunnx train` reports while it runs: a progress bar on a terminal (one line per epoch
// otherwise) and the --metrics JSONL file that `tunnx plot` draws.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

namespace tunnx::cli {

// Running sums of one epoch's train batches.
struct EpochStats {
  double loss_sum = 0;  // sum of batch loss x batch samples
  int64_t samples = 0;
  int64_t correct = 0, counted = 0;
  // One batch of `n` samples with mean loss `loss`.
  void add(double loss, int64_t n, int64_t batch_correct, int64_t batch_counted) {
    loss_sum += loss * static_cast<double>(n);
    samples += n;
    correct += batch_correct;
    counted += batch_counted;
  }
  double mean_loss() const { return samples ? loss_sum / static_cast<double>(samples) : 0; }
  double accuracy() const { return counted ? static_cast<double>(correct) / static_cast<double>(counted) : 0; }
  nlohmann::json to_json() const;
  static EpochStats from_json(const nlohmann::json& j);
};

// The --metrics file: one JSON object per line, appended and flushed as each is made, so a killed
// run leaves every line it reported.
class MetricsLog {
 public:
  MetricsLog() = default;
  explicit MetricsLog(const std::filesystem::path& path);  // opens for appending; throws kIo
  // Keeps the lines of steps up to `step` and drops the rest (a resumed run repeats them), atomically.
  static void truncate_after(const std::filesystem::path& path, int64_t step);
  void write(const nlohmann::json& line);
  bool enabled() const { return out_.is_open(); }

 private:
  std::filesystem::path path_;
  std::ofstream out_;
};

// The progress bar: epoch, step/total, loss, samples/s and ETA, redrawn at most ten times a second.
class ProgressBar {
 public:
  explicit ProgressBar(bool terminal) : terminal_(terminal) {}
  bool terminal() const { return terminal_; }
  void start_epoch(int64_t epoch, int64_t epochs, int64_t batches, int64_t first_batch);
  void update(int64_t batch_done, double loss, int64_t samples_done);
  // Ends the epoch's bar (terminal) and prints the epoch summary line.
  void finish_epoch(const std::string& summary);

 private:
  void draw(bool force);
  bool terminal_;
  int64_t epoch_ = 0, epochs_ = 0, batches_ = 0, first_batch_ = 0, done_ = 0, samples_ = 0;
  double loss_ = 0;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

std::string format_duration(double seconds);  // 75.2 -> "1:15", 3725 -> "1:02:05"

}  // namespace tunnx::cli
