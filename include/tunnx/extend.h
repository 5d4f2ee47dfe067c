// Extending a loaded model with parameters of one's own, wired into its graph: new heads, LoRA
// adapters and trainable inputs. What Module.register_parameter plus a few lines of forward() are to
// PyTorch: the edits change the Model itself, so sessions and trainers made afterwards run the edited
// graph, checkpoints hold the new tensors, and Model::save exports a valid ONNX file.
//
// Every edit checks names, shapes and dtypes when it is made and throws Error(kInvalidArgument or
// kNotFound) with the value or weight named; a refused edit leaves the model unchanged.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "tunnx/model.h"

namespace tunnx {

struct HeadOptions {
  std::string value;         // the graph value the head reads: its last dim must be static
  int64_t out_features = 0;  // N
  std::string name = "head";
  uint64_t seed = 0;
};

// Registers NAME.weight [N, in] and NAME.bias [N], initialised as torch.nn.Linear does (both
// U(-1/sqrt(in), 1/sqrt(in)), from `seed`), computes Gemm(V, weight, bias, transB=1) for a rank-2 V
// and MatMul(V, Transpose(weight)) + bias above that, and adds a graph output called NAME.
void add_head(Model& model, const HeadOptions& options);

// Makes `outputs` the graph's only outputs, in that order; nodes that fed only the old outputs are
// dropped, with the initializers only they read (which leave the model's parameters too).
void replace_outputs(Model& model, const std::vector<std::string>& outputs);

struct LoraOptions {
  std::string glob;  // parameter names, shell-style (`*` also matches dots)
  int64_t rank = 8;
  double alpha = 8;  // the update is scaled by alpha / rank, as PEFT's LoraConfig
  uint64_t seed = 0;
};

struct LoraAdapter {
  std::string weight;          // the adapted weight
  std::string lora_a, lora_b;  // <weight>.lora_A [rank, in], <weight>.lora_B [out, rank]
  int64_t in = 0, out = 0, rank = 0;
  double alpha = 0;
};

// For every Parameter matching the glob that a MatMul or Gemm reads as its weight operand (also
// through a Transpose, as torch exports nn.Linear), registers <weight>.lora_A (PEFT's init:
// U(-1/sqrt(in), 1/sqrt(in))) and <weight>.lora_B (zeros), rewrites each such product to
// W x + (alpha/rank) B A x, and freezes every imported Parameter (as PEFT does; registered ones,
// heads included, keep their setting). Throws naming the glob when it matches nothing, or naming a
// matched tensor that no MatMul/Gemm reads as its weight.
std::vector<LoraAdapter> add_lora(Model& model, const LoraOptions& options);
std::vector<LoraAdapter> lora_adapters(const Model& model);  // every adapter added so far

// The adapters alone as safetensors: keys <weight>.lora_A / .lora_B; rank, alpha and glob in the
// metadata. load_adapters reads such a file onto a model given the same add_lora, checking keys,
// shapes, rank and alpha.
void save_adapters(const Model& model, const std::filesystem::path& path);
void load_adapters(Model& model, const std::filesystem::path& path);

// Binds graph input `input` to a new Parameter of the same name holding `value` (soft prompts,
// input optimisation): the input leaves the graph's inputs and is no longer fed. `value` must have
// the input's dtype (floating-point) and match its fixed dims.
void bind_input(Model& model, const std::string& input, Tensor value);

// The edits made so far, one line each ("head value=... n=... name=..."), in order: what a checkpoint
// records so a resume can check it is applied to the same edited model.
std::vector<std::string> graph_edits(const Model& model);

}  // namespace tunnx
