// float32 LSTM on oneDNN's lstm_forward primitive (vanilla LSTM, one layer, each direction its own
// primitive). The reference kernel (kernels/rnn.cc) computes every step as scalar matrix-vector
// products on one thread; the primitive runs the input projections of all steps as one product and
// the recurrent ones with JIT kernels.
//
// ONNX and oneDNN lay the weights out differently: ONNX W [dirs, 4H, I] and R [dirs, 4H, H] hold the
// gates in the order i, o, f, c, with two biases (Wb, Rb); oneDNN wants [I, 4, H] (ldigo) with the
// gates in the order i, f, c, o and one bias. The converted weights are made once per version of W,
// R and B (a write to any of them remakes them), then reordered into the layout the primitive picks.
//
// What stays on the reference kernel: float64, peepholes, clip, input_forget, activations other than
// the defaults (Sigmoid, Tanh, Tanh), layout 1, and sequence_lens that are not all the full length.
#include <algorithm>
#include <array>
#include <cctype>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "runtime/cpu/kernels/common.h"
#include "runtime/cpu/onednn/onednn_common.h"

namespace tunnx::cpu::onednn {
namespace {

using Key = std::vector<int64_t>;

// oneDNN gate g (i, f, c, o) is ONNX gate kOnnxGate[g] (ONNX order i, o, f, c).
constexpr std::array<int64_t, 4> kOnnxGate = {0, 2, 3, 1};

struct LstmPrimitive {
  dnnl::lstm_forward primitive;
  dnnl::memory::desc src_layer, state, weights_layer, weights_iter, bias, dst_layer, scratchpad;
};

// One direction's weights in oneDNN's plain layouts (ldigo, ldgo), for one version of W, R, B.
struct DirectionWeights {
  std::vector<float> layer, iter, bias;
};

struct ConvertedWeights {
  std::vector<std::pair<const void*, uint64_t>> sources;  // W, R, B storage and version
  std::vector<DirectionWeights> directions;
  // Per direction, the weights in the layout the last primitive asked for.
  mutable std::mutex mutex;
  mutable std::vector<std::pair<std::shared_ptr<dnnl::memory>, std::shared_ptr<dnnl::memory>>> packed;
  mutable dnnl::memory::desc packed_layer, packed_iter;
};

std::shared_ptr<ConvertedWeights> convert(const Tensor& w, const Tensor& r, const Tensor* b, int64_t dirs,
                                          int64_t hidden, int64_t input) {
  auto out = std::make_shared<ConvertedWeights>();
  const float* pw = data<float>(w);
  const float* pr = data<float>(r);
  const float* pb = b ? data<float>(*b) : nullptr;
  const int64_t H = hidden, I = input;
  for (int64_t d = 0; d < dirs; ++d) {
    DirectionWeights dw;
    dw.layer.resize(static_cast<size_t>(I * 4 * H));
    dw.iter.resize(static_cast<size_t>(H * 4 * H));
    dw.bias.assign(static_cast<size_t>(4 * H), 0.0f);
    for (int64_t g = 0; g < 4; ++g) {
      const int64_t og = kOnnxGate[static_cast<size_t>(g)];
      for (int64_t h = 0; h < H; ++h) {
        const float* wrow = pw + (d * 4 * H + og * H + h) * I;
        for (int64_t i = 0; i < I; ++i) dw.layer[static_cast<size_t>((i * 4 + g) * H + h)] = wrow[i];
        const float* rrow = pr + (d * 4 * H + og * H + h) * H;
        for (int64_t k = 0; k < H; ++k) dw.iter[static_cast<size_t>((k * 4 + g) * H + h)] = rrow[k];
        if (pb) {
          const float* bd = pb + d * 8 * H;
          dw.bias[static_cast<size_t>(g * H + h)] = bd[og * H + h] + bd[4 * H + og * H + h];
        }
      }
    }
    out->directions.push_back(std::move(dw));
  }
  out->packed.resize(static_cast<size_t>(dirs));
  return out;
}

class OnednnLstm : public Kernel {
 public:
  OnednnLstm(std::unique_ptr<Kernel> reference, int64_t dirs, bool reverse_only, int64_t hidden)
      : reference_(std::move(reference)), dirs_(dirs), reverse_only_(reverse_only), hidden_(hidden) {}

  void run(KernelContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    const Tensor& w = ctx.input(1);
    const Tensor& r = ctx.input(2);
    const Tensor* b = ctx.has_input(3) ? &ctx.input(3) : nullptr;
    const Tensor* h0 = ctx.has_input(5) ? &ctx.input(5) : nullptr;
    const Tensor* c0 = ctx.has_input(6) ? &ctx.input(6) : nullptr;
    if (x.dtype() != DataType::kFloat32 || w.dtype() != DataType::kFloat32 || r.dtype() != DataType::kFloat32 ||
        x.rank() != 3 || w.rank() != 3 || r.rank() != 3 || ctx.has_input(7) || x.numel() == 0)
      return reference_->run(ctx);
    const int64_t T = x.dims()[0], N = x.dims()[1], I = x.dims()[2], D = dirs_;
    const int64_t H = hidden_ >= 0 ? hidden_ : r.dims()[2];
    const std::vector<int64_t> state_dims = {D, N, H};
    if (w.dims() != std::vector<int64_t>{D, 4 * H, I} || r.dims() != std::vector<int64_t>{D, 4 * H, H} ||
        (b && (b->dtype() != DataType::kFloat32 || b->dims() != std::vector<int64_t>{D, 8 * H})) ||
        (h0 && (h0->dtype() != DataType::kFloat32 || h0->dims() != state_dims)) ||
        (c0 && (c0->dtype() != DataType::kFloat32 || c0->dims() != state_dims)))
      return reference_->run(ctx);  // it reports the mismatch
    if (ctx.has_input(4)) {  // sequence_lens: only all full length is one primitive run
      const std::vector<int64_t> lens = read_int_values(ctx.input(4), ctx);
      if (static_cast<int64_t>(lens.size()) != N ||
          std::any_of(lens.begin(), lens.end(), [T](int64_t l) { return l != T; }))
        return reference_->run(ctx);
    }

    const Key key = {T, N, I, H};
    std::shared_ptr<const std::array<std::shared_ptr<const LstmPrimitive>, 2>> prims = cache_.find(key);
    if (!prims) {
      auto built = std::make_shared<std::array<std::shared_ptr<const LstmPrimitive>, 2>>();
      for (int64_t d = 0; d < D; ++d) {
        const bool right_to_left = reverse_only_ || d == 1;
        (*built)[static_cast<size_t>(d)] = build(T, N, I, H, right_to_left);
        if (!(*built)[static_cast<size_t>(d)]) return reference_->run(ctx);
      }
      prims = cache_.insert(key, std::move(built));
    }
    const std::shared_ptr<const ConvertedWeights> weights = converted(w, r, b, D, H, I);

    // Y [T, D, N, H]: one direction writes it in place; two write [T, N, H] each, copied in after.
    float* y = ctx.output_wanted(0) ? mutable_data<float>(ctx.allocate_output_uninitialized(0, DataType::kFloat32, {T, D, N, H})) : nullptr;
    float* y_h = ctx.output_wanted(1) ? mutable_data<float>(ctx.allocate_output_uninitialized(1, DataType::kFloat32, state_dims)) : nullptr;
    float* y_c = ctx.output_wanted(2) ? mutable_data<float>(ctx.allocate_output_uninitialized(2, DataType::kFloat32, state_dims)) : nullptr;
    const size_t state_floats = static_cast<size_t>(N * H), seq_floats = static_cast<size_t>(T * N * H);
    HostScratch zeros(state_floats * sizeof(float)), layer_out(seq_floats * sizeof(float)),
        h_out(state_floats * sizeof(float)), c_out(state_floats * sizeof(float));
    std::fill(zeros.data(), zeros.data() + state_floats, 0.0f);
    for (int64_t d = 0; d < D; ++d) {
      const LstmPrimitive& p = *(*prims)[static_cast<size_t>(d)];
      const auto [layer, iter] = packed(*weights, d, p);
      const DirectionWeights& dw = weights->directions[static_cast<size_t>(d)];
      float* dst_layer = y && D == 1 ? y : layer_out.data();
      float* dst_h = y_h ? y_h + d * N * H : h_out.data();
      float* dst_c = y_c ? y_c + d * N * H : c_out.data();
      std::unordered_map<int, dnnl::memory> args = {
          {DNNL_ARG_SRC_LAYER, wrap(p.src_layer, data<float>(x))},
          {DNNL_ARG_SRC_ITER, wrap(p.state, h0 ? data<float>(*h0) + d * N * H : zeros.data())},
          {DNNL_ARG_SRC_ITER_C, wrap(p.state, c0 ? data<float>(*c0) + d * N * H : zeros.data())},
          {DNNL_ARG_WEIGHTS_LAYER, *layer},
          {DNNL_ARG_WEIGHTS_ITER, *iter},
          {DNNL_ARG_BIAS, wrap(p.bias, dw.bias.data())},
          {DNNL_ARG_DST_LAYER, wrap(p.dst_layer, dst_layer)},
          {DNNL_ARG_DST_ITER, wrap(p.state, dst_h)},
          {DNNL_ARG_DST_ITER_C, wrap(p.state, dst_c)}};
      execute(p.primitive, p.scratchpad, std::move(args),
              static_cast<double>(T * N) * static_cast<double>(4 * H) * static_cast<double>(I + H));
      if (y && D > 1)
        for (int64_t t = 0; t < T; ++t)
          std::memcpy(y + (t * D + d) * N * H, layer_out.data() + t * N * H, state_floats * sizeof(float));
    }
  }

 private:
  static std::shared_ptr<const LstmPrimitive> build(int64_t T, int64_t N, int64_t I, int64_t H, bool right_to_left) {
    using tag = dnnl::memory::format_tag;
    using dt = dnnl::memory::data_type;
    auto built = std::make_shared<LstmPrimitive>();
    built->src_layer = dnnl::memory::desc({T, N, I}, dt::f32, tag::tnc);
    built->state = dnnl::memory::desc({1, 1, N, H}, dt::f32, tag::ldnc);
    built->bias = dnnl::memory::desc({1, 1, 4, H}, dt::f32, tag::ldgo);
    built->dst_layer = dnnl::memory::desc({T, N, H}, dt::f32, tag::tnc);
    const dnnl::memory::desc any_layer({1, 1, I, 4, H}, dt::f32, tag::any), any_iter({1, 1, H, 4, H}, dt::f32, tag::any);
    try {
      dnnl::primitive_attr attr;
      attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
      const auto direction = right_to_left ? dnnl::rnn_direction::unidirectional_right2left
                                           : dnnl::rnn_direction::unidirectional_left2right;
      dnnl::lstm_forward::desc desc(dnnl::prop_kind::forward_inference, direction, built->src_layer, built->state,
                                    built->state, any_layer, any_iter, built->bias, built->dst_layer, built->state,
                                    built->state);
      dnnl::lstm_forward::primitive_desc pd(desc, attr, cpu_engine());
      if (std::string(pd.impl_info_str()).rfind("ref", 0) == 0) return nullptr;
      built->weights_layer = pd.weights_layer_desc();
      built->weights_iter = pd.weights_iter_desc();
      built->scratchpad = pd.scratchpad_desc();
      built->primitive = dnnl::lstm_forward(pd);
    } catch (const dnnl::error&) {
      return nullptr;
    }
    return built;
  }

  // The converted weights for the current versions of W, R, B.
  std::shared_ptr<const ConvertedWeights> converted(const Tensor& w, const Tensor& r, const Tensor* b, int64_t D,
                                                    int64_t H, int64_t I) const {
    std::vector<std::pair<const void*, uint64_t>> sources = {{w.data(), w.version()}, {r.data(), r.version()}};
    if (b) sources.emplace_back(b->data(), b->version());
    std::lock_guard<std::mutex> lock(mutex_);
    if (!converted_ || converted_->sources != sources) {
      auto fresh = convert(w, r, b, D, H, I);
      fresh->sources = std::move(sources);
      converted_ = std::move(fresh);
    }
    return converted_;
  }

  // Direction d's weights in the layouts primitive `p` reads, reordered once per conversion and layout.
  static std::pair<std::shared_ptr<dnnl::memory>, std::shared_ptr<dnnl::memory>> packed(const ConvertedWeights& cw,
                                                                                        int64_t d, const LstmPrimitive& p) {
    using tag = dnnl::memory::format_tag;
    using dt = dnnl::memory::data_type;
    std::lock_guard<std::mutex> lock(cw.mutex);
    auto& slot = cw.packed[static_cast<size_t>(d)];
    if (slot.first && slot.first->get_desc() == p.weights_layer && slot.second->get_desc() == p.weights_iter) return slot;
    const DirectionWeights& dw = cw.directions[static_cast<size_t>(d)];
    const dnnl::memory::dims layer_dims = p.weights_layer.dims(), iter_dims = p.weights_iter.dims();
    const dnnl::memory::desc plain_layer(layer_dims, dt::f32, tag::ldigo), plain_iter(iter_dims, dt::f32, tag::ldigo);
    auto layer = std::make_shared<dnnl::memory>(p.weights_layer, cpu_engine());
    auto iter = std::make_shared<dnnl::memory>(p.weights_iter, cpu_engine());
    dnnl::stream stream(cpu_engine());
    dnnl::memory from_layer = wrap(plain_layer, dw.layer.data()), from_iter = wrap(plain_iter, dw.iter.data());
    dnnl::reorder(from_layer, *layer).execute(stream, from_layer, *layer);
    dnnl::reorder(from_iter, *iter).execute(stream, from_iter, *iter);
    stream.wait();
    slot = {layer, iter};
    return slot;
  }

  std::unique_ptr<Kernel> reference_;
  int64_t dirs_;
  bool reverse_only_;
  int64_t hidden_;
  mutable std::mutex mutex_;
  mutable std::shared_ptr<const ConvertedWeights> converted_;
  LruCache<Key, std::array<std::shared_ptr<const LstmPrimitive>, 2>> cache_{8};
};

}  // namespace

void register_onednn_rnn(KernelRegistry& registry) {
  add_fast_path(registry, "LSTM", [](const KernelInit& init, std::unique_ptr<Kernel> reference) -> std::unique_ptr<Kernel> {
    const std::string direction = init.attr_string("direction", "forward");
    const std::vector<std::string> acts = init.attr_strings("activations");
    const bool default_acts = acts.empty() || [&acts] {
      for (size_t i = 0; i < acts.size(); ++i) {
        std::string lower = acts[i];
        std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
        if (lower != (i % 3 == 0 ? "sigmoid" : "tanh")) return false;
      }
      return true;
    }();
    if (init.has_attr("clip") || init.attr_int("input_forget", 0) != 0 || init.attr_int("layout", 0) != 0 ||
        !default_acts || init.has_attr("activation_alpha") || init.has_attr("activation_beta") ||
        (direction != "forward" && direction != "reverse" && direction != "bidirectional"))
      return reference;
    return std::make_unique<OnednnLstm>(std::move(reference), direction == "bidirectional" ? 2 : 1,
                                        direction == "reverse", init.attr_int("hidden_size", -1));
  }, 14);
}

}  // namespace tunnx::cpu::onednn
