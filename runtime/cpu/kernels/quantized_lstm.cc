// com.microsoft:DynamicQuantizeLSTM, as ONNX Runtime's quantization tool writes it for an LSTM:
// W [D, I, 4H] and R [D, H, 4H] are 8-bit (int8 or uint8) with a scale and zero point per direction
// or per column, B and P stay float. Its products are computed as ONNX Runtime computes them, not as
// a float LSTM over dequantized weights (which differs from ONNX Runtime by ~3e-3): X over the whole
// sequence, and then h(t-1) at every step, are quantized to uint8 with a dynamic scale and zero point
// (DynamicQuantizeLinear's rule), multiplied in integers and scaled back. Gates as ai.onnx LSTM (iofc
// order): Sigmoid/Tanh/Tanh, optional clip, input_forget and peepholes; sequence_lens of full length.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <exception>
#include <memory>
#include <string>
#include <vector>

#include "runtime/cpu/kernels/common.h"
#include "runtime/cpu/kernels/kernels.h"
#include "runtime/cpu/kernels/vector_loops.h"

namespace tunnx::cpu {
namespace {

struct QuantizedLstmAttrs {
  int64_t hidden = 0;
  std::string direction = "forward";
  float clip = 0;  // 0: none
  bool input_forget = false;
};

// ONNX Runtime's dynamic quantization of a float block to uint8: the range includes 0; round half to even.
struct DynamicQuantized {
  std::vector<uint8_t> values;
  float scale = 1;
  int32_t zero = 0;
};

DynamicQuantized quantize_dynamic(const float* x, int64_t n) {
  float lo = 0, hi = 0;
  range_with_zero(x, n, lo, hi);
  DynamicQuantized q;
  q.scale = hi == lo ? 1.0f : (hi - lo) / 255.0f;
  q.zero = static_cast<int32_t>(std::nearbyint(std::clamp(0.0f - lo / q.scale, 0.0f, 255.0f)));
  q.values.resize(static_cast<size_t>(n));
  quantize_to_uint8(x, n, q.scale, static_cast<float>(q.zero), q.values.data());
  return q;
}

// One direction's 8-bit weight matrix [K, N] less its zero point (per column, or one for all), with
// its scale per column.
struct QuantizedWeights {
  std::vector<int16_t> values;  // K * N: w - zero, in [-255, 255]
  std::vector<float> scale;     // N
  // values as int16_matmul's AVX-512BW path reads them, for R: read once per step, interleaved
  // once per run (each step interleaving R's 2 MB again took half of ddddocr's LSTM).
  std::vector<int16_t> interleaved;
  // For R on AVX-512 VNNI instead (packed only where the CPU has it): half the bytes a step
  // streams (ddddocr's R: 1 MB a direction, not 2).
  U8S8Weights vnni;
};

// `vnni`: in QuantizedWeights::vnni instead of the int16 values, where the CPU has VNNI.
QuantizedWeights weights_of(const Tensor& w, const Tensor& scale, const Tensor* zero, int64_t d, int64_t K, int64_t N,
                            const KernelContext& ctx, const char* name, bool vnni = false) {
  QuantizedWeights q;
  const bool is_signed = w.dtype() == DataType::kInt8;
  // Scale and zero point: [D] (per tensor) or [D, N] (per column).
  auto per_column = [&](const Tensor& t, const char* what) {
    if (t.numel() == t.dims()[0] || t.rank() == 1) return false;
    if (t.rank() != 2 || t.dims()[1] != N)
      throw ctx.error(std::string(name) + "'s " + what + " must be [num_directions] or [num_directions, " +
                      std::to_string(N) + "], got " + dims_to_string(t.dims()));
    return true;
  };
  const bool scale_cols = per_column(scale, "scale");
  q.scale.resize(static_cast<size_t>(N));
  for (int64_t c = 0; c < N; ++c) q.scale[static_cast<size_t>(c)] = data<float>(scale)[scale_cols ? d * N + c : d];
  std::vector<int16_t> zeros(static_cast<size_t>(N), 0);
  if (zero) {
    if (zero->dtype() != w.dtype())
      throw ctx.error(std::string(name) + "'s zero point must have its dtype " + to_string(w.dtype()) + ", got " +
                      to_string(zero->dtype()));
    const bool zero_cols = per_column(*zero, "zero point");
    for (int64_t c = 0; c < N; ++c) {
      const int64_t at = zero_cols ? d * N + c : d;
      zeros[static_cast<size_t>(c)] = is_signed ? data<int8_t>(*zero)[at] : data<uint8_t>(*zero)[at];
    }
  }
  if (vnni) {
    q.vnni = u8s8_weights(w, d * K * N, K, N, std::vector<int32_t>(zeros.begin(), zeros.end()));
    if (!q.vnni.packed.empty()) return q;  // the int16 values unused
  }
  q.values.resize(static_cast<size_t>(K * N));
  subtract_zero_points(w, d * K * N, K * N, zeros, 1, q.values.data());
  return q;
}

// out[r, c] (+)= sum_k (a[r, k] - a.zero) (w[k, c] - w.zero[c]) * a.scale * w.scale[c], for M rows:
// the integer sums by u8s8_centered_product where w is packed for VNNI, else by vector_loops'
// int16_matmul (both exact: 32-bit sums of products of at most 255 x 255).
void quantized_product(const DynamicQuantized& a, int64_t M, int64_t K, const QuantizedWeights& w, int64_t N,
                       float* out, bool accumulate) {
  std::vector<uint32_t> sums(static_cast<size_t>(M * N));
  if (!w.vnni.packed.empty()) {
    u8s8_centered_product(a.values.data(), M, K, {a.zero}, w.vnni, N, sums.data());
  } else {
    std::vector<int16_t> centered(static_cast<size_t>(M * K));
    for (size_t i = 0; i < centered.size(); ++i) centered[i] = static_cast<int16_t>(a.values[i] - a.zero);
    int16_matmul(centered.data(), M, K, w.values.data(), N, sums.data(), &w.interleaved);
  }
  for (int64_t r = 0; r < M; ++r)
    for (int64_t c = 0; c < N; ++c) {
      const float v = static_cast<float>(static_cast<int32_t>(sums[static_cast<size_t>(r * N + c)])) *
                      (a.scale * w.scale[static_cast<size_t>(c)]);
      out[r * N + c] = accumulate ? out[r * N + c] + v : v;
    }
}

// A weight input's per-direction forms (`weights_of`), kept across runs while the weight, its scale and
// its zero point are the constants the kernel was made with and unwritten: remaking R's every run
// (packing it for VNNI, or interleaving it) cost more than the steps saved.
class WeightsCache {
 public:
  WeightsCache(const KernelInit& init, size_t w_input, size_t scale_input, size_t zero_input)
      : w_(init, w_input), scale_(init, scale_input), zero_(init, zero_input) {}

  template <typename Make>
  std::shared_ptr<const std::vector<QuantizedWeights>> get(const Tensor& w, const Tensor& scale, const Tensor* zero,
                                                          Make make) const {
    if (!scale_.holds(scale) || (zero && !zero_.holds(*zero))) return nullptr;
    const uint64_t key = scale.version() * 0x9E3779B97F4A7C15ull ^ (zero ? zero->version() + 1 : 0);
    return w_.get(w, key, [&](const Tensor&) { return make(); });
  }

 private:
  ConstantCopy<std::vector<QuantizedWeights>> w_;
  ConstantCopy<int> scale_, zero_;  // only their identities: their versions key w_'s copy
};

struct QuantizedLstmCaches {
  explicit QuantizedLstmCaches(const KernelInit& init) : w(init, 1, 8, 9), r(init, 2, 10, 11) {}
  WeightsCache w, r;  // W, R with their scales and zero points
};

float sigmoid(float x) { return 1.0f / (1.0f + std::exp(-x)); }

void run_quantized_lstm(KernelContext& ctx, const QuantizedLstmAttrs& a, const QuantizedLstmCaches& caches) {
  const Tensor& x = ctx.input(0);
  const Tensor& w = ctx.input(1);
  const Tensor& r = ctx.input(2);
  if (x.dtype() != DataType::kFloat32 || x.rank() != 3)
    throw ctx.error("X must be float32 [seq_length, batch, input_size], got " + std::string(to_string(x.dtype())) + " " +
                    dims_to_string(x.dims()));
  for (const Tensor* t : {&w, &r})
    if (t->dtype() != DataType::kInt8 && t->dtype() != DataType::kUInt8)
      throw ctx.error(std::string("W and R must be int8 or uint8, got ") + to_string(t->dtype()));
  const int64_t S = x.dims()[0], Bn = x.dims()[1], I = x.dims()[2], H = a.hidden, G = 4 * H;
  const int64_t D = a.direction == "bidirectional" ? 2 : 1;
  if (w.dims() != std::vector<int64_t>{D, I, G} || r.dims() != std::vector<int64_t>{D, H, G})
    throw ctx.error("W " + dims_to_string(w.dims()) + " and R " + dims_to_string(r.dims()) + " must be [" +
                    std::to_string(D) + ", " + std::to_string(I) + ", " + std::to_string(G) + "] and [" +
                    std::to_string(D) + ", " + std::to_string(H) + ", " + std::to_string(G) + "]");
  const Tensor* bias = ctx.has_input(3) ? &ctx.input(3) : nullptr;
  const Tensor* h0 = ctx.has_input(5) ? &ctx.input(5) : nullptr;
  const Tensor* c0 = ctx.has_input(6) ? &ctx.input(6) : nullptr;
  const Tensor* peep = ctx.has_input(7) ? &ctx.input(7) : nullptr;
  if (ctx.has_input(4))
    for (int64_t len : read_int_values(ctx.input(4), ctx))
      if (len != S) throw ctx.error("sequence_lens shorter than the sequence (" + std::to_string(len) + " of " +
                                    std::to_string(S) + ") are not supported");
  if (!ctx.has_input(8) || !ctx.has_input(10)) throw ctx.error("W_scale and R_scale are required");
  const std::vector<int64_t> state = {D, Bn, H};
  if (bias && bias->dims() != std::vector<int64_t>{D, 2 * G}) throw ctx.error("B must be " + dims_to_string({D, 2 * G}));
  if (h0 && h0->dims() != state) throw ctx.error("initial_h must be " + dims_to_string(state));
  if (c0 && c0->dims() != state) throw ctx.error("initial_c must be " + dims_to_string(state));
  if (peep && peep->dims() != std::vector<int64_t>{D, 3 * H}) throw ctx.error("P must be " + dims_to_string({D, 3 * H}));

  float* y = ctx.output_wanted(0) ? mutable_data<float>(ctx.allocate_output_uninitialized(0, DataType::kFloat32, {S, D, Bn, H}))
                                  : nullptr;
  float* y_h = ctx.output_wanted(1) ? mutable_data<float>(ctx.allocate_output_uninitialized(1, DataType::kFloat32, state)) : nullptr;
  float* y_c = ctx.output_wanted(2) ? mutable_data<float>(ctx.allocate_output_uninitialized(2, DataType::kFloat32, state)) : nullptr;

  const DynamicQuantized xq = quantize_dynamic(data<float>(x), S * Bn * I);  // one scale for the whole sequence
  // Each direction's weights first (where a bad input throws), then the directions, on two threads
  // where the run has them: they share nothing but X, and each streams its own R every step.
  const Tensor* w_zero = ctx.has_input(9) ? &ctx.input(9) : nullptr;
  const Tensor* r_zero = ctx.has_input(11) ? &ctx.input(11) : nullptr;
  auto make_w = [&] {
    std::vector<QuantizedWeights> out;
    for (int64_t d = 0; d < D; ++d) out.push_back(weights_of(w, ctx.input(8), w_zero, d, I, G, ctx, "W"));
    return out;
  };
  auto make_r = [&] {  // R is read every step: packed for VNNI (half the bytes), else interleaved
    std::vector<QuantizedWeights> out;
    for (int64_t d = 0; d < D; ++d) {
      out.push_back(weights_of(r, ctx.input(10), r_zero, d, H, G, ctx, "R", u8s8_available()));
      if (out.back().vnni.packed.empty()) out.back().interleaved = int16_interleave(out.back().values.data(), H, G);
    }
    return out;
  };
  std::shared_ptr<const std::vector<QuantizedWeights>> w_kept = caches.w.get(w, ctx.input(8), w_zero, make_w);
  std::shared_ptr<const std::vector<QuantizedWeights>> r_kept = caches.r.get(r, ctx.input(10), r_zero, make_r);
  const std::vector<QuantizedWeights> w_made = w_kept ? std::vector<QuantizedWeights>{} : make_w();
  const std::vector<QuantizedWeights> r_made = r_kept ? std::vector<QuantizedWeights>{} : make_r();
  const std::vector<QuantizedWeights>& wqs = w_kept ? *w_kept : w_made;
  const std::vector<QuantizedWeights>& rqs = r_kept ? *r_kept : r_made;
  const float* h0_values = h0 ? data<float>(*h0) : nullptr;
  const float* c0_values = c0 ? data<float>(*c0) : nullptr;
  auto direction = [&](int64_t d) {
    const bool reverse = a.direction == "reverse" || d == 1;
    const QuantizedWeights& wq = wqs[static_cast<size_t>(d)];
    const QuantizedWeights& rq = rqs[static_cast<size_t>(d)];
    std::vector<float> xw(static_cast<size_t>(S * Bn * G)), gates(static_cast<size_t>(Bn * G));
    std::vector<float> h(static_cast<size_t>(Bn * H)), c(static_cast<size_t>(Bn * H));
    quantized_product(xq, S * Bn, I, wq, G, xw.data(), false);
    for (int64_t i = 0; i < Bn * H; ++i) {
      h[static_cast<size_t>(i)] = h0_values ? h0_values[d * Bn * H + i] : 0.0f;
      c[static_cast<size_t>(i)] = c0_values ? c0_values[d * Bn * H + i] : 0.0f;
    }
    const float* wb = bias ? data<float>(*bias) + d * 2 * G : nullptr;
    const float* p = peep ? data<float>(*peep) + d * 3 * H : nullptr;
    for (int64_t step = 0; step < S; ++step) {
      const int64_t t = reverse ? S - 1 - step : step;
      std::copy_n(xw.data() + t * Bn * G, Bn * G, gates.data());
      const DynamicQuantized hq = quantize_dynamic(h.data(), Bn * H);  // h quantized per step
      quantized_product(hq, Bn, H, rq, G, gates.data(), true);
      for (int64_t b = 0; b < Bn; ++b) {
        float* g = gates.data() + b * G;
        if (wb)
          for (int64_t j = 0; j < G; ++j) g[j] += wb[j] + wb[G + j];
        if (!p && a.clip <= 0) {  // the common form, in one vector loop
          lstm_cell(g, c.data() + b * H, h.data() + b * H, H, a.input_forget);
          continue;
        }
        for (int64_t j = 0; j < H; ++j) {
          float& cc = c[static_cast<size_t>(b * H + j)];
          float gi = g[j], go = g[H + j], gf = g[2 * H + j], gc = g[3 * H + j];
          if (p) {
            gi += p[j] * cc;
            gf += p[2 * H + j] * cc;
          }
          if (a.clip > 0) {
            gi = std::clamp(gi, -a.clip, a.clip);
            gf = std::clamp(gf, -a.clip, a.clip);
            gc = std::clamp(gc, -a.clip, a.clip);
          }
          const float i_gate = sigmoid(gi);
          const float f_gate = a.input_forget ? 1.0f - i_gate : sigmoid(gf);
          cc = f_gate * cc + i_gate * std::tanh(gc);
          if (p) go += p[H + j] * cc;
          if (a.clip > 0) go = std::clamp(go, -a.clip, a.clip);
          h[static_cast<size_t>(b * H + j)] = sigmoid(go) * std::tanh(cc);
        }
      }
      if (y) std::copy(h.begin(), h.end(), y + (t * D + d) * Bn * H);
    }
    if (y_h) std::copy(h.begin(), h.end(), y_h + d * Bn * H);
    if (y_c) std::copy(c.begin(), c.end(), y_c + d * Bn * H);
  };
  const int threads = D == 2 && max_threads() > 1 ? 2 : 1;
  std::exception_ptr failure;
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t d = 0; d < D; ++d) {
    try {
      direction(d);
    } catch (...) {
#pragma omp critical(tunnx_quantized_lstm)
      failure = std::current_exception();
    }
  }
  if (failure) std::rethrow_exception(failure);
}

}  // namespace

void register_quantized_rnn_kernels(KernelRegistry& r) {
  KernelDef def;
  def.domain = "com.microsoft";
  def.op_type = "DynamicQuantizeLSTM";
  def.types = {DataType::kFloat32};
  def.name = "cpu/reference/DynamicQuantizeLSTM";
  def.factory = [](const KernelInit& init) {
    QuantizedLstmAttrs a;
    a.hidden = init.attr_int("hidden_size", 0);
    if (a.hidden <= 0) throw init.error("hidden_size must be positive, got " + std::to_string(a.hidden));
    a.direction = init.attr_string("direction", "forward");
    if (a.direction != "forward" && a.direction != "reverse" && a.direction != "bidirectional")
      throw init.error("direction must be forward, reverse or bidirectional, got \"" + a.direction + "\"");
    a.clip = init.attr_float("clip", 0.0f);
    a.input_forget = init.attr_int("input_forget", 0) != 0;
    const std::vector<std::string> acts = init.attr_strings("activations");
    for (size_t i = 0; i < acts.size(); ++i)
      if (acts[i] != (i % 3 == 0 ? "Sigmoid" : "Tanh"))
        throw init.error("activations other than Sigmoid, Tanh, Tanh are not supported, got " + acts[i]);
    auto caches = std::make_shared<const QuantizedLstmCaches>(init);
    return make_kernel([a, caches](KernelContext& ctx) { run_quantized_lstm(ctx, a, *caches); });
  };
  r.add(std::move(def));
}

}  // namespace tunnx::cpu
