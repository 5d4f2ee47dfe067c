// `tunnx export`: loads a model and writes it back through tunnx — the same names, opsets and
// metadata, with the parameters' current values or trained ones from a safetensors file or a
// checkpoint — optionally moving large tensors into an external data file, or writes the weights
// alone as safetensors. A checkpoint of a `tunnx train` run that extended the model (heads, LoRA,
// bound inputs) gets the same edits first. The write is atomic: on failure nothing is left at OUT.
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "tools/commands.h"
#include "tools/train_edits.h"
#include "tools/weights.h"
#include "tunnx/tunnx.h"

namespace tunnx::cli {
namespace {

struct ExportOptions {
  std::filesystem::path model;
  std::filesystem::path output;
  bool external_data = false;
  std::string external_data_file;
  size_t external_threshold = 1024;
  std::filesystem::path weights, checkpoint;
  bool weights_only = false, keep_lora = false;
};

void run_export(const ExportOptions& options) {
  Model model = Model::load(options.model);
  if (!options.weights.empty()) apply_weights_file(model, options.weights);
  if (!options.checkpoint.empty()) {
    // A checkpoint folder (its newest checkpoint) or one step folder in it.
    std::filesystem::path step = options.checkpoint;
    if (!std::filesystem::exists(step / "state.json")) {
      auto newest = latest_checkpoint(options.checkpoint);
      if (!newest)
        throw Error(ErrorCode::kNotFound, "holds no complete checkpoint", {.file = options.checkpoint.string()});
      step = *newest;
    }
    apply_recorded_edits(model, step, read_checkpoint_info(step).run_json);
    load_checkpoint_weights(step, model);
  }
  if (options.weights_only) {
    save_safetensors(options.output, model.state_dict(), {{"format", "pt"}, {"source", options.model.filename().string()}});
    std::cout << "wrote " << options.output.string() << " (" << model.state_dict().size() << " tensors)" << std::endl;
    return;
  }
  SaveOptions save;
  save.external_data = options.external_data ? ExternalDataMode::kAlways : ExternalDataMode::kAuto;
  save.external_data_file = options.external_data_file;
  save.external_threshold_bytes = options.external_threshold;
  save.merge_lora = !options.keep_lora;
  model.save(options.output, save);
  std::cout << "wrote " << options.output.string();
  if (options.external_data)
    std::cout << " (tensors of " << options.external_threshold << " bytes or more in "
              << (options.external_data_file.empty() ? options.output.filename().string() + ".data"
                                                     : options.external_data_file)
              << ")";
  std::cout << std::endl;
}

}  // namespace

void add_export_command(CLI::App& app) {
  auto options = std::make_shared<ExportOptions>();
  CLI::App* command = app.add_subcommand("export", "Write the model back to ONNX, optionally with external data");
  command->add_option("MODEL", options->model, "ONNX model file")->required()->type_name("FILE");
  command->add_option("-o,--output", options->output, "Where to write the model")->required()->type_name("FILE");
  CLI::Option* external = command->add_flag("--external-data", options->external_data,
                                            "Store large tensors in a data file next to the model");
  command->add_option("--external-data-file", options->external_data_file,
                      "Name of that data file, in the output's folder (default: <output file>.data)")
      ->needs(external);
  command->add_option("--external-threshold", options->external_threshold,
                      "Smallest tensor, in bytes, that goes to the data file")
      ->default_val(1024)
      ->needs(external);
  CLI::Option* weights = command->add_option("--weights", options->weights,
                      "Apply these tensors first (names must exist; shapes and dtypes checked)")->type_name("FILE.safetensors");
  command->add_option("--checkpoint", options->checkpoint,
                      "Apply the Parameters and buffers of a checkpoint (a --checkpoint-dir or one step folder)")
      ->type_name("DIR")
      ->excludes(weights);
  command->add_flag("--weights-only", options->weights_only, "Write only the weights, as safetensors")->excludes(external);
  command->add_flag("--keep-lora", options->keep_lora,
                    "A checkpoint's LoRA adapters stay separate initializers (default: folded into their weights)");
  command->footer("Examples:\n  tunnx export model.onnx --checkpoint ckpt -o tuned.onnx\n"
                  "  tunnx export tuned.onnx --weights-only -o tuned.safetensors");
  command->callback([options] { run_export(*options); });
}

}  // namespace tunnx::cli
