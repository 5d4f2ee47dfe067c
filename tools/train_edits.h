// The graph edits `tunnx train` makes right after loading the model (tunnx/extend.h): new heads,
// replacing the outputs, LoRA adapters, bound inputs, adapters loaded from a file. The options are
// checked before the model is read, so a bad field is one line naming the option and the field.
#pragma once

#include <cstdint>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tunnx/model.h"

namespace tunnx::cli {

// --add-head VALUE:N[:NAME], split from the right: VALUE may hold ':', NAME may not be a number.
struct HeadSpec {
  std::string value;
  int64_t out_features = 0;
  std::string name = "head";
};
// --lora GLOB:RANK[:ALPHA], split from the right: GLOB may hold ':'. A GLOB that itself ends in
// ":<integer>" needs ALPHA spelled out ("w:4:8:8" is GLOB "w:4", RANK 8, ALPHA 8).
struct LoraSpec {
  std::string glob;
  int64_t rank = 0;
  double alpha = 8;  // PEFT's default
};
// --bind-input INPUT=FILE.npy (split at the first '=', as `tunnx run --input`).
struct BindSpec {
  std::string input;
  std::filesystem::path file;
};

// Each throws Error(kInvalidArgument) naming the option, the text given and the bad field.
HeadSpec parse_head(const std::string& text);
LoraSpec parse_lora(const std::string& text);
BindSpec parse_bind_input(const std::string& text);

struct EditArgs {
  std::vector<std::string> heads, lora, bind_inputs;  // as given, in command-line order
  bool replace_output = false, merge_lora = false, keep_lora = false;
  std::filesystem::path save_adapters, adapters;
};

// Field syntax and the combinations that cannot work, before anything is loaded or written.
void check_edit_options(const EditArgs& e);

// Heads (seed + index), --replace-output, LoRA (seed + index), bound inputs, then --adapters: the
// order a resume repeats before it loads the checkpoint. Returns the inputs now bound.
std::set<std::string> apply_edits(Model& model, const EditArgs& e, uint64_t seed);

// The edits' options in the run's identity (checkpoint resume), canonical so "x:10" and
// "x:10:head" are the same run; paths absolute.
void add_edit_identity(nlohmann::ordered_json& identity, const EditArgs& e);

// The graph edits a `tunnx train` checkpoint's identity records (heads, --replace-output, --lora,
// --bind-input; not --adapters, whose values the checkpoint holds), made again on `model` so the
// checkpoint's tensors fit it: what `tunnx export --checkpoint` does before loading them. A run
// without edits (or a checkpoint not written by the CLI) changes nothing.
// Throws naming `step_dir` when the recorded options cannot be read.
void apply_recorded_edits(Model& model, const std::filesystem::path& step_dir, const std::string& run_json);

}  // namespace tunnx::cli
