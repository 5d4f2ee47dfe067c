// Checkpoints of a training run, crash-safe: DIR/step-NNNNNNNN/ holds tensors.safetensors (the
// model's Parameters and buffers under their own names, optimizer state as "optimizer/<param>/<state>"),
// readable by Python's safetensors, and state.json (progress, counters, a CRC32 per tensor, the model
// file's CRC32, loss, optimizer and schedule, the caller's run description). A step folder appears
// complete or not at all (written beside it, fsynced, renamed), and only the newest `keep` remain.
//
//   tunnx::save_checkpoint("ckpt", model, trainer, {.epoch = 1, .batch = 0, .step = trainer.steps()});
//   if (auto newest = tunnx::latest_checkpoint("ckpt")) tunnx::load_checkpoint(*newest, model, trainer);
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

#include "tunnx/model.h"
#include "tunnx/train.h"

namespace tunnx {

// Where a run stands: the next batch to train is batch `batch` of epoch `epoch` (both from 0).
struct TrainingProgress {
  int64_t epoch = 0;  // epochs completed
  int64_t batch = 0;  // batches of the current epoch already trained
  int64_t step = 0;   // optimizer steps taken (Trainer::steps())
};

struct CheckpointInfo {
  std::filesystem::path path;  // the step folder
  TrainingProgress progress;
  Trainer::Counters counters;
  std::string run_json;        // what the caller stored (the CLI: its options), JSON text
  uint32_t model_crc32 = 0;    // of the model file the run started from (0: loaded from bytes)
};

// Writes a checkpoint and removes all but the `keep` newest step folders. `run_json` must be a JSON
// value. Returns the step folder. Throws Error(kIo) naming the path; an older checkpoint survives.
std::filesystem::path save_checkpoint(const std::filesystem::path& dir, const Model& model,
                                      const Trainer& trainer, const TrainingProgress& progress,
                                      const std::string& run_json = "{}", int keep = 2);

// The newest complete step folder in `dir` (state.json and tensors.safetensors present), or none.
// A damaged newest checkpoint is returned all the same: loading it fails loudly, never silently
// falling back to an older one.
std::optional<std::filesystem::path> latest_checkpoint(const std::filesystem::path& dir);

// state.json alone: to compare the run before touching anything.
CheckpointInfo read_checkpoint_info(const std::filesystem::path& step_dir);

// Checks every tensor (CRC32, name, shape, dtype) first, then restores Parameters, buffers,
// optimizer state and counters. A failing tensor is named and nothing is changed.
CheckpointInfo load_checkpoint(const std::filesystem::path& step_dir, Model& model, Trainer& trainer);
// Parameters and buffers only (exporting a checkpoint's weights); the same checks.
CheckpointInfo load_checkpoint_weights(const std::filesystem::path& step_dir, Model& model);

// CRC32 (zlib's) of a file, as state.json records the model's.
uint32_t file_crc32(const std::filesystem::path& path);

}  // namespace tunnx
