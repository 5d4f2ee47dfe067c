// float32 MaxPool and AveragePool (1-D, 2-D, 3-D; strides, pads, auto_pad, ceil_mode, dilations) on
// oneDNN's pooling primitive, reading and writing the plain layout. The reference kernel walks each
// window across every plane, a cache miss per tap on real activations: on a ResNet-shaped CNN its
// MaxPool was half the run. The window geometry is the shared rule (runtime/core/ops/conv_pool.h);
// oneDNN gets the same pads, with the right pad that makes its output size exactly the rule's.
//
// What stays on the reference kernel: other dtypes, MaxPool's Indices output, LpPool, an AveragePool
// whose last window would reach past the end pad (ceil_mode: ONNX and oneDNN count such taps
// differently), and shapes only oneDNN's reference implementation takes.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "runtime/core/ops/conv_pool.h"
#include "runtime/cpu/kernels/common.h"
#include "runtime/cpu/kernels/vector_loops.h"
#include "runtime/cpu/onednn/onednn_common.h"

namespace tunnx::cpu::onednn {
namespace {

using Key = std::vector<int64_t>;

struct PoolPrimitive {
  dnnl::pooling_v2_forward primitive;
  dnnl::memory::desc src, dst, scratchpad;
  BoundPrimitive bound;  // SRC, DST
};

class OnednnPool : public Kernel {
 public:
  // `channels_last`: com.tunnx:ChannelsLastPool, X and Y [N, H, W, C].
  OnednnPool(std::unique_ptr<Kernel> reference, ops::PoolAttrs attrs, bool max, bool channels_last = false)
      : reference_(std::move(reference)), attrs_(std::move(attrs)), max_(max), channels_last_(channels_last) {}

  void run(KernelContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    if (x.dtype() != DataType::kFloat32 || x.rank() < 3 || x.rank() > 5 || x.numel() == 0 ||
        (max_ && ctx.output_wanted(1)) || (channels_last_ && x.rank() != 4))
      return reference_->run(ctx);
    // The window rule reads NCHW: a channels-last X is [N, C, H, W] to it.
    const std::vector<int64_t> x_dims = channels_last_ ? ops::nchw_of_channels_last(x.dims()) : x.dims();
    const std::optional<ops::PoolGeometry> g = ops::pool_geometry(attrs_, x_dims, nullptr);
    if (!g) return reference_->run(ctx);  // it reports the error
    const std::vector<int64_t> y_dims = ops::pooled_dims(x_dims, g->out);
    if (product(y_dims) == 0) return reference_->run(ctx);
    const std::vector<int64_t> out_dims = channels_last_ ? ops::channels_last_of_nchw(y_dims) : y_dims;
    if (channels_last_ && max_ && g->out.size() == 2) return max_pool_in_vectors(ctx, x, *g, out_dims);
    const Key key = x_dims;
    if (declined_.find(key)) return reference_->run(ctx);
    std::shared_ptr<const PoolPrimitive> p = cache_.find(key);
    if (!p) {
      std::shared_ptr<PoolPrimitive> built = build(*g, x_dims, y_dims);
      if (!built) {
        declined_.insert(key, std::make_shared<const bool>(true));
        return reference_->run(ctx);
      }
      p = cache_.insert(key, std::move(built));
    }
    Tensor& y = ctx.allocate_output_uninitialized(0, DataType::kFloat32, out_dims);
    // Work is the taps read, not the outputs written: ResNet-18's 3x3 MaxPool writes 200K floats
    // (under SerialIfSmall's bar) from 3.2 MB it reads, and ran on one thread at 2 (0.29 ms).
    double taps = static_cast<double>(product(y_dims));
    for (const int64_t k : g->kernel) taps *= static_cast<double>(k);
    p->bound.run({data<float>(x), mutable_data<float>(y)}, {}, taps);
  }

 private:
  // A channels-last 2-D MaxPool in vector loops (max_pool_channels_last), the images' output rows
  // split among the run's threads: oneDNN's pooling on channels-last activations read them at
  // ~10 GB/s on one thread (ResNet-18's 3x3 stride-2 pool over 112x112x64: 0.29 ms, ONNX Runtime's
  // on its blocked layout 0.16).
  void max_pool_in_vectors(KernelContext& ctx, const Tensor& x, const ops::PoolGeometry& g,
                           const std::vector<int64_t>& out_dims) const {
    const int64_t N = x.dims()[0], H = x.dims()[1], W = x.dims()[2], C = x.dims()[3];
    const int64_t OH = out_dims[1], OW = out_dims[2];
    Tensor& y = ctx.allocate_output_uninitialized(0, DataType::kFloat32, out_dims);
    const float* in = data<float>(x);
    float* out = mutable_data<float>(y);
    const int64_t kernel[2] = {g.kernel[0], g.kernel[1]}, strides[2] = {g.strides[0], g.strides[1]};
    const int64_t dilations[2] = {g.dilations[0], g.dilations[1]}, pads[2] = {g.pad_begin[0], g.pad_begin[1]};
    const int64_t taps = product(out_dims) * kernel[0] * kernel[1];
    const int64_t rows = N * OH;  // output rows of all images, shared out in whole stretches
    const int threads = static_cast<int>(std::min<int64_t>(rows, taps >= kParallelElements ? max_threads() : 1));
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int t = 0; t < threads; ++t) {
      for (int64_t r = rows * t / threads, end = rows * (t + 1) / threads; r < end;) {
        const int64_t n = r / OH, oh = r % OH, stop = std::min(end - n * OH, OH);  // this image's rows
        max_pool_channels_last(in + n * H * W * C, H, W, C, out + n * OH * OW * C, OW, kernel, strides, dilations,
                               pads, oh, stop);
        r = n * OH + stop;
      }
    }
  }

  std::shared_ptr<PoolPrimitive> build(const ops::PoolGeometry& g, const std::vector<int64_t>& x_dims,
                                       const std::vector<int64_t>& y_dims) const {
    const size_t nd = g.out.size();
    dnnl::memory::dims strides(nd), kernel(nd), dilation(nd), pad_l(nd), pad_r(nd);
    for (size_t d = 0; d < nd; ++d) {
      strides[d] = g.strides[d];
      kernel[d] = g.kernel[d];
      dilation[d] = g.dilations[d] - 1;
      pad_l[d] = g.pad_begin[d];
      pad_r[d] = std::max<int64_t>(
          0, (g.out[d] - 1) * g.strides[d] + (g.kernel[d] - 1) * g.dilations[d] + 1 - g.in[d] - g.pad_begin[d]);
      // Averages count taps in the pads (count_include_pad) or not; past the end pad ONNX and oneDNN
      // disagree, so such windows stay on the reference.
      if (!max_ && pad_r[d] > g.pad_end[d]) return nullptr;
    }
    const dnnl::algorithm algorithm = max_ ? dnnl::algorithm::pooling_max
                                     : attrs_.count_include_pad ? dnnl::algorithm::pooling_avg_include_padding
                                                                : dnnl::algorithm::pooling_avg_exclude_padding;
    auto built = std::make_shared<PoolPrimitive>();
    built->src = activation_f32(x_dims, channels_last_);
    built->dst = activation_f32(y_dims, channels_last_);
    try {
      dnnl::primitive_attr attr;
      attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
      dnnl::pooling_v2_forward::desc desc(dnnl::prop_kind::forward_inference, algorithm, built->src, built->dst,
                                          strides, kernel, dilation, pad_l, pad_r);
      dnnl::pooling_v2_forward::primitive_desc pd(desc, attr, cpu_engine());
      if (reference_only(pd)) return nullptr;
      built->primitive = dnnl::pooling_v2_forward(pd);
      built->scratchpad = pd.scratchpad_desc();
      built->bound = BoundPrimitive(built->primitive, {{DNNL_ARG_SRC, built->src}, {DNNL_ARG_DST, built->dst}}, built->scratchpad);
    } catch (const dnnl::error&) {
      return nullptr;
    }
    return built;
  }

  std::unique_ptr<Kernel> reference_;
  ops::PoolAttrs attrs_;
  bool max_;
  bool channels_last_;
  LruCache<Key, PoolPrimitive> cache_{16};
  LruCache<Key, bool> declined_{16};
};

}  // namespace

void register_onednn_pool(KernelRegistry& registry) {
  for (const bool max : {true, false})
    add_fast_path(
        registry, max ? "MaxPool" : "AveragePool",
        [max](const KernelInit& init, std::unique_ptr<Kernel> reference) -> std::unique_ptr<Kernel> {
          return std::make_unique<OnednnPool>(std::move(reference), ops::parse_pool_attrs(init.node()), max);
        },
        12);
  // com.tunnx:ChannelsLastPool (runtime/core/passes/channels_last.h) over its reference (kernels/fused.cc).
  add_fast_path(
      registry, "ChannelsLastPool",
      [](const KernelInit& init, std::unique_ptr<Kernel> fallback) -> std::unique_ptr<Kernel> {
        if (init.attr_string("op", "") == "GlobalMaxPool") return fallback;  // its own channels-last loop
        return std::make_unique<OnednnPool>(std::move(fallback), ops::parse_pool_attrs(init.node()),
                                            init.attr_string("op", "") == "MaxPool", /*channels_last=*/true);
      },
      1, "com.tunnx");
}

}  // namespace tunnx::cpu::onednn
