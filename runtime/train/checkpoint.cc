// Crash-safe training checkpoints (include/tunnx/checkpoint.h).
#include "tunnx/checkpoint.h"
#include "tunnx/extend.h"

#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "importer/atomic_file.h"
#include "tunnx/io.h"
#include "tunnx/status.h"

namespace tunnx {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr const char* kTensorsFile = "tensors.safetensors";
constexpr const char* kStateFile = "state.json";
constexpr const char* kOptimizerPrefix = "optimizer/";
constexpr const char* kStepPrefix = "step-";
constexpr int kFormatVersion = 1;

uint32_t tensor_crc32(const Tensor& t) {
  return static_cast<uint32_t>(
      crc32_z(crc32_z(0L, Z_NULL, 0), static_cast<const Bytef*>(t.data()), t.nbytes()));
}

std::string hex32(uint32_t v) {
  char buf[9];
  std::snprintf(buf, sizeof buf, "%08x", v);
  return buf;
}

uint32_t parse_hex32(const std::string& s, const std::string& where) {
  if (s.size() != 8 || s.find_first_not_of("0123456789abcdef") != std::string::npos)
    throw Error(ErrorCode::kInvalidArgument, "CRC32 '" + s + "' is not 8 hex digits", {.file = where});
  return static_cast<uint32_t>(std::stoul(s, nullptr, 16));
}

std::string step_folder_name(int64_t step) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%s%08lld", kStepPrefix, static_cast<long long>(step));
  return buf;
}

// The step number of a "step-NNNNNNNN" folder name, or -1.
int64_t step_of(const std::string& name) {
  if (name.rfind(kStepPrefix, 0) != 0 || name.size() == std::strlen(kStepPrefix)) return -1;
  const std::string digits = name.substr(std::strlen(kStepPrefix));
  if (digits.find_first_not_of("0123456789") != std::string::npos || digits.size() > 18) return -1;
  return std::stoll(digits);
}

bool is_complete(const fs::path& folder) {
  std::error_code ec;
  return fs::is_regular_file(folder / kStateFile, ec) && fs::is_regular_file(folder / kTensorsFile, ec);
}

// Step folders in `dir`, newest first.
std::vector<std::pair<int64_t, fs::path>> step_folders(const fs::path& dir) {
  std::vector<std::pair<int64_t, fs::path>> found;
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const int64_t step = step_of(it->path().filename().string());
    if (step >= 0 && it->is_directory(ec)) found.emplace_back(step, it->path());
  }
  std::sort(found.begin(), found.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  return found;
}

void remove_quietly(const fs::path& path) {
  std::error_code ignored;
  fs::remove_all(path, ignored);
}

json trainer_json(const Trainer& trainer) {
  const TrainerOptions& o = trainer.options();
  const char* schedules[] = {"constant", "step", "cosine", "linear"};
  return {
      {"loss", {{"kind", to_string(o.loss.kind)}, {"output", o.loss.output}, {"target", o.loss.target},
                {"ignore_index", o.loss.ignore_index}, {"label_smoothing", o.loss.label_smoothing}}},
      {"optimizer", {{"kind", to_string(o.optimizer.kind)}, {"lr", o.optimizer.lr}, {"momentum", o.optimizer.momentum},
                     {"dampening", o.optimizer.dampening}, {"nesterov", o.optimizer.nesterov},
                     {"weight_decay", o.optimizer.effective_weight_decay()}, {"betas", {o.optimizer.beta1, o.optimizer.beta2}},
                     {"eps", o.optimizer.eps}}},
      {"schedule", {{"kind", schedules[static_cast<int>(o.schedule.kind)]}, {"step_size", o.schedule.step_size},
                    {"gamma", o.schedule.gamma}, {"t_max", o.schedule.t_max}, {"eta_min", o.schedule.eta_min},
                    {"warmup_steps", o.schedule.warmup_steps}, {"lr_now", trainer.lr()}}},
      {"clip_grad_norm", o.clip_grad_norm},
      {"accumulate", o.accumulate},
      {"seed", o.seed},
      {"trainable", trainer.trainable()},
  };
}

json read_state(const fs::path& step_dir) {
  const fs::path file = step_dir / kStateFile;
  std::ifstream in(file, std::ios::binary);
  if (!in) throw Error(ErrorCode::kNotFound, "checkpoint has no readable state file", {.file = file.string()});
  try {
    json state = json::parse(in);
    if (state.value("format", "") != "tunnx-checkpoint" || state.value("version", 0) != kFormatVersion)
      throw Error(ErrorCode::kInvalidArgument, "is not a tunnx checkpoint state of version " + std::to_string(kFormatVersion),
                  {.file = file.string()});
    return state;
  } catch (const json::exception& e) {
    throw Error(ErrorCode::kInvalidArgument, std::string("is not valid checkpoint JSON: ") + e.what(), {.file = file.string()});
  }
}

CheckpointInfo info_of(const json& state, const fs::path& step_dir) {
  CheckpointInfo info;
  info.path = step_dir;
  try {
    info.progress = {state.at("epoch").get<int64_t>(), state.at("batch").get<int64_t>(), state.at("step").get<int64_t>()};
    info.counters = {state.at("counters").at("steps").get<int64_t>(), state.at("counters").at("forwards").get<int64_t>()};
    info.run_json = state.at("run").dump();
    info.model_crc32 = parse_hex32(state.at("model").at("crc32").get<std::string>(), (step_dir / kStateFile).string());
  } catch (const json::exception& e) {
    throw Error(ErrorCode::kInvalidArgument, std::string("checkpoint state is missing a field: ") + e.what(),
                {.file = (step_dir / kStateFile).string()});
  }
  return info;
}

// Reads the tensors and checks each against state.json: present, same dtype and shape, same CRC32.
StateDict verified_tensors(const fs::path& step_dir, const json& state) {
  const fs::path file = step_dir / kTensorsFile;
  SafetensorsFile stored = load_safetensors(file);
  std::map<std::string, Tensor> by_name;
  for (auto& [name, t] : stored.tensors) by_name.emplace(name, t);
  const json& listed = state.at("tensors");
  StateDict out;
  for (const auto& entry : listed) {
    const std::string name = entry.at("name").get<std::string>();
    auto it = by_name.find(name);
    if (it == by_name.end())
      throw Error(ErrorCode::kInvalidArgument, "is listed in state.json but missing from the checkpoint",
                  {.file = file.string(), .tensor = name});
    const Tensor& t = it->second;
    if (to_string(t.dtype()) != entry.at("dtype").get<std::string>() || t.dims() != entry.at("shape").get<std::vector<int64_t>>())
      throw Error(ErrorCode::kInvalidArgument, "does not have the dtype and shape state.json records",
                  {.file = file.string(), .tensor = name});
    const uint32_t expected = parse_hex32(entry.at("crc32").get<std::string>(), file.string());
    const uint32_t actual = tensor_crc32(t);
    if (actual != expected)
      throw Error(ErrorCode::kInvalidArgument,
                  "fails its CRC32 check (recorded " + hex32(expected) + ", found " + hex32(actual) + "): the checkpoint is damaged",
                  {.file = file.string(), .tensor = name});
    out.emplace_back(name, t);
    by_name.erase(it);
  }
  if (!by_name.empty())
    throw Error(ErrorCode::kInvalidArgument, "is in the checkpoint but not listed in state.json",
                {.file = file.string(), .tensor = by_name.begin()->first});
  return out;
}

// Splits verified tensors into the model's and the optimizer's ("optimizer/<param>/<state>").
std::pair<StateDict, StateDict> split(StateDict tensors) {
  StateDict model, optimizer;
  const std::string prefix = kOptimizerPrefix;
  for (auto& [name, t] : tensors) {
    if (name.rfind(prefix, 0) == 0)
      optimizer.emplace_back(name.substr(prefix.size()), std::move(t));
    else
      model.emplace_back(name, std::move(t));
  }
  return {std::move(model), std::move(optimizer)};
}

// file_crc32 of the model file, read once per file version: a run that checkpoints every step
// would otherwise read the whole model again each time.
uint32_t model_crc32(const fs::path& path) {
  struct Seen {
    uintmax_t size;
    fs::file_time_type modified;
    uint32_t crc;
  };
  static std::mutex mutex;
  static std::map<std::string, Seen> seen;
  std::error_code ec;
  const uintmax_t size = fs::file_size(path, ec);
  const fs::file_time_type modified = fs::last_write_time(path, ec);
  if (ec) return file_crc32(path);  // it names the file
  std::lock_guard<std::mutex> lock(mutex);
  auto it = seen.find(path.string());
  if (it != seen.end() && it->second.size == size && it->second.modified == modified) return it->second.crc;
  const uint32_t crc = file_crc32(path);
  seen[path.string()] = {size, modified, crc};
  return crc;
}

}  // namespace

uint32_t file_crc32(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(ErrorCode::kIo, "cannot read", {.file = path.string()});
  uLong crc = crc32_z(0L, Z_NULL, 0);
  std::vector<char> buffer(1 << 20);
  while (in) {
    in.read(buffer.data(), static_cast<std::streamsize>(buffer.size()));
    crc = crc32_z(crc, reinterpret_cast<const Bytef*>(buffer.data()), static_cast<size_t>(in.gcount()));
  }
  return static_cast<uint32_t>(crc);
}

fs::path save_checkpoint(const fs::path& dir, const Model& model, const Trainer& trainer,
                         const TrainingProgress& progress, const std::string& run_json, int keep) {
  if (keep < 1) throw Error(ErrorCode::kInvalidArgument, "keep must be 1 or more");
  json run;
  try {
    run = json::parse(run_json);
  } catch (const json::exception& e) {
    throw Error(ErrorCode::kInvalidArgument, std::string("the run description is not JSON: ") + e.what());
  }
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw Error(ErrorCode::kIo, "cannot create the checkpoint folder: " + ec.message(), {.file = dir.string()});

  StateDict tensors;
  json listed = json::array();
  std::map<std::string, std::string> roles;
  for (const TensorInfo& info : model.tensors()) roles[info.name] = to_string(info.role);
  auto add = [&](const std::string& name, const Tensor& t, const std::string& role) {
    tensors.emplace_back(name, t);
    listed.push_back({{"name", name}, {"role", role}, {"dtype", to_string(t.dtype())}, {"shape", t.dims()}, {"crc32", hex32(tensor_crc32(t))}});
  };
  for (const auto& [name, t] : model.state_dict()) {
    if (name.rfind(kOptimizerPrefix, 0) == 0)
      throw Error(ErrorCode::kUnsupported, "a model tensor name may not start with 'optimizer/' in a checkpoint", {.tensor = name});
    add(name, t, roles[name]);
  }
  for (const auto& [name, t] : trainer.optimizer_state()) add(kOptimizerPrefix + name, t, "optimizer");

  const Trainer::Counters counters = trainer.counters();
  json state = {
      {"format", "tunnx-checkpoint"},
      {"version", kFormatVersion},
      {"step", progress.step},
      {"epoch", progress.epoch},
      {"batch", progress.batch},
      {"counters", {{"steps", counters.steps}, {"forwards", counters.forwards}}},
      // The data order is a function of (seed, epoch) and dropout of (seed, forwards): no other
      // generator state exists.
      {"rng", {{"data_order", "splitmix64(seed, epoch)"}, {"dropout_forwards", counters.forwards}}},
      {"model", {{"file", model.path().string()}, {"crc32", hex32(model.path().empty() ? 0 : model_crc32(model.path()))}}},
      {"trainer", trainer_json(trainer)},
      {"graph_edits", graph_edits(model)},
      {"tensors", listed},
      {"run", run},
  };

  const fs::path final_dir = dir / step_folder_name(progress.step);
  std::random_device rd;
  const std::string tag = std::to_string(::getpid()) + "-" + std::to_string(rd());
  const fs::path staging = dir / ("." + final_dir.filename().string() + ".partial-" + tag);
  fs::create_directory(staging, ec);
  if (ec) throw Error(ErrorCode::kIo, "cannot create a folder: " + ec.message(), {.file = staging.string()});
  try {
    save_safetensors(staging / kTensorsFile, tensors, {{"format", "tunnx-checkpoint"}, {"step", std::to_string(progress.step)}});
    write_file_atomically(staging / kStateFile, [&state](std::ostream& out) { out << state.dump(1) << '\n'; });
    sync_directory(staging);
    // A checkpoint of the same step already there (a resumed run passing it again) is swapped out,
    // not merged into.
    fs::path replaced;
    if (fs::exists(final_dir, ec)) {
      replaced = dir / ("." + final_dir.filename().string() + ".old-" + tag);
      fs::rename(final_dir, replaced);
    }
    fs::rename(staging, final_dir);
    sync_directory(dir);
    if (!replaced.empty()) remove_quietly(replaced);
  } catch (const fs::filesystem_error& e) {
    remove_quietly(staging);
    throw Error(ErrorCode::kIo, std::string("cannot write the checkpoint: ") + e.code().message(), {.file = final_dir.string()});
  } catch (...) {
    remove_quietly(staging);
    throw;
  }

  // Older checkpoints, and folders a killed writer left half-made.
  auto folders = step_folders(dir);
  for (size_t i = static_cast<size_t>(keep); i < folders.size(); ++i) remove_quietly(folders[i].second);
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.rfind(std::string(".") + kStepPrefix, 0) == 0 && name.find(tag) == std::string::npos &&
        (name.find(".partial-") != std::string::npos || name.find(".old-") != std::string::npos))
      remove_quietly(it->path());
  }
  return final_dir;
}

std::optional<fs::path> latest_checkpoint(const fs::path& dir) {
  for (const auto& [step, folder] : step_folders(dir))
    if (is_complete(folder)) return folder;
  return std::nullopt;
}

CheckpointInfo read_checkpoint_info(const fs::path& step_dir) { return info_of(read_state(step_dir), step_dir); }

namespace {

// A checkpoint of an edited model (new heads, LoRA, bound inputs) loads only onto a model with the
// same edits, made in the same order: its tensors would not fit another.
void check_graph_edits(const json& state, const Model& model, const fs::path& step_dir) {
  const std::vector<std::string> recorded = state.value("graph_edits", std::vector<std::string>{});
  const std::vector<std::string> current = graph_edits(model);
  if (recorded == current) return;
  auto list = [](const std::vector<std::string>& edits) {
    std::string out;
    for (const auto& e : edits) out += (out.empty() ? "" : "; ") + e;
    return "[" + out + "]";
  };
  throw Error(ErrorCode::kInvalidArgument,
              "was made on a model with graph edits " + list(recorded) + ", but this model has " + list(current),
              {.file = (step_dir / kStateFile).string()});
}

}  // namespace

CheckpointInfo load_checkpoint_weights(const fs::path& step_dir, Model& model) {
  const json state = read_state(step_dir);
  CheckpointInfo info = info_of(state, step_dir);
  check_graph_edits(state, model, step_dir);
  auto [weights, optimizer] = split(verified_tensors(step_dir, state));
  model.load_state_dict(weights, /*strict=*/true);
  return info;
}

CheckpointInfo load_checkpoint(const fs::path& step_dir, Model& model, Trainer& trainer) {
  const json state = read_state(step_dir);
  CheckpointInfo info = info_of(state, step_dir);
  check_graph_edits(state, model, step_dir);
  auto [weights, optimizer] = split(verified_tensors(step_dir, state));
  // Check the optimizer state against the trainer before the model changes, so a mismatch leaves
  // both as they were.
  const std::vector<std::string> trainable = trainer.trainable();
  for (const auto& [name, t] : optimizer) {
    const size_t slash = name.rfind('/');
    const std::string param = slash == std::string::npos ? name : name.substr(0, slash);
    if (std::find(trainable.begin(), trainable.end(), param) == trainable.end())
      throw Error(ErrorCode::kInvalidArgument, "is optimizer state of a Parameter this run does not train",
                  {.file = (step_dir / kTensorsFile).string(), .tensor = kOptimizerPrefix + name});
  }
  model.load_state_dict(weights, /*strict=*/true);
  trainer.load_optimizer_state(optimizer, info.counters);
  return info;
}

}  // namespace tunnx
