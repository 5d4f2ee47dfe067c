#include "tools/plot_svg.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

namespace tunnx::cli {
namespace {

constexpr double kWidth = 800;
constexpr double kPlotHeight = 360;  // the plot area; the header above grows with notes and legend
constexpr double kLeft = 72;
constexpr double kRightWithAxis = 72;
constexpr double kRightBare = 24;
constexpr double kBottom = 56;        // tick labels and the x axis title
constexpr double kCharWidth = 6.6;    // of 12px sans-serif, to size legend entries without font metrics

enum class Axis { kLoss, kAccuracy };
enum class Marker { kNone, kCircle, kSquare };

struct SeriesStyle {
  const char* id;
  const char* label;
  const char* color;
  Axis axis;
  bool line;
  bool dashed;
  Marker marker;
  double stroke_width;
  double opacity;
};

// Per-batch loss is noisy, so it is thin and faint beneath the epoch means and the eval curve; the
// accuracies are dashed so they read as the other axis even in grey print.
constexpr std::array<SeriesStyle, 5> kStyles = {{
    {"train-loss", "train loss", "#1f77b4", Axis::kLoss, true, false, Marker::kNone, 1.0, 0.55},
    {"train-loss-epoch", "train loss (epoch mean)", "#08306b", Axis::kLoss, false, false, Marker::kCircle, 1.5, 1.0},
    {"eval-loss", "eval loss", "#ff7f0e", Axis::kLoss, true, false, Marker::kCircle, 2.0, 1.0},
    {"train-accuracy-epoch", "train accuracy (epoch mean)", "#2ca02c", Axis::kAccuracy, true, true, Marker::kSquare,
     1.5, 1.0},
    {"eval-accuracy", "eval accuracy", "#d62728", Axis::kAccuracy, true, true, Marker::kSquare, 2.0, 1.0},
}};

struct Series {
  const SeriesStyle* style;
  std::vector<PlotPoint> points;
};

std::string num(double v) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f", v);
  return text;
}

// Length of the valid UTF-8 sequence starting at s[i], or 0 when it is not one (overlong forms and
// surrogates included), so bytes of a file name in another encoding cannot make the XML invalid.
size_t utf8_length(const std::string& s, size_t i) {
  const auto byte = [&s](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = byte(i);
  size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  uint32_t cp = n == 1 ? c : c & (0x7F >> n);
  for (size_t k = 1; k < n; ++k) {
    if ((byte(i + k) & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (byte(i + k) & 0x3F);
  }
  static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return n;
}

// Text for element content and attribute values: the five special characters escaped, control
// characters XML 1.0 forbids dropped, invalid UTF-8 replaced by U+FFFD.
std::string xml_text(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    const size_t n = utf8_length(s, i);
    if (n == 0) {
      out += "\xEF\xBF\xBD";
      ++i;
      continue;
    }
    const char c = s[i];
    if (c == '&') out += "&amp;";
    else if (c == '<') out += "&lt;";
    else if (c == '>') out += "&gt;";
    else if (c == '"') out += "&quot;";
    else if (c == '\'') out += "&apos;";
    else if (c == '\t' || c == '\n' || c == '\r') out += ' ';
    else if (static_cast<unsigned char>(c) >= 0x20) out.append(s, i, n);
    i += n;
  }
  return out;
}

// Finite points in step order, one per step (the last written wins: a resumed run that repeated
// steps without trimming its log still draws one line). Counts what it drops into `skipped`.
std::vector<PlotPoint> clean(const std::vector<PlotPoint>& points, size_t& skipped) {
  std::vector<PlotPoint> out;
  for (const PlotPoint& p : points) {
    if (std::isfinite(p.step) && std::isfinite(p.value)) out.push_back(p);
    else ++skipped;
  }
  std::stable_sort(out.begin(), out.end(), [](const PlotPoint& a, const PlotPoint& b) { return a.step < b.step; });
  std::vector<PlotPoint> unique;
  for (const PlotPoint& p : out) {
    if (!unique.empty() && unique.back().step == p.step) unique.back() = p;
    else unique.push_back(p);
  }
  return unique;
}

struct Frame {
  double left, top, right, bottom;
  Ticks x, loss, accuracy;
  double px(double step) const { return left + (step - x.low) / (x.high - x.low) * (right - left); }
  double py(Axis axis, double v) const {
    const Ticks& t = axis == Axis::kLoss ? loss : accuracy;
    return bottom - (v - t.low) / (t.high - t.low) * (bottom - top);
  }
};

// Long runs have more batches than the plot has pixels; per pixel column only the lowest and highest
// point can show, so the rest is dropped to keep the file small without changing the picture.
std::vector<std::pair<double, double>> screen_points(const Series& s, const Frame& f) {
  const auto at = [&](const PlotPoint& p) { return std::make_pair(f.px(p.step), f.py(s.style->axis, p.value)); };
  const std::vector<PlotPoint>& points = s.points;
  std::vector<std::pair<double, double>> out;
  if (points.size() <= 4 * static_cast<size_t>(f.right - f.left)) {
    for (const PlotPoint& p : points) out.push_back(at(p));
    return out;
  }
  for (size_t i = 0; i < points.size();) {
    const double column = std::floor(f.px(points[i].step));
    size_t lo = i, hi = i, j = i + 1;
    for (; j < points.size() && std::floor(f.px(points[j].step)) == column; ++j) {
      if (points[j].value < points[lo].value) lo = j;
      if (points[j].value > points[hi].value) hi = j;
    }
    out.push_back(at(points[std::min(lo, hi)]));
    if (lo != hi) out.push_back(at(points[std::max(lo, hi)]));
    i = j;
  }
  return out;
}

std::string marker_path(Marker marker, double x, double y) {
  constexpr double r = 3.5;
  if (marker == Marker::kSquare)
    return "M" + num(x - r) + " " + num(y - r) + "h" + num(2 * r) + "v" + num(2 * r) + "h" + num(-2 * r) + "z";
  // A circle as two half arcs, so every marker of a series fits in one path element.
  return "M" + num(x - r) + " " + num(y) + "a" + num(r) + " " + num(r) + " 0 1 0 " + num(2 * r) + " 0a" + num(r) +
         " " + num(r) + " 0 1 0 " + num(-2 * r) + " 0z";
}

std::string stroke_attributes(const SeriesStyle& st) {
  std::string a = " stroke=\"" + std::string(st.color) + "\" stroke-width=\"" + num(st.stroke_width) + "\"";
  if (st.dashed) a += " stroke-dasharray=\"6 4\"";
  if (st.opacity < 1) a += " stroke-opacity=\"" + num(st.opacity) + "\"";
  return a;
}

std::string series_svg(const Series& s, const Frame& f) {
  const SeriesStyle& st = *s.style;
  std::string out = "<g id=\"" + std::string(st.id) + "\">\n";
  if (st.line && s.points.size() > 1) {
    out += "<polyline fill=\"none\" stroke-linejoin=\"round\"" + stroke_attributes(st) + " points=\"";
    for (const auto& [x, y] : screen_points(s, f)) out += num(x) + "," + num(y) + " ";
    out.back() = '"';
    out += "/>\n";
  }
  // A lone point draws nothing as a line, so it gets a marker whatever its style.
  const Marker marker = st.marker == Marker::kNone && s.points.size() == 1 ? Marker::kCircle : st.marker;
  if (marker != Marker::kNone) {
    out += "<path fill=\"" + std::string(st.color) + "\" d=\"";
    for (const PlotPoint& p : s.points) out += marker_path(marker, f.px(p.step), f.py(st.axis, p.value));
    out += "\"/>\n";
  }
  return out + "</g>\n";
}

std::string text(double x, double y, const std::string& content, const std::string& attributes = "") {
  return "<text x=\"" + num(x) + "\" y=\"" + num(y) + "\"" + attributes + ">" + xml_text(content) + "</text>\n";
}

std::string line(double x1, double y1, double x2, double y2) {
  return "<line x1=\"" + num(x1) + "\" y1=\"" + num(y1) + "\" x2=\"" + num(x2) + "\" y2=\"" + num(y2) + "\"/>\n";
}

std::string axes_svg(const Frame& f, bool accuracy_axis) {
  std::string grid = "<g id=\"grid\" stroke=\"#e6e6e6\" stroke-width=\"1\">\n";
  std::string axes = "<g id=\"axes\" stroke=\"#444\" stroke-width=\"1\">\n";
  std::string labels = "<g id=\"tick-labels\" fill=\"#333\">\n";
  for (double v : f.x.values) {
    const double x = f.px(v);
    grid += line(x, f.top, x, f.bottom);
    axes += line(x, f.bottom, x, f.bottom + 5);
    labels += text(x, f.bottom + 18, tick_label(v, f.x.step), " text-anchor=\"middle\"");
  }
  for (double v : f.loss.values) {
    const double y = f.py(Axis::kLoss, v);
    grid += line(f.left, y, f.right, y);
    axes += line(f.left - 5, y, f.left, y);
    labels += text(f.left - 8, y + 4, tick_label(v, f.loss.step), " text-anchor=\"end\"");
  }
  axes += line(f.left, f.top, f.left, f.bottom) + line(f.left, f.bottom, f.right, f.bottom);
  if (accuracy_axis) {
    axes += line(f.right, f.top, f.right, f.bottom);
    for (double v : f.accuracy.values) {
      const double y = f.py(Axis::kAccuracy, v);
      axes += line(f.right, y, f.right + 5, y);
      labels += text(f.right + 8, y + 4, tick_label(v, f.accuracy.step), " text-anchor=\"start\"");
    }
  }
  std::string titles = "<g id=\"axis-titles\" fill=\"#222\" font-size=\"13\">\n";
  titles += text((f.left + f.right) / 2, f.bottom + 42, "step", " text-anchor=\"middle\"");
  const double mid = (f.top + f.bottom) / 2;
  titles += text(18, mid, "loss", " text-anchor=\"middle\" transform=\"rotate(-90 18 " + num(mid) + ")\"");
  if (accuracy_axis) {
    const double x = kWidth - 14;
    titles += text(x, mid, "accuracy",
                   " text-anchor=\"middle\" transform=\"rotate(90 " + num(x) + " " + num(mid) + ")\"");
  }
  return grid + "</g>\n" + axes + "</g>\n" + labels + "</g>\n" + titles + "</g>\n";
}

struct LegendEntry {
  const SeriesStyle* style;
  double x, y;
};

// Entries left to right, wrapping to a new row when the plot's width is used up.
std::vector<LegendEntry> legend_layout(const std::vector<Series>& series, double left, double right, double top) {
  std::vector<LegendEntry> entries;
  double x = left, y = top;
  for (const Series& s : series) {
    const double width = 34 + kCharWidth * static_cast<double>(std::string(s.style->label).size()) + 20;
    if (x > left && x + width > right) {
      x = left;
      y += 18;
    }
    entries.push_back({s.style, x, y});
    x += width;
  }
  return entries;
}

std::string legend_svg(const std::vector<LegendEntry>& entries) {
  std::string out = "<g id=\"legend\">\n";
  for (const LegendEntry& e : entries) {
    const SeriesStyle& st = *e.style;
    if (st.line)
      out += "<path fill=\"none\"" + stroke_attributes(st) + " d=\"M" + num(e.x) + " " + num(e.y) + "h28\"/>\n";
    if (st.marker != Marker::kNone)
      out += "<path fill=\"" + std::string(st.color) + "\" d=\"" + marker_path(st.marker, e.x + 14, e.y) + "\"/>\n";
    out += text(e.x + 34, e.y + 4, st.label, " fill=\"#222\"");
  }
  return out + "</g>\n";
}

// Range of the values of the series on `axis`, as {min, max}; {+inf, -inf} when none.
std::pair<double, double> value_range(const std::vector<Series>& series, Axis axis) {
  double lo = INFINITY, hi = -INFINITY;
  for (const Series& s : series) {
    if (s.style->axis != axis) continue;
    for (const PlotPoint& p : s.points) {
      lo = std::min(lo, p.value);
      hi = std::max(hi, p.value);
    }
  }
  return {lo, hi};
}

// Steps count batches: a short run gets whole-number ticks, not "0.2", and a lone step sits
// between two (never left of 0 for a run that starts at 0).
Ticks step_ticks(double first, double last) {
  Ticks t = nice_ticks(first, last, 6);
  if (t.step >= 1) return t;
  double lo = std::floor(first), hi = std::ceil(last);
  if (hi - lo < 2) {
    lo = first >= 0 ? std::max(lo - 1, 0.0) : lo - 1;
    hi += 1;
  }
  return nice_ticks(lo, hi, static_cast<int>(hi - lo));
}

}  // namespace

std::string plot_svg(const PlotData& data) {
  size_t skipped = 0;
  std::vector<Series> series;
  const std::vector<PlotPoint>* inputs[] = {&data.step_loss, &data.epoch_loss, &data.eval_loss,
                                            &data.epoch_accuracy, &data.eval_accuracy};
  for (size_t i = 0; i < kStyles.size(); ++i) {
    std::vector<PlotPoint> points = clean(*inputs[i], skipped);
    if (!points.empty()) series.push_back({&kStyles[i], std::move(points)});
  }
  const auto [loss_lo, loss_hi] = value_range(series, Axis::kLoss);
  if (loss_lo > loss_hi) {
    throw std::invalid_argument(skipped ? "no finite loss values (" + std::to_string(skipped) + " NaN or inf skipped)"
                                        : "no loss values");
  }
  const auto [acc_lo, acc_hi] = value_range(series, Axis::kAccuracy);
  const bool accuracy_axis = acc_lo <= acc_hi;

  std::vector<std::string> notes = data.notes;
  if (skipped) notes.insert(notes.begin(), std::to_string(skipped) + " non-finite value" + (skipped == 1 ? "" : "s") +
                                               " (NaN or inf) skipped");
  const double left = kLeft, right = kWidth - (accuracy_axis ? kRightWithAxis : kRightBare);
  const double legend_top = 46 + 16 * static_cast<double>(notes.size());
  const std::vector<LegendEntry> legend = legend_layout(series, left, right, legend_top);
  const double top = legend.back().y + 22;

  Frame f{left, top, right, top + kPlotHeight, {}, {}, {}};
  double step_lo = INFINITY, step_hi = -INFINITY;
  for (const Series& s : series) {
    step_lo = std::min(step_lo, s.points.front().step);
    step_hi = std::max(step_hi, s.points.back().step);
  }
  f.x = step_ticks(step_lo, step_hi);
  f.loss = nice_ticks(loss_lo, loss_hi, 5);
  f.accuracy = accuracy_axis ? nice_ticks(std::min(0.0, acc_lo), std::max(1.0, acc_hi), 5) : Ticks{};

  const double height = f.bottom + kBottom;
  std::string svg = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";
  svg += "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + num(kWidth) + "\" height=\"" + num(height) +
         "\" viewBox=\"0 0 " + num(kWidth) + " " + num(height) +
         "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  svg += "<title>" + xml_text(data.title) + "</title>\n";
  svg += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  svg += text(kWidth / 2, 26, data.title, " id=\"title\" text-anchor=\"middle\" font-size=\"16\" font-weight=\"bold\"");
  for (size_t i = 0; i < notes.size(); ++i)
    svg += text(kWidth / 2, 44 + 16 * static_cast<double>(i), notes[i],
                " class=\"note\" text-anchor=\"middle\" font-size=\"11\" fill=\"#666\"");
  svg += axes_svg(f, accuracy_axis);
  for (const Series& s : series) svg += series_svg(s, f);
  svg += legend_svg(legend);
  return svg + "</svg>\n";
}

}  // namespace tunnx::cli
