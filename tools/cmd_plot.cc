// `tunnx plot`: reads the JSONL metrics `tunnx train --metrics` writes and draws the run as an SVG
// (loss against step, accuracy on a second axis). The whole file is read and checked before anything
// is written, and the SVG replaces OUT atomically, so a failure leaves OUT as it was.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "tools/commands.h"
#include "tools/plot_svg.h"
#include "tunnx/status.h"

namespace tunnx::cli {
namespace {

namespace fs = std::filesystem;

struct PlotOptions {
  fs::path metrics;
  fs::path output;
  std::string title;
};

Error file_error(ErrorCode code, const fs::path& file, const std::string& what) {
  return Error(code, what, {.file = file.string()});
}

Error line_error(const fs::path& file, size_t line, const std::string& what) {
  return file_error(ErrorCode::kInvalidArgument, file, "line " + std::to_string(line) + ": " + what);
}

// JSON has no NaN or infinity. tunnx train writes them as null (nlohmann's choice), Python's json
// module as bare NaN / Infinity; both mean "this value diverged", so the bare words become null
// and the drawer counts them as skipped instead of the whole file failing.
std::string nan_words_as_null(const std::string& line) {
  std::string out;
  bool in_string = false;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (in_string) {
      out += c;
      if (c == '\\' && i + 1 < line.size()) out += line[++i];
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') in_string = true;
    bool replaced = false;
    for (const char* word : {"-Infinity", "Infinity", "-NaN", "NaN"}) {
      const size_t n = std::strlen(word);
      if (line.compare(i, n, word) == 0) {
        out += "null";
        i += n - 1;
        replaced = true;
        break;
      }
    }
    if (!replaced) out += c;
  }
  return out;
}

class MetricsReader {
 public:
  explicit MetricsReader(fs::path file) : file_(std::move(file)) {}

  // Adds one line's values to `data`; lines of kinds this version does not know are ignored.
  void read_line(const std::string& text, size_t number, PlotData& data) {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(nan_words_as_null(text));
    } catch (const nlohmann::json::parse_error& e) {
      throw line_error(file_, number, "not valid JSON (at column " + std::to_string(e.byte) + ")");
    }
    if (!j.is_object()) throw line_error(file_, number, "not a JSON object");
    const auto kind = j.find("kind");
    if (kind == j.end() || !kind->is_string()) throw line_error(file_, number, "no \"kind\" string");
    const std::string k = kind->get<std::string>();
    if (k != "step" && k != "epoch" && k != "eval") return;
    const std::optional<double> step = number_field(j, "step", number);
    if (!step) throw line_error(file_, number, "no \"step\"");

    const auto add = [&](const char* key, std::vector<PlotPoint>& series) {
      if (const std::optional<double> v = number_field(j, key, number)) series.push_back({*step, *v});
    };
    const size_t losses_before = data.step_loss.size() + data.epoch_loss.size() + data.eval_loss.size();
    if (k == "step") {
      add("loss", data.step_loss);
    } else if (k == "epoch") {
      add("loss", data.epoch_loss);
      add("accuracy", data.epoch_accuracy);
    }
    if (k != "step") {
      add("eval_loss", data.eval_loss);
      add("eval_accuracy", data.eval_accuracy);
    }
    saw_loss_ |= data.step_loss.size() + data.epoch_loss.size() + data.eval_loss.size() > losses_before;
  }

  bool saw_loss() const { return saw_loss_; }

 private:
  // Absent: nullopt. null (a NaN or inf the writer could not spell): NaN, which the drawer skips.
  std::optional<double> number_field(const nlohmann::json& j, const char* key, size_t line) const {
    const auto it = j.find(key);
    if (it == j.end()) return std::nullopt;
    if (it->is_null()) return NAN;
    if (!it->is_number()) throw line_error(file_, line, "\"" + std::string(key) + "\" is not a number");
    return it->get<double>();
  }

  fs::path file_;
  bool saw_loss_ = false;
};

PlotData read_metrics(const fs::path& file) {
  std::error_code ec;
  if (!fs::exists(file, ec)) throw file_error(ErrorCode::kNotFound, file, "no such file");
  if (fs::is_directory(file, ec)) throw file_error(ErrorCode::kIo, file, "is a folder, not a metrics file");
  std::ifstream in(file, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  if (!in) throw file_error(ErrorCode::kIo, file, "cannot read the file");
  const std::string content = buffer.str();

  PlotData data;
  MetricsReader reader(file);
  size_t number = 0;
  for (size_t begin = 0; begin < content.size();) {
    size_t end = content.find('\n', begin);
    const bool unterminated = end == std::string::npos;
    if (unterminated) end = content.size();
    std::string text = content.substr(begin, end - begin);
    begin = end + 1;
    ++number;
    if (!text.empty() && text.back() == '\r') text.pop_back();
    if (text.find_first_not_of(" \t") == std::string::npos) continue;
    try {
      reader.read_line(text, number, data);
    } catch (const Error&) {
      // A run still writing (or killed mid-write) leaves its last line without a newline; plotting
      // a live run is normal, so that line is left out and said so.
      if (!unterminated || nlohmann::json::accept(nan_words_as_null(text))) throw;
      data.notes.push_back("line " + std::to_string(number) + " is incomplete (still being written?) and left out");
    }
  }
  if (!reader.saw_loss()) {
    throw file_error(ErrorCode::kInvalidArgument, file,
                     "no loss values: no step, epoch or eval line has \"loss\" or \"eval_loss\" (expected the "
                     "JSONL that tunnx train --metrics writes)");
  }
  return data;
}

// Writes beside `path` and renames over it, so a reader (a browser reloading the file) never sees
// half a document and a failure leaves the old file in place.
void write_atomically(const fs::path& path, const std::string& content) {
  const fs::path folder = path.has_parent_path() ? path.parent_path() : fs::path(".");
  std::error_code ec;
  if (!fs::is_directory(folder, ec))
    throw file_error(ErrorCode::kIo, path, "folder '" + folder.string() + "' does not exist");
  fs::path temp;
  int fd = -1;
  for (int attempt = 0; fd < 0 && attempt < 100; ++attempt) {
    temp = folder / ("." + path.filename().string() + ".tmp" + std::to_string(::getpid()) + "." +
                     std::to_string(attempt));
    fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0 && errno != EEXIST) break;
  }
  if (fd < 0)
    throw file_error(ErrorCode::kIo, path, std::string("cannot create a file there: ") + std::strerror(errno));
  std::string problem;
  for (size_t done = 0; done < content.size() && problem.empty();) {
    const ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n > 0) done += static_cast<size_t>(n);
    else if (errno != EINTR) problem = std::strerror(errno);
  }
  if (problem.empty() && ::fsync(fd) != 0) problem = std::strerror(errno);
  if (::close(fd) != 0 && problem.empty()) problem = std::strerror(errno);
  if (problem.empty()) {
    fs::rename(temp, path, ec);
    if (ec) problem = ec.message();
  }
  if (!problem.empty()) {
    fs::remove(temp, ec);
    throw file_error(ErrorCode::kIo, path, "cannot write: " + problem);
  }
}

void run_plot(const PlotOptions& options) {
  std::error_code ec;
  if (fs::equivalent(options.metrics, options.output, ec))
    throw file_error(ErrorCode::kInvalidArgument, options.output, "is the metrics file itself; choose another -o");
  PlotData data = read_metrics(options.metrics);
  data.title = options.title.empty() ? options.metrics.filename().string() : options.title;
  std::string svg;
  try {
    svg = plot_svg(data);
  } catch (const std::invalid_argument& e) {
    throw file_error(ErrorCode::kInvalidArgument, options.metrics, e.what());
  }
  write_atomically(options.output, svg);
  std::cout << "wrote " << options.output.string() << std::endl;
}

}  // namespace

void add_plot_command(CLI::App& app) {
  auto options = std::make_shared<PlotOptions>();
  CLI::App* command = app.add_subcommand("plot", "Draw the loss and accuracy curves of a training run as SVG");
  command->add_option("METRICS", options->metrics, "JSONL metrics file, as tunnx train --metrics writes it")
      ->required()
      ->type_name("FILE");
  command->add_option("-o,--output", options->output, "Where to write the SVG (replaced atomically)")
      ->required()
      ->type_name("FILE");
  command->add_option("--title", options->title, "Chart title (default: the metrics file's name)")->type_name("TEXT");
  command->footer(
      "Example:\n"
      "  tunnx plot run1/metrics.jsonl -o run1/curve.svg --title \"digits, AdamW lr 1e-3\"\n"
      "  (open curve.svg in a browser; re-run while training to see the run so far)");
  command->callback([options] { run_plot(*options); });
}

}  // namespace tunnx::cli
