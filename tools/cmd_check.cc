// `tunnx check`: loads and validates a model (the load runs the ONNX checker), then shows what the
// file declares: versions, opsets, graph inputs and outputs, and which ops it uses how often.
#include <algorithm>
#include <filesystem>
#include <iostream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "tools/commands.h"
#include "tools/format.h"
#include "tunnx/tunnx.h"

namespace tunnx::cli {
namespace {

struct CheckOptions {
  std::filesystem::path model;
  bool json = false;
};

// ONNX writes the default operator set as the empty domain; people know it as ai.onnx.
std::string domain_name(const std::string& domain) { return domain.empty() ? "ai.onnx" : domain; }

std::string or_none(const std::string& text) { return text.empty() ? "(none)" : single_line(text); }

// Most used first, so the ops that matter for performance lead; ties by name for stable output.
std::vector<std::pair<std::string, int64_t>> ops_by_count(const ModelInfo& info) {
  std::vector<std::pair<std::string, int64_t>> ops(info.op_histogram.begin(), info.op_histogram.end());
  std::stable_sort(ops.begin(), ops.end(), [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  });
  return ops;
}

std::string values_text(const char* label, const std::vector<ValueSummary>& values) {
  std::string out = std::string(label) + " (" + std::to_string(values.size()) + "):\n";
  TextTable table({}, {Align::kLeft, Align::kLeft, Align::kLeft});
  for (const ValueSummary& v : values) table.add_row({v.name, v.type, shape_text(v)});
  return out + table.render("  ");
}

std::string check_text(const std::filesystem::path& model, const ModelInfo& info,
                       const std::vector<std::string>& unsupported) {
  std::string opsets;
  for (const auto& [domain, version] : info.opset_imports) {
    if (!opsets.empty()) opsets += ", ";
    opsets += domain_name(domain) + " " + std::to_string(version);
  }
  std::string producer = info.producer_name;
  if (!info.producer_version.empty()) producer += (producer.empty() ? "" : " ") + info.producer_version;

  TextTable summary({}, {Align::kLeft, Align::kLeft});
  summary.add_row({"Model:", model.string()});
  summary.add_row({"IR version:", std::to_string(info.ir_version)});
  summary.add_row({"Opsets:", or_none(opsets)});
  summary.add_row({"Producer:", or_none(producer)});
  summary.add_row({"Domain:", or_none(info.domain)});
  summary.add_row({"Model version:", std::to_string(info.model_version)});
  summary.add_row({"ONNX checker:", or_none(info.onnx_checker)});
  summary.add_row({"Nodes:", with_thousands(info.node_count)});
  summary.add_row({"Subgraphs:", with_thousands(info.subgraph_count)});
  std::string out = summary.render();

  out += "Metadata (" + std::to_string(info.metadata.size()) + "):\n";
  TextTable metadata({}, {Align::kLeft, Align::kLeft});
  for (const auto& [key, value] : info.metadata) {
    metadata.add_row({single_line(key) + ":", single_line(value)});
  }
  out += metadata.render("  ");

  out += values_text("Inputs", info.inputs);
  out += values_text("Outputs", info.outputs);

  out += "Functions (" + std::to_string(info.functions.size()) + "):\n";
  for (const std::string& function : info.functions) out += "  " + function + "\n";

  auto ops = ops_by_count(info);
  out += "Op types (" + std::to_string(ops.size()) + "):\n";
  TextTable histogram({}, {Align::kLeft, Align::kRight});
  for (const auto& [op, count] : ops) histogram.add_row({op, with_thousands(count)});
  out += histogram.render("  ");

  if (!unsupported.empty()) {
    std::string list;
    for (const auto& op : unsupported) list += (list.empty() ? "" : ", ") + op;
    return out + "NOT RUNNABLE: " + model.string() + " is valid ONNX, but these ops have no kernel here: " + list + "\n";
  }
  // Without ONNX's checker (opsets newer than libonnx knows) tunnx's own structural checks passed.
  if (info.onnx_checker == "passed")
    out += "OK: " + model.string() + " is a valid ONNX model\n";
  else
    out += "OK: " + model.string() + " loaded and passed tunnx's structural checks (ONNX checker " +
           info.onnx_checker + ")\n";
  return out;
}

// A declared shape as JSON: fixed dims as numbers, symbolic dims by name, unknown dims as null.
nlohmann::ordered_json shape_json(const ValueSummary& value) {
  if (!value.has_shape) return nullptr;
  nlohmann::ordered_json dims = nlohmann::ordered_json::array();
  for (const Dim& d : value.shape.dims) {
    if (d.is_fixed()) {
      dims.push_back(d.value);
    } else if (d.is_symbolic()) {
      dims.push_back(d.symbol);
    } else {
      dims.push_back(nullptr);
    }
  }
  return dims;
}

nlohmann::ordered_json values_json(const std::vector<ValueSummary>& values) {
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  for (const ValueSummary& v : values) {
    out.push_back({{"name", v.name}, {"type", v.type}, {"shape", shape_json(v)}});
  }
  return out;
}

nlohmann::ordered_json check_json(const std::filesystem::path& model, const ModelInfo& info,
                                  const std::vector<std::string>& unsupported) {
  nlohmann::ordered_json opsets = nlohmann::ordered_json::array();
  for (const auto& [domain, version] : info.opset_imports) {
    opsets.push_back({{"domain", domain_name(domain)}, {"version", version}});
  }
  nlohmann::ordered_json metadata = nlohmann::ordered_json::object();
  for (const auto& [key, value] : info.metadata) metadata[key] = value;
  nlohmann::ordered_json histogram = nlohmann::ordered_json::object();
  for (const auto& [op, count] : ops_by_count(info)) histogram[op] = count;

  return {{"model", model.string()},
          {"ir_version", info.ir_version},
          {"opset_imports", std::move(opsets)},
          {"producer_name", info.producer_name},
          {"producer_version", info.producer_version},
          {"domain", info.domain},
          {"model_version", info.model_version},
          {"metadata", std::move(metadata)},
          {"onnx_checker", info.onnx_checker},
          {"inputs", values_json(info.inputs)},
          {"outputs", values_json(info.outputs)},
          {"node_count", info.node_count},
          {"subgraph_count", info.subgraph_count},
          {"functions", info.functions},
          {"op_histogram", std::move(histogram)},
          {"valid", true},
          {"unsupported_ops", unsupported},
          {"runnable", unsupported.empty()}};
}

void run_check(const CheckOptions& options) {
  // Model::load throws on anything invalid, so reaching the print means the model is valid.
  Model model = Model::load(options.model);
  ModelInfo info = model.info();
  const std::vector<std::string> unsupported = unsupported_ops(model);
  std::string out = options.json ? pretty_json(check_json(options.model, info, unsupported))
                                 : check_text(options.model, info, unsupported);
  std::cout << out << std::flush;
  if (!unsupported.empty()) throw CLI::RuntimeError(kNotRunnable);  // valid, but not runnable here
}

}  // namespace

void add_check_command(CLI::App& app) {
  auto options = std::make_shared<CheckOptions>();
  CLI::App* command = app.add_subcommand("check", "Validate a model and summarize what it declares");
  command->add_option("MODEL", options->model, "ONNX model file")->required()->type_name("FILE");
  command->add_flag("--json", options->json, "Print one JSON object instead of text");
  command->footer(
      "Example:\n"
      "  tunnx check examples/digits_cnn.onnx\n"
      "  tunnx check model.onnx --json     # exit 1 with one line on stderr if the model is invalid,\n"
      "                                    # 3 if it is valid but holds ops tunnx has no kernel for");
  command->callback([options] { run_check(*options); });
}

}  // namespace tunnx::cli
