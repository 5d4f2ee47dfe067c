// `tunnx bench`: latency of Session::run on inputs synthesized from the model's declared inputs.
// Inputs come from a fixed-seed generator so two runs (and two machines) time the same work; the
// numbers are for comparing runtimes and kernels, so nothing here asserts a speed.
#include <sys/resource.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "tools/commands.h"
#include "tools/format.h"
#include "tools/weights.h"
#include "tunnx/tunnx.h"

namespace tunnx::cli {
namespace {

constexpr uint64_t kInputSeed = 20240611;

struct BenchOptions {
  std::filesystem::path model;
  std::string device = "cpu";
  int threads = 0;
  bool fixed_threads = false;
  int optimization = SessionOptions{}.optimization_level;
  int warmup = 10;
  int iters = 100;
  int64_t batch = 1;
  bool json = false;
  bool profile = false;
  bool keep_weights = false;  // --keep-weights: the session does not take the model (release is the default)
  bool release_weights = false;  // --release-weights: the default, kept for scripts that name it
  bool infer_dims = false;
  std::vector<std::string> shapes;  // --shape NAME=DxDxD
  std::vector<std::string> dims;    // --dim SYMBOL=N
  std::vector<std::string> inputs;  // --input NAME=FILE
};

// NAME=VALUE of a repeatable option, split at the first '='; throws naming the option.
std::pair<std::string, std::string> name_and_value(const std::string& option, const std::string& text,
                                                   const char* form) {
  const size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == text.size())
    throw Error(ErrorCode::kInvalidArgument, option + " '" + text + "' must be " + form);
  return {text.substr(0, eq), text.substr(eq + 1)};
}

int64_t positive_size(const std::string& option, const std::string& text, const std::string& field) {
  int64_t v = 0;
  const auto [end, ec] = std::from_chars(field.data(), field.data() + field.size(), v);
  if (ec != std::errc() || end != field.data() + field.size() || v < 1)
    throw Error(ErrorCode::kInvalidArgument,
                option + " '" + text + "': '" + field + "' is not a positive size");
  return v;
}

// What the command line fixes of the inputs: whole shapes, named free dims, and real data.
struct InputChoices {
  std::map<std::string, std::vector<int64_t>> shapes;
  std::map<std::string, int64_t> dims;
  NamedValues data;
};

InputChoices input_choices(const BenchOptions& o, const ModelInfo& info) {
  InputChoices c;
  auto known_input = [&](const std::string& option, const std::string& text, const std::string& name) {
    for (const ValueSummary& v : info.inputs)
      if (v.name == name) return;
    std::string names;
    for (const ValueSummary& v : info.inputs) names += (names.empty() ? "" : ", ") + v.name;
    throw Error(ErrorCode::kNotFound, option + " '" + text + "': the model has no input '" + name +
                                          "' (its inputs: " + (names.empty() ? "none" : names) + ")");
  };
  for (const std::string& text : o.shapes) {
    auto [name, value] = name_and_value("--shape", text, "NAME=DxDx... (e.g. image=1x3x224x224)");
    known_input("--shape", text, name);
    std::vector<int64_t> dims;
    for (size_t start = 0; start <= value.size();) {
      const size_t x = std::min(value.find('x', start), value.size());
      dims.push_back(positive_size("--shape", text, value.substr(start, x - start)));
      start = x + 1;
    }
    c.shapes[name] = dims;
  }
  for (const std::string& text : o.dims) {
    auto [symbol, value] = name_and_value("--dim", text, "SYMBOL=N (e.g. batch=8)");
    c.dims[symbol] = positive_size("--dim", text, value);
  }
  for (const std::string& text : o.inputs) {
    auto [name, file] = name_and_value("--input", text, "NAME=FILE (.npy or TensorProto .pb)");
    known_input("--input", text, name);
    c.data[name] = load_value(file);
  }
  return c;
}

struct InputSpec {
  std::string name;
  DataType dtype = DataType::kUndefined;
  std::vector<int64_t> dims;
};

struct Latency {
  double median_ms = 0, p90_ms = 0, p99_ms = 0, mean_ms = 0, min_ms = 0, max_ms = 0;
};

// Concrete dims for every declared input. The first free dim (symbolic or unknown) found in input
// order is the batch: every dim with its symbol, and any anonymous free dim at axis 0, gets --batch;
// every other free dim gets 1.
// --shape fixes an input's dims outright (checked against its declared rank and fixed dims), --dim a
// named free dim wherever it appears; `defaulted` is set when some size came from the rule above.
std::vector<InputSpec> input_specs(const ModelInfo& info, int64_t batch, const InputChoices& choices,
                                   bool& defaulted) {
  std::string batch_symbol;
  bool batch_seen = false;
  std::vector<InputSpec> specs;
  for (const ValueSummary& v : info.inputs) {
    if (choices.data.count(v.name)) continue;  // --input: real data
    const std::string prefix = "tensor(";
    if (v.type.rfind(prefix, 0) != 0 || v.type.back() != ')')
      throw Error(ErrorCode::kUnsupported, "bench synthesizes tensor inputs only; input is " + v.type,
                  {.tensor = v.name});
    if (!v.has_shape)
      throw Error(ErrorCode::kUnsupported, "input declares no shape, so bench cannot synthesize it",
                  {.tensor = v.name});
    InputSpec spec{v.name, data_type_from_string(v.type.substr(prefix.size(), v.type.size() - prefix.size() - 1)), {}};
    if (auto it = choices.shapes.find(v.name); it != choices.shapes.end()) {
      const std::vector<int64_t>& given = it->second;
      bool fits = given.size() == v.shape.dims.size();
      for (size_t i = 0; fits && i < given.size(); ++i)
        fits = !v.shape.dims[i].is_fixed() || v.shape.dims[i].value == given[i];
      if (!fits)
        throw Error(ErrorCode::kInvalidArgument, "--shape " + dims_to_string(given) + " does not fit the declared " +
                                                     v.shape.to_string(), {.tensor = v.name});
      spec.dims = given;
      specs.push_back(std::move(spec));
      continue;
    }
    for (size_t axis = 0; axis < v.shape.dims.size(); ++axis) {
      const Dim& d = v.shape.dims[axis];
      if (d.is_fixed()) {
        spec.dims.push_back(d.value);
        continue;
      }
      if (auto it = choices.dims.find(d.symbol); d.is_named() && it != choices.dims.end()) {
        spec.dims.push_back(it->second);
        continue;
      }
      defaulted = true;
      bool is_batch = false;
      if (!batch_seen) {
        batch_seen = true;
        batch_symbol = d.is_named() ? d.symbol : "";
        is_batch = true;
      } else {
        is_batch = d.is_named() ? d.symbol == batch_symbol : axis == 0;  // each "?" is a size of its own
      }
      spec.dims.push_back(is_batch ? batch : 1);
    }
    specs.push_back(std::move(spec));
  }
  return specs;
}

// IEEE half and bfloat16 bit patterns of a float in [-1, 1); round to nearest even is not needed
// for synthetic data, truncation keeps the value in range.
uint16_t to_bfloat16_bits(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  return static_cast<uint16_t>(bits >> 16);
}

uint16_t to_float16_bits(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof bits);
  uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  int exponent = static_cast<int>((bits >> 23) & 0xffu) - 127 + 15;
  uint32_t mantissa = bits & 0x7fffffu;
  if (exponent <= 0) return sign;  // too small for a normal half: flush to zero
  return static_cast<uint16_t>(sign | (exponent << 10) | (mantissa >> 13));
}

// Floats uniform in [-1, 1), integers uniform in [0, 100) (valid token ids and indices for most
// models), bools fair coin flips.
Tensor synthesize(const InputSpec& spec, std::mt19937_64& rng) {
  Tensor t(spec.dtype, spec.dims);
  const int64_t n = t.numel();
  std::uniform_real_distribution<float> real(-1.0f, 1.0f);
  std::uniform_int_distribution<int> integer(0, 99);
  auto fill = [&](auto* out, auto draw) {
    for (int64_t i = 0; i < n; ++i) out[i] = draw();
  };
  switch (spec.dtype) {
    case DataType::kFloat32: fill(t.mutable_data_as<float>(), [&] { return real(rng); }); break;
    case DataType::kFloat64: fill(t.mutable_data_as<double>(), [&] { return double{real(rng)}; }); break;
    case DataType::kFloat16:
      fill(static_cast<uint16_t*>(t.mutable_data()), [&] { return to_float16_bits(real(rng)); });
      break;
    case DataType::kBFloat16:
      fill(static_cast<uint16_t*>(t.mutable_data()), [&] { return to_bfloat16_bits(real(rng)); });
      break;
    case DataType::kInt8: fill(t.mutable_data_as<int8_t>(), [&] { return static_cast<int8_t>(integer(rng)); }); break;
    case DataType::kInt16: fill(t.mutable_data_as<int16_t>(), [&] { return static_cast<int16_t>(integer(rng)); }); break;
    case DataType::kInt32: fill(t.mutable_data_as<int32_t>(), [&] { return static_cast<int32_t>(integer(rng)); }); break;
    case DataType::kInt64: fill(t.mutable_data_as<int64_t>(), [&] { return static_cast<int64_t>(integer(rng)); }); break;
    case DataType::kUInt8: fill(t.mutable_data_as<uint8_t>(), [&] { return static_cast<uint8_t>(integer(rng)); }); break;
    case DataType::kUInt16: fill(t.mutable_data_as<uint16_t>(), [&] { return static_cast<uint16_t>(integer(rng)); }); break;
    case DataType::kUInt32: fill(t.mutable_data_as<uint32_t>(), [&] { return static_cast<uint32_t>(integer(rng)); }); break;
    case DataType::kUInt64: fill(t.mutable_data_as<uint64_t>(), [&] { return static_cast<uint64_t>(integer(rng)); }); break;
    case DataType::kBool: fill(t.mutable_data_as<bool>(), [&] { return (rng() & 1u) != 0; }); break;
    default:
      throw Error(ErrorCode::kUnsupported,
                  std::string("bench cannot synthesize ") + to_string(spec.dtype) + " inputs", {.tensor = spec.name});
  }
  return t;
}

// Nearest-rank percentile of sorted samples: the smallest sample with at least p% at or below it.
double percentile(const std::vector<double>& sorted, double p) {
  size_t rank = static_cast<size_t>(std::ceil(p / 100.0 * static_cast<double>(sorted.size())));
  return sorted[std::clamp<size_t>(rank, 1, sorted.size()) - 1];
}

Latency summarize(std::vector<double> ms) {
  std::sort(ms.begin(), ms.end());
  Latency l;
  size_t n = ms.size();
  l.median_ms = n % 2 ? ms[n / 2] : (ms[n / 2 - 1] + ms[n / 2]) / 2;
  l.p90_ms = percentile(ms, 90);
  l.p99_ms = percentile(ms, 99);
  double sum = 0;
  for (double v : ms) sum += v;
  l.mean_ms = sum / static_cast<double>(n);
  l.min_ms = ms.front();
  l.max_ms = ms.back();
  return l;
}

// The process's own peak resident memory: VmHWM of /proc/self/status. getrusage's ru_maxrss is the
// fallback only: on Linux it starts from the parent's peak when a process is forked and executed
// without an exec in between (a benchmark script's Python), so it can report the parent's memory.
uint64_t peak_rss_bytes() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);)
    if (line.rfind("VmHWM:", 0) == 0) return std::stoull(line.substr(6)) * 1024;  // "VmHWM:   1234 kB"
  struct rusage usage {};
  ::getrusage(RUSAGE_SELF, &usage);
  return static_cast<uint64_t>(usage.ru_maxrss) * 1024;  // Linux reports KiB
}

// The OpenMP wait policy this process started with (tunnx/threads.h).
std::string wait_policy() {
  if (const char* p = std::getenv("OMP_WAIT_POLICY")) return std::string("OMP_WAIT_POLICY=") + p;
  if (const char* s = std::getenv("GOMP_SPINCOUNT")) return std::string("GOMP_SPINCOUNT=") + s;
  return "libgomp default";
}

// User + system CPU time of every thread of the process so far.
double cpu_ms() {
  struct rusage usage {};
  ::getrusage(RUSAGE_SELF, &usage);
  auto ms = [](const timeval& t) { return static_cast<double>(t.tv_sec) * 1e3 + static_cast<double>(t.tv_usec) / 1e3; };
  return ms(usage.ru_utime) + ms(usage.ru_stime);
}

double ms_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

// What is wrong with the numbers on the command line, or "" when nothing is.
std::string usage_problem(const BenchOptions& o) {
  if (o.iters < 1) return "--iters must be at least 1, got " + std::to_string(o.iters);
  if (o.warmup < 0) return "--warmup must not be negative, got " + std::to_string(o.warmup);
  if (o.batch < 1) return "--batch must be at least 1, got " + std::to_string(o.batch);
  if (o.threads < 0) return "--threads must not be negative, got " + std::to_string(o.threads);
  return "";
}

void bench(const BenchOptions& o) {
  auto start = std::chrono::steady_clock::now();
  std::optional<Model> model = Model::load(o.model);
  double load_ms = ms_since(start);
  SessionOptions options;
  options.device = Device::parse(o.device);
  options.threads = o.threads;
  options.adaptive_threads = !o.fixed_threads;
  options.optimization_level = o.optimization;
  const ModelInfo info = model->info();
  options.release_packed_originals = releases_packed_weights(info, o.keep_weights);
  const InputChoices choices = input_choices(o, info);
  bool defaulted = false;
  std::vector<InputSpec> specs = input_specs(info, o.batch, choices, defaulted);
  std::mt19937_64 rng(kInputSeed);
  NamedValues inputs = choices.data;
  for (const InputSpec& spec : specs) inputs[spec.name] = synthesize(spec, rng);
  options.expected_dims = dims_named_by(*model, inputs);  // the session is made ready for these runs
  if (o.infer_dims) options.expected_input_dims = input_dims_of(inputs);
  start = std::chrono::steady_clock::now();
  // Unless --keep-weights, the session takes the model, so each weight its kernels pack is freed as
  // soon as they hold their copies (ONNX Runtime frees the initializers its kernels pre-pack too).
  Session session = options.release_packed_originals ? Session(std::move(*model), options) : Session(*model, options);
  double session_ms = ms_since(start);
  if (options.release_packed_originals) model.reset();

  // A size bench made up may not be one the model takes (a fixed sequence length, an image size):
  // say so on the first run's error.
  double first_run_ms = 0;
  try {
    start = std::chrono::steady_clock::now();
    session.run(inputs);
    first_run_ms = ms_since(start);
  } catch (const Error& e) {
    if (!defaulted) throw;
    std::string sizes;
    for (const InputSpec& spec : specs) sizes += (sizes.empty() ? "" : ", ") + spec.name + " " + dims_to_string(spec.dims);
    throw Error(e.code(), std::string(e.what()) + " (bench made up the input sizes " + sizes +
                              ": --batch for the first free dim, 1 for the others; set them with --shape NAME=DxD..., "
                              "--dim SYMBOL=N or --input NAME=FILE)");
  }
  for (int i = 1; i < o.warmup; ++i) session.run(inputs);
  std::vector<double> samples;
  samples.reserve(static_cast<size_t>(o.iters));
  double cpu_before = cpu_ms();
  auto loop_start = std::chrono::steady_clock::now();
  for (int i = 0; i < o.iters; ++i) {
    start = std::chrono::steady_clock::now();
    NamedValues outputs = session.run(inputs);
    samples.push_back(ms_since(start));  // outputs are freed after the clock stops
  }
  // CPU time over wall time of the timed runs: how many cores the runs kept busy, which shows
  // whether --threads was honoured (a spinning thread pool counts as busy too).
  double cores_busy = (cpu_ms() - cpu_before) / ms_since(loop_start);
  Latency l = summarize(samples);
  double runs_per_s = 1000.0 / l.median_ms;
  double samples_per_s = runs_per_s * static_cast<double>(o.batch);
  uint64_t rss = peak_rss_bytes();
  // Which kernels were timed ("cpu/onednn/MatMul": 2), so a number is never read without its kernels.
  std::map<std::string, int64_t> kernels;
  const SessionStats stats = session.stats();
  for (const SessionStats::NodeKernel& k : stats.kernels) ++kernels[k.kernel];

  // --profile: the same runs again on a session that times every node (kept apart so the clock reads
  // do not touch the numbers above): where the time goes, and the executor's overhead per run.
  SessionStats profiled;
  if (o.profile) {
    SessionOptions with_profile = options;
    with_profile.profile = true;
    std::optional<Model> reloaded;
    if (!model) reloaded = Model::load(o.model);  // --release-weights let go of the first
    Session timed(model ? *model : *reloaded, with_profile);
    for (int i = 0; i < o.warmup + o.iters; ++i) timed.run(inputs);
    profiled = timed.stats();
  }
  double kernel_ms = 0;
  for (const auto& k : profiled.kernels)
    if (k.depth == 0) kernel_ms += k.total_ms;  // a body's time is inside its node's
  const double profiled_runs = static_cast<double>(std::max<int64_t>(profiled.runs, 1));

  if (o.json) {
    nlohmann::ordered_json j;
    j["model"] = o.model.string();
    j["device"] = options.device.to_string();
    j["threads"] = o.threads;
    j["threads_granted"] = stats.last_run_threads;
    j["adaptive_threads"] = options.adaptive_threads;
    j["release_weights"] = options.release_packed_originals;
    j["infer_dims"] = o.infer_dims;
    j["optimization"] = o.optimization;
    j["hardware_threads"] = std::thread::hardware_concurrency();
    j["batch"] = o.batch;
    j["warmup"] = o.warmup;
    j["iters"] = o.iters;
    nlohmann::ordered_json in = nlohmann::ordered_json::array();
    for (const InputSpec& spec : specs)
      in.push_back({{"name", spec.name}, {"dtype", to_string(spec.dtype)}, {"shape", spec.dims}, {"data", "synthesized"}});
    for (const auto& [name, value] : choices.data)
      if (value.is_tensor())
        in.push_back({{"name", name}, {"dtype", to_string(value.tensor().dtype())}, {"shape", value.tensor().dims()},
                      {"data", "file"}});
    j["inputs"] = in;
    j["median_ms"] = l.median_ms;
    j["p90_ms"] = l.p90_ms;
    j["p99_ms"] = l.p99_ms;
    j["mean_ms"] = l.mean_ms;
    j["min_ms"] = l.min_ms;
    j["max_ms"] = l.max_ms;
    j["runs_per_s"] = runs_per_s;
    j["samples_per_s"] = samples_per_s;
    j["load_ms"] = load_ms;
    j["session_ms"] = session_ms;
    j["prepared_nodes"] = stats.prepared_nodes;
    j["first_run_ms"] = first_run_ms;  // load + session + this: the first result, as a user waits for it
    j["wait_policy"] = wait_policy();
    j["cores_busy"] = cores_busy;
    j["peak_rss_bytes"] = rss;
    j["released_initializers"] = stats.released_initializers;
    j["released_bytes"] = stats.released_bytes;
    j["kernels"] = kernels;
    if (o.profile) {
      nlohmann::ordered_json nodes = nlohmann::ordered_json::array();
      for (const auto& k : profiled.kernels)
        nodes.push_back({{"node", k.node}, {"op", k.op_type}, {"kernel", k.kernel}, {"calls", k.calls},
                         {"ms_per_call", k.calls ? k.total_ms / static_cast<double>(k.calls) : 0.0},
                         {"depth", k.depth}, {"subgraph", k.subgraph}});
      j["profile"] = {{"runs", profiled.runs},
                      {"run_ms", profiled.total_run_ms / profiled_runs},
                      {"kernel_ms", kernel_ms / profiled_runs},
                      {"overhead_ms", (profiled.total_run_ms - kernel_ms) / profiled_runs},
                      {"nodes", nodes}};
    }
    std::cout << pretty_json(j) << std::flush;
    return;
  }
  std::ostringstream out;
  out << "Model: " << o.model.string() << "\n";
  out << "Device: " << options.device.to_string() << ", threads " << o.threads
      << (o.threads == 0 ? " (all " + std::to_string(std::thread::hardware_concurrency()) + " cores)" : "")
      << ", batch " << o.batch << ", optimization level " << o.optimization << "\n";
  for (const InputSpec& spec : specs)
    out << "Input: " << spec.name << "  " << to_string(spec.dtype) << "  " << dims_to_string(spec.dims) << "\n";
  for (const auto& [name, value] : choices.data)
    if (value.is_tensor())
      out << "Input: " << name << "  " << to_string(value.tensor().dtype()) << "  "
          << dims_to_string(value.tensor().dims()) << "  (from --input)\n";
  out << "Load " << fixed(load_ms, 1) << " ms, session " << fixed(session_ms, 1) << " ms ("
      << stats.prepared_nodes << " nodes prepared for these input dims), first run "
      << fixed(first_run_ms, 1) << " ms; " << o.warmup << " warmup runs, " << o.iters << " timed runs; threads wait by "
      << wait_policy() << "\n";
  TextTable table({}, {Align::kLeft, Align::kLeft});
  table.add_row({"median", fixed(l.median_ms, 3) + " ms"});
  table.add_row({"p90", fixed(l.p90_ms, 3) + " ms"});
  table.add_row({"p99", fixed(l.p99_ms, 3) + " ms"});
  table.add_row({"mean", fixed(l.mean_ms, 3) + " ms"});
  table.add_row({"min / max", fixed(l.min_ms, 3) + " / " + fixed(l.max_ms, 3) + " ms"});
  table.add_row({"throughput", fixed(runs_per_s, 1) + " runs/s, " + fixed(samples_per_s, 1) + " samples/s"});
  table.add_row({"cores busy", fixed(cores_busy, 2) + " (CPU time / wall time of the timed runs)"});
  table.add_row({"peak RSS", human_bytes(rss) + " (" + with_thousands(static_cast<int64_t>(rss)) + " B)"});
  if (options.release_packed_originals)
    table.add_row({"weights freed", std::to_string(stats.released_initializers) + " initializers, " +
                                        human_bytes(static_cast<uint64_t>(stats.released_bytes)) +
                                        " once packed (--keep-weights keeps them)"});
  out << table.render("  ");
  out << "Kernels:";
  for (const auto& [kernel, count] : kernels) out << " " << kernel << " x" << count;
  out << "\n";
  if (o.profile) out << profile_text(profiled);
  std::cout << out.str() << std::flush;
}

}  // namespace

void add_bench_command(CLI::App& app) {
  auto o = std::make_shared<BenchOptions>();
  CLI::App* command = app.add_subcommand("bench", "Time Session::run on synthesized inputs (median, p90, p99)");
  command->add_option("MODEL", o->model, "ONNX model file")->required()->type_name("FILE");
  command->add_option("--device", o->device, "cpu (cuda: later)")->default_val("cpu");
  command->add_option("--threads", o->threads, "Threads (0: all cores)")->default_val(0);
  command->add_flag("--fixed-threads", o->fixed_threads,
                    "Every run on --threads threads, even on a busy machine (default: a run whose threads the "
                    "machine preempts is timed against one thread, and the faster is kept)");
  command->add_option("--optimization", o->optimization, "Graph rewrites: 0 none, 1 basic, 2 fusions")
      ->default_val(SessionOptions{}.optimization_level)
      ->check(CLI::Range(0, 2));
  command->add_option("--warmup", o->warmup, "Untimed runs first")->default_val(10);
  command->add_option("--iters", o->iters, "Timed runs")->default_val(100);
  command->add_option("--batch", o->batch, "Size of the first free (symbolic) dim; other free dims are 1")
      ->default_val(1);
  command->add_option("--shape", o->shapes, "An input's dims: NAME=DxDx... (repeatable)")->type_name("NAME=DIMS");
  command->add_option("--dim", o->dims, "A named free dim wherever it appears: SYMBOL=N (repeatable)")
      ->type_name("SYMBOL=N");
  command->add_option("--input", o->inputs, "Real data for an input: NAME=FILE (.npy or TensorProto .pb; repeatable)")
      ->type_name("NAME=FILE");
  command->add_flag("--json", o->json, "One JSON object instead of text");
  command->add_flag("--keep-weights", o->keep_weights,
                    "Keep the model's weights beside the copies the kernels pack (default: the session takes the "
                    "model and frees each constant weight once the kernels that read it hold packed copies, "
                    "SessionOptions::release_packed_originals)");
  command->add_flag("--release-weights", o->release_weights, "The default (see --keep-weights)")
      ->excludes("--keep-weights");
  command->add_flag("--infer-dims", o->infer_dims,
                    "Make the session ready for the inputs' dims where they have no names (\"?\", unk__N) or shape "
                    "inference loses them further in: inference runs again when the session is made "
                    "(SessionOptions::expected_input_dims; ~1 ms for PaddleOCR's classifier, ~18 for its recognizer)");
  command->add_flag("--profile", o->profile,
                    "Then time each node on a second session: where the time goes, executor overhead per run");
  command->footer(
      "Example:\n"
      "  tunnx bench examples/digits_cnn.onnx --batch 32 --iters 200 --threads 4\n"
      "  tunnx bench model.onnx --profile  # then the time per node\n"
      "  tunnx bench detector.onnx --shape images=1x3x480x640 --dim seq=128 --input sr=sr.npy");
  command->callback([o] {
    // A number out of range is a usage error (exit 2), reported in the one-line style of failures.
    if (std::string problem = usage_problem(*o); !problem.empty()) {
      std::cerr << "tunnx: error: " << problem << std::endl;
      throw CLI::RuntimeError(2);
    }
    bench(*o);
  });
}

}  // namespace tunnx::cli
