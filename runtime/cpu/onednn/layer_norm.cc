// float32 LayerNormalization (opset 17) on oneDNN's layer-normalization primitive. ONNX normalizes
// over the dims from `axis` on; that is oneDNN's last-dim normalization over the 2-D view
// [prod(dims[:axis]), prod(dims[axis:])], with Scale and B (when given) as its scale and shift.
// The reference kernel (runtime/cpu/kernels/normalization.cc) runs what this does not take: the Mean
// and InvStdDev outputs (oneDNN keeps a variance, not its inverse root), a stash_type other than
// float32, Scale or B that only broadcast to the normalized shape, other dtypes, empty tensors and
// axes out of range (it reports those errors in its words).
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <utility>
#include <vector>

#include "runtime/cpu/kernels/common.h"
#include "runtime/cpu/onednn/onednn_common.h"

namespace tunnx::cpu::onednn {
namespace {

struct LayerNormPrimitive {
  dnnl::layer_normalization_forward primitive;
  dnnl::memory::desc data, channels, scratchpad;
  BoundPrimitive bound;  // SRC, DST, SCALE[, SHIFT]
};

class OnednnLayerNorm : public Kernel {
 public:
  OnednnLayerNorm(std::unique_ptr<Kernel> reference, int64_t axis, float epsilon)
      : reference_(std::move(reference)), axis_(axis), epsilon_(epsilon) {}

  void run(KernelContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    const int64_t rank = static_cast<int64_t>(x.rank());
    if (x.dtype() != DataType::kFloat32 || rank == 0 || x.numel() == 0 || axis_ < -rank || axis_ >= rank ||
        ctx.output_wanted(1) || ctx.output_wanted(2))
      return reference_->run(ctx);
    const int64_t axis = axis_ < 0 ? axis_ + rank : axis_;
    int64_t outer = 1, inner = 1;
    for (int64_t i = 0; i < rank; ++i) (i < axis ? outer : inner) *= x.dims()[static_cast<size_t>(i)];
    const Tensor& scale = ctx.input(1);
    const Tensor* shift = ctx.has_input(2) ? &ctx.input(2) : nullptr;
    if (scale.dtype() != DataType::kFloat32 || scale.numel() != inner ||
        (shift && (shift->dtype() != DataType::kFloat32 || shift->numel() != inner)))
      return reference_->run(ctx);

    const std::vector<int64_t> key = {outer, inner, shift ? 1 : 0};
    std::shared_ptr<const LayerNormPrimitive> p = cache_.find(key);
    if (!p) {
      auto built = std::make_shared<LayerNormPrimitive>();
      built->data = plain_f32({outer, inner});
      built->channels = plain_f32({inner});
      try {
        auto flags = dnnl::normalization_flags::use_scale;
        if (shift) flags = flags | dnnl::normalization_flags::use_shift;
        dnnl::primitive_attr attr;
        attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
        dnnl::layer_normalization_forward::primitive_desc pd(
            dnnl::layer_normalization_forward::desc(dnnl::prop_kind::forward_inference, built->data, epsilon_, flags),
            attr, cpu_engine());
        built->primitive = dnnl::layer_normalization_forward(pd);
        built->scratchpad = pd.scratchpad_desc();
        std::vector<std::pair<int, dnnl::memory::desc>> args = {
            {DNNL_ARG_SRC, built->data}, {DNNL_ARG_DST, built->data}, {DNNL_ARG_SCALE, built->channels}};
        if (shift) args.emplace_back(DNNL_ARG_SHIFT, built->channels);
        built->bound = BoundPrimitive(built->primitive, std::move(args), built->scratchpad);
      } catch (const dnnl::error&) {
        return reference_->run(ctx);
      }
      p = cache_.insert(key, std::move(built));
    }

    Tensor& y = ctx.allocate_output_uninitialized(0, DataType::kFloat32, x.dims());
    p->bound.run({data<float>(x), mutable_data<float>(y), data<float>(scale), shift ? data<float>(*shift) : nullptr});
  }

 private:
  std::unique_ptr<Kernel> reference_;
  int64_t axis_;
  float epsilon_;
  LruCache<std::vector<int64_t>, LayerNormPrimitive> cache_{16};
};

}  // namespace

void register_onednn_layer_norm(KernelRegistry& registry) {
  auto make = [](const KernelInit& init, std::unique_ptr<Kernel> reference) -> std::unique_ptr<Kernel> {
    if (init.attr_int("stash_type", 1) != static_cast<int64_t>(DataType::kFloat32)) return reference;
    return std::make_unique<OnednnLayerNorm>(std::move(reference), init.attr_int("axis", -1),
                                             init.attr_float("epsilon", 1e-5f));
  };
  add_fast_path(registry, "LayerNormalization", make, 17);
  add_fast_path(registry, "LayerNormalization", make, 1, "com.tunnx");  // lowered contrib ops' (kernels/fused.cc)
}

}  // namespace tunnx::cpu::onednn
