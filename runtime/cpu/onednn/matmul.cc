// float32 MatMul, Gemm and FusedMatMul on oneDNN, as one kernel (OnednnLinear): a constant 2-D B on the
// 1x1 convolution of conv_linear.h, or for up to four rows on the panel product of panel_linear.h;
// every other product on the matmul primitive. Shape rules are the
// shared ones (runtime/core/ops/linear.h):
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
// On the matmul path too, constant weights are read in the layout the primitive prefers when that
// is worth a copy: primitives for them are built with weights of format `any`, and packed_weights.h
// keeps the copy, remade when the weight is written. A B that is not the constant (computed, fed) is
// read where it lies, with one exception: oneDNN 2.6's brgemm reads a row-major B [K, N] with N in
// the thousands at less than half the speed of the same B stored [N, K] (measured on AVX-512:
// 1024x768x3072 at 44 against 110 GFLOP/s; from N = 1000 up it loses 5-60%). The
// gradients of a Linear ask for exactly that (dX = dY W, dW = dY^T X with wide X), so such a B is
// first transposed into a scratch buffer, which costs about a tenth of the product it speeds up.
//
// A B that is one matrix and not a constant (a gradient's operand, an activation), or a weight a
// trainer's plan marks trained (KernelInit::trained_input), goes instead to
// oneDNN's own sgemm (gemm:jit, what its matmul picks on AVX2 machines) when nothing but a bias or a
// Gemm C comes after the product: on AVX-512, brgemm reads such operands at 35-75% of sgemm's speed
// (1 thread, same run: 768x1024x3072 with A transposed 38 against 78 GFLOP/s, 1024x768x3072 71
// against 99), and gemm:jit packs A and B panels itself whatever their transposes. The bias or C is
// written into Y first and the product added to it (beta), so Y = alpha * acc + beta * C + bias as on
// the matmul path. Batched products (attention) stay on brgemm, which ran them as fast or faster.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "runtime/core/ops/linear.h"
#include "runtime/cpu/kernels/common.h"
#include "runtime/cpu/kernels/elementwise_binary.h"
#include "runtime/cpu/onednn/conv_linear.h"
#include "runtime/cpu/onednn/onednn_common.h"
#include "runtime/cpu/onednn/onednn_kernels.h"
#include "runtime/cpu/onednn/packed_weights.h"
#include "runtime/cpu/onednn/panel_linear.h"

namespace tunnx::cpu {

namespace {

using onednn::LruCache;
using Key = std::vector<int64_t>;

constexpr size_t kCacheEntries = 16;

// A built primitive and the descriptors a run wraps its tensors in. `stored_weights` is B as it lies
// in memory, `weights` the layout the primitive reads (different only for packed constants).
struct MatMulPrimitive {
  dnnl::matmul primitive;
  dnnl::memory::desc src, stored_weights, weights, dst, scratchpad;
  dnnl::memory::desc bias;  // FusedMatMul: the binary-add post-op's operand, at post-op `bias_index`
  int bias_index = -1;
  // B [K, N] is copied to [N, K] before each run (the brgemm exception in the header comment).
  bool transpose_b = false;
  int64_t k = 0, n = 0;
  onednn::BoundPrimitive bound;  // SRC, WEIGHTS, DST[, the bias post-op's operand]; made by bind()

  void bind() {
    std::vector<std::pair<int, dnnl::memory::desc>> args = {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, weights}, {DNNL_ARG_DST, dst}};
    if (bias_index >= 0) args.emplace_back(DNNL_ARG_ATTR_MULTIPLE_POST_OP(bias_index) | DNNL_ARG_SRC_1, bias);
    bound = onednn::BoundPrimitive(primitive, std::move(args), scratchpad);
  }
};

// Rows of the product (A's rows, all batch dims folded in) and B's K and N, from the descriptors.
int64_t product_rows(const dnnl::memory::desc& src) {
  const dnnl::memory::dims d = src.dims();
  int64_t rows = 1;
  for (size_t i = 0; i + 1 < d.size(); ++i) rows *= d[i];
  return rows;
}

// The same B with K, not N, contiguous: what brgemm reads fastest.
dnnl::memory::desc k_contiguous(const dnnl::memory::desc& weights) {
  const dnnl::memory::dims d = weights.dims();
  const size_t r = d.size();
  const int64_t k = d[r - 2], n = d[r - 1];
  dnnl::memory::dims strides(r, k * n);
  strides[r - 2] = 1;
  strides[r - 1] = k;
  return dnnl::memory::desc(d, dnnl::memory::data_type::f32, strides);
}

bool is_brgemm(const dnnl::matmul::primitive_desc& pd) { return std::string(pd.impl_info_str()).rfind("brg", 0) == 0; }

// Whether a row-major B of these sizes is worth transposing first for brgemm: wide enough to be slow
// as it lies, and with enough rows of A that the copy is small beside the product.
// From N = 768 on, the products alone were 8-25% faster transposed, but in a training step the copies
// ate that up (BERT layer: 556-594 ms a step with the bound at 1000, 583-605 at 512, back to back).
bool worth_transposing(int64_t rows, int64_t n) { return n >= 1000 && rows >= 64; }

// Builds the primitive for these descriptors; when `packed` (B is a constant the kernel may keep in
// another layout) it asks oneDNN for the weights layout it wants and keeps it when worth a copy. Null
// when oneDNN has no implementation.
// `b_row_major`: B is a dense row-major [K, N] (batch dims all 1), which may be transposed first.
std::shared_ptr<MatMulPrimitive> build(const dnnl::memory::desc& src, const dnnl::memory::desc& weights,
                                       const dnnl::memory::desc& dst, dnnl::primitive_attr attr, bool packed,
                                       bool b_row_major) {
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  try {
    const dnnl::engine& engine = onednn::cpu_engine();
    std::optional<dnnl::matmul::primitive_desc> chosen;
    bool transpose_b = false;
    if (packed) {
      dnnl::matmul::primitive_desc any(dnnl::matmul::desc(src, onednn::any_layout(weights), dst), attr, engine);
      if (onednn::worth_packing(any.weights_desc())) chosen = any;
    }
    if (!chosen) chosen.emplace(dnnl::matmul::desc(src, weights, dst), attr, engine);
    const dnnl::memory::dims wd = weights.dims();
    if (!packed && b_row_major && is_brgemm(*chosen) && worth_transposing(product_rows(src), wd.back())) {
      dnnl::matmul::primitive_desc columns(dnnl::matmul::desc(src, k_contiguous(weights), dst), attr, engine);
      if (is_brgemm(columns)) {
        chosen = columns;
        transpose_b = true;
      }
    }
    const dnnl::matmul::primitive_desc& pd = *chosen;
    auto p = std::make_shared<MatMulPrimitive>();
    p->transpose_b = transpose_b;
    p->k = wd[wd.size() - 2];
    p->n = wd.back();
    p->primitive = dnnl::matmul(pd);
    p->src = src;
    p->stored_weights = weights;
    p->weights = pd.weights_desc();
    p->dst = dst;
    p->scratchpad = pd.scratchpad_desc();
    return p;
  } catch (const dnnl::error&) {
    return nullptr;
  }
}

// Y = A x B (+ post-ops); B is read packed when the primitive was built for the constant weights, and
// from a copy in its own layout when the session freed it (PackedWeights::release).
void execute(const MatMulPrimitive& p, const onednn::PackedWeights& packed, const float* a, const Tensor& b, float* y,
             const float* bias = nullptr) {
  std::shared_ptr<const dnnl::memory> copy;  // a packed copy stays alive for this run
  std::optional<onednn::HostScratch> columns;  // B transposed, for this run
  const float* weights = nullptr;
  if (p.transpose_b) {
    columns.emplace(static_cast<size_t>(p.k * p.n) * sizeof(float));
    transpose_matrix(data<float>(b), columns->data(), p.k, p.n);
    weights = columns->data();
  } else if (p.weights != p.stored_weights || (packed.released() && packed.is_constant(b))) {
    copy = packed.get(b, p.stored_weights, p.weights);
  } else {
    weights = data<float>(b);
  }
  const double macs = static_cast<double>(p.dst.get_size() / sizeof(float)) * static_cast<double>(p.src.dims().back());
  // A packed copy goes in as its memory object (setting a blocked layout's handle zero-fills its
  // padding, a write to weights other runs read).
  if (copy)
    p.bound.run({a, nullptr, y, p.bias_index >= 0 ? bias : nullptr}, {{DNNL_ARG_WEIGHTS, *copy}}, macs);
  else
    p.bound.run({a, weights, y, p.bias_index >= 0 ? bias : nullptr}, {}, macs);
}

bool is_f32(const Tensor& t) { return t.dtype() == DataType::kFloat32; }

std::vector<int64_t> last_two_swapped(std::vector<int64_t> dims) {
  std::swap(dims[dims.size() - 2], dims.back());
  return dims;
}

// An f32 descriptor of logical `dims` [..., R, C] for memory that holds [..., C, R] row-major (a
// transposed operand read as it lies).
dnnl::memory::desc swapped_f32(const std::vector<int64_t>& dims) {
  const size_t r = dims.size();
  dnnl::memory::dims strides(r);
  strides[r - 2] = 1;
  strides[r - 1] = dims[r - 2];
  int64_t stride = dims[r - 2] * dims[r - 1];
  for (size_t i = r - 2; i-- > 0;) {
    strides[i] = stride;
    stride *= std::max<int64_t>(dims[i], 1);
  }
  return dnnl::memory::desc(dnnl::memory::dims(dims.begin(), dims.end()), dnnl::memory::data_type::f32, strides);
}

// Y [M, N] = alpha * op(A) op(B) + beta * Y on oneDNN's sgemm (row-major; op is a transpose when
// `trans_*`), for the products the header comment sends there.
struct SgemmProduct {
  bool trans_a = false, trans_b = false;
  int64_t m = 0, n = 0, k = 0, lda = 0, ldb = 0;
  float alpha = 1, beta = 0;
};

bool run_sgemm(const SgemmProduct& p, const float* a, const float* b, float* y) {
  const onednn::SerialIfSmall serial(static_cast<double>(p.m) * static_cast<double>(p.n) * static_cast<double>(p.k));
  return dnnl_sgemm(p.trans_a ? 'T' : 'N', p.trans_b ? 'T' : 'N', p.m, p.n, p.k, p.alpha, a, p.lda, b, p.ldb,
                    p.beta, y, p.n) == dnnl_success;
}

// Rows of Y are filled by the run's threads: a training step's [1024, 3072] bias fill on one thread
// took a tenth of its product's time.
int fill_threads(int64_t M, int64_t N) { return M * N >= kParallelElements ? max_threads() : 1; }

// Y [M, N] = the bias row [N] repeated, for sgemm to add the product to.
void fill_with_bias(float* y, const float* bias, int64_t M, int64_t N) {
#pragma omp parallel for schedule(static) num_threads(fill_threads(M, N))
  for (int64_t i = 0; i < M; ++i) std::copy(bias, bias + N, y + i * N);
}

// Y [M, N] = C broadcast (`cd`: C's dims as [rows, cols], each 1 or the full size), for a sum post-op.
void fill_with_c(float* y, const Tensor& c, const std::vector<int64_t>& cd, int64_t M, int64_t N) {
  const float* pc = data<float>(c);
#pragma omp parallel for schedule(static) num_threads(fill_threads(M, N))
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) y[i * N + j] = pc[(cd[0] == 1 ? 0 : i * cd[1]) + (cd[1] == 1 ? 0 : j)];
}

// ---- One kernel for MatMul, Gemm and FusedMatMul ----

// MatMul, Gemm, and com.tunnx:FusedMatMul (made by runtime/core/passes/fuse_linear.cc) are one
// product: a MatMul or a Gemm, then optionally the bias [N] (a binary-add post-op broadcast over the
// rows) and an activation (an eltwise post-op). Gemm's alpha is the output scale and its C a sum
// post-op that comes first, so Y = act(alpha * acc + beta * C + bias) as the reference composes it.
// A plain MatMul or Gemm node is the product with neither bias nor activation.
struct LinearAttrs {
  bool gemm = false;
  // FusedMatMul op "MatMul": transA / transB read A / B with their last two dims swapped (a Linear
  // weight [N, K] as it lies, a folded Transpose), through strides; g.alpha scales the product.
  bool matmul_trans_a = false, matmul_trans_b = false;
  ops::GemmAttrs g;
  bool has_bias = false;
  ops::Activation act;  // as eltwise post-ops (onednn::append_activation)
  // R added to or multiplied into the result (the last input): a binary post-op on the convolution
  // path; on the others a pass over Y after the product (oneDNN 2.6's brgemm matmul takes a
  // full-tensor binary post-op only on its reference implementation).
  ops::FusedBinary binary = ops::FusedBinary::kNone;
};

// Y = Y + R or Y * R in place, over `count` floats (the elementwise kernels' loops and threads).
void apply_binary(ops::FusedBinary binary, float* y, const float* r, int64_t count) {
  const std::vector<int64_t> dims = {count};
  float_binary(binary == ops::FusedBinary::kAdd ? FloatBinaryOp::kAdd : FloatBinaryOp::kMul, y, dims, r, dims, y, dims);
}

class OnednnLinear : public Kernel {
 public:
  OnednnLinear(std::unique_ptr<Kernel> reference, LinearAttrs attrs, const KernelInit& init)
      : reference_(std::move(reference)),
        attrs_(attrs),
        packed_(init.constant_input(1), init.trained_input(1)),
        conv_(packed_, (attrs.gemm && attrs.g.trans_b) || attrs.matmul_trans_b, attrs.act, attrs.binary),
        panels_(packed_, (attrs.gemm && attrs.g.trans_b) || attrs.matmul_trans_b, attrs.act, attrs.binary),
        weight_(init.constant_input(1)),
        has_c_(attrs.gemm && init.has_input(2) && attrs.g.beta != 0) {}

  // Whether the product is A B' and at most a bias (`plain`: what the panel and convolution paths
  // compute; Gemm's transA, alpha and a C other than a bias row stay on the matmul path), and whether
  // Gemm's C is that bias row: [1, N] with beta 1 where the node has no bias of its own. `c_dims`: C
  // as [rows, cols], null without a C that counts.
  struct ProductForm {
    bool plain = false, c_is_bias = false;
  };
  ProductForm form_of(const std::vector<int64_t>* c_dims, int64_t N) const {
    const ops::GemmAttrs& g = attrs_.g;
    ProductForm form;
    form.c_is_bias = c_dims && !attrs_.has_bias && (*c_dims)[0] == 1 && (*c_dims)[1] == N && g.beta == 1;
    form.plain = !(attrs_.gemm && (g.trans_a || (c_dims && !form.c_is_bias))) && g.alpha == 1 && !attrs_.matmul_trans_a;
    return form;
  }

  // A constant 2-D B on the panel or convolution path: B packed (and the convolution's primitive
  // built) for the dims the session knows, as the first run with them would. The matmul path's
  // primitives are left to the first run.
  bool prepare(const KernelPrepare& inputs) const override {
    const auto& dims = inputs.input_dims;
    if (!weight_ || weight_->dtype() != DataType::kFloat32 || packed_.trained_by_plan() || dims.size() < 2 ||
        !dims[0] || !dims[1] || *dims[1] != weight_->dims() || dims[1]->size() != 2 || dims[0]->empty())
      return false;
    const std::vector<int64_t>& ad = *dims[0];
    const std::vector<int64_t>& bd = *dims[1];
    if (attrs_.gemm && ad.size() != 2) return false;
    const bool b_transposed = (attrs_.gemm && attrs_.g.trans_b) || attrs_.matmul_trans_b;
    const int64_t K = b_transposed ? bd[1] : bd[0], N = b_transposed ? bd[0] : bd[1];
    if (ad.back() != K || K <= 0 || N <= 0) return false;
    const int64_t M = product(ad) / K;
    std::vector<int64_t> cd;  // Gemm's C as [rows, cols], as run() reads it
    if (has_c_) {
      if (dims.size() < 3 || !dims[2] || dims[2]->size() > 2) return false;
      cd = *dims[2];
      cd.insert(cd.begin(), 2 - cd.size(), 1);
    }
    const auto [plain_product, c_is_bias] = form_of(has_c_ ? &cd : nullptr, N);
    if (!plain_product) return false;
    if (panels_.takes(*weight_, M)) {
      panels_.prepare(*weight_, M, K, N);
      return true;
    }
    return conv_.takes(*weight_, M) && conv_.prepare(*weight_, M, K, N, attrs_.has_bias || c_is_bias);
  }

  // B, a constant, is freed once a copy a reorder reads back is held: the convolution and matmul
  // paths read copies, and a run the reference kernel takes gets B restored from one (fallback()).
  ConstantUse constant_use(size_t input) const override {
    return input == 1 ? packed_.constant_use() : ConstantUse::kReadsIt;
  }
  void release_constant(size_t input, const Tensor& stand_in) override {
    if (input == 1) packed_.release(stand_in);
  }

  void run(KernelContext& ctx) const override {
    const Tensor& a = ctx.input(0);
    const Tensor& b = ctx.input(1);
    const ops::GemmAttrs& g = attrs_.g;
    const Tensor* c = attrs_.gemm && ctx.has_input(2) && g.beta != 0 ? &ctx.input(2) : nullptr;
    const size_t bias_input = attrs_.gemm ? 3 : 2;
    const Tensor* bias = attrs_.has_bias ? &ctx.input(bias_input) : nullptr;
    const Tensor* operand = attrs_.binary != ops::FusedBinary::kNone ? &ctx.input(bias_input + (bias ? 1 : 0)) : nullptr;
    if (!is_f32(a) || !is_f32(b) || (c && !is_f32(*c)) || (bias && (!is_f32(*bias) || bias->rank() != 1)) ||
        (operand && !is_f32(*operand)) || a.numel() == 0 || b.numel() == 0 || a.rank() == 0 || b.rank() == 0)
      return fallback(ctx);

    dnnl::memory::desc src, weights;
    std::vector<int64_t> yd, out_dims, cd;  // yd: oneDNN's view of Y; out_dims: the output's shape
    Key key;
    bool b_row_major = false;  // B is one dense row-major [K, N]
    std::optional<SgemmProduct> sgemm;  // the product as sgemm takes it, when B is one matrix
    if (attrs_.gemm) {
      if (a.rank() != 2 || b.rank() != 2 || (c && c->rank() > 2)) return fallback(ctx);
      const int64_t M = g.trans_a ? a.dims()[1] : a.dims()[0];
      const int64_t K = g.trans_a ? a.dims()[0] : a.dims()[1];
      const int64_t Kb = g.trans_b ? b.dims()[1] : b.dims()[0];
      const int64_t N = g.trans_b ? b.dims()[0] : b.dims()[1];
      if (K != Kb) return fallback(ctx);
      if (c) {
        cd = c->dims();
        cd.insert(cd.begin(), 2 - cd.size(), 1);
        if ((cd[0] != 1 && cd[0] != M) || (cd[1] != 1 && cd[1] != N)) return fallback(ctx);
      }
      const dnnl::memory::data_type f32 = dnnl::memory::data_type::f32;
      src = dnnl::memory::desc({M, K}, f32, g.trans_a ? dnnl::memory::dims{1, M} : dnnl::memory::dims{K, 1});
      weights = dnnl::memory::desc({K, N}, f32, g.trans_b ? dnnl::memory::dims{1, K} : dnnl::memory::dims{N, 1});
      yd = out_dims = {M, N};
      key = {a.dims()[0], a.dims()[1], b.dims()[0], b.dims()[1], c ? 1 : 0};
      b_row_major = !g.trans_b;
      sgemm = SgemmProduct{.trans_a = g.trans_a, .trans_b = g.trans_b, .m = M, .n = N, .k = K,
                           .lda = a.dims()[1], .ldb = b.dims()[1], .alpha = g.alpha, .beta = c ? g.beta : 0.0f};
    } else {
      // Both operands padded to one rank; oneDNN broadcasts batch dims of size 1 itself. A transposed
      // operand is its logical matrix read through swapped strides.
      if ((attrs_.matmul_trans_a && a.rank() < 2) || (attrs_.matmul_trans_b && b.rank() < 2))
        return fallback(ctx);  // it reports the error
      const std::vector<int64_t> a_logical = attrs_.matmul_trans_a ? last_two_swapped(a.dims()) : a.dims();
      const std::vector<int64_t> b_logical = attrs_.matmul_trans_b ? last_two_swapped(b.dims()) : b.dims();
      std::optional<ops::MatMulShape> shapes = ops::matmul_shape(a_logical, b_logical, nullptr);
      if (!shapes || shapes->y.size() > DNNL_MAX_NDIMS) return fallback(ctx);
      const std::vector<int64_t>& ad = shapes->a;
      const std::vector<int64_t>& bd = shapes->b;
      yd = shapes->y;
      out_dims = shapes->out;
      if (bias && out_dims.empty()) return fallback(ctx);  // a scalar Y: the bias is not along a dim
      src = attrs_.matmul_trans_a ? swapped_f32(ad) : onednn::plain_f32(ad);
      weights = attrs_.matmul_trans_b ? swapped_f32(bd) : onednn::plain_f32(bd);
      b_row_major = !attrs_.matmul_trans_b && b.numel() == bd[bd.size() - 2] * bd.back();  // no batch of Bs
      key = ad;
      key.insert(key.end(), bd.begin(), bd.end());
      key.push_back(attrs_.matmul_trans_a ? 1 : 0);
      const int64_t k = bd[bd.size() - 2], n = bd.back();
      const bool one_b = b.numel() == k * n;
      if (!attrs_.matmul_trans_a && one_b)  // one B: A's batch dims fold into its rows
        sgemm = SgemmProduct{.trans_b = attrs_.matmul_trans_b, .m = a.numel() / k, .n = n, .k = k, .lda = k,
                             .ldb = attrs_.matmul_trans_b ? k : n, .alpha = g.alpha};
    }
    if (bias && bias->numel() != out_dims.back()) return fallback(ctx);  // it reports the mismatch
    if (operand && operand->dims() != out_dims) return fallback(ctx);  // it reports the mismatch
    const float* r = operand ? data<float>(*operand) : nullptr;

    // A constant B: the 1x1-convolution path, with the bias (or a Gemm C that is one row added as is,
    // when there is no bias) as its own bias; Gemm's alpha, transA and other Cs stay on the matmul path
    // (conv_linear.h says why).
    const int64_t N = yd.back();  // out_dims may have lost it (a 1-D B); oneDNN's view has not
    const auto [plain_product, c_is_bias] = form_of(c ? &cd : nullptr, N);
    const int64_t K = attrs_.gemm ? a.dims()[1] : attrs_.matmul_trans_b ? b.dims().back() : b.dims()[0];
    const int64_t M = attrs_.gemm ? a.dims()[0] : a.numel() / K;
    // A weight an optimizer writes every step is read plain (matmul) rather than re-packed each run.
    const bool trained = packed_.rewritten_every_run(b);
    const float* own_bias = bias ? data<float>(*bias) : c_is_bias ? data<float>(*c) : nullptr;
    // A few rows take the panels whenever no trainer's plan writes B, even while writes come between
    // runs (a session beside a trainer): the path then never depends on timing, and a run's bits on
    // the weights' values alone. A written B is packed again, once per version.
    if (!packed_.trained_by_plan() && plain_product && panels_.takes(b, M)) {
      Tensor& y = ctx.allocate_output_uninitialized(0, DataType::kFloat32, out_dims);
      float* out = mutable_data<float>(y);
      panels_.run(b, data<float>(a), M, K, N, out, own_bias, r);
      return;
    }
    if (!trained && plain_product && conv_.takes(b, M)) {
      Tensor& y = ctx.allocate_output_uninitialized(0, DataType::kFloat32, out_dims);
      if (conv_.run(b, data<float>(a), M, K, N, mutable_data<float>(y), own_bias, r)) return;
    }
    const bool constant = packed_.is_constant(b) && !trained;
    // A constant that a session only saw rewritten stays on the matmul path: which path a run takes
    // then depends on timing, and the convolution and brgemm round alike where sgemm does not.
    const bool sgemm_takes_b = !packed_.is_constant(b) || packed_.trained_by_plan();
    if (sgemm && sgemm_takes_b && attrs_.act.kind == ops::Activation::Kind::kNone && !(c && bias)) {
      Tensor& y = ctx.allocate_output_uninitialized(0, DataType::kFloat32, out_dims);
      float* out = mutable_data<float>(y);
      if (c) fill_with_c(out, *c, cd, sgemm->m, sgemm->n);
      if (bias) {
        fill_with_bias(out, data<float>(*bias), sgemm->m, sgemm->n);
        sgemm->beta = 1;
      }
      if (run_sgemm(*sgemm, data<float>(a), data<float>(b), out)) {
        if (r) apply_binary(attrs_.binary, out, r, y.numel());
        return;
      }
      return fallback(ctx);  // sgemm declined the sizes: the reference computes Y afresh
    }
    key.push_back(constant);
    const double macs = static_cast<double>(product(yd)) * static_cast<double>(K);
    const onednn::SerialIfSmall serial(macs);  // built and run for the same team
    key.push_back(onednn::team_for(macs));

    std::shared_ptr<const MatMulPrimitive> p = cache_.find(key);
    if (!p) {
      dnnl::primitive_attr attr;
      if (g.alpha != 1) attr.set_output_scales(0, {g.alpha});
      dnnl::post_ops ops;
      int bias_index = -1;
      std::vector<int64_t> bias_dims(yd.size(), 1);
      bias_dims.back() = yd.back();
      if (c) ops.append_sum(g.beta);
      if (bias) {
        bias_index = ops.len();
        ops.append_binary(dnnl::algorithm::binary_add, onednn::plain_f32(bias_dims));
      }
      onednn::append_activation(ops, attrs_.act);
      attr.set_post_ops(ops);
      std::shared_ptr<MatMulPrimitive> built =
          build(src, weights, onednn::plain_f32(yd), attr, constant, b_row_major);
      if (!built) return fallback(ctx);
      built->bias = onednn::plain_f32(bias_dims);
      built->bias_index = bias_index;
      built->bind();
      p = cache_.insert(key, std::move(built));
    }

    Tensor& y = ctx.allocate_output_uninitialized(0, DataType::kFloat32, out_dims);
    float* out = mutable_data<float>(y);
    if (c) fill_with_c(out, *c, cd, yd[0], yd[1]);
    execute(*p, packed_, data<float>(a), b, out, bias ? data<float>(*bias) : nullptr);
    if (r) apply_binary(attrs_.binary, out, r, y.numel());
  }

 private:
  // The reference kernel for this run; B restored from a copy when the session freed it.
  void fallback(KernelContext& ctx) const { packed_.run_reference(*reference_, ctx, 1); }

  std::unique_ptr<Kernel> reference_;
  LinearAttrs attrs_;
  onednn::PackedWeights packed_;
  onednn::ConvLinear conv_;
  onednn::PanelLinear panels_;
  const Tensor* weight_;  // B when it is an initializer (prepare)
  bool has_c_;            // a Gemm with a C that counts (beta not 0)
  LruCache<Key, MatMulPrimitive> cache_{kCacheEntries};
};

// com.tunnx:FusedMatMul (runtime/core/passes/fuse_linear.cc) over its reference kernel (kernels/fused.cc).
void add_fused_matmul(KernelRegistry& registry) {
  onednn::add_fast_path(
      registry, "FusedMatMul",
      [](const KernelInit& init, std::unique_ptr<Kernel> fallback) -> std::unique_ptr<Kernel> {
        LinearAttrs attrs;
        attrs.gemm = init.attr_string("op", "") == "Gemm";
        attrs.g = ops::gemm_attrs(init.node());
        attrs.has_bias = init.attr_int("has_bias", 0) != 0;
        attrs.matmul_trans_a = !attrs.gemm && init.attr_int("transA", 0) != 0;
        attrs.matmul_trans_b = !attrs.gemm && init.attr_int("transB", 0) != 0;
        const std::optional<ops::Activation> act = ops::fused_activation(init.node(), nullptr);
        const std::optional<ops::FusedBinary> binary = ops::fused_binary(init.node(), nullptr);
        dnnl::post_ops probe;
        if (!act || !binary || !onednn::append_activation(probe, *act)) return fallback;  // the reference computes it as it should
        attrs.act = *act;
        attrs.binary = *binary;
        return std::make_unique<OnednnLinear>(std::move(fallback), attrs, init);
      },
      1, "com.tunnx");
}

}  // namespace

void register_onednn_kernels(KernelRegistry& registry) {
  onednn::add_fast_path(registry, "MatMul", [](const KernelInit& init, std::unique_ptr<Kernel> reference) -> std::unique_ptr<Kernel> {
    return std::make_unique<OnednnLinear>(std::move(reference), LinearAttrs{}, init);
  });
  onednn::add_fast_path(registry, "Gemm", [](const KernelInit& init, std::unique_ptr<Kernel> reference) -> std::unique_ptr<Kernel> {
    LinearAttrs attrs;
    attrs.gemm = true;
    attrs.g = ops::gemm_attrs(init.node());
    return std::make_unique<OnednnLinear>(std::move(reference), attrs, init);
  });
  add_fused_matmul(registry);
  onednn::register_onednn_softmax(registry);
  onednn::register_onednn_layer_norm(registry);
  onednn::register_onednn_eltwise(registry);
  onednn::register_onednn_conv(registry);
  onednn::register_onednn_pool(registry);
  onednn::register_onednn_rnn(registry);
  onednn::register_onednn_transpose(registry);
  onednn::register_onednn_attention(registry);
  onednn::register_onednn_conv_transpose(registry);
}

}  // namespace tunnx::cpu
