// float32 ConvTranspose (1-D, 2-D, 3-D; groups, strides, dilations, pads, output_padding,
// output_shape, auto_pad) on oneDNN's deconvolution primitive, where the reference kernel is a
// single-threaded product and col2im. The geometry is the shared rule's (runtime/core/ops/conv_pool.h),
// handed to oneDNN as is: its dilation is ONNX's minus one, and the right padding is what makes its
// output size exactly the rule's (the end pad less output_padding, or what output_shape and auto_pad
// leave), which may be negative down to 1 - stride.
//
// ONNX's W is (C, M/group, k...): per group the input channels come first. oneDNN reads a
// deconvolution's weights as (M, C, k...) or (G, M/G, C/G, k...), output channels first, so W is
// described with its two channel strides swapped (oneDNN's iohw and giohw, which 2.6 lacks for 1-D);
// a constant W is packed once per version into the primitive's layout (packed_weights.h). Activations
// lie in NCHW and are reordered only when the primitive wants another layout. Other dtypes, an empty
// input or output, a negative begin pad and shapes only oneDNN's reference implementation takes run
// the reference kernel, which also reports errors in its words.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "runtime/core/ops/conv_pool.h"
#include "runtime/cpu/kernels/common.h"
#include "runtime/cpu/onednn/onednn_common.h"
#include "runtime/cpu/onednn/packed_weights.h"

namespace tunnx::cpu::onednn {
namespace {

using Key = std::vector<int64_t>;

// Multiply-adds from which a deconvolution with few outputs per group takes gemm:jit (build()): its
// one-time kernel generation then costs less than a few runs on the reference kernel save.
constexpr double kGemmJitWork = 5e7;

struct DeconvPrimitive : PickedLayouts {
  dnnl::deconvolution_forward primitive;
};

// W (C, M/G, k...) as oneDNN's deconvolution reads it: dims (M, C, k...), or (G, M/G, C/G, k...) with
// groups, over the same memory.
dnnl::memory::desc onnx_weights(const std::vector<int64_t>& w, int64_t group) {
  const int64_t in_per_group = w[0] / group, out_per_group = w[1];
  dnnl::memory::dims dims = {out_per_group, in_per_group};
  dims.insert(dims.end(), w.begin() + 2, w.end());
  dnnl::memory::dims strides(dims.size());
  int64_t kernel_size = 1;
  for (size_t d = dims.size(); d-- > 2;) {
    strides[d] = kernel_size;
    kernel_size *= dims[d];
  }
  strides[0] = kernel_size;                  // o: one kernel apart
  strides[1] = out_per_group * kernel_size;  // i: M/G kernels apart
  if (group > 1) {
    dims.insert(dims.begin(), group);
    strides.insert(strides.begin(), in_per_group * out_per_group * kernel_size);
  }
  return dnnl::memory::desc(dims, dnnl::memory::data_type::f32, strides);
}

class OnednnConvTranspose : public Kernel {
 public:
  OnednnConvTranspose(std::unique_ptr<Kernel> reference, ops::ConvAttrs attrs, const KernelInit& init)
      : reference_(std::move(reference)),
        attrs_(std::move(attrs)),
        packed_(init.constant_input(1), init.trained_input(1)) {}

  // W, a float32 constant no optimizer writes, is freed once a copy a reorder reads back is held: a
  // run the reference kernel takes gets W restored from it (fallback()).
  ConstantUse constant_use(size_t input) const override {
    return input == 1 ? packed_.constant_use() : ConstantUse::kReadsIt;
  }

  void release_constant(size_t input, const Tensor& stand_in) override {
    if (input == 1) packed_.release(stand_in);
  }

  void run(KernelContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    const Tensor& w = ctx.input(1);
    const Tensor* bias = ctx.has_input(2) ? &ctx.input(2) : nullptr;
    if (x.dtype() != DataType::kFloat32 || w.dtype() != DataType::kFloat32 ||
        (bias && (bias->dtype() != DataType::kFloat32 || bias->rank() != 1)) || x.rank() < 3 || x.rank() > 5 ||
        w.rank() != x.rank() || x.numel() == 0 || w.numel() == 0)
      return fallback(ctx);
    std::optional<ops::ConvGeometry> g = ops::conv_geometry(attrs_, x.dims(), w.dims(), true, nullptr);
    if (!g || (bias && bias->numel() != g->out_channels)) return fallback(ctx);  // it reports the error
    std::vector<int64_t> y_dims = {g->batch, g->out_channels};
    y_dims.insert(y_dims.end(), g->image.begin(), g->image.end());
    if (product(y_dims) == 0) return fallback(ctx);

    // Multiply-adds: every input value meets M/G kernels.
    const double work = static_cast<double>(x.numel()) * static_cast<double>(w.numel() / w.dims()[0]);
    const SerialIfSmall serial(work);  // built and run for the same team
    Key key = x.dims();
    key.insert(key.end(), w.dims().begin(), w.dims().end());
    key.push_back(bias ? 1 : 0);
    key.push_back(team_for(work));
    if (declined_.find(key)) return fallback(ctx);
    std::shared_ptr<const DeconvPrimitive> p = cache_.find(key);
    if (!p) {
      std::shared_ptr<DeconvPrimitive> built = build(*g, x.dims(), w.dims(), y_dims, bias != nullptr, work);
      if (!built) {
        declined_.insert(key, std::make_shared<const bool>(true));
        return fallback(ctx);
      }
      p = cache_.insert(key, std::move(built));
    }

    Tensor& y = ctx.allocate_output_uninitialized(0, DataType::kFloat32, y_dims);
    std::optional<HostScratch> src_block, weights_block, dst_block;
    void* src = p->source(data<float>(x), src_block);
    // Weights: packed once per version for a constant, reordered per run for a trained or fed one.
    std::shared_ptr<const dnnl::memory> packed;
    void* weights = nullptr;
    if (packed_.is_constant(w) && !packed_.rewritten_every_run(w))
      packed = packed_.get(w, p->weights_plain, p->weights);
    else
      weights = p->weights_for_run(data<float>(w), weights_block);
    void* dst = p->destination(mutable_data<float>(y), dst_block);
    // Packed weights go in as their memory object: setting a blocked layout's handle zero-fills its
    // padding, a write to weights other runs read.
    const void* bias_data = bias ? data<float>(*bias) : nullptr;
    if (packed)
      p->bound.run({src, nullptr, dst, bias_data}, {{DNNL_ARG_WEIGHTS, *packed}}, work);
    else
      p->bound.run({src, weights, dst, bias_data}, {}, work);
    p->finish(dst, mutable_data<float>(y));
  }

 private:
  // The primitive for one shape, or null when oneDNN refuses it (a negative begin pad, a right pad of
  // stride or more below zero) or has only its reference implementation for it.
  static std::shared_ptr<DeconvPrimitive> build(const ops::ConvGeometry& g, const std::vector<int64_t>& x_dims,
                                                const std::vector<int64_t>& w_dims, const std::vector<int64_t>& y_dims,
                                                bool has_bias, double work) {
    const size_t nd = g.grid.size();
    dnnl::memory::dims strides(nd), dilates(nd), pad_l(nd), pad_r(nd);
    for (size_t d = 0; d < nd; ++d) {
      strides[d] = g.strides[d];
      dilates[d] = g.dilations[d] - 1;
      pad_l[d] = g.pad_begin[d];
      // oneDNN's output size is (grid - 1) * stride + extent - pad_l - pad_r: the image's, exactly.
      pad_r[d] = (g.grid[d] - 1) * g.strides[d] + (g.kernel[d] - 1) * g.dilations[d] + 1 - g.image[d] - g.pad_begin[d];
      if (pad_l[d] < 0) return nullptr;
    }
    auto built = std::make_shared<DeconvPrimitive>();
    built->src_plain = plain_f32(x_dims);
    built->weights_plain = onnx_weights(w_dims, g.group);
    built->dst_plain = plain_f32(y_dims);
    built->bias = has_bias ? plain_f32({g.out_channels}) : dnnl::memory::desc();
    // The activations' layouts, in the order tried. Measured at 1 and 2 threads on AVX-512 (2x2
    // stride 2 upsampling and 3x3 / 4x4 decoder shapes, 16-256 channels), reorders included:
    // channels-last ran as fast as the blocked layouts oneDNN picks itself, or 1.4-1.5x faster where
    // channels are no multiple of 16 (24 -> 24 at 160x160: 2.9 ms against 4.2 at 1 thread), which
    // blocks pad. With few output channels per group every blocked or channels-last kernel pads or
    // strides the destination, the larger tensor of a strided deconvolution: there gemm:jit on NCHW,
    // with no reorder at all, wins (24 -> 1 at 320x320: 0.64 ms against 5.7 channels-last and 8.8
    // blocked). But gemm:jit's first call in a process generates its kernels, ~29 ms measured: a
    // product smaller than kGemmJitWork runs the reference kernel instead (1.5 ms on that layer, where
    // the first run of PaddleOCR's detector paid the 29).
    enum class Layout { kPlain, kChannelsLast, kAny };
    const bool few_outputs = g.out_channels / g.group < 8;
    if (few_outputs && work < kGemmJitWork) return nullptr;
    const std::vector<Layout> order = few_outputs ? std::vector<Layout>{Layout::kPlain, Layout::kChannelsLast, Layout::kAny}
                                                  : std::vector<Layout>{Layout::kChannelsLast, Layout::kAny, Layout::kPlain};
    const auto activation = [](Layout layout, const std::vector<int64_t>& dims) {
      const dnnl::memory::desc plain = plain_f32(dims);
      return layout == Layout::kPlain ? plain : layout == Layout::kAny ? any_layout(plain) : activation_f32(dims, true);
    };
    for (Layout layout : order) {
      try {
        dnnl::primitive_attr attr;
        attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
        dnnl::deconvolution_forward::desc desc(dnnl::prop_kind::forward_inference,
                                               dnnl::algorithm::deconvolution_direct, activation(layout, x_dims),
                                               any_layout(built->weights_plain), built->bias,
                                               activation(layout, y_dims), strides, dilates, pad_l, pad_r);
        dnnl::deconvolution_forward::primitive_desc pd(desc, attr, cpu_engine());
        if (reference_only(pd)) continue;
        built->primitive = dnnl::deconvolution_forward(pd);
        built->bind(built->primitive, pd);
        return built;
      } catch (const dnnl::error&) {
        // Refused in this layout; the next may be taken.
      }
    }
    return nullptr;
  }

  // The reference kernel for this run; after the session freed W, with W restored from a copy.
  void fallback(KernelContext& ctx) const { packed_.run_reference(*reference_, ctx, 1); }

  std::unique_ptr<Kernel> reference_;
  ops::ConvAttrs attrs_;
  PackedWeights packed_;
  LruCache<Key, DeconvPrimitive> cache_{16};
  LruCache<Key, bool> declined_{16};  // shapes oneDNN refuses or has no fast implementation for
};

}  // namespace

void register_onednn_conv_transpose(KernelRegistry& registry) {
  add_fast_path(
      registry, "ConvTranspose",
      [](const KernelInit& init, std::unique_ptr<Kernel> reference) -> std::unique_ptr<Kernel> {
        // The reference factory has validated the attributes, in its words.
        return std::make_unique<OnednnConvTranspose>(std::move(reference), ops::parse_conv_attrs(init.node()), init);
      },
      11);
}

}  // namespace tunnx::cpu::onednn
