// `tunnx params`: the model's initializers as PyTorch would list them (Parameters that train, frozen
// Parameters, buffers that never train), where each came from (the file, or registered after load:
// heads, LoRA adapters, bound inputs), then totals like a model summary.
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "tools/commands.h"
#include "tools/format.h"
#include "tunnx/tunnx.h"

namespace tunnx::cli {
namespace {

struct ParamsOptions {
  std::filesystem::path model;
  bool json = false;
};

struct ParamsTotals {
  int64_t trainable_tensors = 0, trainable_elements = 0;
  int64_t frozen_tensors = 0, frozen_elements = 0;
  int64_t buffer_tensors = 0, buffer_elements = 0;
  uint64_t total_bytes = 0;
};

ParamsTotals count_totals(const std::vector<TensorInfo>& tensors) {
  ParamsTotals totals;
  for (const TensorInfo& t : tensors) {
    int64_t elements = t.numel;
    if (t.role == TensorRole::kBuffer) {
      ++totals.buffer_tensors;
      totals.buffer_elements += elements;
    } else if (t.requires_grad) {
      ++totals.trainable_tensors;
      totals.trainable_elements += elements;
    } else {
      ++totals.frozen_tensors;
      totals.frozen_elements += elements;
    }
    totals.total_bytes += t.nbytes;
  }
  return totals;
}

std::string count_line(const char* label, int64_t tensors, int64_t elements) {
  return std::string(label) + ": " + with_thousands(tensors) + (tensors == 1 ? " tensor, " : " tensors, ") +
         with_thousands(elements) + " elements\n";
}

std::string params_text(const std::vector<TensorInfo>& tensors, const ParamsTotals& totals) {
  TextTable table({"name", "shape", "dtype", "kind", "requires_grad", "bytes", "origin"},
                  {Align::kLeft, Align::kLeft, Align::kLeft, Align::kLeft, Align::kLeft, Align::kRight, Align::kLeft});
  for (const TensorInfo& t : tensors) {
    std::vector<std::string> row{t.name, dims_to_string(t.dims), to_string(t.dtype), to_string(t.role),
                                 t.requires_grad ? "true" : "false", with_thousands(static_cast<int64_t>(t.nbytes)),
                                 to_string(t.origin)};
    table.add_row(std::move(row));
  }
  std::string out = table.empty() ? "No initializers.\n" : table.render();
  out += '\n';
  out += count_line("Trainable parameters", totals.trainable_tensors, totals.trainable_elements);
  // Most exported models freeze nothing; the line appears only when it says something.
  if (totals.frozen_tensors > 0) {
    out += count_line("Frozen parameters", totals.frozen_tensors, totals.frozen_elements);
  }
  out += count_line("Buffers", totals.buffer_tensors, totals.buffer_elements);
  out += "Total size: " + with_thousands(static_cast<int64_t>(totals.total_bytes)) + " bytes (" +
         human_bytes(totals.total_bytes) + ")\n";
  return out;
}

nlohmann::ordered_json params_json(const std::filesystem::path& model,
                                   const std::vector<TensorInfo>& tensors, const ParamsTotals& totals) {
  nlohmann::ordered_json rows = nlohmann::ordered_json::array();
  for (const TensorInfo& t : tensors) {
    rows.push_back({{"name", t.name},
                    {"shape", t.dims},
                    {"dtype", to_string(t.dtype)},
                    {"kind", to_string(t.role)},
                    {"requires_grad", t.requires_grad},
                    {"bytes", t.nbytes},
                    {"external", t.external},
                    {"reason", t.reason},
                    {"origin", to_string(t.origin)},
                    {"persistent", t.persistent},
                    {"in_graph", t.in_graph}});
  }
  nlohmann::ordered_json sums = {{"trainable_tensors", totals.trainable_tensors},
                                 {"trainable_elements", totals.trainable_elements},
                                 {"frozen_tensors", totals.frozen_tensors},
                                 {"frozen_elements", totals.frozen_elements},
                                 {"buffer_tensors", totals.buffer_tensors},
                                 {"buffer_elements", totals.buffer_elements},
                                 {"total_bytes", totals.total_bytes}};
  return {{"model", model.string()}, {"tensors", std::move(rows)}, {"totals", std::move(sums)}};
}

void run_params(const ParamsOptions& options) {
  // Everything is computed before anything is printed, so an error leaves no partial table.
  Model model = Model::load(options.model);
  std::vector<TensorInfo> tensors = model.tensors();
  ParamsTotals totals = count_totals(tensors);
  std::string out = options.json ? pretty_json(params_json(options.model, tensors, totals))
                                 : params_text(tensors, totals);
  std::cout << out << std::flush;
}

}  // namespace

void add_params_command(CLI::App& app) {
  auto options = std::make_shared<ParamsOptions>();
  CLI::App* command = app.add_subcommand("params", "List the model's parameters and buffers with totals");
  command->add_option("MODEL", options->model, "ONNX model file")->required()->type_name("FILE");
  command->add_flag("--json", options->json, "Print one JSON object instead of a table");
  command->footer(
      "Example:\n"
      "  tunnx params examples/digits_cnn.onnx\n"
      "  tunnx params model.onnx --json    # one object: every tensor with the reason for its kind, totals");
  command->callback([options] { run_params(*options); });
}

}  // namespace tunnx::cli
