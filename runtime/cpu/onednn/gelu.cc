// float32 GELU and its gradient on oneDNN's eltwise primitives (gelu_erf, gelu_tanh), vectorized where
// the reference kernels call erf/exp/tanh one element at a time: in a transformer's training step the
// forward GELU and ElementwiseGrad(op="Gelu") were ~5% of the time. Elementwise, so every tensor is a
// 1-D view of its elements. Shape rules and attribute checks stay the reference kernels' (ONNX Gelu
// from opset 20, com.tunnx:Gelu that fuse_gelu makes, com.tunnx:ElementwiseGrad); other dtypes and
// mismatched operands run the reference kernel, which reports errors in its words.
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "runtime/cpu/kernels/common.h"
#include "runtime/cpu/onednn/onednn_common.h"

namespace tunnx::cpu::onednn {
namespace {

struct GeluPrimitive {
  dnnl::primitive primitive;
  dnnl::memory::desc data, scratchpad;
};

std::optional<dnnl::algorithm> gelu_algorithm(const std::string& approximate) {
  if (approximate == "none") return dnnl::algorithm::eltwise_gelu_erf;
  if (approximate == "tanh") return dnnl::algorithm::eltwise_gelu_tanh;
  return std::nullopt;  // the reference kernel refuses it
}

// Y = Gelu(X) (backward = false), or dX = dY * Gelu'(X) (backward = true: inputs dY, X).
class OnednnGelu : public Kernel {
 public:
  OnednnGelu(std::unique_ptr<Kernel> reference, dnnl::algorithm algorithm, bool backward)
      : reference_(std::move(reference)), algorithm_(algorithm), backward_(backward) {}

  void run(KernelContext& ctx) const override {
    const Tensor& first = ctx.input(0);
    const Tensor* x = backward_ ? (ctx.has_input(1) ? &ctx.input(1) : nullptr) : &first;
    if (!x || first.dtype() != DataType::kFloat32 || x->dtype() != DataType::kFloat32 || first.numel() == 0 ||
        (backward_ && first.dims() != x->dims()))
      return reference_->run(ctx);
    const int64_t n = first.numel();
    std::shared_ptr<const GeluPrimitive> p = cache_.find(n);
    if (!p) {
      auto built = std::make_shared<GeluPrimitive>();
      built->data = plain_f32({n});
      try {
        dnnl::primitive_attr attr;
        attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
        const dnnl::prop_kind kind = backward_ ? dnnl::prop_kind::forward_training : dnnl::prop_kind::forward_inference;
        dnnl::eltwise_forward::primitive_desc forward(dnnl::eltwise_forward::desc(kind, algorithm_, built->data), attr,
                                                      cpu_engine());
        if (backward_) {
          dnnl::eltwise_backward::primitive_desc pd(
              dnnl::eltwise_backward::desc(algorithm_, built->data, built->data), attr, cpu_engine(), forward);
          built->primitive = dnnl::eltwise_backward(pd);
          built->scratchpad = pd.scratchpad_desc();
        } else {
          built->primitive = dnnl::eltwise_forward(forward);
          built->scratchpad = forward.scratchpad_desc();
        }
      } catch (const dnnl::error&) {
        return reference_->run(ctx);
      }
      p = cache_.insert(n, std::move(built));
    }
    Tensor& out = ctx.allocate_output_uninitialized(0, DataType::kFloat32, first.dims());
    if (backward_)
      execute(p->primitive, p->scratchpad,
              {{DNNL_ARG_SRC, wrap(p->data, data<float>(*x))},
               {DNNL_ARG_DIFF_DST, wrap(p->data, data<float>(first))},
               {DNNL_ARG_DIFF_SRC, wrap(p->data, mutable_data<float>(out))}});
    else
      execute(p->primitive, p->scratchpad,
              {{DNNL_ARG_SRC, wrap(p->data, data<float>(*x))}, {DNNL_ARG_DST, wrap(p->data, mutable_data<float>(out))}});
  }

 private:
  std::unique_ptr<Kernel> reference_;
  dnnl::algorithm algorithm_;
  bool backward_;
  LruCache<int64_t, GeluPrimitive> cache_{16};
};

// Registers the fast path over the reference kernel of (domain, op_type) at `opset`; `make` returns
// the fast kernel, or the reference one for nodes it does not take.
template <typename Make>
void wrap_reference(KernelRegistry& registry, const std::string& domain, const std::string& op_type, int64_t opset,
                    Make make) {
  const KernelDef* ref = registry.find_reference(domain, op_type, opset, DeviceType::kCpu);
  if (!ref || ref->priority != 0) return;
  KernelDef def = *ref;
  def.types = {DataType::kFloat32};
  def.name = "cpu/onednn/" + op_type;
  def.priority = 10;
  def.falls_back_at_run_time = true;
  def.factory = [reference = ref->factory, make](const KernelInit& init) { return make(init, reference(init)); };
  registry.add(std::move(def));
}

}  // namespace

void register_onednn_gelu(KernelRegistry& registry) {
  auto forward = [](const KernelInit& init, std::unique_ptr<Kernel> reference) -> std::unique_ptr<Kernel> {
    const std::optional<dnnl::algorithm> alg = gelu_algorithm(init.attr_string("approximate", "none"));
    if (!alg) return reference;
    return std::make_unique<OnednnGelu>(std::move(reference), *alg, false);
  };
  wrap_reference(registry, "", "Gelu", 20, forward);
  wrap_reference(registry, "com.tunnx", "Gelu", 1, forward);
  wrap_reference(registry, "com.tunnx", "ElementwiseGrad", 1,
                 [](const KernelInit& init, std::unique_ptr<Kernel> reference) -> std::unique_ptr<Kernel> {
                   if (init.attr_string("op", "") != "Gelu") return reference;
                   const std::optional<dnnl::algorithm> alg = gelu_algorithm(init.attr_string("approximate", "none"));
                   if (!alg) return reference;
                   return std::make_unique<OnednnGelu>(std::move(reference), *alg, true);
                 });
}

}  // namespace tunnx::cpu::onednn
