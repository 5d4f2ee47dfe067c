// float32 Conv (1-D, 2-D, 3-D; groups and depthwise, strides, dilations, pads, auto_pad) on oneDNN's
// convolution primitive, where the reference kernel is a single-threaded im2col and product. Shape
// rules and attribute parsing are the shared ones (runtime/core/ops/conv_pool.h): the geometry the
// reference computes is handed to oneDNN as is (its dilation is ONNX's minus one; its right padding is
// what makes the output size exact).
//
// The primitive picks its own layouts (format `any`): blocked weights always, and for activations
// NHWC (brgconv on AVX-512) or nChw8c/16c (older kernels). Activations lie in NCHW, or in NHWC for
// com.tunnx:FusedConv with channels_last (runtime/core/passes/channels_last.h, which keeps them NHWC
// between convolutions), or in nChw16c between two Winograd convolutions (x_channel_block and
// y_channel_block: runtime/core/passes/channel_blocks.h); they are reordered only when the primitive
// wants another layout. Constant
// weights are packed once per weight version (packed_weights.h), as the Linear path does, and a
// weight rewritten every run (training) is reordered per run. FusedConv also folds a
// BatchNormalization into the weights (refolded when a source's version moves), adds a residual as a
// sum post-op and its activation as eltwise post-ops. A geometry only oneDNN's reference implementation takes, other dtypes and
// anything the shared rules reject run the reference kernel, which reports errors in its words.
#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <unistd.h>

#include "runtime/core/ops/conv_pool.h"
#include "runtime/cpu/kernels/common.h"
#include "runtime/cpu/onednn/blocked_reorder.h"
#include "runtime/cpu/onednn/onednn_common.h"
#include "runtime/cpu/onednn/packed_weights.h"
#include "runtime/cpu/onednn/panel_linear.h"
#include "runtime/cpu/onednn/winograd_weights.h"

namespace tunnx::cpu::onednn {
namespace {

using Key = std::vector<int64_t>;

struct ConvPrimitive : PickedLayouts {
  dnnl::primitive primitive;  // a convolution, or a matmul for a pointwise one (build_as_product)
  std::optional<Reorder> dst_in;  // FusedConv's residual into the primitive's dst layout
  // A Winograd convolution's activation where it takes none as a post-op: applied as Y leaves the
  // primitive's blocked layout (activation_on_reorder, finish_activated), or else by eltwise
  // primitives run in place on its destination, in the destination's layout.
  bool activation_on_reorder = false;
  // With activation_on_reorder: FusedConv's residual Z is added there too (before or after the
  // activation, as the node says), not copied into dst for a sum post-op (residual_on_reorder).
  bool residual_on_reorder = false;
  std::vector<dnnl::eltwise_forward> activation;
};

// Whether a convolution is one to try on Winograd's algorithm: 2-D, 3x3, stride 1, undilated, one
// group, at least 32 input and output channels. oneDNN's F(2x2,3x3) and F(4x4,3x3) kernels
// (AVX-512) multiply 2.25-4x less than the direct form; measured on ResNet-18 and YOLOv8n shapes
// they ran 1.3-3x faster than brgconv (1.3x at 7x7, 1.7-2x at 56x56 with 64 channels, 3x at 20x20
// with 128), but slower with 16 or fewer channels: YOLOv8n's 16 -> 16 at 160x160 took 1.5 ms plus
// 0.4 to reorder its input to nChw16c and its output back, where brgconv took 1.0, and its
// transformed tiles (~7 MB of scratch) cost its first run 3.3 ms more in page faults (YOLOv8n at 1
// thread with 32 as the floor, 8 alternating runs: first result 4.6 ms sooner, median 1 ms less).
// Its weights are transformed once (winograd_weights.h, every layout oneDNN 2.6 gives; its own
// wino_reorder took 20-40 ns a weight, single-threaded: 45 ms for 512x512x3x3). Below 14x14 outputs
// the form is not taken: ResNet-18's 256 -> 256 layers at 14x14 ran 1.2 ms against brgconv's 1.4 at
// 1 thread (0.50 against 0.72 at 2), but its 512 -> 512 ones at 7x7, where F(2x2)'s 4x4 tiles cover
// 8x8, as fast as brgconv (2.0 ms, 0.9-0.96 at 2) with weights 1.8x the direct form's (16.7 MB a
// layer, which a Winograd convolution also keeps its original of). Results differ from the direct
// form by rounding, ~1e-6 of the output's scale. Only com.tunnx:FusedConv (optimization level 2)
// takes it; a plain Conv stays direct.
bool winograd_fits(const ops::ConvGeometry& g, const std::vector<int64_t>& w_dims) {
  if (g.grid.size() != 2 || g.group != 1 || w_dims.size() != 4 || w_dims[0] < 32 || w_dims[1] < 32) return false;
  if (g.grid[0] * g.grid[1] < 14 * 14) return false;
  for (size_t d = 0; d < 2; ++d)
    if (g.kernel[d] != 3 || g.strides[d] != 1 || g.dilations[d] != 1) return false;
  return true;
}

// KernelDef::channel_block_for of FusedConv: 16 for a convolution winograd_fits takes, with whole
// blocks of 16 channels in and out, where oneDNN has its Winograd kernels (AVX-512: they read and write
// nChw16c), else 0. Two such convolutions in a row then hand each other nChw16c, with no reorder to
// channels-last and back between them (runtime/core/passes/channel_blocks.h). Writing, only with no
// activation or a Relu (the one eltwise post-op oneDNN 2.6's Winograd kernels take) and no affine
// maps: another activation is applied as the output is reordered to channels-last (finish_activated),
// and a separate pass over a blocked output cost YOLOv8n more than the reorders saved (62.2-62.7 ms
// against 62.9-63.3 at 1 thread, with its 16 SiLU convolutions handing on blocks).
int64_t winograd_channel_block(const ir::Node& node, const ops::ConvGeometry& g, bool writes) {
  if (writes) {
    const std::optional<ops::FusedConvAttrs> attrs = ops::fused_conv_attrs(node, nullptr);
    using Kind = ops::Activation::Kind;
    if (!attrs || !(attrs->activation.kind == Kind::kNone || attrs->activation.kind == Kind::kRelu)) return 0;
    for (size_t i = ops::kFusedConvAffineInput; i < node.inputs.size(); ++i)
      if (!node.inputs[i].empty()) return 0;
  }
  // The ISAs are bit sets, each holding those below it (avx2_vnni is numerically above avx512_core).
  static const bool avx512 = [] {
    const auto isa = static_cast<unsigned>(dnnl::get_effective_cpu_isa()), core = static_cast<unsigned>(dnnl::cpu_isa::avx512_core);
    return (isa & core) == core;
  }();
  std::vector<int64_t> w_dims = {g.out_channels, g.group > 0 ? g.in_channels / g.group : 0};
  w_dims.insert(w_dims.end(), g.kernel.begin(), g.kernel.end());
  if (!avx512 || g.in_channels % 16 != 0 || g.out_channels % 16 != 0 || !winograd_fits(g, w_dims)) return 0;
  return 16;
}

// The primitive descriptors oneDNN gave (or refused: nothing) for a convolution's parameters, shared
// by every convolution kernel of the process. A network repeats its layers' shapes, and each
// descriptor took ~0.1 ms to make, oneDNN walking its implementations (to the end, to fail, for a
// Winograd one with an activation it takes no post-op for): 96 of them, 9 ms of YOLOv8n's session at
// 1 thread, of which 39 are repeats. Keyed by all that describe() reads (description_key).
using Described = std::optional<dnnl::convolution_forward::primitive_desc>;
const LruCache<std::string, Described>& described_convolutions() {
  static const LruCache<std::string, Described> cache(256);
  return cache;
}

// The key of a description: the algorithm, the post-ops, whether X is offered as it lies (NCHW) and
// whether oneDNN's reference implementation will do, the dims, the geometry (strides, dilations,
// pads) and the team oneDNN sizes its blocking for.
std::string description_key(dnnl::algorithm algorithm, const dnnl::post_ops& post_ops, bool source_as_it_lies,
                            bool any_implementation, const std::vector<int64_t>& x, const std::vector<int64_t>& w,
                            bool has_bias, const std::vector<int64_t>& y,
                            const std::array<dnnl::memory::dims, 4>& geometry) {
  std::string key = std::to_string(static_cast<int>(algorithm)) + (source_as_it_lies ? "L" : "A") +
                    (any_implementation ? "R" : "F") + (has_bias ? "B" : "N") + "t" + std::to_string(max_threads());
  auto add = [&key](const char* tag, const std::vector<int64_t>& values) {
    key += tag;
    for (int64_t v : values) key += std::to_string(v) + ",";
  };
  add("x", x);
  add("w", w);
  add("y", y);
  for (const dnnl::memory::dims& g : geometry) add("g", g);
  for (int i = 0; i < post_ops.len(); ++i) {
    float scale = 0, alpha = 0, beta = 0;
    dnnl::algorithm a = dnnl::algorithm::undef;
    dnnl::memory::desc operand;
    switch (post_ops.kind(i)) {
      case dnnl::primitive::kind::sum: post_ops.get_params_sum(i, scale); key += "s" + std::to_string(scale); break;
      case dnnl::primitive::kind::eltwise:
        post_ops.get_params_eltwise(i, scale, a, alpha, beta);
        key += "e" + std::to_string(static_cast<int>(a)) + ":" + std::to_string(alpha) + ":" + std::to_string(beta) +
               ":" + std::to_string(scale);
        break;
      case dnnl::primitive::kind::binary:
        post_ops.get_params_binary(i, a, operand);
        add(("b" + std::to_string(static_cast<int>(a))).c_str(), operand.dims());
        break;
      default: key += "?" + std::to_string(static_cast<int>(post_ops.kind(i)));
    }
  }
  return key;
}

bool implemented_by(const dnnl::convolution_forward::primitive_desc& pd, const char* prefix) {
  return std::string(pd.impl_info_str()).rfind(prefix, 0) == 0;
}

// `pd` moved on to the implementation named `wanted` where oneDNN lists one after its choice (and,
// with `instead_of`, only when its choice is that one); left as it is otherwise.
void prefer_implementation(dnnl::convolution_forward::primitive_desc& pd, const char* wanted,
                           const char* instead_of = nullptr) {
  if (implemented_by(pd, wanted) || (instead_of && !implemented_by(pd, instead_of))) return;
  dnnl::convolution_forward::primitive_desc next = pd;  // shares pd's iterator, not pd's choice
  while (next.next_impl())
    if (implemented_by(next, wanted)) {
      pd = next;
      return;
    }
}

// The L2 of one core in bytes (glibc's reading of cpuid), 1 MiB where the system does not say.
int64_t l2_bytes_per_core() {
  static const int64_t bytes = [] {
    const long l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
    return l2 > 0 ? static_cast<int64_t>(l2) : int64_t{1} << 20;
  }();
  return bytes;
}

// Two choices of oneDNN 2.6 that measured slower than a kernel it lists after them, on AVX-512:
// - A depthwise convolution runs on jit_dw rather than brdgmm_dw, on every depthwise layer of
//   MobileNetV3-small at one thread (16 channels 112 -> 56, 3x3 stride 2: 0.031 ms against jit_dw's
//   0.016; 88 channels 28x28 3x3: 0.038 against 0.023; 240 channels 14x14 5x5: 0.035 against 0.025);
//   all eleven took 0.274 ms at 1 thread and 0.221 after, 0.201 and 0.180 at 2.
// - Winograd runs F(4x4, 3x3) rather than F(2x2, 3x3) where its transformed weights (36 floats,
//   144 bytes, for each pair of input and output channels) fit in a core's L2. Otherwise a network
//   reads them from beyond the L2 on every run, and F(2x2)'s, 2.25x smaller, ran faster: on a Xeon
//   with 2 MiB of L2, ResNet-18's 128 -> 128 layers at 28x28 (2.4 MB) took F(2x2)
//   0.90-0.96 ms against 0.98-1.00 at 1 thread and 0.52-0.53 against 0.59-0.61 at 2, while its
//   64 -> 64 ones at 56x56 (0.6 MB) took 0.80-0.83 against F(2x2)'s 0.94-0.96 at 1 thread. On an
//   AMD EPYC with 1 MiB, every 3x3 layer of YOLOv8n's that oneDNN gave F(2x2) (all under 1 MB)
//   ran faster on F(4x4), at 1 and 2 threads (64 -> 64 channels at 40x40: 0.548 against 0.388 ms
//   at 1 thread, 0.270 against 0.193 at 2; 32 -> 32 at 80x80: 0.664 / 0.507 and 0.292 / 0.254;
//   80 -> 80 at 40x40: 0.771 / 0.516 and 0.386 / 0.282). Its scratchpad is larger (7-10 MB against
//   under 1), but the layers oneDNN gives F(4x4) anyway take as much, and one scratchpad serves each
//   in turn.
void prefer_faster_implementation(dnnl::convolution_forward::primitive_desc& pd, bool depthwise,
                                  dnnl::algorithm algorithm, int64_t channel_pairs) {
  if (reference_only(pd)) return;
  if (depthwise) prefer_implementation(pd, "jit_dw:", "brdgmm");
  if (algorithm == dnnl::algorithm::convolution_winograd && channel_pairs * 144 <= l2_bytes_per_core())
    prefer_implementation(pd, "jit_wino_4x3");
}

// Weights and bias with a BatchNormalization folded in: W'[c] = W[c] s[c], B'[c] = (B[c] - mean[c])
// s[c] + bn_bias[c], s = scale / sqrt(var + epsilon) (in double). Kept while every source is the same
// storage at the same version, so a Parameter or running statistic that changes refolds them. W' is
// made from W and s when a primitive needs it and kept only while one reads it as it lies: once
// reordered into a primitive's layout the plain copy is dropped (a detector's every convolution
// has a folded BatchNormalization: YOLOv8n held its 12.6 MB of weights three times). Once the session
// freed W (SessionOptions::release_packed_originals), W' is read back from `reversible` instead.
struct FoldedWeights {
  std::vector<std::pair<const void*, uint64_t>> sources;  // W, B (or null), scale, bn_bias, mean, var
  std::vector<double> scale;                              // s, per output channel
  Tensor bias;
  mutable std::mutex mutex;
  mutable Tensor weights;                              // W', while a primitive reads it plain
  mutable std::shared_ptr<const dnnl::memory> packed;  // W' in the layout a primitive reads
  // A packed W' a reorder reads back (`packed` itself unless that is Winograd's), and W' as it lies in
  // that primitive's dims. Kept apart from `packed` only after W is freed: before, W folds again.
  mutable std::shared_ptr<const dnnl::memory> reversible;
  mutable dnnl::memory::desc reversible_plain;

  bool holds_reversible_copy() const {
    std::lock_guard<std::mutex> lock(mutex);
    return weights.numel() > 0 || reversible;
  }

  // W' of `dims` read back from `reversible` (mutex held).
  Tensor restored(const std::vector<int64_t>& dims) const {
    if (!reversible) throw Error(ErrorCode::kInternal, "a freed weight has no copy that a reorder reads back");
    Tensor out = Tensor::uninitialized(DataType::kFloat32, dims);
    reorder_into(*reversible, wrap(reversible_plain, out.mutable_data_as<float>()));
    return out;
  }

  // W' for `w` (the source W).
  Tensor fold_weights(const Tensor& w) const {
    Tensor out = Tensor::uninitialized(DataType::kFloat32, w.dims());
    const int64_t channels = w.dims()[0], per_channel = w.numel() / channels;
    const float* pw = data<float>(w);
    float* fw = out.mutable_data_as<float>();
    for (int64_t c = 0; c < channels; ++c)
      for (int64_t i = 0; i < per_channel; ++i)
        fw[c * per_channel + i] = static_cast<float>(pw[c * per_channel + i] * scale[static_cast<size_t>(c)]);
    return out;
  }
};

std::shared_ptr<FoldedWeights> fold_batch_norm(const Tensor& w, const Tensor* b, const Tensor* bn[4], float epsilon) {
  auto f = std::make_shared<FoldedWeights>();
  f->sources = source_versions({&w, b, bn[0], bn[1], bn[2], bn[3]});
  const int64_t channels = w.dims()[0];
  f->bias = Tensor::uninitialized(DataType::kFloat32, {channels});
  const float *scale = data<float>(*bn[0]), *shift = data<float>(*bn[1]);
  const float *mean = data<float>(*bn[2]), *var = data<float>(*bn[3]);
  float* fb = f->bias.mutable_data_as<float>();
  f->scale.resize(static_cast<size_t>(channels));
  for (int64_t c = 0; c < channels; ++c) {
    const double s = scale[c] / std::sqrt(static_cast<double>(var[c]) + epsilon);
    f->scale[static_cast<size_t>(c)] = s;
    fb[c] = static_cast<float>(((b ? data<float>(*b)[c] : 0.0f) - mean[c]) * s + shift[c]);
  }
  return f;
}

class OnednnConv : public Kernel {
 public:
  // `fused`: a com.tunnx:FusedConv node's BatchNormalization, residual and activation (its post-ops
  // must be ones append_activation takes); nothing for a plain Conv.
  OnednnConv(std::unique_ptr<Kernel> reference, ops::ConvAttrs attrs, const KernelInit& init,
             std::optional<ops::FusedConvAttrs> fused = std::nullopt)
      : reference_(std::move(reference)),
        attrs_(std::move(attrs)),
        fused_(fused),
        packed_(init.constant_input(1), init.trained_input(1)) {
    // What may be freed once copies are held: W, and with a folded BatchNormalization also B and its
    // four inputs (the folded copies hold all of them), when all are constants no optimizer writes.
    const bool folds = fused_ && fused_->has_bn;
    releasable_ = init.constant_input(1) && init.input_type(1) == DataType::kFloat32 && !init.trained_input(1);
    for (size_t i = 2; folds && i <= 6; ++i) {
      if (i == 2 && !init.has_input(2)) continue;
      releasable_ = releasable_ && init.constant_input(i) && !init.trained_input(i);
    }
    if (folds)
      for (size_t i = 1; i <= 6; ++i) fold_sources_.push_back(init.has_input(i) ? init.constant_input(i) : nullptr);
    for (size_t i = 0; i < 4; ++i) affine_present_[i] = fused_ && init.has_input(ops::kFusedConvAffineInput + i);
    weight_ = init.constant_input(1);
    bias_present_ = init.has_input(2);
    bias_ = init.constant_input(2);
  }

  ConstantUse constant_use(size_t input) const override {
    const bool folds = fused_ && fused_->has_bn;
    if (!releasable_ || !(input == 1 || (folds && input >= 2 && input <= 6))) return ConstantUse::kReadsIt;
    if (!folds) return packed_.holds_reversible_copy() ? ConstantUse::kHoldsCopies : ConstantUse::kNotYet;
    if (frozen_.load(std::memory_order_acquire)) return ConstantUse::kHoldsCopies;
    std::lock_guard<std::mutex> lock(folded_mutex_);
    // The copies must be of the constants' current values (a run the reference took leaves them as
    // they were).
    const bool current = folded_ && folded_->sources == source_versions(fold_sources_);
    return current && folded_->holds_reversible_copy() ? ConstantUse::kHoldsCopies : ConstantUse::kNotYet;
  }

  void release_constant(size_t input, const Tensor& stand_in) override {
    if (input == 1) packed_.release(stand_in);  // folded: it holds no copies, only W's handle
    frozen_.store(true, std::memory_order_release);
  }

  // The primitive for the input dims the session knows, and W (with a BatchNormalization folded in)
  // packed into its layout, as the first run of those dims would make them.
  bool prepare(const KernelPrepare& inputs) const override {
    const auto& dims = inputs.input_dims;
    if (dims.size() < 2 || !dims[0] || !dims[1] || !weight_ || weight_->dtype() != DataType::kFloat32 ||
        *dims[1] != weight_->dims() || dims[0]->size() < 3 || dims[0]->size() > 5 || dims[0]->size() != dims[1]->size() ||
        product(*dims[0]) == 0 || weight_->numel() == 0)
      return false;
    const Tensor* bias = bias_present_ ? bias_ : nullptr;
    if (bias_present_ && (!bias || bias->dtype() != DataType::kFloat32 || bias->rank() != 1)) return false;
    std::shared_ptr<const ShapePlan> plan = shape_plan(*dims[0], *dims[1], bias ? bias->numel() : -1);
    if (!plan || product(plan->y_dims) == 0) return false;
    if (plan->panel_rows > 0) {
      panel_.prepare(*weight_, plan->panel_rows, plan->geometry.in_channels, plan->geometry.out_channels);
      return true;
    }
    const bool folds = fused_ && fused_->has_bn;
    const SerialIfSmall serial(plan->work);  // built for the team runs of this size get
    std::shared_ptr<const ConvPrimitive> p = primitive_for(plan, bias || folds, false);
    if (!p) return false;
    if (folds) {
      // Folded only from constants: a fed or computed statistic is seen at the first run.
      for (const Tensor* t : fold_sources_)
        if (t && t->dtype() != DataType::kFloat32) return true;
      if (!fold_sources_[0] || (bias_present_ && !fold_sources_[1]) ||
          std::any_of(fold_sources_.begin() + 2, fold_sources_.end(), [&](const Tensor* t) {
            return !t || t->numel() != plan->geometry.out_channels;
          }))
        return true;  // the primitive alone: the first run folds
      const Tensor* bn[4] = {fold_sources_[2], fold_sources_[3], fold_sources_[4], fold_sources_[5]};
      std::shared_ptr<const FoldedWeights> folded = folded_for(*weight_, fold_sources_[1], bn);
      if (p->weights_in) packed_folded(*folded, *weight_, *p, false);
      else plain_folded(*folded, *weight_, false);
    } else if (!packed_.trained_by_plan()) {
      packed_.get(*weight_, p->weights_plain, p->weights);
    }
    return true;
  }

  void run(KernelContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    const Tensor* w = &ctx.input(1);
    const Tensor* bias = ctx.has_input(2) ? &ctx.input(2) : nullptr;
    const Tensor* residual = fused_ && fused_->has_residual ? &ctx.input(7) : nullptr;
    // With W freed and only W' held, nothing is left for the reference kernel to read: an empty
    // output is made here, and a shape oneDNN has only its reference implementation for runs on it.
    const bool only_folded = frozen_.load(std::memory_order_acquire) && fused_ && fused_->has_bn;
    if (x.dtype() != DataType::kFloat32 || w->dtype() != DataType::kFloat32 ||
        (bias && (bias->dtype() != DataType::kFloat32 || bias->rank() != 1)) || x.rank() < 3 || x.rank() > 5 ||
        w->rank() != x.rank() || (x.numel() == 0 && !only_folded) || w->numel() == 0)
      return fallback(ctx);
    const std::array<const float*, 4> affines = fused_ ? fused_conv_affine_inputs(ctx) : std::array<const float*, 4>{};
    std::shared_ptr<const ShapePlan> plan = shape_plan(x.dims(), w->dims(), bias ? bias->numel() : -1);
    if (!plan) return fallback(ctx);  // it reports the error
    if (product(plan->y_dims) == 0) {
      if (!only_folded) return fallback(ctx);
      ctx.allocate_output(0, DataType::kFloat32, plan->out_dims);
      return;
    }
    const std::vector<int64_t>& out_dims = plan->out_dims;
    const int64_t out_channels = plan->geometry.out_channels;
    if (plan->panel_rows > 0 && packed_.is_constant(*w)) return run_on_panels(ctx, x, *w, bias, *plan);
    if (residual && (residual->dtype() != DataType::kFloat32 || residual->dims() != out_dims)) return fallback(ctx);
    std::shared_ptr<const FoldedWeights> folded;
    if (fused_ && fused_->has_bn) {
      const Tensor* bn[4];
      for (size_t i = 0; i < 4; ++i) {
        bn[i] = &ctx.input(3 + i);
        if (bn[i]->dtype() != DataType::kFloat32 || bn[i]->numel() != out_channels) return fallback(ctx);
      }
      folded = only_folded ? frozen_folded() : folded_for(*w, bias, bn);
      bias = &folded->bias;
    }

    const double work = plan->work;
    const SerialIfSmall serial(work);  // built and run for the same team
    std::shared_ptr<const ConvPrimitive> p = primitive_for(plan, bias != nullptr, only_folded);
    if (!p) return fallback(ctx);

    Tensor& y = ctx.allocate_output_uninitialized(0, DataType::kFloat32, out_dims);
    std::optional<HostScratch> src_block, weights_block, dst_block;
    void* src = p->source(data<float>(x), src_block);
    // Weights: packed once per version for a constant, reordered per run for a trained or fed one.
    std::shared_ptr<const dnnl::memory> packed;
    void* weights = nullptr;
    if (folded && p->weights_in) {
      packed = packed_folded(*folded, *w, *p, only_folded);
    } else if (folded) {
      weights = plain_folded(*folded, *w, only_folded);
    } else if (packed_.is_constant(*w) && !packed_.rewritten_every_run(*w)) {
      packed = packed_.get(*w, p->weights_plain, p->weights);
    } else {
      weights = p->weights_for_run(data<float>(*w), weights_block);
    }
    void* dst = p->destination(mutable_data<float>(y), dst_block);
    if (residual && !p->residual_on_reorder) {  // what the sum post-op adds: Z, in the dst layout
      if (p->dst_in) {
        p->dst_in->run(data<float>(*residual), static_cast<float*>(dst));
      } else {  // Z lies as the primitive's dst does
        std::copy(data<float>(*residual), data<float>(*residual) + residual->numel(), static_cast<float*>(dst));
      }
    }
    // Packed weights go in as their memory object: setting a blocked layout's handle zero-fills its
    // padding, a write to weights other runs read.
    const void* b = bias ? data<float>(*bias) : nullptr;
    if (packed)
      p->bound.run({src, nullptr, dst, b, affines[0], affines[1], affines[2], affines[3]}, {{DNNL_ARG_WEIGHTS, *packed}}, work);
    else
      p->bound.run({src, weights, dst, b, affines[0], affines[1], affines[2], affines[3]}, {}, work);
    if (p->activation_on_reorder)
      return finish_activated(*p, dst, mutable_data<float>(y), p->residual_on_reorder ? data<float>(*residual) : nullptr);
    for (const dnnl::eltwise_forward& activation : p->activation) {
      dnnl::memory in_place = wrap(p->dst, static_cast<float*>(dst));
      run_on(activation, dnnl::memory::desc(), {{DNNL_ARG_SRC, in_place}, {DNNL_ARG_DST, in_place}});
    }
    p->finish(dst, mutable_data<float>(y));
  }

  // Y from the blocked `dst` of a primitive that took no activation (Winograd's), the activation
  // applied to each stretch of Y as the reorder writes it, while it is in the cache. As separate
  // passes, oneDNN's swish on YOLOv8n's Winograd outputs read them back from memory: 0.47 ms for
  // 64 x 80 x 80 at 1 thread (0.17 in cache), 5.3 ms a run in all, besides the reorders.
  // With `residual` (residual_on_reorder), Z is added to each stretch there too, before or after the
  // activation as the node says (Z lies as Y does).
  void finish_activated(const ConvPrimitive& p, const void* dst, float* y, const float* residual = nullptr) const {
    const ops::Activation& act = fused_->activation;
    const bool after = fused_->residual_after_activation;
    const auto add_residual = [residual, y](float* v, int64_t n) {
      const float* z = residual + (v - y);
      for (int64_t i = 0; i < n; ++i) v[i] += z[i];
    };
    const auto apply = [&](float* v, int64_t n) {
      if (residual && !after) add_residual(v, n);
      apply_activation(act, v, n);
      if (residual && after) add_residual(v, n);
    };
    if (!channel_block_reorder(p.dst, static_cast<const float*>(dst), p.dst_plain, y, apply))
      throw Error(ErrorCode::kInternal, "a convolution's output reorder declined the layouts it took when built");
  }

 private:
  // The primitive for one shape, or null when oneDNN has only its reference implementation for it
  // (unless `any_implementation`).
  std::shared_ptr<ConvPrimitive> build(ops::ConvGeometry g, std::vector<int64_t> x_dims, std::vector<int64_t> w_dims,
                                       std::vector<int64_t> y_dims, bool has_bias, bool channels_last,
                                       bool any_implementation) const {
    std::array<int, 4> affine_args{};
    // A spatial dim of size 1 that a size-1 kernel reads unpadded (tf2onnx writes 1-D convolutions
    // as [N, C, L, 1]) leaves the plain memory as it is: dropped, oneDNN runs the 1-D convolution,
    // measured 2-3x faster than its 2-D kernel on such a shape.
    // Channels-last memory is the same without it too ([N, L, 1, C] is [N, L, C]).
    for (size_t d = g.grid.size(); d-- > 0 && g.grid.size() > 1;) {
      if (g.image[d] != 1 || g.kernel[d] != 1 || g.grid[d] != 1 || g.pad_begin[d] != 0) continue;
      for (auto* v : {&g.image, &g.grid, &g.kernel, &g.strides, &g.dilations, &g.pad_begin})
        v->erase(v->begin() + static_cast<std::ptrdiff_t>(d));
      for (auto* v : {&x_dims, &w_dims, &y_dims}) v->erase(v->begin() + static_cast<std::ptrdiff_t>(d + 2));
    }
    const size_t nd = g.grid.size();
    if (std::shared_ptr<ConvPrimitive> product = build_as_product(g, y_dims, has_bias)) return product;
    const PostOps post = post_ops_for(static_cast<int>(nd + 2), affine_args);
    dnnl::memory::dims strides(nd), dilates(nd), pad_l(nd), pad_r(nd);
    for (size_t d = 0; d < nd; ++d) {
      strides[d] = g.strides[d];
      dilates[d] = g.dilations[d] - 1;
      pad_l[d] = g.pad_begin[d];
      // What makes oneDNN's output size exactly the grid: never below 0, as a floor division in the
      // shape rule may drop the last positions.
      pad_r[d] = std::max<int64_t>(0, (g.grid[d] - 1) * g.strides[d] + (g.kernel[d] - 1) * g.dilations[d] + 1 -
                                          g.image[d] - g.pad_begin[d]);
    }
    std::vector<int64_t> weight_dims = w_dims;
    if (g.group > 1) {  // (M, C/G, k...) is (G, M/G, C/G, k...) in the same memory
      weight_dims.insert(weight_dims.begin(), g.group);
      weight_dims[1] = g.out_channels / g.group;
    }
    auto built = std::make_shared<ConvPrimitive>();
    // The layouts the tensors lie in: NCHW, or channels-last (NWC, NHWC, NDHWC).
    const bool source_first = channels_last && fused_->channels_first_source;
    built->src_plain = fused_ && fused_->x_channel_block ? channel_blocked_f32(x_dims, fused_->x_channel_block)
                                                        : activation_f32(x_dims, channels_last && !source_first);
    built->weights_plain = plain_f32(weight_dims);
    built->dst_plain = fused_ && fused_->y_channel_block ? channel_blocked_f32(y_dims, fused_->y_channel_block)
                                                        : activation_f32(y_dims, channels_last);
    // FusedConv's residual Z lies channels-last (or channels-first) whatever Y's block.
    const dnnl::memory::desc residual_plain = activation_f32(y_dims, channels_last);
    built->bias = has_bias ? plain_f32({g.out_channels}) : dnnl::memory::desc();
    const bool depthwise = g.group > 1 && w_dims[0] == g.group && w_dims[1] == 1;  // one channel per group
    // The primitive descriptor for `algorithm` with `post_ops`; nothing when oneDNN has only its
    // reference implementation (slower than ours) or none.
    // A channels-first X with a channels-last Y (channels_first_source) is first offered as it lies:
    // oneDNN's direct AVX-512 kernel reads NCHW and writes nChw16c, which is NHWC itself when there
    // are 16 output channels (MobileNetV3's and YOLOv8n's first layers: 3 -> 16 at stride 2, 0.115 ms
    // for MobileNetV3's against 0.132 for brgconv on NHWC after a 0.032 ms transpose). Where the
    // destination it picks would need a reorder, X is reordered to NHWC instead (the transpose the
    // graph had), by the primitive chosen for that.
    bool source_as_it_lies = source_first;
    auto describe = [&](dnnl::algorithm algorithm,
                        const dnnl::post_ops& post_ops) -> std::optional<dnnl::convolution_forward::primitive_desc> {
      const std::string key = description_key(algorithm, post_ops, source_as_it_lies, any_implementation, x_dims,
                                              weight_dims, has_bias, y_dims, {strides, dilates, pad_l, pad_r});
      if (std::shared_ptr<const Described> known = described_convolutions().find(key)) return *known;
      return *described_convolutions().insert(key, std::make_shared<Described>([&]() -> Described {
      try {
        dnnl::primitive_attr attr;
        attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
        attr.set_post_ops(post_ops);
        dnnl::convolution_forward::desc desc(dnnl::prop_kind::forward_inference, algorithm,
                                             source_as_it_lies ? built->src_plain : any_layout(built->src_plain),
                                             any_layout(built->weights_plain), built->bias,
                                             any_layout(built->dst_plain), strides, dilates, pad_l, pad_r);
        dnnl::convolution_forward::primitive_desc pd(desc, attr, cpu_engine());
        if (reference_only(pd) && !any_implementation) return std::nullopt;
        prefer_faster_implementation(pd, depthwise, algorithm, w_dims[0] * w_dims[1]);
        return pd;
      } catch (const dnnl::error&) {
        return std::nullopt;
      }
      }()));
    };
    std::optional<dnnl::convolution_forward::primitive_desc> chosen;
    if (fused_ && winograd_fits(g, w_dims)) {
      // A residual is added as the output leaves the Winograd kernel's blocked layout, with the
      // activation (finish_activated), where that reorder is made anyway: as a sum post-op Z was
      // first copied into the blocked dst, which the kernel then read back. ResNet-18 at 1 thread
      // 21.4-22.8 -> 20.9-22.2 ms, 2% (~1% at 2); YOLOv8n's bottlenecks, whose residual comes after
      // the SiLU (no post-op split for the kernel), now take Winograd too: 60.0-60.9 -> 58.0-59.5 ms.
      if (fused_->has_residual && !has_affine()) {
        std::optional<dnnl::convolution_forward::primitive_desc> bare =
            describe(dnnl::algorithm::convolution_winograd, dnnl::post_ops());
        if (bare && !lies_as(bare->dst_desc(), built->dst_plain) &&
            channel_block_reorder_takes(bare->dst_desc(), built->dst_plain)) {
          chosen = bare;
          built->activation_on_reorder = built->residual_on_reorder = true;
        }
      }
      // oneDNN 2.6's Winograd kernels take Relu as their one eltwise post-op: with another
      // activation, asking for it walks every implementation to fail (~0.1-0.3 ms a shape).
      using Kind = ops::Activation::Kind;
      if (!chosen && (fused_->activation.kind == Kind::kNone || fused_->activation.kind == Kind::kRelu))
        chosen = describe(dnnl::algorithm::convolution_winograd, post.all);
      if (!chosen && post.activation_only.len() > 0) {
        chosen = describe(dnnl::algorithm::convolution_winograd, post.without_activation);
        // The eltwise primitives are built only where no reorder carries the activation (~0.1 ms
        // each to make: YOLOv8n has 26 such convolutions): Y in the primitive's layout already (16
        // channels in nChw16c), or a reorder channel_block_reorder does not make.
        built->activation_on_reorder = chosen && !lies_as(chosen->dst_desc(), built->dst_plain) &&
                                       channel_block_reorder_takes(chosen->dst_desc(), built->dst_plain);
        if (chosen && !built->activation_on_reorder &&
            !separate_activation(post.activation_only, chosen->dst_desc(), built->activation))
          chosen.reset();
      }
    }
    if (!chosen) chosen = describe(dnnl::algorithm::convolution_direct, post.all);
    if (source_as_it_lies && !(chosen && lies_as(chosen->dst_desc(), built->dst_plain))) {
      source_as_it_lies = false;
      chosen = describe(dnnl::algorithm::convolution_direct, post.all);
    }
    if (chosen && gelu_costs_more_to_build(*chosen) && post.activation_only.len() > 0) {
      std::optional<dnnl::convolution_forward::primitive_desc> bare =
          describe(dnnl::algorithm::convolution_direct, post.without_activation);
      if (bare && implemented_by(*bare, "brgconv:") &&
          separate_activation(post.activation_only, bare->dst_desc(), built->activation))
        chosen = bare;
    }
    if (!chosen) return nullptr;
    try {
      const dnnl::convolution_forward::primitive_desc& pd = *chosen;
      built->primitive = dnnl::convolution_forward(pd);
      // FusedConv's four affine inputs as binary post-ops' second operands (placeholders where absent).
      std::vector<std::pair<int, dnnl::memory::desc>> affine_operands;
      const dnnl::memory::desc scalar = plain_f32(std::vector<int64_t>(nd + 2, 1));
      for (int id : affine_args) affine_operands.emplace_back(id, id ? scalar : dnnl::memory::desc());
      built->bind(built->primitive, pd, std::move(affine_operands));
      if (fused_ && fused_->has_residual && !built->residual_on_reorder)
        built->dst_in = reorder_between(residual_plain, built->dst);
    } catch (const dnnl::error&) {
      return nullptr;
    }
    return built;
  }

  // A pointwise convolution over channels-last tensors (1x1, stride 1, unpadded, one group: FusedConv
  // with channels_last and no channel blocks) as oneDNN's matmul Y [rows, M] = X [rows, C] W', W
  // [M, C] read as W' [C, M] where it lies, with the same post-ops: the same memory in and out, and
  // oneDNN's brgemm matmul is made for it. Its descriptor and kernels cost less to make than
  // brgconv_1x1's (measured alone on PaddleOCR's and YOLOv8n's shapes: 0.02-0.03 ms against 0.06-0.1
  // to describe, 0.15-0.22 against 0.16-0.34 to generate) and it ran as fast or faster (88 -> 88
  // channels on 1728 rows: 0.21 against 0.30 ms; 64 x 64 on 6400 and 128 x 128 on 1600 equal).
  // YOLOv8n's session at 1 thread 48.2 -> 42.4 ms, PaddleOCR's detector's first run at 640x640 102.7
  // -> 93.2 (medians of fresh processes; steady runs the same).
  // Null where the convolution is not such a one, or oneDNN has only its reference matmul.
  std::shared_ptr<ConvPrimitive> build_as_product(const ops::ConvGeometry& g, const std::vector<int64_t>& y_dims,
                                                  bool has_bias) const {
    if (!fused_ || !fused_->channels_last || fused_->channels_first_source || fused_->x_channel_block ||
        fused_->y_channel_block || g.group != 1)
      return nullptr;
    for (size_t d = 0; d < g.grid.size(); ++d)
      if (g.kernel[d] != 1 || g.strides[d] != 1 || g.pad_begin[d] != 0 || g.grid[d] != g.image[d]) return nullptr;
    const int64_t channels = g.in_channels, outputs = g.out_channels;
    const int64_t rows = product(y_dims) / outputs;
    // Fewer rows stay on brgconv_1x1, whose blocking served them better: MobileNetV3-small's layers
    // of 49 and 196 rows ran 3-14% slower as matmuls (576 -> 96 channels on 49 rows: 0.044 against
    // 0.038 ms), 1.50 -> 1.55 ms a run at 1 thread; with 256 rows and up it ran as before.
    constexpr int64_t kLeastRows = 256;
    if (rows < kLeastRows || channels <= 0) return nullptr;
    std::array<int, 4> affine_args{};
    const PostOps post = post_ops_for(2, affine_args);
    auto built = std::make_shared<ConvPrimitive>();
    built->src_plain = plain_f32({rows, channels});
    built->dst_plain = plain_f32({rows, outputs});
    built->weights_plain = dnnl::memory::desc({channels, outputs}, dnnl::memory::data_type::f32,
                                              dnnl::memory::format_tag::ba);  // W [M, C] as it lies
    built->bias = has_bias ? plain_f32({1, outputs}) : dnnl::memory::desc();
    try {
      dnnl::primitive_attr attr;
      attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
      attr.set_post_ops(post.all);
      const dnnl::matmul::desc desc(built->src_plain, any_layout(built->weights_plain), built->bias, built->dst_plain);
      const dnnl::matmul::primitive_desc pd(desc, attr, cpu_engine());
      if (reference_only(pd)) return nullptr;
      built->primitive = dnnl::matmul(pd);
      std::vector<std::pair<int, dnnl::memory::desc>> affine_operands;
      const dnnl::memory::desc scalar = plain_f32({1, 1});
      for (int id : affine_args) affine_operands.emplace_back(id, id ? scalar : dnnl::memory::desc());
      built->bind(built->primitive, pd, std::move(affine_operands));
      // Z (the residual) lies as Y does: run() copies it into dst for the sum post-op.
    } catch (const dnnl::error&) {
      return nullptr;
    }
    return built;
  }

  // Whether `pd` is a brgconv kernel that would carry a GELU post-op. brgconv generates a brgemm
  // kernel for each of its batch sizes and tails, each with the post-op's code inlined, and GELU's
  // polynomial is long: magika's convolution (256 -> 512 channels, width 512, kernel 5) took 8.6 ms to
  // build with it and 4.7 without, where the GELU as its own primitive, in place on the output, took
  // 0.3 ms to build and 0.01-0.3 ms a run (0.2% of the convolution at batch 1, 0.3% at 16, at 1 and 2
  // threads). Its first run is ~4 ms faster for as much as 400 runs of the fused form would save.
  // 1x1 kernels are short and keep it (BERT's feed-forward layers: ~0.1 ms to build either way).
  bool gelu_costs_more_to_build(const dnnl::convolution_forward::primitive_desc& pd) const {
    using Kind = ops::Activation::Kind;
    return fused_ && (fused_->activation.kind == Kind::kGelu || fused_->activation.kind == Kind::kGeluTanh) &&
           implemented_by(pd, "brgconv:");
  }

  // `activation_only` as eltwise primitives on `dst` (in place), into `out`; false (with `out`
  // emptied) when oneDNN has no fast eltwise for one of them.
  static bool separate_activation(const dnnl::post_ops& activation_only, const dnnl::memory::desc& dst,
                                  std::vector<dnnl::eltwise_forward>& out) {
    out.clear();
    try {
      for (int i = 0; i < activation_only.len(); ++i) {
        float scale = 0, alpha = 0, beta = 0;
        dnnl::algorithm algorithm;
        activation_only.get_params_eltwise(i, scale, algorithm, alpha, beta);
        dnnl::eltwise_forward::primitive_desc pd(
            dnnl::eltwise_forward::desc(dnnl::prop_kind::forward_inference, algorithm, dst, alpha, beta), cpu_engine());
        if (reference_only(pd)) throw dnnl::error(dnnl_unimplemented, "reference only");
        out.emplace_back(pd);
      }
    } catch (const dnnl::error&) {
      out.clear();
      return false;
    }
    return true;
  }

  // The weights and bias with the BatchNormalization folded in, for the current source values.
  std::shared_ptr<const FoldedWeights> folded_for(const Tensor& w, const Tensor* b, const Tensor* bn[4]) const {
    const auto sources = source_versions({&w, b, bn[0], bn[1], bn[2], bn[3]});
    std::lock_guard<std::mutex> lock(folded_mutex_);
    if (!folded_ || folded_->sources != sources) folded_ = fold_batch_norm(w, b, bn, fused_->epsilon);
    return folded_;
  }

  // `folded`'s weights (from source W `w`) in the primitive's layout, reordered once per fold (and
  // per layout); the plain W' made for the reorder is not kept. `w_freed`: W is a placeholder, and W'
  // is read back from a copy.
  static std::shared_ptr<const dnnl::memory> packed_folded(const FoldedWeights& folded, const Tensor& w,
                                                           const ConvPrimitive& p, bool w_freed) {
    std::lock_guard<std::mutex> lock(folded.mutex);
    if (folded.packed && folded.packed->get_desc() == p.weights) return folded.packed;
    std::shared_ptr<dnnl::memory> packed = packed_memory(p.weights);
    const Tensor plain = folded.weights.numel() > 0 ? folded.weights
                         : w_freed                  ? folded.restored(w.dims())
                                                    : folded.fold_weights(w);
    dnnl::memory source = wrap(p.weights_plain, data<float>(plain));
    reorder_into(source, *packed);
    folded.packed = packed;
    if (is_reversible(p.weights)) {
      folded.reversible = packed;
      folded.reversible_plain = p.weights_plain;
    } else if (!w_freed) {
      folded.reversible.reset();  // W folds again: no second copy kept
    }
    return packed;
  }

  // `folded`'s weights as they lie, for a primitive that reads them so; kept from run to run.
  static float* plain_folded(const FoldedWeights& folded, const Tensor& w, bool w_freed) {
    std::lock_guard<std::mutex> lock(folded.mutex);
    if (folded.weights.numel() == 0) folded.weights = w_freed ? folded.restored(w.dims()) : folded.fold_weights(w);
    return const_cast<float*>(data<float>(folded.weights));  // oneDNN only reads weights
  }

  // The folded weights the session froze (release_constant): made before W was freed, never refolded.
  std::shared_ptr<const FoldedWeights> frozen_folded() const {
    std::lock_guard<std::mutex> lock(folded_mutex_);
    return folded_;
  }

  // The reference kernel for this run; after the session freed W (a convolution without a folded
  // BatchNormalization), with W restored from a copy.
  void fallback(KernelContext& ctx) const {
    if (fused_ && fused_->has_bn) return reference_->run(ctx);
    packed_.run_reference(*reference_, ctx, 1);
  }

  // What run() works out from the input shapes before it can run: the shape rules' geometry, the
  // output's dims, the team and the primitive. Kept for the next run of the same shapes (a small
  // convolution's shape rules, key and cache lookups cost about what oneDNN then takes to run it).
  struct ShapePlan {
    std::vector<int64_t> x, w;  // the inputs' dims as given (X channels-last when the node says so)
    bool has_bias = false;      // before a BatchNormalization is folded in
    std::vector<int64_t> x_nchw, y_dims, out_dims;
    ops::ConvGeometry geometry;
    double work = 0;  // multiply-adds
    int team = 1;
    // Rows of the product a pointwise convolution of a few rows is (run_on_panels), or 0. Such a
    // convolution (a squeeze-excite block's, on a 1x1 image: 8 -> 2 channels at batch 6) computes
    // in microseconds, and oneDNN took 0.05-0.2 ms to build each one's kernels and weight reorder
    // (PaddleOCR's classifier has 15: ~1.5 ms of its first run); on the panels it builds nothing and
    // runs as fast (MobileNetV3-small's 18 summed 0.10-0.13 ms either way, session 15).
    int64_t panel_rows = 0;
    std::shared_ptr<const ConvPrimitive> primitive;  // null until built
  };

  std::shared_ptr<const ShapePlan> last_plan(const std::vector<int64_t>& x, const std::vector<int64_t>& w,
                                             bool has_bias) const {
    std::lock_guard<std::mutex> lock(last_mutex_);
    if (last_ && last_->x == x && last_->w == w && last_->has_bias == has_bias && last_->team == team_for(last_->work))
      return last_;
    return nullptr;
  }

  // What these input dims make of a run: the last run's plan when it had them (and the same team),
  // else worked out afresh. Null when they do not fit the attributes or the bias (`bias_numel`; -1:
  // none); the reference kernel then reports it.
  std::shared_ptr<const ShapePlan> shape_plan(const std::vector<int64_t>& x_dims, const std::vector<int64_t>& w_dims,
                                              int64_t bias_numel) const {
    if (std::shared_ptr<const ShapePlan> plan = last_plan(x_dims, w_dims, bias_numel >= 0)) return plan;
    const bool channels_last = fused_ && fused_->channels_last;
    auto fresh = std::make_shared<ShapePlan>();
    fresh->x = x_dims;
    fresh->w = w_dims;
    fresh->has_bias = bias_numel >= 0;
    // The shape rules read NCHW: a channels-last X [N, H, W, C] is [N, C, H, W] to them.
    const bool x_channels_last = channels_last && !fused_->channels_first_source;
    fresh->x_nchw = x_channels_last ? ops::nchw_of_channels_last(x_dims) : x_dims;
    std::optional<ops::ConvGeometry> g = ops::conv_geometry(attrs_, fresh->x_nchw, w_dims, false, nullptr);
    if (!g || (bias_numel >= 0 && bias_numel != g->out_channels)) return nullptr;
    fresh->y_dims = {g->batch, g->out_channels};
    fresh->y_dims.insert(fresh->y_dims.end(), g->grid.begin(), g->grid.end());
    fresh->out_dims = channels_last ? ops::channels_last_of_nchw(fresh->y_dims) : fresh->y_dims;
    fresh->work = static_cast<double>(product(fresh->y_dims)) * static_cast<double>(product(w_dims) / g->out_channels);
    // A depthwise convolution does each multiply-add at about half a dense one's pace (a window of
    // one channel per output: MobileNetV3-small's 3x3 and 5x5 ones ran at ~22 G a second on one
    // thread, its 1x1 ones at ~47), so its work counts twice. Its four of 0.35-0.5 M multiply-adds
    // then take the team: on 2 threads the model ran 1.017 -> 0.979 ms (PaddleOCR's classifier 1.656
    // -> 1.631), while a silero-vad convolution of as many dense multiply-adds (128 -> 128 channels
    // over 4 steps, 0.092 ms for the model either way) stays on one thread.
    if (g->group > 1 && g->group == g->in_channels) fresh->work *= 2;
    fresh->team = team_for(fresh->work);
    fresh->panel_rows = panel_rows_for(*g, x_channels_last);
    fresh->geometry = std::move(*g);
    return fresh;
  }

  // A pointwise convolution of a few rows (ShapePlan::panel_rows) as the product Y [rows, N] =
  // X [rows, K] W' on W packed in panels (panel_linear.h), then the activation: no primitive to build.
  void run_on_panels(KernelContext& ctx, const Tensor& x, const Tensor& w, const Tensor* bias,
                     const ShapePlan& plan) const {
    Tensor& y = ctx.allocate_output_uninitialized(0, DataType::kFloat32, plan.out_dims);
    float* out = mutable_data<float>(y);
    panel_.run(w, data<float>(x), plan.panel_rows, plan.geometry.in_channels, plan.geometry.out_channels, out,
               bias ? data<float>(*bias) : nullptr);
    if (fused_) fused_->activation.apply(out, y.numel());
  }

  // ShapePlan::panel_rows for geometry `g`: a 1x1, stride-1, unpadded, one-group convolution with at
  // most kPanelRows rows (batch x image) and kPanelWeights weights, whose X and Y are [rows, C] as they
  // lie (channels-last, or a 1x1 image), with nothing fused but an activation, and W a constant no
  // optimizer writes; else 0.
  int64_t panel_rows_for(const ops::ConvGeometry& g, bool x_channels_last) const {
    constexpr int64_t kPanelRows = 16, kPanelWeights = int64_t{1} << 17;
    if (!packed_.has_constant() || packed_.trained_by_plan()) return 0;
    if (g.group != 1 || g.in_channels * g.out_channels > kPanelWeights) return 0;
    if (fused_ && (fused_->has_bn || fused_->has_residual || fused_->x_channel_block || fused_->y_channel_block)) return 0;
    if (has_affine()) return 0;
    int64_t rows = g.batch;
    for (size_t d = 0; d < g.grid.size(); ++d) {
      if (g.kernel[d] != 1 || g.strides[d] != 1 || g.pad_begin[d] != 0 || g.grid[d] != g.image[d]) return 0;
      rows *= g.grid[d];
    }
    const bool rows_lie_flat = rows == g.batch || (x_channels_last && fused_ && fused_->channels_last);
    return rows > 0 && rows <= kPanelRows && rows_lie_flat ? rows : 0;
  }

  // `plan`'s primitive (`has_bias`: after a BatchNormalization is folded in): the plan's, the cache's,
  // or built now (inside the SerialIfSmall of the plan's work), and kept with the plan for the next
  // run. Null when oneDNN has only its reference implementation for the shapes (unless `any`).
  std::shared_ptr<const ConvPrimitive> primitive_for(const std::shared_ptr<const ShapePlan>& plan, bool has_bias,
                                                     bool any) const {
    if (plan->primitive) return plan->primitive;
    Key key = plan->x_nchw;
    key.insert(key.end(), plan->w.begin(), plan->w.end());
    key.push_back(has_bias ? 1 : 0);
    key.push_back(plan->team);
    if (declined_.find(key) && !any) return nullptr;
    std::shared_ptr<const ConvPrimitive> p = cache_.find(key);
    if (!p) {
      std::shared_ptr<ConvPrimitive> built = build(plan->geometry, plan->x_nchw, plan->w, plan->y_dims, has_bias,
                                                   fused_ && fused_->channels_last, any);
      if (!built) {
        declined_.insert(key, std::make_shared<const bool>(true));
        return nullptr;
      }
      p = cache_.insert(key, std::move(built));
    }
    auto with_primitive = std::make_shared<ShapePlan>(*plan);
    with_primitive->primitive = p;
    std::lock_guard<std::mutex> lock(last_mutex_);
    last_ = std::move(with_primitive);
    return p;
  }

  // What follows the product: all of it, and the same split for a Winograd convolution run before
  // eltwise primitives (empty when no split computes the same: a residual added after the activation).
  struct PostOps {
    dnnl::post_ops all, without_activation, activation_only;
  };

  PostOps post_ops_for(int rank, std::array<int, 4>& affine_args) const {
    PostOps out;
    if (!fused_) return out;
    // conv -> [sum Z] -> [affine] -> activation -> [affine] -> [sum Z]: the sum post-op adds what dst
    // holds before the run.
    if (fused_->has_residual && !fused_->residual_after_activation) out.all.append_sum(1.0f);
    // The affine maps around the activation (FusedConv's inputs 8-11) are binary post-ops reading a
    // one-element tensor each run, so a written Parameter is seen without a new primitive;
    // eltwise_linear would fix the values, and oneDNN 2.6 gives two eltwise post-ops of one
    // algorithm the first one's parameters. affine_args[i]: the argument input 8 + i is passed as.
    const dnnl::memory::desc scalar = plain_f32(std::vector<int64_t>(static_cast<size_t>(rank), 1));
    auto affine = [&](size_t first) {
      for (size_t i = first; i < first + 2; ++i) {
        if (!affine_present_[i]) continue;
        affine_args[i] = DNNL_ARG_ATTR_MULTIPLE_POST_OP(out.all.len()) | DNNL_ARG_SRC_1;
        out.all.append_binary(i % 2 ? dnnl::algorithm::binary_add : dnnl::algorithm::binary_mul, scalar);
      }
    };
    affine(0);
    append_activation(out.all, fused_->activation);
    affine(2);
    if (fused_->has_residual && fused_->residual_after_activation) out.all.append_sum(1.0f);
    // The split runs the rest as eltwise primitives: only without affine maps.
    if (!(fused_->has_residual && fused_->residual_after_activation) &&
        !has_affine()) {
      if (fused_->has_residual) out.without_activation.append_sum(1.0f);
      append_activation(out.activation_only, fused_->activation);
    }
    return out;
  }

  std::array<bool, 4> affine_present_{};  // FusedConv's inputs 8-11
  bool has_affine() const { return std::any_of(affine_present_.begin(), affine_present_.end(), [](bool p) { return p; }); }
  // W and B when they are initializers (for prepare), and whether the node has a B at all.
  const Tensor* weight_ = nullptr;
  const Tensor* bias_ = nullptr;
  bool bias_present_ = false;

  std::unique_ptr<Kernel> reference_;
  ops::ConvAttrs attrs_;
  std::optional<ops::FusedConvAttrs> fused_;
  PackedWeights packed_;
  PanelLinear panel_{packed_, /*b_transposed=*/true};  // W [M, C, 1...] is B [N, K] as it lies
  // SessionOptions::release_packed_originals: whether W (and what is folded with it) are constants
  // that may be freed, the folded ones (W, B, scale, bn_bias, mean, var; null where absent), and
  // whether the session froze this kernel's weights (release_constant).
  bool releasable_ = false;
  std::vector<const Tensor*> fold_sources_;
  std::atomic<bool> frozen_{false};
  mutable std::mutex folded_mutex_;
  mutable std::shared_ptr<const FoldedWeights> folded_;
  LruCache<Key, ConvPrimitive> cache_{16};
  mutable std::mutex last_mutex_;
  mutable std::shared_ptr<const ShapePlan> last_;
  LruCache<Key, bool> declined_{16};  // shapes oneDNN has no fast implementation for
};

}  // namespace

void register_onednn_conv(KernelRegistry& registry) {
  add_fast_path(
      registry, "Conv",
      [](const KernelInit& init, std::unique_ptr<Kernel> reference) -> std::unique_ptr<Kernel> {
        // The reference factory has validated the attributes, in its words.
        return std::make_unique<OnednnConv>(std::move(reference), ops::parse_conv_attrs(init.node()), init);
      },
      11);
  // com.tunnx:FusedConv (runtime/core/passes/fuse_conv.h) over its reference kernel (kernels/fused.cc).
  std::optional<KernelDef> fused = fast_path_def(
      registry, "com.tunnx", "FusedConv", 1,
      [](const KernelInit& init, std::unique_ptr<Kernel> fallback) -> std::unique_ptr<Kernel> {
        const std::optional<ops::FusedConvAttrs> attrs = ops::fused_conv_attrs(init.node(), nullptr);
        dnnl::post_ops probe;
        if (!attrs || !append_activation(probe, attrs->activation)) return fallback;
        return std::make_unique<OnednnConv>(std::move(fallback), ops::parse_conv_attrs(init.node()), init, attrs);
      });
  if (!fused) return;
  fused->prefers_channels_last = true;
  fused->channel_block_for = winograd_channel_block;
  registry.add(std::move(*fused));
}

}  // namespace tunnx::cpu::onednn
