// float32 MatMul and Gemm on oneDNN's matmul primitive. Shape rules are the reference kernels'
// (runtime/cpu/kernels/linear.cc):
//   MatMul  A [..., M, K] x B [..., K, N] -> [broadcast(...), M, N]; a 1-D A is [1, K], a 1-D B is
//           [K, 1], and the added dim is dropped from the result. Both operands are padded with
//           leading 1s to one rank; oneDNN broadcasts batch dims of size 1 itself.
//   Gemm    Y [M, N] = alpha * A' B' + beta * C. Transposes are strides on the same memory (no copy);
//           alpha is the output scale; C is broadcast into Y first and added by a sum post-op of
//           scale beta, so Y = alpha * acc + beta * C as in the reference.
// One primitive per input shape, built on first sight and kept in a per-kernel LRU cache; a run only
// wraps the tensors' memory and executes on its own stream, with a scratchpad of its own (the
// primitive is shared by concurrent runs, so oneDNN must not own a per-primitive scratchpad).
//
// What this path does not take runs the reference kernel, built by the reference factory that was
// registered before us (found in the registry at registration and its factory copied, so no pointer
// into the still-growing registry is kept): dtypes other than float32 seen at run time, empty
// tensors, ranks above oneDNN's limit, shapes that do not fit (the reference then reports the error
// in its words), and any shape oneDNN declines to build a primitive for.
//
// Weights are passed in their plain layout. Reordering constant weights once into the layout oneDNN
// prefers needs to know that an input is a constant nothing writes to. A kernel cannot tell that
// today, and a storage pointer is no proof: sessions must see later writes to a model's parameters,
// and callers may refill one input buffer between runs. (On AVX2 machines oneDNN's f32 matmul is
// gemm:jit, whose preferred weights layout is the plain one anyway.)
#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "runtime/cpu/kernels/common.h"
#include "runtime/cpu/onednn/onednn_common.h"
#include "runtime/cpu/onednn/onednn_kernels.h"

namespace tunnx::cpu {
namespace onednn {

const dnnl::engine& cpu_engine() {
  static const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

dnnl::memory::desc plain_f32(const std::vector<int64_t>& dims) {
  dnnl::memory::dims d(dims.begin(), dims.end());
  dnnl::memory::dims strides(d.size(), 1);
  for (size_t i = d.size(); i-- > 1;) strides[i - 1] = strides[i] * std::max<int64_t>(d[i], 1);
  return dnnl::memory::desc(d, dnnl::memory::data_type::f32, strides);
}

}  // namespace onednn

namespace {

using onednn::LruCache;
using Key = std::vector<int64_t>;

constexpr size_t kCacheEntries = 16;

// A built primitive and the descriptors a run wraps its tensors in.
struct MatMulPrimitive {
  dnnl::matmul primitive;
  dnnl::memory::desc src, weights, dst, scratchpad;
};

// Builds the primitive for these descriptors; null when oneDNN has no implementation for them.
std::shared_ptr<const MatMulPrimitive> build(const dnnl::memory::desc& src, const dnnl::memory::desc& weights,
                                             const dnnl::memory::desc& dst, dnnl::primitive_attr attr) {
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  try {
    dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(src, weights, dst), attr, onednn::cpu_engine());
    auto p = std::make_shared<MatMulPrimitive>();
    p->primitive = dnnl::matmul(pd);
    p->src = src;
    p->weights = weights;
    p->dst = dst;
    p->scratchpad = pd.scratchpad_desc();
    return p;
  } catch (const dnnl::error&) {
    return nullptr;
  }
}

void execute(const MatMulPrimitive& p, const float* a, const float* b, float* y) {
  const dnnl::engine& engine = onednn::cpu_engine();
  dnnl::stream stream(engine);
  dnnl::memory src(p.src, engine, const_cast<float*>(a));  // oneDNN reads SRC/WEIGHTS only
  dnnl::memory weights(p.weights, engine, const_cast<float*>(b));
  dnnl::memory dst(p.dst, engine, y);
  dnnl::memory scratchpad(p.scratchpad, engine);  // per run: runs share the primitive
  p.primitive.execute(stream, {{DNNL_ARG_SRC, src},
                               {DNNL_ARG_WEIGHTS, weights},
                               {DNNL_ARG_DST, dst},
                               {DNNL_ARG_SCRATCHPAD, scratchpad}});
  stream.wait();
}

bool is_f32(const Tensor& t) { return t.dtype() == DataType::kFloat32; }

// ---- MatMul ----

class OnednnMatMul : public Kernel {
 public:
  explicit OnednnMatMul(std::unique_ptr<Kernel> reference) : reference_(std::move(reference)) {}

  void run(KernelContext& ctx) const override {
    const Tensor& a = ctx.input(0);
    const Tensor& b = ctx.input(1);
    if (!is_f32(a) || !is_f32(b) || a.numel() == 0 || b.numel() == 0 || a.rank() == 0 || b.rank() == 0)
      return reference_->run(ctx);
    // Both operands as matrices of one rank r: [batch..., M, K] and [batch..., K, N].
    std::vector<int64_t> ad = a.dims(), bd = b.dims();
    if (ad.size() == 1) ad.insert(ad.begin(), 1);
    if (bd.size() == 1) bd.push_back(1);
    const size_t r = std::max(ad.size(), bd.size());
    if (r > DNNL_MAX_NDIMS) return reference_->run(ctx);
    ad.insert(ad.begin(), r - ad.size(), 1);
    bd.insert(bd.begin(), r - bd.size(), 1);
    if (ad[r - 1] != bd[r - 2]) return reference_->run(ctx);  // it reports the mismatch
    std::vector<int64_t> yd(r);
    for (size_t i = 0; i + 2 < r; ++i) {
      if (ad[i] != bd[i] && ad[i] != 1 && bd[i] != 1) return reference_->run(ctx);
      yd[i] = std::max(ad[i], bd[i]);
    }
    yd[r - 2] = ad[r - 2];
    yd[r - 1] = bd[r - 1];

    Key key = ad;
    key.insert(key.end(), bd.begin(), bd.end());
    std::shared_ptr<const MatMulPrimitive> p = cache_.find(key);
    if (!p) {
      p = build(onednn::plain_f32(ad), onednn::plain_f32(bd), onednn::plain_f32(yd), {});
      if (!p) return reference_->run(ctx);
      p = cache_.insert(key, std::move(p));
    }

    // The output drops the dims a 1-D operand gained; the layout is the same.
    std::vector<int64_t> out_dims(yd.begin(), yd.end() - 2);
    if (a.rank() > 1) out_dims.push_back(yd[r - 2]);
    if (b.rank() > 1) out_dims.push_back(yd[r - 1]);
    Tensor& y = ctx.allocate_output(0, DataType::kFloat32, out_dims);
    execute(*p, data<float>(a), data<float>(b), mutable_data<float>(y));
  }

 private:
  std::unique_ptr<Kernel> reference_;
  LruCache<Key, MatMulPrimitive> cache_{kCacheEntries};
};

// ---- Gemm ----

struct GemmAttrs {
  bool trans_a = false, trans_b = false;
  float alpha = 1, beta = 1;
};

class OnednnGemm : public Kernel {
 public:
  OnednnGemm(std::unique_ptr<Kernel> reference, GemmAttrs attrs) : reference_(std::move(reference)), attrs_(attrs) {}

  void run(KernelContext& ctx) const override {
    const Tensor& a = ctx.input(0);
    const Tensor& b = ctx.input(1);
    // beta == 0 leaves C out, as BLAS does (a non-finite C is then not propagated).
    const Tensor* c = ctx.has_input(2) && attrs_.beta != 0 ? &ctx.input(2) : nullptr;
    if (!is_f32(a) || !is_f32(b) || (c && !is_f32(*c)) || a.rank() != 2 || b.rank() != 2 || a.numel() == 0 ||
        b.numel() == 0 || (c && c->rank() > 2))
      return reference_->run(ctx);
    const int64_t M = attrs_.trans_a ? a.dims()[1] : a.dims()[0];
    const int64_t K = attrs_.trans_a ? a.dims()[0] : a.dims()[1];
    const int64_t Kb = attrs_.trans_b ? b.dims()[1] : b.dims()[0];
    const int64_t N = attrs_.trans_b ? b.dims()[0] : b.dims()[1];
    if (K != Kb) return reference_->run(ctx);
    std::vector<int64_t> cd;  // C's dims as [rows, cols], each 1 or the full size
    if (c) {
      cd = c->dims();
      cd.insert(cd.begin(), 2 - cd.size(), 1);
      if ((cd[0] != 1 && cd[0] != M) || (cd[1] != 1 && cd[1] != N)) return reference_->run(ctx);
    }

    Key key = {a.dims()[0], a.dims()[1], b.dims()[0], b.dims()[1], c ? 1 : 0};
    std::shared_ptr<const MatMulPrimitive> p = cache_.find(key);
    if (!p) {
      // A' [M, K] and B' [K, N] over the stored A and B: a transpose is a swap of strides.
      const dnnl::memory::data_type f32 = dnnl::memory::data_type::f32;
      dnnl::memory::desc src({M, K}, f32, attrs_.trans_a ? dnnl::memory::dims{1, M} : dnnl::memory::dims{K, 1});
      dnnl::memory::desc weights({K, N}, f32, attrs_.trans_b ? dnnl::memory::dims{1, K} : dnnl::memory::dims{N, 1});
      dnnl::primitive_attr attr;
      if (attrs_.alpha != 1) attr.set_output_scales(0, {attrs_.alpha});
      if (c) {
        dnnl::post_ops ops;
        ops.append_sum(attrs_.beta);
        attr.set_post_ops(ops);
      }
      p = build(src, weights, onednn::plain_f32({M, N}), attr);
      if (!p) return reference_->run(ctx);
      p = cache_.insert(key, std::move(p));
    }

    Tensor& y = ctx.allocate_output(0, DataType::kFloat32, {M, N});
    float* out = mutable_data<float>(y);
    if (c) {
      const float* pc = data<float>(*c);
      for (int64_t i = 0; i < M; ++i)
        for (int64_t j = 0; j < N; ++j) out[i * N + j] = pc[(cd[0] == 1 ? 0 : i * cd[1]) + (cd[1] == 1 ? 0 : j)];
    }
    execute(*p, data<float>(a), data<float>(b), out);
  }

 private:
  std::unique_ptr<Kernel> reference_;
  GemmAttrs attrs_;
  LruCache<Key, MatMulPrimitive> cache_{kCacheEntries};
};

// The reference def of `op_type` (a priority-0 kernel: find() passes over fast paths when no dtype
// is known), or null when none is registered yet.
const KernelDef* reference_def(const KernelRegistry& registry, const std::string& op_type) {
  return registry.find("", op_type, 13, DeviceType::kCpu, {}, nullptr);
}

// Registers a float32 fast path over the reference kernel's opset range; `make` builds the fast
// kernel around the reference kernel the reference factory returns for the same node.
template <typename Make>
void add_fast_path(KernelRegistry& registry, const std::string& op_type, Make make) {
  const KernelDef* ref = reference_def(registry, op_type);
  if (!ref || ref->priority != 0) return;  // no reference to fall back on: no fast path either
  KernelDef def;
  def.op_type = op_type;
  def.since_version = ref->since_version;
  def.until_version = ref->until_version;
  def.types = {DataType::kFloat32};
  def.name = "cpu/onednn/" + op_type;
  def.priority = 10;
  def.factory = [reference = ref->factory, make](const KernelInit& init) { return make(init, reference(init)); };
  registry.add(std::move(def));  // `ref` may dangle from here on; its factory was copied
}

}  // namespace

void register_onednn_kernels(KernelRegistry& registry) {
  add_fast_path(registry, "MatMul", [](const KernelInit&, std::unique_ptr<Kernel> reference) -> std::unique_ptr<Kernel> {
    return std::make_unique<OnednnMatMul>(std::move(reference));
  });
  add_fast_path(registry, "Gemm", [](const KernelInit& init, std::unique_ptr<Kernel> reference) -> std::unique_ptr<Kernel> {
    GemmAttrs attrs;
    attrs.trans_a = init.attr_int("transA", 0) != 0;
    attrs.trans_b = init.attr_int("transB", 0) != 0;
    attrs.alpha = init.attr_float("alpha", 1.0f);
    attrs.beta = init.attr_float("beta", 1.0f);
    return std::make_unique<OnednnGemm>(std::move(reference), attrs);
  });
}

}  // namespace tunnx::cpu
