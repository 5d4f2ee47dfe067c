// `tunnx run`: runs a model on inputs from .npy / ONNX .pb files, optionally with weights from a
// safetensors file. Either writes every output as DIR/<name>.npy or .pb (all or nothing), prints a summary
// of each output, or compares with an ONNX test_data_set folder and reports the error per output.
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "tools/commands.h"
#include "tools/format.h"
#include "tools/weights.h"
#include "tunnx/tunnx.h"

namespace tunnx::cli {
namespace {

namespace fs = std::filesystem;

struct RunOptions {
  fs::path model;
  std::vector<std::string> inputs;  // NAME=FILE
  fs::path weights;                 // .safetensors
  fs::path output_dir;
  std::string output_format = "auto";  // npy, pb, or auto: npy where NumPy has the dtype, else pb
  fs::path test_data;
  std::string device = "cpu";
  int threads = 0;
  bool fixed_threads = false;
  int optimization = SessionOptions{}.optimization_level;
  bool profile = false;
  bool keep_weights = false;  // --keep-weights: the session does not take the model (release is the default)
  bool release_weights = false;  // --release-weights: the default, kept for scripts that name it
  double rtol = kTestDataRtol, atol = kTestDataAtol;
};

// Output names become file names: anything outside [A-Za-z0-9._-] turns into '_'.
std::string file_name_for(const std::string& output, const std::string& extension) {
  std::string name = output;
  for (char& c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') c = '_';
  if (name.empty() || name == "." || name == "..") name = "_" + name;
  return name + extension;
}

// The file type of an output: .npy unless asked for .pb, or (auto) NumPy lacks its dtype.
std::string extension_for(const Tensor& t, const std::string& format) {
  if (format == "pb" || (format == "auto" && !npy_can_hold(t.dtype()))) return ".pb";
  return ".npy";
}

std::string first_values(const Tensor& t, int64_t count) {
  std::ostringstream out;
  int64_t n = std::min(count, t.numel());
  out << "[";
  for (int64_t i = 0; i < n; ++i) {
    if (i) out << ", ";
    switch (t.dtype()) {
      case DataType::kFloat32: out << t.data_as<float>()[i]; break;
      case DataType::kFloat64: out << t.data_as<double>()[i]; break;
      case DataType::kInt64: out << t.data_as<int64_t>()[i]; break;
      case DataType::kInt32: out << t.data_as<int32_t>()[i]; break;
      case DataType::kBool: out << (t.data_as<bool>()[i] ? "true" : "false"); break;
      case DataType::kString: out << '"' << t.data_as<std::string>()[i] << '"'; break;
      default: out << "?"; break;
    }
  }
  if (t.numel() > n) out << ", ...";
  return out.str() + "]";
}

std::string summarize(const std::string& name, const Value& v) {
  if (v.is_tensor())
    return name + "  " + to_string(v.tensor().dtype()) + "  " + dims_to_string(v.tensor().dims()) + "  " +
           first_values(v.tensor(), 8) + "\n";
  return name + "  " + v.describe() + "\n";
}

// Writes every output into a staging folder inside DIR (made, like mkdir -p, once the run has
// succeeded), then moves them into place, so a failure leaves no partial set of outputs.
void write_outputs(const fs::path& dir, const NamedValues& outputs, const std::string& format) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (!ec && !fs::is_directory(dir, ec)) ec = std::make_error_code(std::errc::not_a_directory);
  if (ec) throw Error(ErrorCode::kIo, "cannot create the output folder: " + ec.message(), {.file = dir.string()});
  fs::path staging = dir / (".tunnx-run-" + std::to_string(::getpid()));
  fs::create_directory(staging, ec);
  if (ec) throw Error(ErrorCode::kIo, "cannot write in the output folder: " + ec.message(), {.file = dir.string()});
  try {
    std::vector<std::string> files;
    for (const auto& [name, value] : outputs) {
      if (!value.is_tensor())
        throw Error(ErrorCode::kUnsupported, "output is " + value.describe() + "; only tensors can be written to files",
                    {.tensor = name});
      const std::string extension = extension_for(value.tensor(), format);
      files.push_back(file_name_for(name, extension));
      if (extension == ".pb") save_tensor_pb(staging / files.back(), value.tensor(), name);
      else save_npy(staging / files.back(), value.tensor());
    }
    for (const std::string& file : files) fs::rename(staging / file, dir / file);
  } catch (...) {
    fs::remove_all(staging, ec);
    throw;
  }
  fs::remove_all(staging, ec);
}

int compare_with_test_data(const TestDataSet& data, const Session& session, const RunOptions& o, std::string& out) {
  NamedValues outputs = session.run(data.inputs);
  bool all_ok = true;
  TextTable table({"output", "max abs error", "max rel error", "result"});
  for (const auto& [name, expected] : data.expected) {
    Comparison c = compare(expected, outputs.at(name), o.rtol, o.atol);
    all_ok &= c.ok;
    std::ostringstream abs_err, rel_err;
    abs_err << c.max_abs_error;
    rel_err << c.max_rel_error;
    table.add_row({name, abs_err.str(), rel_err.str(), c.ok ? "ok" : "MISMATCH: " + c.detail});
  }
  out += table.render();
  out += all_ok ? "OK: outputs match within rtol " : "FAILED: outputs differ beyond rtol ";
  std::ostringstream tol;
  tol << o.rtol << ", atol " << o.atol << "\n";
  out += tol.str();
  return all_ok ? 0 : 1;
}

int run(const RunOptions& o) {
  std::optional<Model> model = Model::load(o.model);
  if (!o.weights.empty()) apply_weights_file(*model, o.weights);
  SessionOptions options;
  options.device = Device::parse(o.device);
  options.threads = o.threads;
  options.adaptive_threads = !o.fixed_threads;
  options.optimization_level = o.optimization;
  options.profile = o.profile;
  options.release_packed_originals = releases_packed_weights(model->info(), o.keep_weights);
  std::optional<TestDataSet> data;
  NamedValues inputs;
  if (!o.test_data.empty()) {
    if (!o.inputs.empty()) throw Error(ErrorCode::kInvalidArgument, "--test-data and --input cannot be combined");
    data = load_test_data_set(*model, o.test_data);
  } else {
    for (const auto& spec : o.inputs) {
      size_t eq = spec.find('=');
      if (eq == std::string::npos || eq == 0)
        throw Error(ErrorCode::kInvalidArgument, "--input '" + spec + "' must be NAME=FILE");
      inputs[spec.substr(0, eq)] = load_value(spec.substr(eq + 1));
    }
    options.expected_dims = dims_named_by(*model, inputs);  // made ready for this run, on its threads
  }
  // Unless --keep-weights, the session takes the model, so each weight its kernels pack is freed as
  // soon as they hold their copies (ONNX Runtime frees the initializers its kernels pre-pack too).
  Session session = options.release_packed_originals ? Session(std::move(*model), options) : Session(*model, options);
  if (options.release_packed_originals) model.reset();

  std::string out;
  int status = 0;
  if (data) {
    status = compare_with_test_data(*data, session, o, out);
  } else {
    NamedValues outputs = session.run(inputs);
    if (!o.output_dir.empty()) {
      write_outputs(o.output_dir, outputs, o.output_format);
      for (const auto& [name, value] : outputs)
        out += "wrote " + (o.output_dir / file_name_for(name, extension_for(value.tensor(), o.output_format))).string() + "\n";
    } else {
      for (const auto& name : session.output_names()) out += summarize(name, outputs.at(name));
    }
  }
  if (o.profile) out += profile_text(session.stats());
  std::cout << out << std::flush;
  return status;
}

}  // namespace

void add_run_command(CLI::App& app) {
  auto o = std::make_shared<RunOptions>();
  CLI::App* command = app.add_subcommand("run", "Run a model on inputs from .npy or ONNX .pb files");
  command->add_option("MODEL", o->model, "ONNX model file")->required()->type_name("FILE");
  command->add_option("--input", o->inputs, "An input: NAME=FILE (.npy or TensorProto .pb); repeatable")
      ->type_name("NAME=FILE");
  command->add_option("--weights", o->weights,
                      "Copy tensors from a .safetensors file into the model's Parameters and buffers by name")
      ->type_name("FILE");
  command->add_option("--output-dir", o->output_dir,
                      "Write every output as DIR/<name>.npy, or DIR/<name>.pb (ONNX TensorProto) where NumPy lacks "
                      "its dtype (bfloat16, float8, int4, ...); made when missing")
      ->type_name("DIR");
  command->add_option("--output-format", o->output_format, "Files of --output-dir: npy, pb, or auto (npy where NumPy "
                      "has the dtype, else pb)")
      ->default_val("auto")
      ->check(CLI::IsMember({"auto", "npy", "pb"}));
  command->add_option("--test-data", o->test_data, "Compare with an ONNX test_data_set_N folder")->type_name("DIR");
  command->add_option("--rtol", o->rtol, "Relative tolerance for --test-data")->default_val(kTestDataRtol);
  command->add_option("--atol", o->atol, "Absolute tolerance for --test-data")->default_val(kTestDataAtol);
  command->add_option("--device", o->device, "cpu (cuda: later)")->default_val("cpu");
  command->add_option("--threads", o->threads, "Threads (0: all cores)")->default_val(0);
  command->add_flag("--fixed-threads", o->fixed_threads,
                    "Every run on --threads threads, even on a busy machine (default: a run whose threads the "
                    "machine preempts is timed against one thread, and the faster is kept)");
  command->add_option("--optimization", o->optimization, "Graph rewrites: 0 none, 1 basic, 2 fusions")
      ->default_val(SessionOptions{}.optimization_level)
      ->check(CLI::Range(0, 2));
  command->add_flag("--profile", o->profile, "Print the kernel and time per node and the run's statistics");
  command->add_flag("--keep-weights", o->keep_weights,
                    "Keep the model's weights beside the copies the kernels pack (default: each constant weight "
                    "is freed once the kernels that read it hold packed copies of it: less memory, same outputs)");
  command->add_flag("--release-weights", o->release_weights, "The default (see --keep-weights)")
      ->excludes("--keep-weights");
  command->footer(
      "Example: tunnx run examples/digits_cnn.onnx --input input=examples/digits_sample.npy "
      "--weights tuned.safetensors --output-dir out");
  command->callback([o] {
    int status = run(*o);
    if (status != 0) throw CLI::RuntimeError(status);
  });
}

}  // namespace tunnx::cli
