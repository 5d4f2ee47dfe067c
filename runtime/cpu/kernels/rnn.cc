// Recurrent layers: RNN, GRU, LSTM (every opset; `layout` from 14).
//
// Shapes (layout 0; layout 1 swaps the first two axes of X, Y, Y_h, Y_c, initial_h, initial_c):
//   X [seq, batch, input]; W [dirs, gates*hidden, input]; R [dirs, gates*hidden, hidden];
//   B [dirs, 2*gates*hidden] (Wb then Rb); sequence_lens [batch]; initial_h/initial_c [dirs, batch, hidden];
//   P [dirs, 3*hidden] (LSTM peepholes i, o, f).
//   Y [seq, dirs, batch, hidden]; Y_h, Y_c [dirs, batch, hidden].
// Gate order in W/R/B: RNN (i), GRU (z, r, h), LSTM (i, o, f, c). Past an entry's sequence length
// Y is zero and Y_h/Y_c hold the state of its last step; the reverse direction starts at its last
// valid step.
#include <algorithm>
#include <cctype>
#include <optional>

#include "runtime/cpu/kernels/common.h"
#include "runtime/cpu/kernels/kernels.h"

namespace tunnx::cpu {
namespace {

enum class Cell { kRnn, kGru, kLstm };

// One activation function of the ONNX RNN family, with its alpha/beta.
struct Activation {
  enum class Kind { kRelu, kTanh, kSigmoid, kAffine, kLeakyRelu, kThresholdedRelu, kScaledTanh, kHardSigmoid,
                    kElu, kSoftsign, kSoftplus };
  Kind kind = Kind::kTanh;
  double alpha = 0, beta = 0;

  template <typename T> T operator()(T x) const {
    const T a = static_cast<T>(alpha), b = static_cast<T>(beta);
    switch (kind) {
      case Kind::kRelu: return x > 0 ? x : T(0);
      case Kind::kTanh: return std::tanh(x);
      case Kind::kSigmoid: return sigmoid(x);
      case Kind::kAffine: return a * x + b;
      case Kind::kLeakyRelu: return x >= 0 ? x : a * x;
      case Kind::kThresholdedRelu: return x > a ? x : T(0);
      case Kind::kScaledTanh: return a * std::tanh(b * x);
      case Kind::kHardSigmoid: return std::clamp(a * x + b, T(0), T(1));
      case Kind::kElu: return x >= 0 ? x : a * (std::exp(x) - T(1));
      case Kind::kSoftsign: return x / (T(1) + std::abs(x));
      case Kind::kSoftplus: return x > T(20) ? x : std::log1p(std::exp(x));
    }
    return x;
  }
};

struct Config {
  Cell cell = Cell::kRnn;
  int64_t gates = 1;
  int64_t hidden = -1;  // -1: taken from R
  int64_t dirs = 1;
  bool reverse_only = false;
  std::vector<std::vector<Activation>> acts;  // [direction][function]
  std::optional<double> clip;
  bool linear_before_reset = false;
  bool input_forget = false;
  int64_t layout = 0;
};

// Names to functions; alpha/beta lists are consumed in order by the functions that take them.
std::vector<Activation> parse_activations(const KernelInit& init, std::vector<std::string> names) {
  std::vector<float> alphas = init.attr_floats("activation_alpha"), betas = init.attr_floats("activation_beta");
  size_t next_alpha = 0, next_beta = 0;
  auto alpha = [&](double fallback) { return next_alpha < alphas.size() ? alphas[next_alpha++] : fallback; };
  auto beta = [&](double fallback) { return next_beta < betas.size() ? betas[next_beta++] : fallback; };
  std::vector<Activation> out;
  using K = Activation::Kind;
  for (std::string name : names) {
    std::string lower = name;
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
    Activation a;
    if (lower == "relu") a.kind = K::kRelu;
    else if (lower == "tanh") a.kind = K::kTanh;
    else if (lower == "sigmoid") a.kind = K::kSigmoid;
    else if (lower == "softsign") a.kind = K::kSoftsign;
    else if (lower == "softplus") a.kind = K::kSoftplus;
    else if (lower == "affine") a = {K::kAffine, alpha(1.0), beta(0.0)};
    else if (lower == "leakyrelu") a = {K::kLeakyRelu, alpha(0.01), 0};
    else if (lower == "thresholdedrelu") a = {K::kThresholdedRelu, alpha(1.0), 0};
    else if (lower == "scaledtanh") a = {K::kScaledTanh, alpha(1.0), beta(1.0)};
    else if (lower == "hardsigmoid") a = {K::kHardSigmoid, alpha(0.2), beta(0.5)};
    else if (lower == "elu") a = {K::kElu, alpha(1.0), 0};
    else throw init.error("unknown activation '" + name + "'");
    out.push_back(a);
  }
  return out;
}

Config parse_config(const KernelInit& init, Cell cell) {
  Config c;
  c.cell = cell;
  c.gates = cell == Cell::kRnn ? 1 : cell == Cell::kGru ? 3 : 4;
  c.hidden = init.attr_int("hidden_size", -1);
  std::string direction = init.attr_string("direction", "forward");
  if (direction == "bidirectional") c.dirs = 2;
  else if (direction == "reverse") c.reverse_only = true;
  else if (direction != "forward") throw init.error("unknown direction '" + direction + "'");
  if (init.has_attr("clip")) {
    c.clip = init.attr_float("clip", 0);
    if (*c.clip <= 0) throw init.error("clip must be positive");
  }
  c.linear_before_reset = init.attr_int("linear_before_reset", 0) != 0;
  c.input_forget = init.attr_int("input_forget", 0) != 0;
  c.layout = init.attr_int("layout", 0);
  if (c.layout != 0 && c.layout != 1) throw init.error("layout must be 0 or 1");

  std::vector<std::string> defaults = cell == Cell::kRnn   ? std::vector<std::string>{"Tanh"}
                                      : cell == Cell::kGru ? std::vector<std::string>{"Sigmoid", "Tanh"}
                                                           : std::vector<std::string>{"Sigmoid", "Tanh", "Tanh"};
  const size_t per_dir = defaults.size();
  std::vector<std::string> names = init.attr_strings("activations");
  if (names.empty())
    for (int64_t d = 0; d < c.dirs; ++d) names.insert(names.end(), defaults.begin(), defaults.end());
  std::vector<Activation> all = parse_activations(init, names);
  if (all.size() == per_dir && c.dirs == 2) all.insert(all.end(), all.begin(), all.end());  // one list for both
  if (all.size() != per_dir * static_cast<size_t>(c.dirs))
    throw init.error("expected " + std::to_string(per_dir * static_cast<size_t>(c.dirs)) + " activations, got " +
                     std::to_string(all.size()));
  for (int64_t d = 0; d < c.dirs; ++d)
    c.acts.emplace_back(all.begin() + static_cast<std::ptrdiff_t>(per_dir * static_cast<size_t>(d)),
                        all.begin() + static_cast<std::ptrdiff_t>(per_dir * static_cast<size_t>(d + 1)));
  return c;
}

// y[j] += sum_k m[j][k] * v[k] for rows j of a row-major matrix with `cols` columns. The sum is a
// SIMD reduction (lanes summed at the end, an order of additions the compiler picks): a strictly
// serial sum waits an add's latency per element, and a recurrent model's step is these products
// (silero-vad's 128-wide LSTM: 4x faster).
template <typename T> void add_matvec(const T* m, int64_t rows, int64_t cols, const T* v, T* y) {
  for (int64_t j = 0; j < rows; ++j) {
    const T* row = m + j * cols;
    T sum = 0;
#pragma omp simd reduction(+ : sum)
    for (int64_t k = 0; k < cols; ++k) sum += row[k] * v[k];
    y[j] += sum;
  }
}

template <typename T> void run_rnn(const Config& c, KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const Tensor& w = ctx.input(1);
  const Tensor& r = ctx.input(2);
  if (x.rank() != 3 || w.rank() != 3 || r.rank() != 3)
    throw ctx.error("X, W and R must be 3-D");
  const int64_t seq = x.dims()[c.layout == 0 ? 0 : 1], batch = x.dims()[c.layout == 0 ? 1 : 0];
  const int64_t in = x.dims()[2], D = c.dirs, G = c.gates;
  const int64_t H = c.hidden >= 0 ? c.hidden : r.dims()[2];
  auto expect = [&](const Tensor& t, const std::vector<int64_t>& dims, const char* name) {
    if (t.dims() != dims)
      throw ctx.error(std::string(name) + " has shape " + dims_to_string(t.dims()) + ", expected " +
                      dims_to_string(dims));
    if (t.dtype() != x.dtype()) throw ctx.error(std::string(name) + " must have the dtype of X");
  };
  expect(w, {D, G * H, in}, "W");
  expect(r, {D, G * H, H}, "R");
  std::vector<int64_t> state_dims = c.layout == 0 ? std::vector<int64_t>{D, batch, H} : std::vector<int64_t>{batch, D, H};
  const T* bias = nullptr;
  if (ctx.has_input(3)) {
    expect(ctx.input(3), {D, 2 * G * H}, "B");
    bias = data<T>(ctx.input(3));
  }
  std::vector<int64_t> lens(static_cast<size_t>(batch), seq);
  if (ctx.has_input(4)) {
    lens = read_int_values(ctx.input(4), ctx);
    if (static_cast<int64_t>(lens.size()) != batch) throw ctx.error("sequence_lens must hold one length per batch entry");
    for (int64_t l : lens)
      if (l < 0 || l > seq) throw ctx.error("sequence length " + std::to_string(l) + " is out of range");
  }
  const T* h0 = nullptr;
  const T* c0 = nullptr;
  const T* peep = nullptr;
  if (ctx.has_input(5)) {
    expect(ctx.input(5), state_dims, "initial_h");
    h0 = data<T>(ctx.input(5));
  }
  if (c.cell == Cell::kLstm && ctx.has_input(6)) {
    expect(ctx.input(6), state_dims, "initial_c");
    c0 = data<T>(ctx.input(6));
  }
  if (c.cell == Cell::kLstm && ctx.has_input(7)) {
    expect(ctx.input(7), {D, 3 * H}, "P");
    peep = data<T>(ctx.input(7));
  }

  std::vector<int64_t> y_dims = c.layout == 0 ? std::vector<int64_t>{seq, D, batch, H}
                                              : std::vector<int64_t>{batch, seq, D, H};
  T* y = ctx.output_wanted(0) ? mutable_data<T>(ctx.allocate_output(0, x.dtype(), y_dims)) : nullptr;
  T* y_h = ctx.output_wanted(1) ? mutable_data<T>(ctx.allocate_output(1, x.dtype(), state_dims)) : nullptr;
  T* y_c = c.cell == Cell::kLstm && ctx.output_wanted(2)
               ? mutable_data<T>(ctx.allocate_output(2, x.dtype(), state_dims)) : nullptr;

  const T* xs = data<T>(x);
  auto x_at = [&](int64_t t, int64_t b) { return xs + (c.layout == 0 ? t * batch + b : b * seq + t) * in; };
  auto y_at = [&](int64_t t, int64_t d, int64_t b) {
    return (c.layout == 0 ? (t * D + d) * batch + b : (b * seq + t) * D + d) * H;
  };
  auto state_at = [&](int64_t d, int64_t b) { return (c.layout == 0 ? d * batch + b : b * D + d) * H; };
  auto clip = [&](T v) {
    if (!c.clip) return v;
    T limit = static_cast<T>(*c.clip);
    return std::clamp(v, -limit, limit);
  };

  std::vector<T> h(static_cast<size_t>(H)), cell(static_cast<size_t>(H)), gx(static_cast<size_t>(G * H)),
      gh(static_cast<size_t>(G * H)), tmp(static_cast<size_t>(H));
  for (int64_t d = 0; d < D; ++d) {
    const bool reverse = c.reverse_only || d == 1;
    const std::vector<Activation>& act = c.acts[static_cast<size_t>(d)];
    const T* wd = data<T>(w) + d * G * H * in;
    const T* rd = data<T>(r) + d * G * H * H;
    const T* wb = bias ? bias + d * 2 * G * H : nullptr;
    const T* rb = bias ? wb + G * H : nullptr;
    const T* pd = peep ? peep + d * 3 * H : nullptr;
    for (int64_t b = 0; b < batch; ++b) {
      const int64_t len = lens[static_cast<size_t>(b)];
      for (int64_t j = 0; j < H; ++j) {
        h[j] = h0 ? h0[state_at(d, b) + j] : T(0);
        cell[j] = c0 ? c0[state_at(d, b) + j] : T(0);
      }
      for (int64_t s = 0; s < len; ++s) {
        const int64_t t = reverse ? len - 1 - s : s;
        // gx = W x + Wb, gh = R h + Rb, each [G*H] in the op's gate order.
        for (int64_t j = 0; j < G * H; ++j) {
          gx[j] = wb ? wb[j] : T(0);
          gh[j] = rb ? rb[j] : T(0);
        }
        add_matvec(wd, G * H, in, x_at(t, b), gx.data());
        if (c.cell == Cell::kRnn) {
          add_matvec(rd, H, H, h.data(), gh.data());
          for (int64_t j = 0; j < H; ++j) h[j] = act[0](clip(gx[j] + gh[j]));
        } else if (c.cell == Cell::kGru) {
          // z and r from the first two gate blocks; the candidate needs r first.
          add_matvec(rd, 2 * H, H, h.data(), gh.data());
          T* z = gx.data();
          T* rg = gx.data() + H;
          for (int64_t j = 0; j < 2 * H; ++j) gx[j] = act[0](clip(gx[j] + gh[j]));
          const T* rh = rd + 2 * H * H;
          T* cand = gh.data() + 2 * H;  // holds Rbh
          if (c.linear_before_reset) {
            add_matvec(rh, H, H, h.data(), cand);
            for (int64_t j = 0; j < H; ++j) cand[j] *= rg[j];
          } else {
            for (int64_t j = 0; j < H; ++j) tmp[j] = rg[j] * h[j];
            add_matvec(rh, H, H, tmp.data(), cand);
          }
          for (int64_t j = 0; j < H; ++j) {
            T ht = act[1](clip(gx[2 * H + j] + cand[j]));
            h[j] = (T(1) - z[j]) * ht + z[j] * h[j];
          }
        } else {
          add_matvec(rd, G * H, H, h.data(), gh.data());
          for (int64_t j = 0; j < H; ++j) {
            T gi = gx[j] + gh[j], go = gx[H + j] + gh[H + j];
            T gf = gx[2 * H + j] + gh[2 * H + j], gc = gx[3 * H + j] + gh[3 * H + j];
            T i = act[0](clip(gi + (pd ? pd[j] * cell[j] : T(0))));
            T f = c.input_forget ? T(1) - i : act[0](clip(gf + (pd ? pd[2 * H + j] * cell[j] : T(0))));
            T cc = act[1](clip(gc));
            cell[j] = f * cell[j] + i * cc;
            T o = act[0](clip(go + (pd ? pd[H + j] * cell[j] : T(0))));
            h[j] = o * act[2](cell[j]);
          }
        }
        if (y) std::copy(h.begin(), h.end(), y + y_at(t, d, b));
      }
      if (y_h) std::copy(h.begin(), h.end(), y_h + state_at(d, b));
      if (y_c) std::copy(cell.begin(), cell.end(), y_c + state_at(d, b));
    }
  }
}

void register_cell(KernelRegistry& r, const char* op, Cell cell) {
  add_kernel(r, op, 1, INT_MAX, {DataType::kFloat32, DataType::kFloat64}, [cell](const KernelInit& init) {
    Config config = parse_config(init, cell);
    return std::make_unique<FunctionKernel>([config](KernelContext& ctx) {
      dispatch<float, double>(ctx.input(0).dtype(), ctx, [&](auto tag) {
        run_rnn<typename decltype(tag)::type>(config, ctx);
      });
    });
  });
}

}  // namespace

void register_rnn_kernels(KernelRegistry& r) {
  register_cell(r, "RNN", Cell::kRnn);
  register_cell(r, "GRU", Cell::kGru);
  register_cell(r, "LSTM", Cell::kLstm);
}

}  // namespace tunnx::cpu
