// float32 Softmax on oneDNN's softmax primitive. Shape rules are the reference kernel's
// (runtime/cpu/kernels/reduce.cc): before opset 13 the input is coerced to 2-D at `axis` (default 1)
// and each row is normalized; from 13 the values along `axis` (default -1) are. Both are one oneDNN
// softmax over a plain view of the input: [outer, inner] along 1, or the dims as they are along axis.
// Empty or scalar inputs, other dtypes and axes out of range run the reference kernel (which reports
// the error in its words).
//
// An axis with many values after it ([outer, C, inner], inner >= 16) does not go to oneDNN: its
// softmax on a plain layout reads C values inner floats apart, one vector lane at a time (YOLOv8's
// box decoder, softmax over axis 1 of [1, 16, 4, 8400]: 110 ms against ONNX Runtime's 9). There
// whole rows of `inner` values are combined instead (max, exp and sum, scale), loops the compiler
// vectorizes, split among the run's threads by column blocks.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <unordered_map>
#include <utility>
#include <vector>

#include "runtime/cpu/kernels/common.h"
#include "runtime/cpu/kernels/vector_loops.h"
#include "runtime/cpu/onednn/onednn_common.h"

namespace tunnx::cpu::onednn {
namespace {

constexpr int64_t kStridedFromInner = 16;

// y = softmax of x [outer, channels, inner] along the channels.
void softmax_strided(const float* x, float* y, int64_t outer, int64_t channels, int64_t inner) {
  constexpr int64_t kBlock = 512;  // columns per task: the running max and sum stay in L1
  const int64_t blocks = (inner + kBlock - 1) / kBlock, tasks = outer * blocks;
  const int threads = outer * channels * inner >= kParallelElements ? max_threads() : 1;
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t o = t / blocks, j0 = t % blocks * kBlock, n = std::min(kBlock, inner - j0);
    softmax_columns(x + o * channels * inner + j0, y + o * channels * inner + j0, channels, inner, n);
  }
}

struct SoftmaxPrimitive {
  dnnl::softmax_forward primitive;
  dnnl::memory::desc data, scratchpad;
  BoundPrimitive bound;  // SRC, DST
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
    int64_t inner = 1;
    for (size_t i = static_cast<size_t>(softmax_axis) + 1; i < dims.size(); ++i) inner *= dims[i];
    if (inner >= kStridedFromInner) {
      const int64_t channels = dims[static_cast<size_t>(softmax_axis)];
      Tensor& y = ctx.allocate_output_uninitialized(0, DataType::kFloat32, x.dims());
      softmax_strided(data<float>(x), mutable_data<float>(y), x.numel() / (channels * inner), channels, inner);
      return;
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
        built->bound = BoundPrimitive(built->primitive, {{DNNL_ARG_SRC, built->data}, {DNNL_ARG_DST, built->data}}, built->scratchpad);
      } catch (const dnnl::error&) {
        return reference_->run(ctx);
      }
      p = cache_.insert(key, std::move(built));
    }

    Tensor& y = ctx.allocate_output_uninitialized(0, DataType::kFloat32, x.dims());
    p->bound.run({data<float>(x), mutable_data<float>(y)});
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
