// float32 LSTM and GRU on oneDNN's RNN primitives (lstm_forward; gru_forward, or lbr_gru_forward for
// linear_before_reset), one layer, each direction its own primitive. The reference kernel
// (kernels/rnn.cc) computes every step as scalar matrix-vector products on one thread; the primitives
// run the input projections of all steps as one product and the recurrent ones with JIT kernels.
//
// ONNX and oneDNN lay the weights out differently: ONNX W [dirs, G*H, I] and R [dirs, G*H, H] hold the
// gates in the order i, o, f, c (LSTM) or z, r, h (GRU), with two biases (Wb, Rb); oneDNN wants
// [I, G, H] (ldigo) with the LSTM gates in the order i, f, c, o (GRU's are ONNX's) and one bias (LBR
// GRU: four, the recurrent candidate bias apart). The converted weights are made once per version of
// W, R and B (a write to any of them remakes them), then packed into the layout the primitive picks
// (PackedWeights).
//
// What stays on the reference kernel: float64, peepholes, clip, input_forget, activations other than
// the defaults, layout 1, and sequence_lens that are not all the full length.
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
#include "runtime/cpu/onednn/packed_weights.h"

namespace tunnx::cpu::onednn {
namespace {

using Key = std::vector<int64_t>;

enum class Cell { kLstm, kGru, kLbrGru };

int64_t gates_of(Cell cell) { return cell == Cell::kLstm ? 4 : 3; }
int64_t bias_gates_of(Cell cell) { return cell == Cell::kGru ? 3 : 4; }

// oneDNN gate g is ONNX gate onnx_gate(g): LSTM's i, f, c, o are ONNX's 0, 2, 3, 1; GRU's are in order.
int64_t onnx_gate(Cell cell, int64_t g) {
  constexpr std::array<int64_t, 4> kLstm = {0, 2, 3, 1};
  return cell == Cell::kLstm ? kLstm[static_cast<size_t>(g)] : g;
}

struct RnnPrimitive {
  dnnl::primitive primitive;
  dnnl::memory::desc src_layer, state, weights_layer, weights_iter, bias, dst_layer, scratchpad;
  // SRC_LAYER, SRC_ITER, BIAS, DST_LAYER, DST_ITER[, SRC_ITER_C, DST_ITER_C]; the packed weights go
  // in as their memory objects.
  BoundPrimitive bound;
};

// One direction's weights in oneDNN's plain layouts (ldigo, ldgo), for one version of W, R, B, each
// product weight with its copies in the layouts primitives pick.
struct DirectionWeights {
  Tensor layer, iter;  // [1, 1, I or H, G, H]
  std::vector<float> bias;
  std::unique_ptr<PackedWeights> packed_layer, packed_iter;
};

struct ConvertedWeights {
  std::vector<std::pair<const void*, uint64_t>> sources;  // W, R, B (source_versions)
  std::vector<DirectionWeights> directions;
};

std::shared_ptr<ConvertedWeights> convert(Cell cell, const Tensor& w, const Tensor& r, const Tensor* b,
                                          int64_t dirs, int64_t hidden, int64_t input) {
  auto out = std::make_shared<ConvertedWeights>();
  const float* pw = data<float>(w);
  const float* pr = data<float>(r);
  const float* pb = b ? data<float>(*b) : nullptr;
  const int64_t H = hidden, I = input, G = gates_of(cell);
  for (int64_t d = 0; d < dirs; ++d) {
    DirectionWeights dw;
    dw.layer = Tensor::uninitialized(DataType::kFloat32, {1, 1, I, G, H});
    dw.iter = Tensor::uninitialized(DataType::kFloat32, {1, 1, H, G, H});
    float* layer = dw.layer.mutable_data_as<float>();
    float* iter = dw.iter.mutable_data_as<float>();
    dw.bias.assign(static_cast<size_t>(bias_gates_of(cell) * H), 0.0f);
    const float* bd = pb ? pb + d * 2 * G * H : nullptr;  // Wb [G*H], then Rb [G*H]
    for (int64_t g = 0; g < G; ++g) {
      const int64_t og = onnx_gate(cell, g);
      for (int64_t h = 0; h < H; ++h) {
        const float* wrow = pw + (d * G * H + og * H + h) * I;
        for (int64_t i = 0; i < I; ++i) layer[(i * G + g) * H + h] = wrow[i];
        const float* rrow = pr + (d * G * H + og * H + h) * H;
        for (int64_t k = 0; k < H; ++k) iter[(k * G + g) * H + h] = rrow[k];
        if (!bd) continue;
        // LBR GRU keeps the candidate's recurrent bias apart (it is multiplied by r): bias gate 3.
        if (cell == Cell::kLbrGru && g == 2) {
          dw.bias[static_cast<size_t>(2 * H + h)] = bd[og * H + h];
          dw.bias[static_cast<size_t>(3 * H + h)] = bd[G * H + og * H + h];
        } else {
          dw.bias[static_cast<size_t>(g * H + h)] = bd[og * H + h] + bd[G * H + og * H + h];
        }
      }
    }
    dw.packed_layer = std::make_unique<PackedWeights>(&dw.layer);
    dw.packed_iter = std::make_unique<PackedWeights>(&dw.iter);
    out->directions.push_back(std::move(dw));
  }
  return out;
}

class OnednnRnn : public Kernel {
 public:
  OnednnRnn(std::unique_ptr<Kernel> reference, Cell cell, int64_t dirs, bool reverse_only, int64_t hidden)
      : reference_(std::move(reference)), cell_(cell), dirs_(dirs), reverse_only_(reverse_only), hidden_(hidden) {}

  void run(KernelContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    const Tensor& w = ctx.input(1);
    const Tensor& r = ctx.input(2);
    const Tensor* b = ctx.has_input(3) ? &ctx.input(3) : nullptr;
    const bool lstm = cell_ == Cell::kLstm;
    const Tensor* h0 = ctx.has_input(5) ? &ctx.input(5) : nullptr;
    const Tensor* c0 = lstm && ctx.has_input(6) ? &ctx.input(6) : nullptr;
    if (x.dtype() != DataType::kFloat32 || w.dtype() != DataType::kFloat32 || r.dtype() != DataType::kFloat32 ||
        x.rank() != 3 || w.rank() != 3 || r.rank() != 3 || (lstm && ctx.has_input(7)) || x.numel() == 0)
      return reference_->run(ctx);
    const int64_t T = x.dims()[0], N = x.dims()[1], I = x.dims()[2], D = dirs_, G = gates_of(cell_);
    const int64_t H = hidden_ >= 0 ? hidden_ : r.dims()[2];
    const std::vector<int64_t> state_dims = {D, N, H};
    if (w.dims() != std::vector<int64_t>{D, G * H, I} || r.dims() != std::vector<int64_t>{D, G * H, H} ||
        (b && (b->dtype() != DataType::kFloat32 || b->dims() != std::vector<int64_t>{D, 2 * G * H})) ||
        (h0 && (h0->dtype() != DataType::kFloat32 || h0->dims() != state_dims)) ||
        (c0 && (c0->dtype() != DataType::kFloat32 || c0->dims() != state_dims)))
      return reference_->run(ctx);  // it reports the mismatch
    if (ctx.has_input(4)) {  // sequence_lens: only all full length is one primitive run
      const std::vector<int64_t> lens = read_int_values(ctx.input(4), ctx);
      if (static_cast<int64_t>(lens.size()) != N ||
          std::any_of(lens.begin(), lens.end(), [T](int64_t l) { return l != T; }))
        return reference_->run(ctx);
    }

    const double work = static_cast<double>(T * N) * static_cast<double>(G * H) * static_cast<double>(I + H);
    const SerialIfSmall serial(work);  // built and run for the same team
    const Key key = {T, N, I, H, team_for(work)};
    std::shared_ptr<const std::array<std::shared_ptr<const RnnPrimitive>, 2>> prims = cache_.find(key);
    if (!prims) {
      auto built = std::make_shared<std::array<std::shared_ptr<const RnnPrimitive>, 2>>();
      for (int64_t d = 0; d < D; ++d) {
        const bool right_to_left = reverse_only_ || d == 1;
        (*built)[static_cast<size_t>(d)] = build(cell_, T, N, I, H, right_to_left);
        if (!(*built)[static_cast<size_t>(d)]) return reference_->run(ctx);
      }
      prims = cache_.insert(key, std::move(built));
    }
    const std::shared_ptr<const ConvertedWeights> weights = converted(w, r, b, D, H, I);

    // Y [T, D, N, H]: one direction writes it in place; two write [T, N, H] each, copied in after.
    float* y = ctx.output_wanted(0) ? mutable_data<float>(ctx.allocate_output_uninitialized(0, DataType::kFloat32, {T, D, N, H})) : nullptr;
    float* y_h = ctx.output_wanted(1) ? mutable_data<float>(ctx.allocate_output_uninitialized(1, DataType::kFloat32, state_dims)) : nullptr;
    float* y_c = lstm && ctx.output_wanted(2) ? mutable_data<float>(ctx.allocate_output_uninitialized(2, DataType::kFloat32, state_dims)) : nullptr;
    // Scratch only for what the outputs do not hold: a zero initial state, a direction's Y of two, an
    // unwanted final state.
    const size_t state_floats = static_cast<size_t>(N * H), seq_floats = static_cast<size_t>(T * N * H);
    std::optional<HostScratch> zeros, layer_out, h_out, c_out;
    if (!h0 || (lstm && !c0)) {
      zeros.emplace(state_floats * sizeof(float));
      std::fill(zeros->data(), zeros->data() + state_floats, 0.0f);
    }
    if (!y || D > 1) layer_out.emplace(seq_floats * sizeof(float));
    if (!y_h) h_out.emplace(state_floats * sizeof(float));
    if (lstm && !y_c) c_out.emplace(state_floats * sizeof(float));
    for (int64_t d = 0; d < D; ++d) {
      const RnnPrimitive& p = *(*prims)[static_cast<size_t>(d)];
      const DirectionWeights& dw = weights->directions[static_cast<size_t>(d)];
      const auto layer = dw.packed_layer->get(dw.layer, plain_ldigo(p.weights_layer), p.weights_layer);
      const auto iter = dw.packed_iter->get(dw.iter, plain_ldigo(p.weights_iter), p.weights_iter);
      float* dst_layer = layer_out ? layer_out->data() : y;
      float* dst_h = y_h ? y_h + d * N * H : h_out->data();
      float* dst_c = y_c ? y_c + d * N * H : c_out ? c_out->data() : nullptr;
      const float* src_c = lstm ? (c0 ? data<float>(*c0) + d * N * H : zeros->data()) : nullptr;
      p.bound.run({data<float>(x), h0 ? data<float>(*h0) + d * N * H : zeros->data(), dw.bias.data(), dst_layer, dst_h,
                   src_c, dst_c},
                  {{DNNL_ARG_WEIGHTS_LAYER, *layer}, {DNNL_ARG_WEIGHTS_ITER, *iter}},
                  work);
      if (y && D > 1)
        for (int64_t t = 0; t < T; ++t)
          std::memcpy(y + (t * D + d) * N * H, layer_out->data() + t * N * H, state_floats * sizeof(float));
    }
  }

 private:
  static std::shared_ptr<const RnnPrimitive> build(Cell cell, int64_t T, int64_t N, int64_t I, int64_t H,
                                                   bool right_to_left) {
    using tag = dnnl::memory::format_tag;
    using dt = dnnl::memory::data_type;
    const int64_t G = gates_of(cell);
    auto built = std::make_shared<RnnPrimitive>();
    built->src_layer = dnnl::memory::desc({T, N, I}, dt::f32, tag::tnc);
    built->state = dnnl::memory::desc({1, 1, N, H}, dt::f32, tag::ldnc);
    built->bias = dnnl::memory::desc({1, 1, bias_gates_of(cell), H}, dt::f32, tag::ldgo);
    built->dst_layer = dnnl::memory::desc({T, N, H}, dt::f32, tag::tnc);
    const dnnl::memory::desc any_layer({1, 1, I, G, H}, dt::f32, tag::any), any_iter({1, 1, H, G, H}, dt::f32, tag::any);
    const auto kind = dnnl::prop_kind::forward_inference;
    const auto direction = right_to_left ? dnnl::rnn_direction::unidirectional_right2left
                                         : dnnl::rnn_direction::unidirectional_left2right;
    try {
      dnnl::primitive_attr attr;
      attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
      // Each primitive kind has its own descriptor types; what is kept is the same for all three. Unlike
      // other primitives, an RNN implementation named "ref" is kept: it is oneDNN's gemm-based RNN
      // (input projections of all steps in one sgemm), what GRU gets on oneDNN 2.6.
      auto keep = [&](const auto& pd, auto primitive) {
        built->weights_layer = pd.weights_layer_desc();
        built->weights_iter = pd.weights_iter_desc();
        built->scratchpad = pd.scratchpad_desc();
        built->primitive = primitive;
        return true;
      };
      bool ok = false;
      if (cell == Cell::kLstm) {
        dnnl::lstm_forward::primitive_desc pd(
            dnnl::lstm_forward::desc(kind, direction, built->src_layer, built->state, built->state, any_layer, any_iter,
                                     built->bias, built->dst_layer, built->state, built->state),
            attr, cpu_engine());
        ok = keep(pd, dnnl::lstm_forward(pd));
      } else if (cell == Cell::kGru) {
        dnnl::gru_forward::primitive_desc pd(
            dnnl::gru_forward::desc(kind, direction, built->src_layer, built->state, any_layer, any_iter, built->bias,
                                    built->dst_layer, built->state),
            attr, cpu_engine());
        ok = keep(pd, dnnl::gru_forward(pd));
      } else {
        dnnl::lbr_gru_forward::primitive_desc pd(
            dnnl::lbr_gru_forward::desc(kind, direction, built->src_layer, built->state, any_layer, any_iter,
                                        built->bias, built->dst_layer, built->state),
            attr, cpu_engine());
        ok = keep(pd, dnnl::lbr_gru_forward(pd));
      }
      if (!ok) return nullptr;
      std::vector<std::pair<int, dnnl::memory::desc>> args = {
          {DNNL_ARG_SRC_LAYER, built->src_layer}, {DNNL_ARG_SRC_ITER, built->state}, {DNNL_ARG_BIAS, built->bias},
          {DNNL_ARG_DST_LAYER, built->dst_layer}, {DNNL_ARG_DST_ITER, built->state}};
      if (cell == Cell::kLstm) {
        args.emplace_back(DNNL_ARG_SRC_ITER_C, built->state);
        args.emplace_back(DNNL_ARG_DST_ITER_C, built->state);
      }
      built->bound = BoundPrimitive(built->primitive, std::move(args), built->scratchpad);
    } catch (const dnnl::error&) {
      return nullptr;
    }
    return built;
  }

  // The converted weights for the current versions of W, R, B.
  std::shared_ptr<const ConvertedWeights> converted(const Tensor& w, const Tensor& r, const Tensor* b, int64_t D,
                                                    int64_t H, int64_t I) const {
    std::vector<std::pair<const void*, uint64_t>> sources = source_versions({&w, &r, b});
    std::lock_guard<std::mutex> lock(mutex_);
    if (!converted_ || converted_->sources != sources) {
      auto fresh = convert(cell_, w, r, b, D, H, I);
      fresh->sources = std::move(sources);
      converted_ = std::move(fresh);
    }
    return converted_;
  }

  // The plain ldigo descriptor of a primitive's weights (what the converted weights hold).
  static dnnl::memory::desc plain_ldigo(const dnnl::memory::desc& layout) {
    return dnnl::memory::desc(layout.dims(), dnnl::memory::data_type::f32, dnnl::memory::format_tag::ldigo);
  }

  std::unique_ptr<Kernel> reference_;
  Cell cell_;
  int64_t dirs_;
  bool reverse_only_;
  int64_t hidden_;
  mutable std::mutex mutex_;
  mutable std::shared_ptr<const ConvertedWeights> converted_;
  LruCache<Key, std::array<std::shared_ptr<const RnnPrimitive>, 2>> cache_{8};
};

// The fast kernel for an LSTM or GRU node whose attributes it computes as the reference does, else
// the reference kernel itself.
std::unique_ptr<Kernel> make_rnn(bool lstm, const KernelInit& init, std::unique_ptr<Kernel> reference) {
  const std::string direction = init.attr_string("direction", "forward");
  // The default activations: Sigmoid, Tanh, Tanh (LSTM) or Sigmoid, Tanh (GRU), per direction.
  const size_t per_direction = lstm ? 3 : 2;
  const std::vector<std::string> acts = init.attr_strings("activations");
  bool default_acts = true;
  for (size_t i = 0; i < acts.size(); ++i) {
    std::string lower = acts[i];
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
    default_acts = default_acts && lower == (i % per_direction == 0 ? "sigmoid" : "tanh");
  }
  if (init.has_attr("clip") || init.attr_int("input_forget", 0) != 0 || init.attr_int("layout", 0) != 0 ||
      !default_acts || init.has_attr("activation_alpha") || init.has_attr("activation_beta") ||
      (direction != "forward" && direction != "reverse" && direction != "bidirectional"))
    return reference;
  const Cell cell = lstm ? Cell::kLstm : init.attr_int("linear_before_reset", 0) != 0 ? Cell::kLbrGru : Cell::kGru;
  return std::make_unique<OnednnRnn>(std::move(reference), cell, direction == "bidirectional" ? 2 : 1,
                                     direction == "reverse", init.attr_int("hidden_size", -1));
}

}  // namespace

void register_onednn_rnn(KernelRegistry& registry) {
  add_fast_path(registry, "LSTM", [](const KernelInit& init, std::unique_ptr<Kernel> reference) {
    return make_rnn(true, init, std::move(reference));
  }, 14);
  add_fast_path(registry, "GRU", [](const KernelInit& init, std::unique_ptr<Kernel> reference) {
    return make_rnn(false, init, std::move(reference));
  }, 14);
}

}  // namespace tunnx::cpu::onednn
