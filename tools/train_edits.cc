#include "tools/train_edits.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <optional>
#include <sstream>

#include "tunnx/extend.h"
#include "tunnx/io.h"
#include "tunnx/status.h"

namespace tunnx::cli {
namespace {

namespace fs = std::filesystem;

Error refuse(const std::string& message, ErrorContext context = {}) {
  return Error(ErrorCode::kInvalidArgument, message, std::move(context));
}

// "[+-]digits" that fits in int64.
std::optional<int64_t> integer(const std::string& s) {
  if (s.empty()) return std::nullopt;
  const size_t start = (s[0] == '+' || s[0] == '-') ? 1 : 0;
  if (start == s.size()) return std::nullopt;
  for (size_t i = start; i < s.size(); ++i)
    if (s[i] < '0' || s[i] > '9') return std::nullopt;
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(s.c_str(), &end, 10);
  if (errno == ERANGE) return std::nullopt;
  return static_cast<int64_t>(v);
}

// A decimal number as people write one ("8", "-2", "0.5", "1e3"): what a NAME may not be, and what
// an ALPHA must be. Words strtod would take ("inf", "nan") are not numbers here.
std::optional<double> number(const std::string& s) {
  if (s.empty()) return std::nullopt;
  const char c = s[0];
  if (!((c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.')) return std::nullopt;
  if (s.find_first_of("xXnNiI") != std::string::npos) return std::nullopt;  // hex, nan, inf
  errno = 0;
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  if (end != s.c_str() + s.size()) return std::nullopt;
  return v;
}

// `text` split at its last ':' into (before, after); nothing when it has none.
std::optional<std::pair<std::string, std::string>> split_last(const std::string& text) {
  const size_t colon = text.rfind(':');
  if (colon == std::string::npos) return std::nullopt;
  return std::make_pair(text.substr(0, colon), text.substr(colon + 1));
}

std::string quoted(const std::string& option, const std::string& text) { return option + " '" + text + "'"; }

// A library refusal of one edit, with the option and the text that asked for it in front.
template <typename F>
void as_option(const std::string& option, const std::string& text, F&& edit) {
  try {
    edit();
  } catch (const Error& e) {
    throw Error(e.code(), (text.empty() ? option : quoted(option, text)) + ": " + e.message(), e.context());
  }
}

}  // namespace

HeadSpec parse_head(const std::string& text) {
  const std::string what = quoted("--add-head", text);
  const auto last = split_last(text);
  if (!last) throw refuse(what + ": expected VALUE:N[:NAME]");
  HeadSpec h;
  std::string n;
  if (number(last->second)) {  // VALUE:N (a NAME is never a number)
    h.value = last->first;
    n = last->second;
  } else {  // VALUE:N:NAME
    h.name = last->second;
    const auto before = split_last(last->first);
    if (!before) throw refuse(what + ": N must be a positive integer, got '" + last->second + "'");
    h.value = before->first;
    n = before->second;
  }
  if (h.name.empty()) throw refuse(what + ": NAME is empty");
  const std::optional<int64_t> count = integer(n);
  if (!count || *count <= 0) throw refuse(what + ": N must be a positive integer, got '" + n + "'");
  h.out_features = *count;
  if (h.value.empty()) throw refuse(what + ": VALUE is empty");
  return h;
}

LoraSpec parse_lora(const std::string& text) {
  const std::string what = quoted("--lora", text);
  const auto last = split_last(text);
  if (!last) throw refuse(what + ": expected GLOB:RANK[:ALPHA]");
  LoraSpec l;
  std::string rank = last->second;
  l.glob = last->first;
  // GLOB:RANK:ALPHA when the field before the last is an integer too.
  if (const auto before = split_last(last->first); before && integer(before->second)) {
    l.glob = before->first;
    rank = before->second;
    const std::optional<double> alpha = number(last->second);
    if (!alpha || !(*alpha > 0) || !std::isfinite(*alpha))
      throw refuse(what + ": ALPHA must be a positive number, got '" + last->second + "'");
    l.alpha = *alpha;
  }
  const std::optional<int64_t> r = integer(rank);
  if (!r || *r <= 0) throw refuse(what + ": RANK must be a positive integer, got '" + rank + "'");
  l.rank = *r;
  if (l.glob.empty()) throw refuse(what + ": GLOB is empty");
  return l;
}

BindSpec parse_bind_input(const std::string& text) {
  const size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == text.size())
    throw refuse(quoted("--bind-input", text) + ": expected INPUT=FILE.npy");
  return {text.substr(0, eq), text.substr(eq + 1)};
}

void check_edit_options(const EditArgs& e) {
  std::set<std::string> bound;
  for (const std::string& h : e.heads) parse_head(h);
  for (const std::string& l : e.lora) parse_lora(l);
  std::error_code ec;
  for (const std::string& text : e.bind_inputs) {
    const BindSpec b = parse_bind_input(text);
    if (!bound.insert(b.input).second) throw refuse("--bind-input: input '" + b.input + "' is bound twice");
    if (!fs::is_regular_file(b.file, ec))
      throw refuse(quoted("--bind-input", text) + ": no such file", {.file = b.file.string()});
  }
  if (e.replace_output && e.heads.empty()) throw refuse("--replace-output needs --add-head: the heads become the outputs");
  if (e.keep_lora && e.merge_lora) throw refuse("--keep-lora and --merge-lora exclude each other");
  if (e.lora.empty()) {
    if (e.keep_lora || e.merge_lora) throw refuse("--keep-lora and --merge-lora are options of --lora");
    if (!e.save_adapters.empty()) throw refuse("--save-adapters needs --lora: there are no adapters to save");
    if (!e.adapters.empty()) throw refuse("--adapters needs --lora: the same --lora the adapters were trained with");
  }
  if (!e.save_adapters.empty()) {
    if (!fs::is_directory(fs::absolute(e.save_adapters).parent_path(), ec))
      throw refuse("its folder does not exist", {.file = e.save_adapters.string()});
    if (fs::is_directory(e.save_adapters, ec)) throw refuse("is a folder, not a file", {.file = e.save_adapters.string()});
  }
  if (!e.adapters.empty() && !fs::is_regular_file(e.adapters, ec))
    throw refuse("--adapters: no such file", {.file = e.adapters.string()});
}

std::set<std::string> apply_edits(Model& model, const EditArgs& e, uint64_t seed) {
  std::vector<std::string> heads;
  for (size_t i = 0; i < e.heads.size(); ++i) {
    const HeadSpec h = parse_head(e.heads[i]);
    as_option("--add-head", e.heads[i], [&] {
      add_head(model, {.value = h.value, .out_features = h.out_features, .name = h.name, .seed = seed + i});
    });
    heads.push_back(h.name);
  }
  if (e.replace_output) as_option("--replace-output", "", [&] { replace_outputs(model, heads); });
  for (size_t i = 0; i < e.lora.size(); ++i) {
    const LoraSpec l = parse_lora(e.lora[i]);
    as_option("--lora", e.lora[i], [&] { add_lora(model, {.glob = l.glob, .rank = l.rank, .alpha = l.alpha, .seed = seed + i}); });
  }
  std::set<std::string> bound;
  for (const std::string& text : e.bind_inputs) {
    const BindSpec b = parse_bind_input(text);
    as_option("--bind-input", text, [&] { bind_input(model, b.input, load_npy(b.file)); });
    bound.insert(b.input);
  }
  if (!e.adapters.empty()) as_option("--adapters", "", [&] { load_adapters(model, e.adapters); });
  return bound;
}

void add_edit_identity(nlohmann::ordered_json& identity, const EditArgs& e) {
  auto absolute = [](const fs::path& p) { return p.empty() ? "" : fs::absolute(p).lexically_normal().string(); };
  nlohmann::json heads = nlohmann::json::array(), lora = nlohmann::json::array(), bound = nlohmann::json::array();
  for (const std::string& text : e.heads) {
    const HeadSpec h = parse_head(text);
    heads.push_back(h.value + ":" + std::to_string(h.out_features) + ":" + h.name);
  }
  for (const std::string& text : e.lora) {
    const LoraSpec l = parse_lora(text);
    std::ostringstream alpha;
    alpha.precision(17);
    alpha << l.alpha;
    lora.push_back(l.glob + ":" + std::to_string(l.rank) + ":" + alpha.str());
  }
  for (const std::string& text : e.bind_inputs) {
    const BindSpec b = parse_bind_input(text);
    bound.push_back(b.input + "=" + absolute(b.file));
  }
  identity["--add-head"] = heads;
  identity["--replace-output"] = e.replace_output;
  identity["--lora"] = lora;
  identity["--keep-lora"] = e.keep_lora;
  identity["--adapters"] = absolute(e.adapters);
  identity["--save-adapters"] = absolute(e.save_adapters);
  identity["--bind-input"] = bound;
}

void apply_recorded_edits(Model& model, const fs::path& step_dir, const std::string& run_json) {
  if (run_json.empty()) return;
  const nlohmann::json run = nlohmann::json::parse(run_json, nullptr, /*allow_exceptions=*/false);
  if (!run.is_object() || !run.contains("identity") || !run["identity"].is_object()) return;
  const nlohmann::json& id = run["identity"];
  EditArgs e;
  uint64_t seed = 0;
  try {
    auto strings = [&](const char* key) { return id.value(key, std::vector<std::string>{}); };
    e.heads = strings("--add-head");
    e.replace_output = id.value("--replace-output", false);
    e.lora = strings("--lora");
    e.bind_inputs = strings("--bind-input");
    seed = id.value("--seed", uint64_t{0});
  } catch (const nlohmann::json::exception& error) {
    throw refuse(std::string("the graph edits its run recorded cannot be read: ") + error.what(), {.file = step_dir.string()});
  }
  apply_edits(model, e, seed);
}

}  // namespace tunnx::cli
