// float32 Transpose as one oneDNN reorder: Y = X with its dims permuted is X's plain memory copied
// into a memory descriptor of X's dims whose strides are those of Y's plain layout, permuted back.
// oneDNN's jit reorders move such data 2-3x faster than the reference's gathers (an image into or out
// of channels-last: YOLOv8's 640x640 input 1.07 -> 0.45 ms, its [1, 80, 80, 144] head back to NCHW
// 2.5 -> 0.9 ms). Size-1 dims are dropped and dims that stay neighbours are merged first, so a
// permutation becomes the fewest dims oneDNN has to walk.
//
// Small tensors (a primitive's call costs more than the copy), perms that keep rows of 16 or more
// whole (the reference copies rows), a perm the reference would refuse,
// other dtypes and perms that keep the order (a copy, which the reference hands on without copying)
// run the reference kernel (runtime/cpu/kernels/tensor.cc), which reports errors in its words.
#include <cstdint>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "runtime/cpu/kernels/common.h"
#include "runtime/cpu/onednn/onednn_common.h"

namespace tunnx::cpu::onednn {
namespace {

// Below this many elements the reference's copy is cheaper than a primitive call.
constexpr int64_t kFromElements = 1 << 14;

// X's dims and the permutation with size-1 dims dropped and runs of input dims that stay in order
// merged: [1, 3, 640, 640] by (0, 2, 3, 1) is [3, 409600] by (1, 0).
struct CollapsedTranspose {
  std::vector<int64_t> dims;  // of X
  std::vector<int64_t> perm;  // output dim i is input dim perm[i]
};

CollapsedTranspose collapse(const std::vector<int64_t>& dims, const std::vector<int64_t>& perm) {
  const size_t rank = dims.size();
  // Keep the dims of size above 1, renumbered.
  std::vector<int64_t> renumber(rank, -1), kept_dims;
  for (size_t d = 0; d < rank; ++d)
    if (dims[d] != 1) {
      renumber[d] = static_cast<int64_t>(kept_dims.size());
      kept_dims.push_back(dims[d]);
    }
  std::vector<int64_t> kept_perm;
  for (int64_t p : perm)
    if (renumber[static_cast<size_t>(p)] >= 0) kept_perm.push_back(renumber[static_cast<size_t>(p)]);
  // Merge output neighbours that are input neighbours in the same order: each run is one dim.
  std::vector<int64_t> run_of(kept_dims.size(), -1);  // input dim -> the run it starts, or -1 inside one
  std::vector<std::vector<int64_t>> runs;
  for (size_t i = 0; i < kept_perm.size(); ++i) {
    if (i > 0 && kept_perm[i] == kept_perm[i - 1] + 1) {
      runs.back().push_back(kept_perm[i]);
    } else {
      run_of[static_cast<size_t>(kept_perm[i])] = static_cast<int64_t>(runs.size());
      runs.push_back({kept_perm[i]});
    }
  }
  // The collapsed input: the runs in input order; the collapsed perm: the runs in output order.
  CollapsedTranspose c;
  std::vector<int64_t> input_index(runs.size());
  for (size_t d = 0; d < kept_dims.size(); ++d) {
    const int64_t r = run_of[d];
    if (r < 0) continue;
    int64_t size = 1;
    for (int64_t member : runs[static_cast<size_t>(r)]) size *= kept_dims[static_cast<size_t>(member)];
    input_index[static_cast<size_t>(r)] = static_cast<int64_t>(c.dims.size());
    c.dims.push_back(size);
  }
  for (size_t r = 0; r < runs.size(); ++r) c.perm.push_back(input_index[r]);
  return c;
}

struct TransposeReorder {
  dnnl::reorder primitive;
  dnnl::memory::desc from, to, scratchpad;
  BoundPrimitive bound;  // FROM, TO
};

std::shared_ptr<TransposeReorder> build(const CollapsedTranspose& c) {
  const size_t rank = c.dims.size();
  dnnl::memory::dims dims(c.dims.begin(), c.dims.end()), from_strides(rank), to_strides(rank);
  int64_t stride = 1;
  for (size_t d = rank; d-- > 0;) {
    from_strides[d] = stride;
    stride *= c.dims[d];
  }
  // Y's plain strides, output dim i being input dim perm[i].
  stride = 1;
  for (size_t i = rank; i-- > 0;) {
    to_strides[static_cast<size_t>(c.perm[i])] = stride;
    stride *= c.dims[static_cast<size_t>(c.perm[i])];
  }
  auto built = std::make_shared<TransposeReorder>();
  built->from = dnnl::memory::desc(dims, dnnl::memory::data_type::f32, from_strides);
  built->to = dnnl::memory::desc(dims, dnnl::memory::data_type::f32, to_strides);
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  dnnl::reorder::primitive_desc pd(cpu_engine(), built->from, cpu_engine(), built->to, attr);
  built->primitive = dnnl::reorder(pd);
  built->scratchpad = pd.scratchpad_desc();
  built->bound = BoundPrimitive(built->primitive, {{DNNL_ARG_FROM, built->from}, {DNNL_ARG_TO, built->to}}, built->scratchpad);
  return built;
}

class OnednnTranspose : public Kernel {
 public:
  OnednnTranspose(std::unique_ptr<Kernel> reference, std::optional<std::vector<int64_t>> perm)
      : reference_(std::move(reference)), perm_(std::move(perm)) {}

  void run(KernelContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    const int64_t rank = static_cast<int64_t>(x.rank());
    if (x.dtype() != DataType::kFloat32 || x.numel() < kFromElements) return reference_->run(ctx);
    std::vector<int64_t> perm;
    if (perm_) {
      perm = *perm_;
      if (static_cast<int64_t>(perm.size()) != rank) return reference_->run(ctx);
      std::vector<bool> seen(static_cast<size_t>(rank), false);
      for (int64_t& p : perm) {
        if (p < 0) p += rank;
        if (p < 0 || p >= rank || seen[static_cast<size_t>(p)]) return reference_->run(ctx);
        seen[static_cast<size_t>(p)] = true;
      }
    } else {
      for (int64_t i = rank; i-- > 0;) perm.push_back(i);
    }
    const CollapsedTranspose c = collapse(x.dims(), perm);
    if (c.dims.size() < 2 || c.dims.size() > DNNL_MAX_NDIMS) return reference_->run(ctx);  // a copy, or too many dims
    // The last dim staying last in rows of 16 or more (attention's head split, [B, S, H, D] by
    // (0, 2, 1, 3)): the reference copies whole rows, as fast as the reorder.
    if (c.perm.back() == static_cast<int64_t>(c.dims.size()) - 1 && c.dims.back() >= 16) return reference_->run(ctx);

    std::vector<int64_t> key = c.dims;
    key.insert(key.end(), c.perm.begin(), c.perm.end());
    std::shared_ptr<const TransposeReorder> p = cache_.find(key);
    if (!p) {
      try {
        p = cache_.insert(key, build(c));
      } catch (const dnnl::error&) {
        return reference_->run(ctx);
      }
    }
    std::vector<int64_t> out_dims;
    for (int64_t d : perm) out_dims.push_back(x.dims()[static_cast<size_t>(d)]);
    Tensor& y = ctx.allocate_output_uninitialized(0, DataType::kFloat32, std::move(out_dims));
    p->bound.run({data<float>(x), mutable_data<float>(y)});
  }

 private:
  std::unique_ptr<Kernel> reference_;
  std::optional<std::vector<int64_t>> perm_;  // the attribute as written; none: reverse the dims
  LruCache<std::vector<int64_t>, TransposeReorder> cache_{16};
};

}  // namespace

void register_onednn_transpose(KernelRegistry& registry) {
  add_fast_path(
      registry, "Transpose",
      [](const KernelInit& init, std::unique_ptr<Kernel> reference) -> std::unique_ptr<Kernel> {
        std::optional<std::vector<int64_t>> perm;
        if (init.has_attr("perm")) perm = init.attr_ints("perm");
        return std::make_unique<OnednnTranspose>(std::move(reference), std::move(perm));
      },
      1);
}

}  // namespace tunnx::cpu::onednn
