// Linear algebra: MatMul, Gemm, MatMulInteger, QLinearMatMul, Einsum, Det. Shape rules:
//   MatMul   A [..., M, K] x B [..., K, N] -> [broadcast(...), M, N] (numpy.matmul): a 1-D A is read as
//            [1, K] and a 1-D B as [K, 1], and the added dim is dropped from the result. MatMulInteger
//            and QLinearMatMul follow the same rule.
//   Gemm     A [M, K] ([K, M] with transA), B [K, N] ([N, K] with transB), C broadcast one way to [M, N].
//   Einsum   one dim per output label, sized from the inputs (see parse_einsum).
//   Det      [..., M, M] -> [...].
// Float products are summed in float (double for float64); 16-bit floats are widened once up front.
// Integer products are summed in uint64_t, whose wrap-around gives numpy's modular result once cast
// back to the narrower type (and avoids signed-overflow UB).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "runtime/core/ops/linear.h"
#include "runtime/cpu/kernels/common.h"
#include "runtime/cpu/kernels/kernels.h"
#include "runtime/cpu/kernels/vector_loops.h"

namespace tunnx::cpu {
namespace {

template <typename T>
using accum_t = std::conditional_t<std::is_integral_v<T>, uint64_t,
                                   std::conditional_t<std::is_same_v<T, double>, double, float>>;

// Calls fn(Acc* out) over a zeroed [numel(y)] accumulator, then stores it into y (in place when T is Acc).
template <typename T, typename Fn>
void with_accum_output(Tensor& y, Fn fn) {
  using Acc = accum_t<T>;
  T* out = mutable_data<T>(y);
  if constexpr (std::is_same_v<T, Acc>) {
    fn(out);
  } else {
    std::vector<Acc> acc(static_cast<size_t>(y.numel()), Acc(0));
    fn(acc.data());
    for (int64_t i = 0; i < y.numel(); ++i) out[i] = static_cast<T>(acc[static_cast<size_t>(i)]);
  }
}

// c [M, N] += a [M, K] * b [K, N], all row-major. The i-k-j order keeps the inner loop unit-stride over
// a row of b and a row of c. This is the reference the oneDNN matmul is checked against.
template <typename Acc>
void matmul_ikj(const Acc* a, const Acc* b, Acc* c, int64_t M, int64_t K, int64_t N) {
  for (int64_t i = 0; i < M; ++i) {
    Acc* c_row = c + i * N;
    for (int64_t k = 0; k < K; ++k) {
      const Acc a_ik = a[i * K + k];
      const Acc* b_row = b + k * N;
      for (int64_t j = 0; j < N; ++j) c_row[j] += a_ik * b_row[j];
    }
  }
}

// The numpy.matmul shape rule (runtime/core/ops/linear.h), with the matrix each output batch reads
// from A and from B.
struct MatMulShape {
  int64_t M = 1, K = 1, N = 1;
  std::vector<int64_t> out_dims;
  std::vector<int64_t> a_batch, b_batch;  // per output matrix, the index of the A / B matrix it uses
};

MatMulShape matmul_shape(const std::vector<int64_t>& a_dims, const std::vector<int64_t>& b_dims,
                         const KernelContext& ctx) {
  std::string why_not;
  std::optional<ops::MatMulShape> rule = ops::matmul_shape(a_dims, b_dims, &why_not);
  if (!rule) throw ctx.error(why_not);
  auto batch_of = [](const std::vector<int64_t>& d) { return std::vector<int64_t>(d.begin(), d.end() - 2); };
  const std::vector<int64_t> batch = batch_of(rule->y);
  return {.M = rule->M,
          .K = rule->K,
          .N = rule->N,
          .out_dims = rule->out,
          .a_batch = broadcast_index_map(batch_of(rule->a), batch),
          .b_batch = broadcast_index_map(batch_of(rule->b), batch)};
}

// c (zeroed, [batch, M, N]) = a [.., M, K] x b [.., K, N] over the batches of `s`.
template <typename Acc>
void batched_matmul(const MatMulShape& s, const Acc* a, const Acc* b, Acc* c) {
  for (size_t n = 0; n < s.a_batch.size(); ++n)
    matmul_ikj(a + s.a_batch[n] * s.M * s.K, b + s.b_batch[n] * s.K * s.N,
               c + static_cast<int64_t>(n) * s.M * s.N, s.M, s.K, s.N);
}

template <typename Fn>
void dispatch_matmul_types(DataType dtype, const KernelContext& ctx, Fn&& fn) {
  dispatch<float, double, Float16, BFloat16, int32_t, int64_t, uint32_t, uint64_t>(dtype, ctx, fn);
}

void run_matmul(KernelContext& ctx) {
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(1);
  require_same_dtype(ctx, a, b);
  MatMulShape s = matmul_shape(a.dims(), b.dims(), ctx);
  dispatch_matmul_types(a.dtype(), ctx, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using Acc = accum_t<T>;
    Tensor& y = ctx.allocate_output(0, a.dtype(), s.out_dims);
    std::vector<Acc> sa, sb;
    const Acc* pa = as_acc<Acc>(data<T>(a), a.numel(), sa);
    const Acc* pb = as_acc<Acc>(data<T>(b), b.numel(), sb);
    with_accum_output<T>(y, [&](Acc* c) { batched_matmul(s, pa, pb, c); });
  });
}

// ---- Gemm ----

// x [rows, cols] as Acc in row-major order, transposed to [cols, rows] when `transpose`.
template <typename Acc, typename T>
const Acc* gemm_operand(const T* x, int64_t rows, int64_t cols, bool transpose, std::vector<Acc>& storage) {
  if (!transpose) return as_acc<Acc>(x, rows * cols, storage);
  storage.resize(static_cast<size_t>(rows * cols));
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) storage[static_cast<size_t>(c * rows + r)] = static_cast<Acc>(x[r * cols + c]);
  return storage.data();
}

void run_gemm(KernelContext& ctx, const ops::GemmAttrs& attrs) {
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(1);
  require_same_dtype(ctx, a, b);
  if (a.rank() != 2 || b.rank() != 2)
    throw ctx.error("A and B must be 2-D, got " + dims_to_string(a.dims()) + " and " + dims_to_string(b.dims()));
  const int64_t M = attrs.trans_a ? a.dims()[1] : a.dims()[0];
  const int64_t K = attrs.trans_a ? a.dims()[0] : a.dims()[1];
  const int64_t Kb = attrs.trans_b ? b.dims()[1] : b.dims()[0];
  const int64_t N = attrs.trans_b ? b.dims()[0] : b.dims()[1];
  if (K != Kb)
    throw ctx.error("inner dimensions differ: A is " + dims_to_string(a.dims()) + (attrs.trans_a ? " (transposed)" : "") +
                    ", B is " + dims_to_string(b.dims()) + (attrs.trans_b ? " (transposed)" : ""));
  // C broadcasts one way to [M, N]. Opset < 7 gated this on `broadcast`; C is accepted whenever it
  // broadcasts, which also covers the exact-shape case that broadcast=0 required.
  const Tensor* c = ctx.has_input(2) ? &ctx.input(2) : nullptr;
  std::vector<int64_t> c_map;
  if (c) {
    require_same_dtype(ctx, a, *c);
    const std::vector<int64_t> out_dims = {M, N};
    bool ok = c->rank() <= 2;
    for (size_t i = 0; ok && i < c->rank(); ++i) {
      int64_t d = c->dims()[i], o = out_dims[2 - c->rank() + i];
      ok = d == 1 || d == o;
    }
    if (!ok) throw ctx.error("C of shape " + dims_to_string(c->dims()) + " does not broadcast to " + dims_to_string(out_dims));
    c_map = broadcast_index_map(c->dims(), out_dims);
  }
  dispatch_matmul_types(a.dtype(), ctx, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using Acc = accum_t<T>;
    Acc alpha, beta;
    if constexpr (std::is_integral_v<T>) {
      // alpha and beta are floats in the spec; integer Gemm stays exact by taking them as whole numbers.
      if (attrs.alpha != std::trunc(attrs.alpha) || attrs.beta != std::trunc(attrs.beta))
        throw ctx.error("integer Gemm needs whole-number alpha and beta");
      alpha = static_cast<Acc>(static_cast<int64_t>(attrs.alpha));
      beta = static_cast<Acc>(static_cast<int64_t>(attrs.beta));
    } else {
      alpha = static_cast<Acc>(attrs.alpha);
      beta = static_cast<Acc>(attrs.beta);
    }
    Tensor& y = ctx.allocate_output(0, a.dtype(), {M, N});
    std::vector<Acc> sa, sb, sc;
    const Acc* pa = gemm_operand<Acc>(data<T>(a), a.dims()[0], a.dims()[1], attrs.trans_a, sa);
    const Acc* pb = gemm_operand<Acc>(data<T>(b), b.dims()[0], b.dims()[1], attrs.trans_b, sb);
    const Acc* pc = c ? as_acc<Acc>(data<T>(*c), c->numel(), sc) : nullptr;
    with_accum_output<T>(y, [&](Acc* out) {
      matmul_ikj(pa, pb, out, M, K, N);
      for (int64_t i = 0; i < M * N; ++i) {
        out[i] = alpha * out[i];
        if (pc) out[i] += beta * pc[c_map[static_cast<size_t>(i)]];
      }
    });
  });
}

// ---- MatMulInteger, QLinearMatMul ----

// A per-tensor (one value) or per-row/per-column (a 1-D tensor of `count` values) quantization
// parameter of a matmul operand, as doubles; `what` names it in errors.
std::vector<double> quant_param(const Tensor& t, int64_t count, const char* what, const KernelContext& ctx) {
  if (t.numel() == 1) return read_double_values(t, ctx);
  if (t.rank() == 1 && t.dims()[0] == count) return read_double_values(t, ctx);
  throw ctx.error(std::string(what) + " must have one value or " + std::to_string(count) + ", got shape " +
                  dims_to_string(t.dims()));
}

double param_at(const std::vector<double>& p, int64_t i) { return p.size() == 1 ? p[0] : p[static_cast<size_t>(i)]; }

// x (int8/uint8 matrices [.., rows, cols]) minus its zero point, which is per row (`per_row`) or per
// column: each value in [-255, 255], so an int16.
Tensor centered(const Tensor& x, const Tensor* zp, int64_t rows, int64_t cols, bool per_row, const char* what,
                const KernelContext& ctx) {
  if (x.dtype() != DataType::kInt8 && x.dtype() != DataType::kUInt8)
    throw ctx.error(std::string(what) + " operand must be int8 or uint8, got " + to_string(x.dtype()));
  if (zp && zp->dtype() != x.dtype())
    throw ctx.error(std::string(what) + " zero point is " + to_string(zp->dtype()) + " but the operand is " +
                    to_string(x.dtype()));
  const std::vector<double> z = zp ? quant_param(*zp, per_row ? rows : cols, per_row ? "a_zero_point" : "b_zero_point", ctx)
                                   : std::vector<double>{0.0};
  std::vector<int16_t> zero(z.size());
  for (size_t i = 0; i < z.size(); ++i) zero[i] = static_cast<int16_t>(z[i]);
  // From the tensor memory cache, as the result: a weight's copy every run faulted its pages in again.
  Tensor centered_x = Tensor::uninitialized(DataType::kInt16, {x.numel()});
  subtract_zero_points(x, 0, x.numel(), zero, zero.size() > 1 && per_row ? cols : 1, centered_x.mutable_data_as<int16_t>());
  return centered_x;
}

// The int32 products (A - a_zp) x (B - b_zp) of MatMulInteger and QLinearMatMul, shaped by `s`, in
// wrapping 32-bit arithmetic (the low 32 bits of the exact sums, as a 64-bit sum cast to int32 gives),
// by vector_loops' int16_matmul. (It read every operand as doubles and summed in 64 bits before: 189
// ms for ddddocr's 15 x 512 x 8210 product, whose whole model ONNX Runtime runs in 7 ms.)
// `c` holds one [M, N] matrix per output matrix of `s`.
// A constant B centered (and, 2-D, interleaved for int16_matmul), as integer_matmul reads it.
struct CenteredB {
  Tensor values;
  std::vector<int16_t> interleaved;
  U8S8Weights vnni;  // for a uint8 A on AVX-512 VNNI (2-D B only)
};

// B's centered copy for the kernels of MatMulInteger and QLinearMatMul, kept while B and its zero
// point are the constants the kernel was made with (ddddocr's 512 x 8210 weight: centering it every
// run took 4 of the product's 7.5 ms). A 2-D B on a CPU with AVX-512 VNNI is kept packed for
// u8s8_matmul instead, which a uint8 A (DynamicQuantizeLinear's) multiplies four bytes at a time:
// ddddocr's product 3.8 -> 3.1 ms, its peak RSS 85 -> 67 MiB.
class CenteredBCache {
 public:
  CenteredBCache(const KernelInit& init, size_t b_input, size_t zp_input) : b_(init, b_input), zp_(init, zp_input) {}

  // The copy for this run's operands, made now if needed; null when b or its zero point is not the
  // constant (a fed zero point would be no key to a copy).
  std::shared_ptr<const CenteredB> get(const Tensor& b, const Tensor* zp, int64_t K, int64_t N,
                                       const KernelContext& ctx) const {
    if (zp && !zp_.holds(*zp)) return nullptr;
    return b_.get(b, zp ? zp->version() : 0, [&](const Tensor& constant) {
      CenteredB copy;
      if (constant.rank() == 2 && u8s8_available()) {
        // Only the VNNI form (an int8 A, rare beside it, centers B afresh each run): keeping the int16
        // forms too took 17 MB more for ddddocr's 512 x 8210 weight.
        if (constant.dtype() != DataType::kInt8 && constant.dtype() != DataType::kUInt8)  // centered()'s checks
          throw ctx.error("B operand must be int8 or uint8, got " + std::string(to_string(constant.dtype())));
        if (zp && zp->dtype() != constant.dtype())
          throw ctx.error("B zero point is " + std::string(to_string(zp->dtype())) + " but the operand is " +
                          to_string(constant.dtype()));
        const std::vector<double> zero = zp ? quant_param(*zp, N, "b_zero_point", ctx) : std::vector<double>{0.0};
        copy.vnni = u8s8_weights(constant, 0, K, N, std::vector<int32_t>(zero.begin(), zero.end()));
        return copy;
      }
      copy.values = centered(constant, zp, K, N, false, "B", ctx);
      if (constant.rank() == 2) copy.interleaved = int16_interleave(copy.values.data_as<int16_t>(), K, N);
      return copy;
    });
  }

 private:
  ConstantCopy<CenteredB> b_;
  ConstantCopy<int> zp_;  // only its identity: its version keys b_'s copy
};

void integer_matmul(const MatMulShape& s, const Tensor& a, const Tensor* a_zp, const Tensor& b, const Tensor* b_zp,
                    const KernelContext& ctx, uint32_t* c, const CenteredBCache* cache = nullptr) {
  const std::shared_ptr<const CenteredB> cached = cache ? cache->get(b, b_zp, s.K, s.N, ctx) : nullptr;
  if (cached && !cached->vnni.packed.empty() && a.dtype() == DataType::kUInt8 &&
      (!a_zp || a_zp->dtype() == DataType::kUInt8)) {
    const std::vector<double> za = a_zp ? quant_param(*a_zp, s.M, "a_zero_point", ctx) : std::vector<double>{0.0};
    const std::vector<int32_t> a_zero(za.begin(), za.end());
    for (size_t n = 0; n < s.a_batch.size(); ++n)
      u8s8_centered_product(data<uint8_t>(a) + s.a_batch[n] * s.M * s.K, s.M, s.K, a_zero, cached->vnni, s.N,
                            c + static_cast<int64_t>(n) * s.M * s.N);
    return;
  }
  const Tensor ca = centered(a, a_zp, s.M, s.K, true, "A", ctx);
  const bool kept = cached && cached->values.defined();
  const Tensor cb = kept ? cached->values : centered(b, b_zp, s.K, s.N, false, "B", ctx);
  for (size_t n = 0; n < s.a_batch.size(); ++n)
    int16_matmul(ca.data_as<int16_t>() + s.a_batch[n] * s.M * s.K, s.M, s.K,
                 cb.data_as<int16_t>() + s.b_batch[n] * s.K * s.N, s.N, c + static_cast<int64_t>(n) * s.M * s.N,
                 kept ? &cached->interleaved : nullptr);
}

void run_matmul_integer(KernelContext& ctx, const CenteredBCache* cache) {
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(1);
  MatMulShape s = matmul_shape(a.dims(), b.dims(), ctx);
  Tensor& y = ctx.allocate_output_uninitialized(0, DataType::kInt32, s.out_dims);  // every element is written
  integer_matmul(s, a, ctx.has_input(2) ? &ctx.input(2) : nullptr, b, ctx.has_input(3) ? &ctx.input(3) : nullptr, ctx,
                 reinterpret_cast<uint32_t*>(mutable_data<int32_t>(y)), cache);
}

// y = saturate(rint(int32(A x B) * (a_scale * b_scale / y_scale)) + y_zero_point), scales per tensor
// or per row of A / per column of B; the multiplier is formed in float as the spec's reference does.
void run_qlinear_matmul(KernelContext& ctx, const CenteredBCache* cache) {
  const Tensor& a = ctx.input(0);
  const Tensor& b = ctx.input(3);
  MatMulShape s = matmul_shape(a.dims(), b.dims(), ctx);
  Tensor products = Tensor::uninitialized(DataType::kInt32, s.out_dims);
  integer_matmul(s, a, &ctx.input(2), b, &ctx.input(5), ctx, reinterpret_cast<uint32_t*>(products.mutable_data_as<int32_t>()),
                 cache);
  const int32_t* c = products.data_as<int32_t>();
  std::vector<double> a_scale = quant_param(ctx.input(1), s.M, "a_scale", ctx);
  std::vector<double> b_scale = quant_param(ctx.input(4), s.N, "b_scale", ctx);
  const float y_scale = static_cast<float>(read_scalar(ctx.input(6), ctx));
  const Tensor* y_zp = ctx.has_input(7) ? &ctx.input(7) : nullptr;
  const double zero = y_zp ? read_scalar(*y_zp, ctx) : 0.0;
  const DataType out_type = y_zp ? y_zp->dtype() : a.dtype();
  dispatch<uint8_t, int8_t>(out_type, ctx, [&](auto tag) {
    using Q = typename decltype(tag)::type;
    Tensor& y = ctx.allocate_output(0, out_type, s.out_dims);
    Q* out = mutable_data<Q>(y);
    for (int64_t n = 0; n < products.numel(); ++n) {
      const int64_t flat = n;
      const int64_t i = (flat / s.N) % s.M, j = flat % s.N;
      const float multiplier = static_cast<float>(param_at(a_scale, i)) * static_cast<float>(param_at(b_scale, j)) / y_scale;
      double v = std::nearbyint(static_cast<double>(c[n]) * multiplier + zero);
      v = std::clamp(v, static_cast<double>(std::numeric_limits<Q>::lowest()), static_cast<double>(std::numeric_limits<Q>::max()));
      out[n] = std::isnan(v) ? Q(0) : static_cast<Q>(v);
    }
  });
}

// ---- Einsum ----

// An einsum equation bound to input shapes. Labels are numbered in ASCII order ('A'..'Z' = 0..25,
// 'a'..'z' = 26..51) so the implicit output's sort is numeric; the dims under "..." get labels 52 and
// up, right-aligned across inputs so shorter ellipses broadcast against longer ones.
struct EinsumPlan {
  std::vector<int64_t> sizes;                // per label
  std::vector<int> out_labels, sum_labels;   // the output's labels in order, then the summed ones
  std::vector<std::vector<int64_t>> strides; // per input, per label: the flat step (0 when absent/broadcast)
  std::vector<int64_t> out_dims;
};

constexpr int kEllipsisLabel = 52;

std::string label_name(int l) {
  if (l >= kEllipsisLabel) return "an ellipsis dim";
  return std::string("label '") + static_cast<char>(l < 26 ? 'A' + l : 'a' + (l - 26)) + "'";
}

// Splits one term into labels, with -1 marking "...". Spaces were removed by the caller.
std::vector<int> parse_term(const std::string& term, const std::string& equation, const KernelContext& ctx) {
  std::vector<int> labels;
  bool ellipsis = false;
  for (size_t i = 0; i < term.size(); ++i) {
    char ch = term[i];
    if (ch >= 'A' && ch <= 'Z') labels.push_back(ch - 'A');
    else if (ch >= 'a' && ch <= 'z') labels.push_back(26 + (ch - 'a'));
    else if (term.compare(i, 3, "...") == 0) {
      if (ellipsis) throw ctx.error("einsum equation '" + equation + "' has more than one '...' in term '" + term + "'");
      labels.push_back(-1);
      ellipsis = true;
      i += 2;
    } else {
      throw ctx.error("einsum equation '" + equation + "' has an unexpected '" + std::string(1, ch) + "' in term '" +
                      term + "'");
    }
  }
  return labels;
}

EinsumPlan plan_einsum(const std::string& equation, const std::vector<const Tensor*>& inputs, const KernelContext& ctx) {
  std::string eq;
  for (char ch : equation)
    if (ch != ' ') eq += ch;
  const size_t arrow = eq.find("->");
  const std::string lhs = eq.substr(0, arrow);
  std::vector<std::vector<int>> terms;
  for (size_t start = 0;;) {
    size_t comma = lhs.find(',', start);
    terms.push_back(parse_term(lhs.substr(start, comma - start), equation, ctx));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  if (terms.size() != inputs.size())
    throw ctx.error("einsum equation '" + equation + "' has " + std::to_string(terms.size()) + " terms for " +
                    std::to_string(inputs.size()) + " inputs");

  // Expand each "..." into its ellipsis labels, then size every label from the input dims.
  std::vector<int64_t> ellipsis_rank(terms.size(), 0);
  int64_t max_ellipsis = 0;
  for (size_t t = 0; t < terms.size(); ++t) {
    const int64_t letters = static_cast<int64_t>(std::count_if(terms[t].begin(), terms[t].end(), [](int l) { return l >= 0; }));
    const int64_t rank = static_cast<int64_t>(inputs[t]->rank());
    const bool has_ellipsis = letters != static_cast<int64_t>(terms[t].size());
    if (has_ellipsis ? rank < letters : rank != letters)
      throw ctx.error("einsum term " + std::to_string(t) + " of '" + equation + "' does not match input shape " +
                      dims_to_string(inputs[t]->dims()));
    ellipsis_rank[t] = rank - letters;
    max_ellipsis = std::max(max_ellipsis, ellipsis_rank[t]);
  }
  EinsumPlan p;
  const int num_labels = kEllipsisLabel + static_cast<int>(max_ellipsis);
  p.sizes.assign(static_cast<size_t>(num_labels), -1);
  std::vector<int> uses(static_cast<size_t>(num_labels), 0);
  std::vector<std::vector<int>> dim_labels(terms.size());  // per input dim
  for (size_t t = 0; t < terms.size(); ++t) {
    for (int l : terms[t]) {
      if (l >= 0) {
        dim_labels[t].push_back(l);
        continue;
      }
      for (int64_t e = max_ellipsis - ellipsis_rank[t]; e < max_ellipsis; ++e)
        dim_labels[t].push_back(kEllipsisLabel + static_cast<int>(e));
    }
    for (size_t d = 0; d < dim_labels[t].size(); ++d) {
      const int l = dim_labels[t][d];
      int64_t& size = p.sizes[static_cast<size_t>(l)];
      const int64_t dim = inputs[t]->dims()[d];
      ++uses[static_cast<size_t>(l)];
      if (size == -1 || size == 1) size = dim;
      else if (dim != 1 && dim != size)
        throw ctx.error("einsum '" + equation + "': " + label_name(l) + " has sizes " + std::to_string(size) + " and " +
                        std::to_string(dim));
    }
  }

  // Output labels: explicit after "->", else the ellipsis then the letters used exactly once, sorted.
  if (arrow != std::string::npos) {
    std::vector<bool> seen(static_cast<size_t>(num_labels), false);
    for (int l : parse_term(eq.substr(arrow + 2), equation, ctx)) {
      std::vector<int> expanded;
      if (l < 0)
        for (int e = 0; e < max_ellipsis; ++e) expanded.push_back(kEllipsisLabel + e);
      else expanded.push_back(l);
      for (int x : expanded) {
        if (x >= num_labels || uses[static_cast<size_t>(x)] == 0)
          throw ctx.error("einsum '" + equation + "': an output label does not appear in the inputs");
        if (seen[static_cast<size_t>(x)]) throw ctx.error("einsum '" + equation + "': an output label repeats");
        seen[static_cast<size_t>(x)] = true;
        p.out_labels.push_back(x);
      }
    }
  } else {
    for (int e = 0; e < max_ellipsis; ++e) p.out_labels.push_back(kEllipsisLabel + e);
    for (int l = 0; l < kEllipsisLabel; ++l)
      if (uses[static_cast<size_t>(l)] == 1) p.out_labels.push_back(l);
  }
  for (int l = 0; l < num_labels; ++l)
    if (uses[static_cast<size_t>(l)] > 0 && std::find(p.out_labels.begin(), p.out_labels.end(), l) == p.out_labels.end())
      p.sum_labels.push_back(l);
  for (int l : p.out_labels) p.out_dims.push_back(p.sizes[static_cast<size_t>(l)]);

  // A label repeated within one input (a diagonal) steps by the sum of its dims' strides.
  p.strides.assign(inputs.size(), std::vector<int64_t>(static_cast<size_t>(num_labels), 0));
  for (size_t t = 0; t < inputs.size(); ++t) {
    std::vector<int64_t> st = strides_of(inputs[t]->dims());
    for (size_t d = 0; d < dim_labels[t].size(); ++d)
      if (inputs[t]->dims()[d] != 1) p.strides[t][static_cast<size_t>(dim_labels[t][d])] += st[d];
  }
  return p;
}

// Steps the multi-index over `labels` (last fastest), keeping each input's flat offset in step.
void advance(std::vector<int64_t>& index, const std::vector<int>& labels, const EinsumPlan& p,
             std::vector<int64_t>& offsets) {
  for (size_t d = labels.size(); d-- > 0;) {
    const size_t l = static_cast<size_t>(labels[d]);
    for (size_t t = 0; t < offsets.size(); ++t) offsets[t] += p.strides[t][l];
    if (++index[d] < p.sizes[l]) return;
    for (size_t t = 0; t < offsets.size(); ++t) offsets[t] -= p.strides[t][l] * p.sizes[l];
    index[d] = 0;
  }
}

int64_t product_of(const std::vector<int>& labels, const EinsumPlan& p) {
  int64_t n = 1;
  for (int l : labels) n *= p.sizes[static_cast<size_t>(l)];
  return n;
}

void run_einsum(KernelContext& ctx, const std::string& equation) {
  std::vector<const Tensor*> inputs;
  for (size_t i = 0; i < ctx.num_inputs(); ++i) {
    inputs.push_back(&ctx.input(i));
    require_same_dtype(ctx, *inputs[0], *inputs[i]);
  }
  if (inputs.empty()) throw ctx.error("einsum needs at least one input");
  const EinsumPlan p = plan_einsum(equation, inputs, ctx);
  dispatch<float, double, Float16, BFloat16, int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t>(
      inputs[0]->dtype(), ctx, [&](auto tag) {
        using T = typename decltype(tag)::type;
        using Acc = accum_t<T>;
        Tensor& y = ctx.allocate_output(0, inputs[0]->dtype(), p.out_dims);
        std::vector<std::vector<Acc>> storage(inputs.size());
        std::vector<const Acc*> in(inputs.size());
        for (size_t t = 0; t < inputs.size(); ++t)
          in[t] = as_acc<Acc>(data<T>(*inputs[t]), inputs[t]->numel(), storage[t]);
        // The last summed label runs in a tight strided loop; the odometer steps the others.
        const bool has_inner = !p.sum_labels.empty();
        const std::vector<int> outer_sum(p.sum_labels.begin(), p.sum_labels.end() - (has_inner ? 1 : 0));
        const size_t inner_label = has_inner ? static_cast<size_t>(p.sum_labels.back()) : 0;
        const int64_t inner = has_inner ? p.sizes[inner_label] : 1;
        std::vector<int64_t> step(in.size(), 0);
        if (has_inner)
          for (size_t t = 0; t < in.size(); ++t) step[t] = p.strides[t][inner_label];
        const int64_t total_out = product_of(p.out_labels, p), total_outer_sum = product_of(outer_sum, p);
        T* out = mutable_data<T>(y);
        std::vector<int64_t> out_index(p.out_labels.size(), 0), base(in.size(), 0);
        std::vector<int64_t> sum_index(outer_sum.size(), 0), offsets;
        for (int64_t o = 0; o < total_out; ++o) {
          offsets = base;  // the summed labels' walk ends where it started: sum_index is back at zero
          Acc sum = Acc(0);
          for (int64_t r = 0; r < total_outer_sum; ++r) {
            if (in.size() == 2) {
              const Acc *x = in[0] + offsets[0], *z = in[1] + offsets[1];
              for (int64_t k = 0; k < inner; ++k) sum += x[k * step[0]] * z[k * step[1]];
            } else {
              for (int64_t k = 0; k < inner; ++k) {
                Acc prod = Acc(1);
                for (size_t t = 0; t < in.size(); ++t) prod *= in[t][offsets[t] + k * step[t]];
                sum += prod;
              }
            }
            advance(sum_index, outer_sum, p, offsets);
          }
          out[o] = static_cast<T>(sum);
          advance(out_index, p.out_labels, p, base);
        }
      });
}

// ---- Det ----

// The determinant of the row-major [n, n] matrix `m` (overwritten) by LU with partial pivoting.
double determinant(std::vector<double>& m, int64_t n) {
  double det = 1;
  for (int64_t col = 0; col < n; ++col) {
    int64_t pivot = col;
    for (int64_t r = col + 1; r < n; ++r)
      if (std::fabs(m[static_cast<size_t>(r * n + col)]) > std::fabs(m[static_cast<size_t>(pivot * n + col)])) pivot = r;
    const double pv = m[static_cast<size_t>(pivot * n + col)];
    if (pv == 0) return 0;
    if (pivot != col) {
      for (int64_t c = 0; c < n; ++c) std::swap(m[static_cast<size_t>(pivot * n + c)], m[static_cast<size_t>(col * n + c)]);
      det = -det;
    }
    det *= pv;
    for (int64_t r = col + 1; r < n; ++r) {
      const double f = m[static_cast<size_t>(r * n + col)] / pv;
      for (int64_t c = col + 1; c < n; ++c) m[static_cast<size_t>(r * n + c)] -= f * m[static_cast<size_t>(col * n + c)];
    }
  }
  return det;
}

void run_det(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const std::vector<int64_t>& dims = x.dims();
  if (dims.size() < 2 || dims[dims.size() - 1] != dims[dims.size() - 2])
    throw ctx.error("input must be [..., M, M], got " + dims_to_string(dims));
  const int64_t n = dims.back();
  std::vector<int64_t> out_dims(dims.begin(), dims.end() - 2);
  dispatch(x.dtype(), ctx, FloatTypes{}, [&](auto tag) {
    using T = typename decltype(tag)::type;
    Tensor& y = ctx.allocate_output(0, x.dtype(), out_dims);
    const T* in = data<T>(x);
    T* out = mutable_data<T>(y);
    std::vector<double> m(static_cast<size_t>(n * n));
    for (int64_t b = 0; b < y.numel(); ++b) {
      for (int64_t i = 0; i < n * n; ++i) m[static_cast<size_t>(i)] = static_cast<double>(in[b * n * n + i]);
      out[b] = static_cast<T>(determinant(m, n));
    }
  });
}

std::vector<DataType> matmul_types() {
  return {DataType::kFloat32, DataType::kFloat16, DataType::kBFloat16, DataType::kFloat64,
          DataType::kInt32,   DataType::kInt64,   DataType::kUInt32,   DataType::kUInt64};
}

}  // namespace

void register_linear_kernels(KernelRegistry& r) {
  // MatMul (1: float types; 9: + int32/int64/uint32/uint64; 13: + bfloat16). One kernel for all.
  add_kernel(r, "MatMul", 1, INT_MAX, matmul_types(), [](const KernelInit&) { return make_kernel(run_matmul); });

  // Gemm: Y = alpha * A' * B' + beta * C. C is optional from opset 11.
  add_kernel(r, "Gemm", 1, INT_MAX, matmul_types(), [](const KernelInit& init) {
    const ops::GemmAttrs attrs = ops::gemm_attrs(init.node());
    // Opsets 1-6: broadcast=1 lets C broadcast, broadcast=0 requires C of Y's shape, which broadcasting
    // computes the same way; it cannot change a valid model's result.
    init.accept_attrs({"broadcast"});
    return make_kernel([attrs](KernelContext& ctx) { run_gemm(ctx, attrs); });
  });

  // MatMulInteger: int32 (A - a_zero_point) x (B - b_zero_point).
  add_kernel(r, "MatMulInteger", 10, INT_MAX, {DataType::kUInt8, DataType::kInt8},
             [](const KernelInit& init) {
               auto cache = std::make_shared<const CenteredBCache>(init, 1, 3);
               return make_kernel([cache](KernelContext& ctx) { run_matmul_integer(ctx, cache.get()); });
             });

  // QLinearMatMul (21 widened the scale types; float8 operands are not supported).
  add_kernel(r, "QLinearMatMul", 10, INT_MAX, {DataType::kUInt8, DataType::kInt8},
             [](const KernelInit& init) {
               auto cache = std::make_shared<const CenteredBCache>(init, 3, 5);
               return make_kernel([cache](KernelContext& ctx) { run_qlinear_matmul(ctx, cache.get()); });
             });

  add_kernel(r, "Einsum", 12, INT_MAX, numeric_types(), [](const KernelInit& init) {
    std::string equation = init.attr_string("equation", "");
    if (equation.empty()) throw init.error("attribute 'equation' is missing or empty");
    // The gradient of a batched MatMul of unknown rank swaps two dims this way (runtime/core/ops/linear.cc).
    if (equation == "...ij->...ji")
      return make_kernel([equation](KernelContext& ctx) {
        if (ctx.input(0).rank() >= 2) return swap_last_two_dims(ctx, ctx.input(0));
        run_einsum(ctx, equation);
      });
    return make_kernel([equation](KernelContext& ctx) { run_einsum(ctx, equation); });
  });

  add_kernel(r, "Det", 11, INT_MAX, kFloatTypes, [](const KernelInit&) { return make_kernel(run_det); });
}

}  // namespace tunnx::cpu
