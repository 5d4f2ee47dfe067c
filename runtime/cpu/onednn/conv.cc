// float32 Conv (1-D, 2-D, 3-D; groups and depthwise, strides, dilations, pads, auto_pad) on oneDNN's
// convolution primitive, where the reference kernel is a single-threaded im2col and product. Shape
// rules and attribute parsing are the shared ones (runtime/core/ops/conv_pool.h): the geometry the
// reference computes is handed to oneDNN as is (its dilation is ONNX's minus one; its right padding is
// what makes the output size exact).
//
// The primitive picks its own layouts (format `any`): on AVX2/AVX-512 machines blocked ones (nChw8c /
// nChw16c activations, OIhw16i16o-like weights), which its fastest kernels need. Activations are
// reordered from and to the plain layout the rest of the graph reads at each run (keeping blocked
// layouts across consecutive oneDNN ops is a later step); constant weights are packed once per weight
// version (packed_weights.h), as the Linear path does, and a weight rewritten every run (training) is
// reordered per run. A geometry only oneDNN's reference implementation takes, other dtypes and
// anything the shared rules reject run the reference kernel, which reports errors in its words.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "runtime/core/ops/conv_pool.h"
#include "runtime/cpu/kernels/common.h"
#include "runtime/cpu/onednn/onednn_common.h"
#include "runtime/cpu/onednn/packed_weights.h"

namespace tunnx::cpu::onednn {
namespace {

using Key = std::vector<int64_t>;

// A reorder between two layouts of one tensor, with a user scratchpad (the primitive is shared by
// concurrent runs).
struct Reorder {
  dnnl::reorder primitive;
  dnnl::memory::desc scratchpad;
};

std::optional<Reorder> reorder_between(const dnnl::memory::desc& from, const dnnl::memory::desc& to) {
  if (from == to) return std::nullopt;
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  dnnl::reorder::primitive_desc pd(cpu_engine(), from, cpu_engine(), to, attr);
  return Reorder{dnnl::reorder(pd), pd.scratchpad_desc()};
}

struct ConvPrimitive {
  dnnl::convolution_forward primitive;
  dnnl::memory::desc src_plain, src, weights_plain, weights, bias, dst_plain, dst, scratchpad;
  std::optional<Reorder> src_in, weights_in, dst_out;
};

void run_on(dnnl::stream& stream, const dnnl::primitive& p, const dnnl::memory::desc& scratchpad,
            std::unordered_map<int, dnnl::memory> args) {
  std::optional<HostScratch> scratch;  // from the host memory cache, as onednn::execute does
  if (scratchpad.get_size() > 0) {
    scratch.emplace(scratchpad.get_size());
    args[DNNL_ARG_SCRATCHPAD] = dnnl::memory(scratchpad, cpu_engine(), scratch->data());
  }
  p.execute(stream, args);
  stream.wait();  // before the scratchpad goes back
}

class OnednnConv : public Kernel {
 public:
  OnednnConv(std::unique_ptr<Kernel> reference, ops::ConvAttrs attrs, const KernelInit& init)
      : reference_(std::move(reference)),
        attrs_(std::move(attrs)),
        packed_(init.constant_input(1), init.trained_input(1)) {}

  void run(KernelContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    const Tensor& w = ctx.input(1);
    const Tensor* bias = ctx.has_input(2) ? &ctx.input(2) : nullptr;
    if (x.dtype() != DataType::kFloat32 || w.dtype() != DataType::kFloat32 ||
        (bias && (bias->dtype() != DataType::kFloat32 || bias->rank() != 1)) || x.rank() < 3 || x.rank() > 5 ||
        w.rank() != x.rank() || x.numel() == 0 || w.numel() == 0)
      return reference_->run(ctx);
    const std::optional<ops::ConvGeometry> g = ops::conv_geometry(attrs_, x.dims(), w.dims(), false, nullptr);
    if (!g || (bias && bias->numel() != g->out_channels)) return reference_->run(ctx);  // it reports the error
    std::vector<int64_t> y_dims = {g->batch, g->out_channels};
    y_dims.insert(y_dims.end(), g->grid.begin(), g->grid.end());
    if (product(y_dims) == 0) return reference_->run(ctx);

    Key key = x.dims();
    key.insert(key.end(), w.dims().begin(), w.dims().end());
    key.push_back(bias ? 1 : 0);
    if (declined_.find(key)) return reference_->run(ctx);
    std::shared_ptr<const ConvPrimitive> p = cache_.find(key);
    if (!p) {
      std::shared_ptr<ConvPrimitive> built = build(*g, x.dims(), w.dims(), y_dims, bias != nullptr);
      if (!built) {
        declined_.insert(key, std::make_shared<const bool>(true));
        return reference_->run(ctx);
      }
      p = cache_.insert(key, std::move(built));
    }

    Tensor& y = ctx.allocate_output_uninitialized(0, DataType::kFloat32, y_dims);
    const dnnl::engine& engine = cpu_engine();
    dnnl::stream stream(engine);
    // Source: the plain tensor, or a blocked copy of it.
    std::optional<HostScratch> src_block, weights_block, dst_block;
    dnnl::memory src = wrap(p->src_plain, data<float>(x));
    if (p->src_in) {
      src_block.emplace(p->src.get_size());
      dnnl::memory blocked(p->src, engine, src_block->data());
      run_on(stream, p->src_in->primitive, p->src_in->scratchpad, {{DNNL_ARG_FROM, src}, {DNNL_ARG_TO, blocked}});
      src = blocked;
    }
    // Weights: packed once per version for a constant, reordered per run for a trained or fed one.
    std::shared_ptr<const dnnl::memory> packed;
    dnnl::memory weights = wrap(p->weights_plain, data<float>(w));
    if (packed_.is_constant(w) && !packed_.rewritten_every_run(w)) {
      packed = packed_.get(w, p->weights_plain, p->weights);
      weights = *packed;
    } else if (p->weights_in) {
      weights_block.emplace(p->weights.get_size());
      dnnl::memory blocked(p->weights, engine, weights_block->data());
      run_on(stream, p->weights_in->primitive, p->weights_in->scratchpad,
             {{DNNL_ARG_FROM, weights}, {DNNL_ARG_TO, blocked}});
      weights = blocked;
    }
    dnnl::memory out = wrap(p->dst_plain, mutable_data<float>(y));
    dnnl::memory dst = out;
    if (p->dst_out) {
      dst_block.emplace(p->dst.get_size());
      dst = dnnl::memory(p->dst, engine, dst_block->data());
    }
    std::unordered_map<int, dnnl::memory> args = {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_DST, dst}};
    if (bias) args[DNNL_ARG_BIAS] = wrap(p->bias, data<float>(*bias));
    run_on(stream, p->primitive, p->scratchpad, std::move(args));
    if (p->dst_out) run_on(stream, p->dst_out->primitive, p->dst_out->scratchpad, {{DNNL_ARG_FROM, dst}, {DNNL_ARG_TO, out}});
    stream.wait();
  }

 private:
  // The primitive for one shape, or null when oneDNN has only its reference implementation for it.
  std::shared_ptr<ConvPrimitive> build(ops::ConvGeometry g, std::vector<int64_t> x_dims, std::vector<int64_t> w_dims,
                                       std::vector<int64_t> y_dims, bool has_bias) const {
    // A spatial dim of size 1 that a size-1 kernel reads unpadded (tf2onnx writes 1-D convolutions
    // as [N, C, L, 1]) leaves the plain memory as it is: dropped, oneDNN runs the 1-D convolution,
    // measured 2-3x faster than its 2-D kernel on such a shape.
    for (size_t d = g.grid.size(); d-- > 0 && g.grid.size() > 1;) {
      if (g.image[d] != 1 || g.kernel[d] != 1 || g.grid[d] != 1 || g.pad_begin[d] != 0) continue;
      for (auto* v : {&g.image, &g.grid, &g.kernel, &g.strides, &g.dilations, &g.pad_begin})
        v->erase(v->begin() + static_cast<std::ptrdiff_t>(d));
      for (auto* v : {&x_dims, &w_dims, &y_dims}) v->erase(v->begin() + static_cast<std::ptrdiff_t>(d + 2));
    }
    const size_t nd = g.grid.size();
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
    built->src_plain = plain_f32(x_dims);
    built->weights_plain = plain_f32(weight_dims);
    built->dst_plain = plain_f32(y_dims);
    built->bias = has_bias ? plain_f32({g.out_channels}) : dnnl::memory::desc();
    try {
      dnnl::primitive_attr attr;
      attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
      dnnl::convolution_forward::desc desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
                                           any_layout(built->src_plain), any_layout(built->weights_plain),
                                           built->bias, any_layout(built->dst_plain), strides, dilates, pad_l, pad_r);
      dnnl::convolution_forward::primitive_desc pd(desc, attr, cpu_engine());
      if (std::string(pd.impl_info_str()).rfind("ref", 0) == 0) return nullptr;  // slower than ours
      built->primitive = dnnl::convolution_forward(pd);
      built->src = pd.src_desc();
      built->weights = pd.weights_desc();
      built->dst = pd.dst_desc();
      built->scratchpad = pd.scratchpad_desc();
      built->src_in = reorder_between(built->src_plain, built->src);
      built->weights_in = reorder_between(built->weights_plain, built->weights);
      built->dst_out = reorder_between(built->dst, built->dst_plain);
    } catch (const dnnl::error&) {
      return nullptr;
    }
    return built;
  }

  std::unique_ptr<Kernel> reference_;
  ops::ConvAttrs attrs_;
  PackedWeights packed_;
  LruCache<Key, ConvPrimitive> cache_{16};
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
}

}  // namespace tunnx::cpu::onednn
