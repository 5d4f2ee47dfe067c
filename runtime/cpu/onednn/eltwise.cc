// float32 activations on oneDNN's eltwise primitives, vectorized where the reference kernels call
// tanh/exp/erf one element at a time: Relu, LeakyRelu, Elu, Tanh, Sigmoid, Exp, Abs, HardSwish, and
// GELU (ONNX Gelu from opset 20 and com.tunnx:Gelu, which fuse_gelu makes) with its gradient
// com.tunnx:ElementwiseGrad(op="Gelu"). In a transformer's training step the GELU and its gradient
// were ~5% of the time; in a tf2onnx classifier (magika) two Tanh nodes were a quarter of the run.
// Elementwise, so every tensor is a 1-D view of its elements. Shape rules and attribute checks stay
// the reference kernels'; other dtypes and mismatched operands run the reference kernel, which
// reports errors in its words. Ops whose edge cases oneDNN treats differently (Log, Sqrt of negative
// numbers, ...) stay on the reference.
#include <cstdint>
#include <memory>
#include <string>
#include <utility>

#include "runtime/cpu/kernels/common.h"
#include "runtime/cpu/onednn/onednn_common.h"

namespace tunnx::cpu::onednn {
namespace {

struct EltwisePrimitive {
  dnnl::primitive primitive;
  dnnl::memory::desc data, scratchpad;
  BoundPrimitive bound;  // forward: SRC, DST; backward: SRC, DIFF_DST, DIFF_SRC
};

std::optional<dnnl::algorithm> gelu_algorithm(const std::string& approximate) {
  if (approximate == "none") return dnnl::algorithm::eltwise_gelu_erf;
  if (approximate == "tanh") return dnnl::algorithm::eltwise_gelu_tanh;
  return std::nullopt;  // the reference kernel refuses it
}

// Y = f(X) (backward = false), or dX = dY * f'(X) (backward = true: inputs dY, X).
class OnednnEltwise : public Kernel {
 public:
  OnednnEltwise(std::unique_ptr<Kernel> reference, dnnl::algorithm algorithm, bool backward, float alpha = 0,
                float beta = 0)
      : reference_(std::move(reference)), algorithm_(algorithm), backward_(backward), alpha_(alpha), beta_(beta) {}

  void run(KernelContext& ctx) const override {
    const Tensor& first = ctx.input(0);
    const Tensor* x = backward_ ? (ctx.has_input(1) ? &ctx.input(1) : nullptr) : &first;
    if (!x || first.dtype() != DataType::kFloat32 || x->dtype() != DataType::kFloat32 || first.numel() == 0 ||
        (backward_ && first.dims() != x->dims()))
      return reference_->run(ctx);
    const int64_t n = first.numel();
    std::shared_ptr<const EltwisePrimitive> p = cache_.find(n);
    if (!p) {
      auto built = std::make_shared<EltwisePrimitive>();
      built->data = plain_f32({n});
      try {
        dnnl::primitive_attr attr;
        attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
        const dnnl::prop_kind kind = backward_ ? dnnl::prop_kind::forward_training : dnnl::prop_kind::forward_inference;
        dnnl::eltwise_forward::primitive_desc forward(dnnl::eltwise_forward::desc(kind, algorithm_, built->data, alpha_, beta_), attr,
                                                      cpu_engine());
        if (backward_) {
          dnnl::eltwise_backward::primitive_desc pd(
              dnnl::eltwise_backward::desc(algorithm_, built->data, built->data, alpha_, beta_), attr, cpu_engine(), forward);
          built->primitive = dnnl::eltwise_backward(pd);
          built->scratchpad = pd.scratchpad_desc();
        } else {
          built->primitive = dnnl::eltwise_forward(forward);
          built->scratchpad = forward.scratchpad_desc();
        }
      } catch (const dnnl::error&) {
        return reference_->run(ctx);
      }
      if (backward_)
        built->bound = BoundPrimitive(
            built->primitive, {{DNNL_ARG_SRC, built->data}, {DNNL_ARG_DIFF_DST, built->data}, {DNNL_ARG_DIFF_SRC, built->data}},
            built->scratchpad);
      else
        built->bound = BoundPrimitive(built->primitive, {{DNNL_ARG_SRC, built->data}, {DNNL_ARG_DST, built->data}}, built->scratchpad);
      p = cache_.insert(n, std::move(built));
    }
    Tensor& out = ctx.allocate_output_uninitialized(0, DataType::kFloat32, first.dims());
    if (backward_)
      p->bound.run({data<float>(*x), data<float>(first), mutable_data<float>(out)});
    else
      p->bound.run({data<float>(*x), mutable_data<float>(out)});
  }

 private:
  std::unique_ptr<Kernel> reference_;
  dnnl::algorithm algorithm_;
  bool backward_;
  float alpha_, beta_;
  LruCache<int64_t, EltwisePrimitive> cache_{16};
};

}  // namespace

void register_onednn_eltwise(KernelRegistry& registry) {
  auto gelu = [](const KernelInit& init, std::unique_ptr<Kernel> reference) -> std::unique_ptr<Kernel> {
    const std::optional<dnnl::algorithm> alg = gelu_algorithm(init.attr_string("approximate", "none"));
    if (!alg) return reference;
    return std::make_unique<OnednnEltwise>(std::move(reference), *alg, false);
  };
  add_fast_path(registry, "Gelu", gelu, 20);
  add_fast_path(registry, "Gelu", gelu, 1, "com.tunnx");
  add_fast_path(
      registry, "ElementwiseGrad",
      [](const KernelInit& init, std::unique_ptr<Kernel> reference) -> std::unique_ptr<Kernel> {
        if (init.attr_string("op", "") != "Gelu") return reference;
        const std::optional<dnnl::algorithm> alg = gelu_algorithm(init.attr_string("approximate", "none"));
        if (!alg) return reference;
        return std::make_unique<OnednnEltwise>(std::move(reference), *alg, true);
      },
      1, "com.tunnx");
  // op, the opset its reference kernel is found at, the algorithm, and its alpha from the node.
  struct Unary {
    const char* op;
    int64_t opset;
    dnnl::algorithm algorithm;
    const char* alpha_attr;
    float alpha_default;
    bool tunnx_too = false;  // also com.tunnx's, which a pass makes in models of any opset
  };
  const Unary unary[] = {
      {"Relu", 14, dnnl::algorithm::eltwise_relu, nullptr, 0},
      {"LeakyRelu", 16, dnnl::algorithm::eltwise_relu, "alpha", 0.01f},  // relu's alpha is the slope below 0
      {"Elu", 6, dnnl::algorithm::eltwise_elu, "alpha", 1.0f},
      {"Tanh", 13, dnnl::algorithm::eltwise_tanh, nullptr, 0},
      {"Sigmoid", 13, dnnl::algorithm::eltwise_logistic, nullptr, 0},
      {"Exp", 13, dnnl::algorithm::eltwise_exp, nullptr, 0},
      {"Abs", 13, dnnl::algorithm::eltwise_abs, nullptr, 0},
      {"HardSwish", 14, dnnl::algorithm::eltwise_hardswish, nullptr, 0, true},  // passes/fuse_hard_swish
  };
  for (const Unary& u : unary) {
    auto make = [u](const KernelInit& init, std::unique_ptr<Kernel> reference) -> std::unique_ptr<Kernel> {
      const float alpha = u.alpha_attr ? init.attr_float(u.alpha_attr, u.alpha_default) : 0.0f;
      return std::make_unique<OnednnEltwise>(std::move(reference), u.algorithm, false, alpha);
    };
    add_fast_path(registry, u.op, make, u.opset);
    if (u.tunnx_too) add_fast_path(registry, u.op, make, 1, "com.tunnx");
  }
}

}  // namespace tunnx::cpu::onednn
