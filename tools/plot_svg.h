// `tunnx plot`'s drawing: training curves in, a self-contained SVG document out (no scripts, no
// external fonts, no I/O), so the layout can be tested without files and the command stays a reader.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

namespace tunnx::cli {

struct PlotPoint {
  double step = 0;
  double value = 0;
};

// The series a metrics file gives. Any may be empty; the drawer leaves out what is empty and skips
// (and counts) points whose value or step is NaN or infinite.
struct PlotData {
  std::string title;
  std::vector<PlotPoint> step_loss;       // train loss of every batch
  std::vector<PlotPoint> epoch_loss;      // mean train loss of each epoch, at its last step
  std::vector<PlotPoint> eval_loss;       // held-out loss (step 0: before training)
  std::vector<PlotPoint> epoch_accuracy;  // mean train accuracy of each epoch
  std::vector<PlotPoint> eval_accuracy;
  std::vector<std::string> notes;         // extra lines under the title (what the reader skipped)
};

// Renders the chart. Throws std::invalid_argument when no series has a finite loss, since an empty
// chart would look like a run that learned nothing.
std::string plot_svg(const PlotData& data);

// Tick marks at round values: every `step` from `low` to `high`, both multiples of `step`, which is
// 1, 2 or 5 times a power of ten, chosen so that about `target` intervals cover [lo, hi]. An empty
// or degenerate range (lo == hi) is widened so the axis still has a non-zero span.
struct Ticks {
  double low = 0, high = 1, step = 1;
  std::vector<double> values;
};

// Inline because the end-to-end test binary, which tests it directly, does not link the CLI's sources.
inline Ticks nice_ticks(double lo, double hi, int target = 5) {
  if (!std::isfinite(lo) || !std::isfinite(hi)) lo = hi = 0;
  if (lo > hi) std::swap(lo, hi);
  if (hi - lo <= 1e-12 * std::max(std::fabs(lo), std::fabs(hi))) {
    const double pad = lo == 0 ? 0.5 : std::fabs(lo) * 0.05;
    lo -= pad;
    hi += pad;
  }
  const double raw = (hi - lo) / std::max(target, 1);
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  double step = 10 * magnitude;
  for (double m : {1.0, 2.0, 5.0}) {
    if (m * magnitude >= raw * (1 - 1e-9)) {
      step = m * magnitude;
      break;
    }
  }
  Ticks t;
  t.step = step;
  // A little tolerance so a bound that is already a multiple (0.3 / 0.1 = 2.9999...) is not pushed out.
  const double first = std::floor(lo / step + 1e-9);
  const double last = std::ceil(hi / step - 1e-9);
  t.low = first * step;
  t.high = last * step;
  const int count = static_cast<int>(std::lround(last - first));
  for (int i = 0; i <= count && i <= 100; ++i) {
    double v = (first + i) * step;
    if (std::fabs(v) < step * 1e-9) v = 0;  // no "-0"
    t.values.push_back(v);
  }
  return t;
}

// A tick's label with as many decimals as the step needs: step 0.05 -> "0.15", step 2000 -> "4000".
inline std::string tick_label(double value, double step) {
  char text[32];
  const double big = std::max(std::fabs(value), step);
  if (big >= 1e7 || step < 1e-5) {
    std::snprintf(text, sizeof text, "%.3g", value);
  } else {
    const int decimals = step >= 1 ? 0 : static_cast<int>(std::ceil(-std::log10(step) - 1e-9));
    std::snprintf(text, sizeof text, "%.*f", decimals, value);
  }
  return text;
}

}  // namespace tunnx::cli
