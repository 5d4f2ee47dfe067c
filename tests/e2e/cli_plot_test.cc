// `tunnx plot`: metrics JSONL in, SVG out — the series a run has and only those, well-formed XML,
// non-finite losses skipped and counted, one-line errors that name the line, nothing written on error.
#include <fstream>
#include <sstream>

#include <gtest/gtest.h>

#include "tests/e2e/cli_harness.h"
#include "tools/plot_svg.h"

namespace tunnx::e2e {
namespace {

using cli::nice_ticks;
using cli::tick_label;
using cli::Ticks;

void write_file(const fs::path& path, const std::string& content) {
  std::ofstream(path, std::ios::binary) << content;
}

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// What `tunnx train --metrics` writes for a cross-entropy run with eval data: the held-out scores
// before training, every batch, and each epoch's means.
std::string realistic_metrics(int epochs = 3, int batches = 10) {
  std::ostringstream out;
  out << R"({"kind":"eval","epoch":0,"step":0,"eval_loss":2.31,"eval_accuracy":0.1})" << "\n";
  int step = 0;
  for (int epoch = 1; epoch <= epochs; ++epoch) {
    for (int b = 0; b < batches; ++b) {
      ++step;
      const double loss = 2.0 / (1 + 0.1 * step) + (b % 3) * 0.02;
      out << R"({"kind":"step","epoch":)" << epoch << R"(,"step":)" << step << R"(,"loss":)" << loss
          << R"(,"lr":0.001,"samples_per_s":1234.5,"time_s":0.8,"accuracy":)" << 1 - loss / 2.5 << "}\n";
    }
    const double mean = 2.0 / (1 + 0.1 * (step - batches / 2.0));
    out << R"({"kind":"epoch","epoch":)" << epoch << R"(,"step":)" << step << R"(,"loss":)" << mean
        << R"(,"accuracy":)" << 1 - mean / 2.5 << R"(,"eval_loss":)" << mean + 0.05 << R"(,"eval_accuracy":)"
        << 0.97 - mean / 2.5 << R"(,"time_s":3.2})" << "\n";
  }
  return out.str();
}

std::string metrics_without_accuracy() {
  return R"({"kind":"eval","epoch":0,"step":0,"eval_loss":1.5})" "\n"
         R"({"kind":"step","epoch":1,"step":1,"loss":1.4,"lr":0.01})" "\n"
         R"({"kind":"step","epoch":1,"step":2,"loss":1.1,"lr":0.01})" "\n"
         R"({"kind":"epoch","epoch":1,"step":2,"loss":1.25,"eval_loss":1.2,"time_s":0.1})" "\n";
}

// Well-formed enough for a browser: tags nest and close, attributes are quoted, `&` starts an entity.
// xmllint, where installed, checks the rest.
std::string xml_problem(const std::string& xml) {
  std::vector<std::string> open;
  for (size_t i = 0; i < xml.size(); ++i) {
    if (xml[i] == '&') {
      const size_t semicolon = xml.find(';', i);
      if (semicolon == std::string::npos || semicolon - i > 6) return "bare & at " + std::to_string(i);
      continue;
    }
    if (xml[i] != '<') continue;
    const size_t end = xml.find('>', i);
    if (end == std::string::npos) return "unclosed < at " + std::to_string(i);
    const std::string tag = xml.substr(i + 1, end - i - 1);
    i = end;
    if (tag.starts_with("?") || tag.starts_with("!--")) continue;
    if (tag.find('<') != std::string::npos) return "< inside tag " + tag;
    size_t quotes = 0;
    for (char c : tag) quotes += c == '"';
    if (quotes % 2) return "unbalanced quotes in " + tag;
    const bool closing = tag[0] == '/';
    const std::string name = tag.substr(closing, tag.find_first_of(" />", 1) - closing);
    if (closing) {
      if (open.empty() || open.back() != name)
        return "</" + name + "> closes " + (open.empty() ? "nothing" : open.back());
      open.pop_back();
    } else if (tag.back() != '/') {
      open.push_back(name);
    }
  }
  return open.empty() ? "" : "<" + open.back() + "> never closed";
}

void expect_valid_xml(const fs::path& svg) {
  const std::string text = read_file(svg);
  EXPECT_EQ(xml_problem(text), "");
  EXPECT_TRUE(contains(text, "xmlns=\"http://www.w3.org/2000/svg\""));
  EXPECT_FALSE(contains(text, "<script"));
  if (fs::exists("/usr/bin/xmllint")) {
    ProcessResult r = run_process({"/usr/bin/xmllint", "--noout", svg.string()});
    EXPECT_EQ(r.exit_code, 0) << r.describe();
  }
}

// The markup of one series' group, `<g id="ID">...</g>`, or "" when the chart has no such series.
std::string series_group(const std::string& svg, const std::string& id) {
  const size_t begin = svg.find("<g id=\"" + id + "\">");
  if (begin == std::string::npos) return "";
  return svg.substr(begin, svg.find("</g>", begin) - begin);
}

size_t polyline_points(const std::string& group) {
  const size_t begin = group.find("points=\"");
  if (begin == std::string::npos) return 0;
  const std::string points = group.substr(begin + 8, group.find('"', begin + 8) - begin - 8);
  return static_cast<size_t>(std::count(points.begin(), points.end(), ' ')) + 1;
}

struct Plotted {
  ProcessResult result;
  std::string svg;
};

Plotted plot(const TempFolder& temp, const std::string& metrics, std::vector<std::string> extra = {}) {
  const fs::path input = temp.model_dir() / "metrics.jsonl";
  const fs::path output = temp.model_dir() / "curve.svg";
  write_file(input, metrics);
  std::vector<std::string> args{"plot", input.string(), "-o", output.string()};
  args.insert(args.end(), extra.begin(), extra.end());
  Plotted p{run_cli(args), ""};
  if (fs::exists(output)) p.svg = read_file(output);
  return p;
}

TEST(NiceTicks, RoundStepsCoverTheRange) {
  Ticks t = nice_ticks(0.17, 2.31, 5);
  EXPECT_DOUBLE_EQ(t.step, 0.5);
  EXPECT_DOUBLE_EQ(t.low, 0);
  EXPECT_DOUBLE_EQ(t.high, 2.5);
  EXPECT_EQ(t.values, (std::vector<double>{0, 0.5, 1, 1.5, 2, 2.5}));

  t = nice_ticks(0, 1, 5);
  EXPECT_DOUBLE_EQ(t.step, 0.2);
  ASSERT_EQ(t.values.size(), 6u);
  EXPECT_DOUBLE_EQ(t.values.back(), 1);

  t = nice_ticks(1, 19999, 6);
  EXPECT_DOUBLE_EQ(t.step, 5000);
  EXPECT_EQ(t.values, (std::vector<double>{0, 5000, 10000, 15000, 20000}));

  t = nice_ticks(-0.3, 0.3, 5);  // a negative range, and 0 printed as 0, not -0
  EXPECT_DOUBLE_EQ(t.step, 0.2);
  EXPECT_DOUBLE_EQ(t.low, -0.4);
  EXPECT_EQ(tick_label(t.values[2], t.step), "0.0");
}

TEST(NiceTicks, EqualOrReversedBoundsStillSpan) {
  for (double v : {0.0, 0.5, -3.0, 1e9}) {
    Ticks t = nice_ticks(v, v, 5);
    EXPECT_LT(t.low, v) << v;
    EXPECT_GT(t.high, v) << v;
    EXPECT_GE(t.values.size(), 2u) << v;
  }
  Ticks t = nice_ticks(2, 1, 5);
  EXPECT_DOUBLE_EQ(t.low, 1);
  EXPECT_DOUBLE_EQ(t.high, 2);
}

TEST(NiceTicks, LabelsUseTheDecimalsTheStepNeeds) {
  EXPECT_EQ(tick_label(0.15, 0.05), "0.15");
  EXPECT_EQ(tick_label(0.4, 0.2), "0.4");
  EXPECT_EQ(tick_label(4000, 2000), "4000");
  EXPECT_EQ(tick_label(2.5e8, 5e7), "2.5e+08");
}

TEST(CliPlot, RealisticRunDrawsEverySeriesAsWellFormedSvg) {
  TempFolder temp;
  Plotted p = plot(temp, realistic_metrics());
  ASSERT_EQ(p.result.exit_code, 0) << p.result.describe();
  EXPECT_EQ(p.result.out, "wrote " + (temp.model_dir() / "curve.svg").string() + "\n");
  expect_valid_xml(temp.model_dir() / "curve.svg");
  EXPECT_EQ(polyline_points(series_group(p.svg, "train-loss")), 30u);  // every batch
  EXPECT_TRUE(contains(series_group(p.svg, "train-loss-epoch"), "<path"));
  EXPECT_EQ(polyline_points(series_group(p.svg, "eval-loss")), 4u);  // step 0 and each epoch
  EXPECT_TRUE(contains(series_group(p.svg, "eval-loss"), "<path"));
  EXPECT_EQ(polyline_points(series_group(p.svg, "train-accuracy-epoch")), 3u);
  EXPECT_EQ(polyline_points(series_group(p.svg, "eval-accuracy")), 4u);
  EXPECT_TRUE(contains(series_group(p.svg, "eval-accuracy"), "stroke-dasharray"));
  for (const char* label : {">train loss<", ">train loss (epoch mean)<", ">eval loss<",
                            ">train accuracy (epoch mean)<", ">eval accuracy<", ">step<", ">loss<", ">accuracy<"})
    EXPECT_TRUE(contains(p.svg, label)) << label;
  EXPECT_TRUE(contains(p.svg, "<title>metrics.jsonl</title>"));  // default title: the file's name
  EXPECT_FALSE(contains(p.svg, "class=\"note\""));
}

TEST(CliPlot, WithoutAccuracyThereIsNoRightAxis) {
  TempFolder temp;
  Plotted p = plot(temp, metrics_without_accuracy());
  ASSERT_EQ(p.result.exit_code, 0) << p.result.describe();
  expect_valid_xml(temp.model_dir() / "curve.svg");
  EXPECT_FALSE(contains(p.svg, "accuracy"));
  EXPECT_EQ(polyline_points(series_group(p.svg, "eval-loss")), 2u);
  EXPECT_TRUE(contains(p.svg, ">train loss (epoch mean)<"));
}

TEST(CliPlot, NonFiniteLossesAreSkippedAndCounted) {
  TempFolder temp;
  // tunnx train writes a diverged loss as null; Python's json writes NaN and Infinity.
  Plotted p = plot(temp, R"({"kind":"step","step":1,"loss":1.0})" "\n"
                         R"({"kind":"step","step":2,"loss":null})" "\n"
                         R"({"kind":"step","step":3,"loss":NaN})" "\n"
                         R"({"kind":"step","step":4,"loss":-Infinity,"note":"NaN stays text"})" "\n"
                         R"({"kind":"step","step":5,"loss":0.5})" "\n");
  ASSERT_EQ(p.result.exit_code, 0) << p.result.describe();
  expect_valid_xml(temp.model_dir() / "curve.svg");
  EXPECT_EQ(polyline_points(series_group(p.svg, "train-loss")), 2u);
  EXPECT_TRUE(contains(p.svg, "3 non-finite values (NaN or inf) skipped")) << p.svg;
}

TEST(CliPlot, OnlyNonFiniteLossesIsAnError) {
  TempFolder temp;
  Plotted p = plot(temp, R"({"kind":"step","step":1,"loss":null})" "\n");
  EXPECT_EQ(p.result.exit_code, 1) << p.result.describe();
  EXPECT_TRUE(contains(p.result.err, "no finite loss values (1 NaN or inf skipped)")) << p.result.err;
  EXPECT_EQ(p.svg, "");
}

TEST(CliPlot, SinglePointAndEqualValuesStillDraw) {
  TempFolder temp;
  Plotted p = plot(temp, R"({"kind":"step","step":5,"loss":0.7})" "\n");
  ASSERT_EQ(p.result.exit_code, 0) << p.result.describe();
  EXPECT_TRUE(contains(series_group(p.svg, "train-loss"), "<path"));  // a marker, since a line needs two
  EXPECT_TRUE(contains(p.svg, ">5<"));                                  // whole-number step ticks
  EXPECT_FALSE(contains(p.svg, "nan"));

  p = plot(temp, R"({"kind":"step","step":1,"loss":0.5})" "\n" R"({"kind":"step","step":2,"loss":0.5})" "\n");
  ASSERT_EQ(p.result.exit_code, 0) << p.result.describe();
  EXPECT_EQ(polyline_points(series_group(p.svg, "train-loss")), 2u);
  EXPECT_TRUE(contains(p.svg, ">0.50<")) << p.svg;
  EXPECT_FALSE(contains(p.svg, "nan"));
}

TEST(CliPlot, TitleIsEscaped) {
  TempFolder temp;
  Plotted p = plot(temp, metrics_without_accuracy(), {"--title", "lr <1e-3> & \"fast\" 'run'"});
  ASSERT_EQ(p.result.exit_code, 0) << p.result.describe();
  expect_valid_xml(temp.model_dir() / "curve.svg");
  EXPECT_TRUE(contains(p.svg, "<title>lr &lt;1e-3&gt; &amp; &quot;fast&quot; &apos;run&apos;</title>"));
}

TEST(CliPlot, UnknownKindsAndKeysAreIgnored) {
  TempFolder temp;
  Plotted p = plot(temp, R"({"kind":"checkpoint","path":"x.ckpt"})" "\n"
                         R"({"kind":"step","step":1,"loss":0.9,"grad_norm":3.1})" "\n"
                         "\n"
                         R"({"kind":"step","step":2,"loss":0.8})" "\r\n");
  ASSERT_EQ(p.result.exit_code, 0) << p.result.describe();
  EXPECT_EQ(polyline_points(series_group(p.svg, "train-loss")), 2u);
}

TEST(CliPlot, BadJsonNamesTheLineAndWritesNothing) {
  TempFolder temp;
  const fs::path output = temp.model_dir() / "curve.svg";
  write_file(output, "old chart");
  Plotted p = plot(temp, R"({"kind":"step","step":1,"loss":0.9})" "\n"
                         R"({"kind":"step","step":2,"loss":0.8})" "\n"
                         R"({"kind":"step","step":3,"loss":)" "\n"
                         R"({"kind":"step","step":4,"loss":0.7})" "\n");
  EXPECT_EQ(p.result.exit_code, 1) << p.result.describe();
  const std::string prefix =
      "tunnx: error: " + (temp.model_dir() / "metrics.jsonl").string() + ": line 3: not valid JSON";
  EXPECT_EQ(p.result.err.rfind(prefix, 0), 0u) << p.result.err;
  EXPECT_EQ(std::count(p.result.err.begin(), p.result.err.end(), '\n'), 1);
  EXPECT_EQ(p.svg, "old chart");
  EXPECT_EQ(std::distance(fs::directory_iterator(temp.model_dir()), fs::directory_iterator()), 2);  // no temp file
}

TEST(CliPlot, LineErrorsSayWhatIsWrong) {
  TempFolder temp;
  EXPECT_TRUE(contains(plot(temp, "[1]\n").result.err, ": line 1: not a JSON object"));
  EXPECT_TRUE(contains(plot(temp, R"({"step":1,"loss":1})" "\n").result.err, ": line 1: no \"kind\" string"));
  EXPECT_TRUE(contains(plot(temp, R"({"kind":"step","loss":1})" "\n").result.err, ": line 1: no \"step\""));
  EXPECT_TRUE(contains(plot(temp, R"({"kind":"epoch","step":1,"loss":"low"})" "\n").result.err,
                       ": line 1: \"loss\" is not a number"));
}

TEST(CliPlot, AnUnfinishedLastLineOfALiveRunIsLeftOut) {
  TempFolder temp;
  Plotted p = plot(temp, R"({"kind":"step","step":1,"loss":0.9})" "\n"
                         R"({"kind":"step","step":2,"loss":0.8})" "\n"
                         R"({"kind":"step","st)");
  ASSERT_EQ(p.result.exit_code, 0) << p.result.describe();
  EXPECT_TRUE(contains(p.svg, "line 3 is incomplete (still being written?) and left out"));
  EXPECT_EQ(polyline_points(series_group(p.svg, "train-loss")), 2u);
}

TEST(CliPlot, MissingOrEmptyInputFails) {
  TempFolder temp;
  const fs::path output = temp.root() / "curve.svg";
  ProcessResult r = run_cli({"plot", (temp.root() / "none.jsonl").string(), "-o", output.string()});
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_EQ(r.err, "tunnx: error: " + (temp.root() / "none.jsonl").string() + ": no such file\n");
  EXPECT_FALSE(fs::exists(output));

  Plotted p = plot(temp, "");
  EXPECT_EQ(p.result.exit_code, 1) << p.result.describe();
  EXPECT_TRUE(contains(p.result.err, "metrics.jsonl: no loss values")) << p.result.err;
  EXPECT_EQ(p.svg, "");

  p = plot(temp, R"({"kind":"step","step":1,"lr":0.1})" "\n");  // lines, but none with a loss
  EXPECT_TRUE(contains(p.result.err, "metrics.jsonl: no loss values")) << p.result.err;
}

TEST(CliPlot, OutputFolderMustExistAndOutputIsRequired) {
  TempFolder temp;
  const fs::path input = temp.root() / "metrics.jsonl";
  write_file(input, metrics_without_accuracy());
  const fs::path output = temp.root() / "missing" / "curve.svg";
  ProcessResult r = run_cli({"plot", input.string(), "-o", output.string()});
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_EQ(r.err, "tunnx: error: " + output.string() + ": folder '" + output.parent_path().string() +
                       "' does not exist\n");

  r = run_cli({"plot", input.string()});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_TRUE(contains(r.err, "--output is required")) << r.err;
}

TEST(CliPlot, ReplacesAnExistingChart) {
  TempFolder temp;
  write_file(temp.model_dir() / "curve.svg", "old chart");
  Plotted p = plot(temp, realistic_metrics(1, 3));
  ASSERT_EQ(p.result.exit_code, 0) << p.result.describe();
  EXPECT_TRUE(p.svg.starts_with("<?xml"));
  EXPECT_EQ(std::distance(fs::directory_iterator(temp.model_dir()), fs::directory_iterator()), 2);
}

TEST(CliPlot, LongRunsStaySmall) {
  TempFolder temp;
  std::ostringstream metrics;
  for (int step = 1; step <= 50000; ++step)
    metrics << R"({"kind":"step","step":)" << step << R"(,"loss":)" << 1.0 / step + (step % 7) * 0.01 << "}\n";
  Plotted p = plot(temp, metrics.str());
  ASSERT_EQ(p.result.exit_code, 0) << p.result.describe();
  // At most the lowest and highest point per pixel column of the ~700 px plot.
  EXPECT_LE(polyline_points(series_group(p.svg, "train-loss")), 1500u);
  EXPECT_LT(p.svg.size(), 64u * 1024);
}

TEST(CliHelp, CommandsShowAnExample) {
  for (const char* command : {"plot", "params", "check", "bench"}) {
    ProcessResult r = run_cli({command, "--help"});
    EXPECT_EQ(r.exit_code, 0) << command << "\n" << r.describe();
    EXPECT_TRUE(contains(r.out, "Example:\n  tunnx " + std::string(command))) << command << "\n" << r.out;
  }
}

}  // namespace
}  // namespace tunnx::e2e
