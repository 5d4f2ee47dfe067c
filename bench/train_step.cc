// tunnx_train_step: time of one training step (Trainer::step: forward, loss, backward, optimizer update)
// on the same batch, again and again. Used by bench/compare_torch_train.py next to PyTorch; speed is
// reported here and never asserted.
//
//   tunnx_train_step MODEL.onnx --input NAME=FILE.npy [--input ...] --target FILE.npy
//                    [--loss cross_entropy|mse|...] [--optimizer sgd|adam|adamw] [--lr X] [--threads N]
//                    [--warmup W] [--iters I] [--split] [--profile] [--json]
//
// --split also times Trainer::backward() (forward + loss + backward + gradient accumulation) and
// Trainer::optimizer_step() (update + zero_grad) apart, in as many extra steps after the timed ones,
// so the main numbers carry no extra clock reads. --profile times every node of the training graph
// (two clock reads per node) and prints the time per step by op type and the slowest nodes.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <filesystem>
#include <iostream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "tunnx/tunnx.h"

namespace {

struct Args {
  std::filesystem::path model;
  std::vector<std::pair<std::string, std::filesystem::path>> inputs;
  std::filesystem::path target;
  std::string loss = "cross_entropy";
  std::string optimizer = "sgd";
  double lr = 0.01;
  int threads = 0;
  int warmup = 3;
  int iters = 10;
  bool split = false;
  bool profile = false;
  bool json = false;
};

struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

int to_int(const std::string& flag, const std::string& text) {
  size_t used = 0;
  int v = 0;
  try {
    v = std::stoi(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || text.empty()) throw UsageError(flag + " wants an integer, got '" + text + "'");
  return v;
}

double to_double(const std::string& flag, const std::string& text) {
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text.size() || text.empty()) throw UsageError(flag + " wants a number, got '" + text + "'");
  return v;
}

Args parse(int argc, char** argv) {
  Args a;
  bool have_model = false;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw UsageError(arg + " needs a value");
      return argv[++i];
    };
    if (arg == "--input") {
      const std::string v = value();
      const size_t eq = v.find('=');
      if (eq == std::string::npos || eq == 0 || eq + 1 == v.size())
        throw UsageError("--input wants NAME=FILE.npy, got '" + v + "'");
      a.inputs.emplace_back(v.substr(0, eq), v.substr(eq + 1));
    } else if (arg == "--target") {
      a.target = value();
    } else if (arg == "--loss") {
      a.loss = value();
    } else if (arg == "--optimizer") {
      a.optimizer = value();
    } else if (arg == "--lr") {
      a.lr = to_double(arg, value());
    } else if (arg == "--threads") {
      a.threads = to_int(arg, value());
    } else if (arg == "--warmup") {
      a.warmup = to_int(arg, value());
    } else if (arg == "--iters") {
      a.iters = to_int(arg, value());
    } else if (arg == "--split") {
      a.split = true;
    } else if (arg == "--profile") {
      a.profile = true;
    } else if (arg == "--json") {
      a.json = true;
    } else if (arg == "-h" || arg == "--help") {
      throw UsageError(
          "usage: tunnx_train_step MODEL.onnx --input NAME=FILE.npy --target FILE.npy [--loss cross_entropy|mse]"
          " [--optimizer sgd|adamw] [--lr X] [--threads N] [--warmup W] [--iters I] [--split] [--profile] [--json]");
    } else if (!arg.empty() && arg[0] == '-') {
      throw UsageError("unknown option " + arg);
    } else if (!have_model) {
      a.model = arg;
      have_model = true;
    } else {
      throw UsageError("one model only; unexpected argument '" + arg + "'");
    }
  }
  if (!have_model) throw UsageError("no model given (tunnx_train_step MODEL.onnx --input NAME=FILE.npy --target FILE.npy ...)");
  if (a.inputs.empty()) throw UsageError("no --input NAME=FILE.npy given");
  if (a.target.empty()) throw UsageError("no --target FILE.npy given");
  if (a.iters < 1) throw UsageError("--iters must be at least 1, got " + std::to_string(a.iters));
  if (a.warmup < 0) throw UsageError("--warmup must not be negative, got " + std::to_string(a.warmup));
  if (a.threads < 0) throw UsageError("--threads must not be negative, got " + std::to_string(a.threads));
  return a;
}

struct Stats {
  double median_ms = 0, p90_ms = 0, mean_ms = 0, min_ms = 0, max_ms = 0;
};

Stats summarize(std::vector<double> ms) {
  std::sort(ms.begin(), ms.end());
  const size_t n = ms.size();
  Stats s;
  s.median_ms = n % 2 ? ms[n / 2] : (ms[n / 2 - 1] + ms[n / 2]) / 2;
  // Nearest rank: the smallest sample with at least 90% of them at or below it.
  const size_t rank = static_cast<size_t>(std::ceil(0.9 * static_cast<double>(n)));
  s.p90_ms = ms[std::clamp<size_t>(rank, 1, n) - 1];
  double sum = 0;
  for (double v : ms) sum += v;
  s.mean_ms = sum / static_cast<double>(n);
  s.min_ms = ms.front();
  s.max_ms = ms.back();
  return s;
}

uint64_t peak_rss_bytes() {
  struct rusage usage {};
  ::getrusage(RUSAGE_SELF, &usage);
  return static_cast<uint64_t>(usage.ru_maxrss) * 1024;  // Linux reports KiB
}

double cpu_ms() {
  struct rusage usage {};
  ::getrusage(RUSAGE_SELF, &usage);
  auto ms = [](const timeval& t) { return static_cast<double>(t.tv_sec) * 1e3 + static_cast<double>(t.tv_usec) / 1e3; };
  return ms(usage.ru_utime) + ms(usage.ru_stime);
}

double ms_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + "\"";
}

std::string json_number(double v) {
  if (!std::isfinite(v)) return "null";
  std::ostringstream os;
  os.precision(10);
  os << v;
  return os.str();
}

std::string one_line(std::string s) {
  std::replace(s.begin(), s.end(), '\n', ' ');
  return s;
}

// Milliseconds per step by op type (kernel name beside it), then the 40 slowest nodes.
void print_profile(const std::vector<tunnx::SessionStats::NodeKernel>& nodes, int steps) {
  std::map<std::string, std::pair<double, int>> by_op;
  double total = 0;
  for (const auto& n : nodes) {
    auto& [ms, count] = by_op[n.op_type + "  (" + n.kernel + ")"];
    ms += n.total_ms / steps;
    ++count;
    total += n.total_ms / steps;
  }
  std::vector<std::pair<double, std::string>> rows;
  for (const auto& [op, v] : by_op) rows.emplace_back(v.first, op + " x" + std::to_string(v.second));
  std::sort(rows.rbegin(), rows.rend());
  std::printf("profile      %.3f ms per step in kernels, by op type:\n", total);
  for (const auto& [ms, op] : rows) std::printf("  %9.3f ms  %5.1f%%  %s\n", ms, 100 * ms / total, op.c_str());
  std::vector<const tunnx::SessionStats::NodeKernel*> slowest;
  for (const auto& n : nodes) slowest.push_back(&n);
  std::sort(slowest.begin(), slowest.end(), [](auto* x, auto* y) { return x->total_ms > y->total_ms; });
  std::printf("slowest nodes:\n");
  for (size_t i = 0; i < slowest.size() && i < 40; ++i)
    std::printf("  %9.3f ms  %-14s %s\n", slowest[i]->total_ms / steps, slowest[i]->op_type.c_str(), slowest[i]->node.c_str());
}

int run(const Args& a) {
  using clock = std::chrono::steady_clock;
  auto start = clock::now();
  tunnx::Model model = tunnx::Model::load(a.model);
  tunnx::NamedValues batch;
  for (const auto& [name, file] : a.inputs) batch[name] = tunnx::load_npy(file);
  tunnx::TrainerOptions options;
  options.loss.kind = tunnx::loss_kind_from_string(a.loss);
  options.optimizer.kind = tunnx::optimizer_kind_from_string(a.optimizer);
  options.optimizer.lr = a.lr;
  options.threads = a.threads;
  options.profile = a.profile;
  if (batch.count(options.loss.target))
    throw UsageError("--input " + options.loss.target + " collides with the target's name");
  batch[options.loss.target] = tunnx::load_npy(a.target);
  const double load_ms = ms_since(start);

  start = clock::now();
  tunnx::Trainer trainer(model, options);
  const double trainer_ms = ms_since(start);

  // The first step's loss ties the run to PyTorch's (same weights and batch give the same loss).
  double first_loss = NAN, last_loss = NAN;
  for (int i = 0; i < a.warmup; ++i) {
    const double loss = trainer.step(batch).loss;
    if (i == 0) first_loss = loss;
  }
  std::vector<double> samples;
  samples.reserve(static_cast<size_t>(a.iters));
  const double cpu_before = cpu_ms();
  const auto loop_start = clock::now();
  for (int i = 0; i < a.iters; ++i) {
    start = clock::now();
    const tunnx::StepResult r = trainer.step(batch);
    samples.push_back(ms_since(start));
    if (a.warmup == 0 && i == 0) first_loss = r.loss;
    last_loss = r.loss;
  }
  // CPU time / wall time of the timed steps: whether --threads was honoured.
  const double cores_busy = (cpu_ms() - cpu_before) / ms_since(loop_start);
  const Stats step = summarize(samples);

  Stats backward, update;
  if (a.split) {
    std::vector<double> bw, up;
    for (int i = 0; i < a.iters; ++i) {
      start = clock::now();
      trainer.backward(batch);
      bw.push_back(ms_since(start));
      start = clock::now();
      trainer.optimizer_step();
      up.push_back(ms_since(start));
    }
    backward = summarize(bw);
    update = summarize(up);
  }
  const uint64_t rss = peak_rss_bytes();
  const std::vector<std::string> trainable = trainer.trainable();

  if (a.json) {
    std::ostringstream j;
    j << "{\"model\": " << json_string(a.model.string()) << ", \"loss\": " << json_string(a.loss)
      << ", \"optimizer\": " << json_string(a.optimizer) << ", \"lr\": " << json_number(a.lr)
      << ", \"threads\": " << a.threads << ", \"warmup\": " << a.warmup << ", \"iters\": " << a.iters
      << ", \"trainable\": " << trainable.size() << ", \"median_ms\": " << json_number(step.median_ms)
      << ", \"p90_ms\": " << json_number(step.p90_ms) << ", \"mean_ms\": " << json_number(step.mean_ms)
      << ", \"min_ms\": " << json_number(step.min_ms) << ", \"max_ms\": " << json_number(step.max_ms)
      << ", \"cores_busy\": " << json_number(cores_busy) << ", \"peak_rss_bytes\": " << rss
      << ", \"load_ms\": " << json_number(load_ms) << ", \"trainer_ms\": " << json_number(trainer_ms)
      << ", \"first_loss\": " << json_number(first_loss) << ", \"last_loss\": " << json_number(last_loss);
    if (a.split)
      j << ", \"backward_median_ms\": " << json_number(backward.median_ms)
        << ", \"optimizer_step_median_ms\": " << json_number(update.median_ms);
    j << "}\n";
    std::cout << j.str();
  } else {
    std::printf("model        %s\n", a.model.string().c_str());
    std::printf("trainer      loss %s, optimizer %s (lr %g), %zu trainable Parameters, threads %d\n", a.loss.c_str(),
                a.optimizer.c_str(), a.lr, trainable.size(), a.threads);
    std::printf("setup        load %.1f ms, trainer %.1f ms\n", load_ms, trainer_ms);
    std::printf("step         median %.3f ms, p90 %.3f ms, mean %.3f ms, min %.3f ms, max %.3f ms (%d warm-up, %d timed)\n",
                step.median_ms, step.p90_ms, step.mean_ms, step.min_ms, step.max_ms, a.warmup, a.iters);
    if (a.split)
      std::printf("split        backward() median %.3f ms, optimizer_step() median %.3f ms\n", backward.median_ms,
                  update.median_ms);
    std::printf("cores busy   %.2f\n", cores_busy);
    std::printf("loss         first %.6f, last timed %.6f\n", first_loss, last_loss);
    std::printf("peak RSS     %.1f MiB\n", static_cast<double>(rss) / (1024.0 * 1024.0));
  }
  if (a.profile) print_profile(trainer.profile(), a.warmup + a.iters * (a.split ? 2 : 1));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return run(parse(argc, argv));
  } catch (const std::exception& e) {
    std::cerr << "tunnx_train_step: " << one_line(e.what()) << "\n";
    return 1;
  }
}
