// float32 Softmax on oneDNN's softmax primitive. Shape rules are the reference kernel's
// (runtime/cpu/kernels/reduce.cc): before opset 13 the input is coerced to 2-D at `axis` (default 1)
// and each row is normalized; from 13 the values along `axis` (default -1) are. Both are one oneDNN
// softmax over a plain view of the input: [outer, inner] along 1, or the dims as they are along axis.
// Empty or scalar inputs, other dtypes and axes out of range run the reference kernel (which reports
// the error in its words).
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <utility>
#include <vector>

#include "runtime/cpu/kernels/common.h"
#include "runtime/cpu/onednn/onednn_common.h"

namespace tunnx::cpu::onednn {
namespace {

struct SoftmaxPrimitive {
  dnnl::softmax_forward primitive;
  dnnl::memory::desc data, scratchpad;
};

class OnednnSoftmax : public Kernel {
 public:
  OnednnSoftmax(std::unique_ptr<Kernel> reference, bool coerce_2d, int64_t axis)
      : reference_(std::move(reference)), coerce_2d_(coerce_2d), axis_(axis) {}

  void run(KernelContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    const int64_t rank = static_cast<int64_t>(x.rank());
    if (x.dtype() != DataType::kFloat32 || rank == 0 || x.numel() == 0 || rank > DNNL_MAX_NDIMS ||
        axis_ < -rank || axis_ >= rank + (coerce_2d_ ? 1 : 0))
      return reference_->run(ctx);
    const int64_t axis = axis_ < 0 ? axis_ + rank : axis_;

    std::vector<int64_t> dims = x.dims();
    int softmax_axis = static_cast<int>(axis);
    if (coerce_2d_) {
      int64_t outer = 1, inner = 1;
      for (int64_t i = 0; i < rank; ++i) (i < axis ? outer : inner) *= dims[static_cast<size_t>(i)];
      dims = {outer, inner};
      softmax_axis = 1;
    }
    std::vector<int64_t> key = dims;
    key.push_back(softmax_axis);
    std::shared_ptr<const SoftmaxPrimitive> p = cache_.find(key);
    if (!p) {
      auto built = std::make_shared<SoftmaxPrimitive>();
      built->data = plain_f32(dims);
      try {
        dnnl::primitive_attr attr;
        attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
        dnnl::softmax_forward::primitive_desc pd(
            dnnl::softmax_forward::desc(dnnl::prop_kind::forward_inference, built->data, softmax_axis), attr,
            cpu_engine());
        built->primitive = dnnl::softmax_forward(pd);
        built->scratchpad = pd.scratchpad_desc();
      } catch (const dnnl::error&) {
        return reference_->run(ctx);
      }
      p = cache_.insert(key, std::move(built));
    }

    Tensor& y = ctx.allocate_output_uninitialized(0, DataType::kFloat32, x.dims());
    execute(p->primitive, p->scratchpad,
            {{DNNL_ARG_SRC, wrap(p->data, data<float>(x))}, {DNNL_ARG_DST, wrap(p->data, mutable_data<float>(y))}});
  }

 private:
  std::unique_ptr<Kernel> reference_;
  bool coerce_2d_;
  int64_t axis_;
  LruCache<std::vector<int64_t>, SoftmaxPrimitive> cache_{16};
};

}  // namespace

void register_onednn_softmax(KernelRegistry& registry) {
  add_fast_path(registry, "Softmax", [](const KernelInit& init, std::unique_ptr<Kernel> reference) -> std::unique_ptr<Kernel> {
    const bool coerce_2d = init.opset() < 13;
    return std::make_unique<OnednnSoftmax>(std::move(reference), coerce_2d, init.attr_int("axis", coerce_2d ? 1 : -1));
  });
}

}  // namespace tunnx::cpu::onednn
