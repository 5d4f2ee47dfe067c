// The attention family: Attention (opsets 23-25), RotaryEmbedding (opset 23) and
// ai.onnx.preview's FlexAttention (opset 1).
//
// Attention: scaled dot-product attention over 3-D [B, S, heads * D] or 4-D
// [B, heads, S, D] Q/K/V, with grouped-query heads (each key/value head serves q_num_heads /
// kv_num_heads query heads), a boolean or additive mask (right-aligned broadcast to [B, Hq, Sq, T],
// its last dim padded with masked positions up to T), causal masking aligned bottom-right (offset:
// the past length, or nonpad_kv_seqlen - Sq per batch), opset 25's sliding window, past/present
// key-value state, softcap, and the qk_matmul_output debug output. Semantics follow onnx.reference's
// op_attention.py, which the node tests' expected outputs come from: a row whose mask allows no key
// gives zero probabilities and a zero output row, never NaN. 16-bit inputs are rounded to their type
// after every step the reference takes in numpy (scores, bias added, softmax steps), softmax_precision
// choosing the softmax's type.
//
// RotaryEmbedding: Y has X's shape and dtype.
#include <algorithm>
#include <array>
#include <cmath>
#include <limits>
#include <optional>

#include "runtime/core/executor.h"
#include "runtime/cpu/kernels/common.h"
#include "runtime/cpu/kernels/kernels.h"

namespace tunnx::cpu {
namespace {


struct AttentionAttrs {
  bool causal = false;
  int64_t q_heads = 0, kv_heads = 0;  // 0: not given (4-D inputs carry them)
  int64_t qk_mode = 0;
  std::optional<float> scale;
  float softcap = 0;
  bool has_softcap = false;
  int64_t left_window = -1, right_window = -1;
  DataType softmax_type = DataType::kUndefined;  // kUndefined: the input type
};

// `dims` right-aligned against `rank`, padded with 1s in front.
std::vector<int64_t> aligned_dims(const std::vector<int64_t>& dims, size_t rank) {
  std::vector<int64_t> out(rank, 1);
  std::copy(dims.begin(), dims.end(), out.begin() + static_cast<std::ptrdiff_t>(rank - dims.size()));
  return out;
}

// v rounded to E and widened back to C. onnx.reference computes 16-bit floats op by op in numpy,
// rounding after every step, and its expected outputs keep those roundings (one ulp of bfloat16 is
// 0.4%, past the tests' tolerance); for float and double E this is the identity.
template <typename E, typename C> C rounded(C v) {
  return static_cast<C>(load(static_cast<E>(static_cast<Compute<E>>(v))));
}

// Softmax of row[0, n) in place, in P's arithmetic as numpy runs it: every step rounded to P, a
// bfloat16 sum rounded at each addition (ml_dtypes' add loop), a float16 sum accumulated in float
// (numpy's half reduction). A row whose maximum is -inf (nothing allowed) is all zeros, never NaN.
template <typename P, typename C> void softmax_row(C* row, int64_t n) {
  const C neg_inf = -std::numeric_limits<C>::infinity();
  C max = neg_inf;
  for (int64_t i = 0; i < n; ++i) max = std::max(max, row[i]);
  if (max == neg_inf) {
    std::fill(row, row + n, C(0));
    return;
  }
  C sum = 0;
  for (int64_t i = 0; i < n; ++i) {
    row[i] = rounded<P>(static_cast<C>(std::exp(rounded<P>(row[i] - max))));
    sum = std::is_same_v<P, BFloat16> ? rounded<P>(sum + row[i]) : sum + row[i];
  }
  sum = rounded<P>(sum);
  for (int64_t i = 0; i < n; ++i) row[i] = rounded<P>(row[i] / sum);
}

// The softmax of C values in the type `precision` names (kUndefined: in E).
template <typename E, typename C> void (*softmax_in(DataType precision))(C*, int64_t) {
  switch (precision) {
    case DataType::kFloat32: return &softmax_row<float, C>;
    case DataType::kFloat64: return &softmax_row<double, C>;
    case DataType::kFloat16: return &softmax_row<Float16, C>;
    case DataType::kBFloat16: return &softmax_row<BFloat16, C>;
    default: return &softmax_row<E, C>;
  }
}

// The softmax_precision attribute as a dtype: kUndefined when absent; only the float types.
DataType softmax_precision(const KernelInit& init) {
  if (!init.has_attr("softmax_precision")) return DataType::kUndefined;
  const int64_t p = init.attr_int("softmax_precision", 0);
  const auto type = static_cast<DataType>(p);
  if (type != DataType::kFloat32 && type != DataType::kFloat64 && type != DataType::kFloat16 &&
      type != DataType::kBFloat16)
    throw init.error("softmax_precision must be a float type (1, 10, 11 or 16), got " + std::to_string(p));
  return type;
}

template <typename E> void attention_typed(KernelContext& ctx, const AttentionAttrs& a) {
  using C = std::conditional_t<std::is_same_v<E, double>, double, float>;  // compute type
  const Tensor& q_in = ctx.input(0);
  const Tensor& k_in = ctx.input(1);
  const Tensor& v_in = ctx.input(2);
  const Tensor* mask = ctx.has_input(3) ? &ctx.input(3) : nullptr;
  const Tensor* past_k = ctx.has_input(4) ? &ctx.input(4) : nullptr;
  const Tensor* past_v = ctx.has_input(5) ? &ctx.input(5) : nullptr;
  const Tensor* nonpad = ctx.has_input(6) ? &ctx.input(6) : nullptr;
  const size_t rank = q_in.rank();
  if ((rank != 3 && rank != 4) || k_in.rank() != rank || v_in.rank() != rank)
    throw ctx.error("Q, K and V must all be 3-D or all 4-D, got " + dims_to_string(q_in.dims()) + ", " +
                    dims_to_string(k_in.dims()) + ", " + dims_to_string(v_in.dims()));
  if ((past_k == nullptr) != (past_v == nullptr)) throw ctx.error("past_key and past_value must be given together");
  if (nonpad && past_k) throw ctx.error("nonpad_kv_seqlen cannot be combined with past_key/past_value");
  require_same_dtype(ctx, q_in, k_in);
  require_same_dtype(ctx, q_in, v_in);

  // Geometry: B, heads, lengths and head sizes, and the element strides of Q, K, V as [b, h, s, d].
  const int64_t B = q_in.dims()[0];
  int64_t Hq, Hkv, Sq, Skv, D, Dv;
  if (rank == 3) {
    if (a.q_heads <= 0 || a.kv_heads <= 0) throw ctx.error("3-D inputs need q_num_heads and kv_num_heads");
    Hq = a.q_heads;
    Hkv = a.kv_heads;
    Sq = q_in.dims()[1];
    Skv = k_in.dims()[1];
    if (q_in.dims()[2] % Hq || k_in.dims()[2] % Hkv || v_in.dims()[2] % Hkv)
      throw ctx.error("hidden sizes " + dims_to_string({q_in.dims()[2], k_in.dims()[2], v_in.dims()[2]}) +
                      " do not split into q_num_heads " + std::to_string(Hq) + " / kv_num_heads " +
                      std::to_string(Hkv));
    D = q_in.dims()[2] / Hq;
    Dv = v_in.dims()[2] / Hkv;
    if (k_in.dims()[2] / Hkv != D) throw ctx.error("Q and K head sizes differ");
  } else {
    Hq = q_in.dims()[1];
    Hkv = k_in.dims()[1];
    Sq = q_in.dims()[2];
    Skv = k_in.dims()[2];
    D = q_in.dims()[3];
    Dv = v_in.dims()[3];
    if (k_in.dims()[3] != D)
      throw ctx.error("Q and K head sizes differ: " + std::to_string(D) + " vs " + std::to_string(k_in.dims()[3]));
    if (v_in.dims()[1] != Hkv) throw ctx.error("K and V head counts differ");
  }
  if (k_in.dims()[0] != B || v_in.dims()[0] != B) throw ctx.error("Q, K and V batch sizes differ");
  if ((rank == 3 ? v_in.dims()[1] : v_in.dims()[2]) != Skv) throw ctx.error("K and V sequence lengths differ");
  if (Hkv <= 0 || Hq % Hkv)
    throw ctx.error("q_num_heads " + std::to_string(Hq) + " is not a multiple of kv_num_heads " + std::to_string(Hkv));
  const int64_t group = Hq / Hkv;
  const int64_t Sp = past_k ? past_k->dims()[2] : 0, T = Sp + Skv;  // T: past and new keys
  if (past_k && (past_k->dims() != std::vector<int64_t>{B, Hkv, Sp, D} ||
                 past_v->dims() != std::vector<int64_t>{B, Hkv, Sp, Dv}))
    throw ctx.error("past_key " + dims_to_string(past_k->dims()) + " / past_value " + dims_to_string(past_v->dims()) +
                    " do not match [B, kv_heads, past, head size]");
  // [b, h, s, d] strides of an input as it lies.
  auto strides_of_input = [rank](int64_t H, int64_t S, int64_t Dh) {
    return rank == 3 ? std::array<int64_t, 4>{S * H * Dh, Dh, H * Dh, 1}
                     : std::array<int64_t, 4>{H * S * Dh, S * Dh, Dh, 1};
  };
  const auto qs = strides_of_input(Hq, Sq, D), ks = strides_of_input(Hkv, Skv, D), vs = strides_of_input(Hkv, Skv, Dv);

  // present_key / present_value: past then new, [B, Hkv, T, D]; the keys and values attention reads.
  Tensor present_k = ctx.output_wanted(1) ? ctx.allocate_output_uninitialized(1, q_in.dtype(), {B, Hkv, T, D})
                                          : Tensor::uninitialized(q_in.dtype(), {B, Hkv, T, D});
  Tensor present_v = ctx.output_wanted(2) ? ctx.allocate_output_uninitialized(2, q_in.dtype(), {B, Hkv, T, Dv})
                                          : Tensor::uninitialized(q_in.dtype(), {B, Hkv, T, Dv});
  {
    E* pk = mutable_data<E>(present_k);
    E* pv = mutable_data<E>(present_v);
    const E* k = data<E>(k_in);
    const E* v = data<E>(v_in);
    for (int64_t b = 0; b < B; ++b)
      for (int64_t h = 0; h < Hkv; ++h)
        for (int64_t s = 0; s < T; ++s) {
          E* kd = pk + ((b * Hkv + h) * T + s) * D;
          E* vd = pv + ((b * Hkv + h) * T + s) * Dv;
          if (s < Sp) {
            std::copy_n(data<E>(*past_k) + ((b * Hkv + h) * Sp + s) * D, D, kd);
            std::copy_n(data<E>(*past_v) + ((b * Hkv + h) * Sp + s) * Dv, Dv, vd);
          } else {
            const int64_t n = s - Sp;
            for (int64_t d = 0; d < D; ++d) kd[d] = k[b * ks[0] + h * ks[1] + n * ks[2] + d];
            for (int64_t d = 0; d < Dv; ++d) vd[d] = v[b * vs[0] + h * vs[1] + n * vs[2] + d];
          }
        }
  }

  // The additive bias per [b, h, i, j]: the mask (bool: allowed 0, else -inf; float: as is; padded
  // with masked positions past its last dim), then causal, window and padding limits as -inf.
  const C neg_inf = -std::numeric_limits<C>::infinity();
  std::vector<int64_t> mask_dims, mask_strides;
  if (mask) {
    if (mask->rank() < 1 || mask->rank() > 4)
      throw ctx.error("attn_mask must have rank 1 to 4, got " + dims_to_string(mask->dims()));
    if (mask->dtype() != DataType::kBool && mask->dtype() != q_in.dtype())
      throw ctx.error(std::string("attn_mask must be bool or ") + to_string(q_in.dtype()) + ", got " +
                      to_string(mask->dtype()));
    mask_dims = aligned_dims(mask->dims(), 4);
    const std::vector<int64_t> want = {B, Hq, Sq, T};
    for (size_t i = 0; i < 3; ++i)
      if (mask_dims[i] != 1 && mask_dims[i] != want[i])
        throw ctx.error("attn_mask " + dims_to_string(mask->dims()) + " does not broadcast to " + dims_to_string(want));
    if (mask_dims[3] > T)
      throw ctx.error("attn_mask's last dim " + std::to_string(mask_dims[3]) + " exceeds the " + std::to_string(T) +
                      " keys");
    mask_strides = strides_of(mask_dims);
    for (size_t i = 0; i < 4; ++i)
      if (mask_dims[i] == 1) mask_strides[i] = 0;
  }
  std::vector<int64_t> lens;
  if (nonpad) {
    lens = read_int_values(*nonpad, ctx);
    if (static_cast<int64_t>(lens.size()) != B)
      throw ctx.error("nonpad_kv_seqlen has " + std::to_string(lens.size()) + " values for batch " + std::to_string(B));
  }
  auto bias_at = [&](int64_t b, int64_t h, int64_t i, int64_t j) -> C {
    C bias = 0;
    if (mask) {
      if (j >= mask_dims[3]) {
        bias = neg_inf;
      } else {
        const int64_t at = b * mask_strides[0] + h * mask_strides[1] + i * mask_strides[2] + j;
        if (mask->dtype() == DataType::kBool) bias = data<bool>(*mask)[at] ? C(0) : neg_inf;
        else bias = static_cast<C>(load(data<E>(*mask)[at]));
      }
    }
    const int64_t offset = past_k ? Sp : nonpad ? lens[static_cast<size_t>(b)] - Sq : 0;
    const int64_t diff = i + offset - j;
    if (a.causal && diff < 0) bias = neg_inf;
    if (a.left_window >= 0 && diff > a.left_window) bias = neg_inf;
    if (a.right_window >= 0 && -diff > a.right_window) bias = neg_inf;
    if (nonpad && j >= lens[static_cast<size_t>(b)]) bias = neg_inf;
    return bias;
  };

  // Q and K are each scaled by sqrt(scale), rounded to the input type first, as the reference does.
  const double scale = a.scale ? static_cast<double>(*a.scale) : 1.0 / std::sqrt(static_cast<double>(D));
  const C scale_sqrt = static_cast<C>(load(static_cast<E>(static_cast<C>(std::sqrt(scale)))));
  auto scaled = [scale_sqrt](const E& x) { return static_cast<C>(load(static_cast<E>(static_cast<C>(load(x)) * scale_sqrt))); };
  const std::vector<int64_t> y_dims =
      rank == 3 ? std::vector<int64_t>{B, Sq, Hq * Dv} : std::vector<int64_t>{B, Hq, Sq, Dv};
  E* y = mutable_data<E>(ctx.allocate_output_uninitialized(0, q_in.dtype(), y_dims));
  E* qk_out = ctx.output_wanted(3)
                  ? mutable_data<E>(ctx.allocate_output_uninitialized(3, q_in.dtype(), {B, Hq, Sq, T}))
                  : nullptr;
  const E* q = data<E>(q_in);
  const E* pk = data<E>(present_k);
  const E* pv = data<E>(present_v);
  void (*softmax)(C*, int64_t) = softmax_in<E, C>(a.softmax_type);
  std::vector<C> qrow(static_cast<size_t>(D)), scores(static_cast<size_t>(T)), probs(static_cast<size_t>(T)),
      acc(static_cast<size_t>(Dv));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < Hq; ++h) {
      const int64_t kvh = h / group;
      const E* kh = pk + (b * Hkv + kvh) * T * D;
      const E* vh = pv + (b * Hkv + kvh) * T * Dv;
      for (int64_t i = 0; i < Sq; ++i) {
        for (int64_t d = 0; d < D; ++d) qrow[static_cast<size_t>(d)] = scaled(q[b * qs[0] + h * qs[1] + i * qs[2] + d]);
        bool any_allowed = false;
        for (int64_t j = 0; j < T; ++j) {
          C dot = 0;
          for (int64_t d = 0; d < D; ++d) dot += qrow[static_cast<size_t>(d)] * scaled(kh[j * D + d]);
          dot = rounded<E>(dot);
          if (a.has_softcap && a.softcap > 0) {
            const C cap = static_cast<C>(a.softcap);
            dot = rounded<E>(rounded<E>(static_cast<C>(std::tanh(rounded<E>(dot / cap)))) * cap);
          }
          const C bias = bias_at(b, h, i, j);
          any_allowed = any_allowed || bias != neg_inf;
          scores[static_cast<size_t>(j)] = dot;
          probs[static_cast<size_t>(j)] = rounded<E>(dot + bias);
        }
        // Softmax over the keys; a row with no allowed key is all zeros (decided on the bias).
        softmax(probs.data(), T);
        if (!any_allowed) std::fill(probs.begin(), probs.end(), C(0));
        if (qk_out) {  // modes 0 and 1: the (softcapped) scores; 2: with the bias; 3: the probabilities
          E* row = qk_out + ((b * Hq + h) * Sq + i) * T;
          for (int64_t j = 0; j < T; ++j) {
            C value = scores[static_cast<size_t>(j)];
            if (a.qk_mode == 2) value += bias_at(b, h, i, j);
            if (a.qk_mode == 3) value = probs[static_cast<size_t>(j)];
            row[j] = static_cast<E>(value);
          }
        }
        std::fill(acc.begin(), acc.end(), C(0));
        for (int64_t j = 0; j < T; ++j) {
          const C p = static_cast<C>(load(static_cast<E>(probs[static_cast<size_t>(j)])));  // in the input type
          if (p == 0) continue;
          for (int64_t d = 0; d < Dv; ++d) acc[static_cast<size_t>(d)] += p * static_cast<C>(load(vh[j * Dv + d]));
        }
        E* out = rank == 3 ? y + (b * Sq + i) * Hq * Dv + h * Dv : y + ((b * Hq + h) * Sq + i) * Dv;
        for (int64_t d = 0; d < Dv; ++d) out[d] = static_cast<E>(acc[static_cast<size_t>(d)]);
      }
    }
}

// ---- FlexAttention (ai.onnx.preview, opset 1) -------------------------------------------------
// Q [B, Hq, L, D], K [B, Hkv, S, D], V [B, Hkv, S, Dv] -> Y [B, Hq, L, Dv]; query head h reads key/value
// head h / (Hq / Hkv). As onnx.reference's op_flex_attention.py: Q and K scaled by sqrt(scale) in the
// input type, scores = Q K^T in the input type, then in the softmax type P (softmax_precision; float
// for 16-bit inputs, else the input type): score_mod, softmax over the keys, prob_mod, and P @ V.
// score_mod / prob_mod are graphs of one [B, Hq, L, S] tensor to one of the same shape and type; each
// runs once on the whole tensor. A row whose scores are all -inf gives zeros where the reference
// gives NaN, as Attention does.

struct FlexAttrs {
  std::optional<float> scale;
  DataType softmax_type = DataType::kUndefined;  // kUndefined: float for 16-bit inputs, else theirs
  std::shared_ptr<const GraphPlan> score_mod, prob_mod;
};

// Runs a modifier graph on `t` and checks that it gave back one tensor of t's shape and dtype.
Tensor run_modifier(KernelContext& ctx, const GraphPlan& plan, Tensor t, const char* what) {
  const std::vector<int64_t> dims = t.dims();
  const DataType dtype = t.dtype();
  std::vector<Value> out = ctx.run_subgraph(plan, {Value(std::move(t))});
  if (out.size() != 1 || !out[0].is_tensor())
    throw ctx.error(std::string(what) + " must yield one tensor, got " + std::to_string(out.size()) + " values");
  Tensor r = out[0].tensor();
  if (r.dims() != dims || r.dtype() != dtype)
    throw ctx.error(std::string(what) + " must keep its input's shape " + dims_to_string(dims) + " and type " +
                    to_string(dtype) + ", got " + dims_to_string(r.dims()) + " " + to_string(r.dtype()));
  return r;
}

template <typename E, typename P> void flex_attention_typed(KernelContext& ctx, const FlexAttrs& a) {
  using CE = Compute<E>;  // the input type's arithmetic
  using CP = Compute<P>;  // the softmax type's
  const Tensor& q_in = ctx.input(0);
  const Tensor& k_in = ctx.input(1);
  const Tensor& v_in = ctx.input(2);
  if (q_in.rank() != 4 || k_in.rank() != 4 || v_in.rank() != 4)
    throw ctx.error("Q, K and V must be 4-D [batch, heads, seq, head_size], got " + dims_to_string(q_in.dims()) +
                    ", " + dims_to_string(k_in.dims()) + ", " + dims_to_string(v_in.dims()));
  require_same_dtype(ctx, q_in, k_in);
  require_same_dtype(ctx, q_in, v_in);
  const int64_t B = q_in.dims()[0], Hq = q_in.dims()[1], L = q_in.dims()[2], D = q_in.dims()[3];
  const int64_t Hkv = k_in.dims()[1], S = k_in.dims()[2], Dv = v_in.dims()[3];
  if (k_in.dims()[0] != B || v_in.dims()[0] != B || k_in.dims()[3] != D || v_in.dims()[1] != Hkv ||
      v_in.dims()[2] != S)
    throw ctx.error("K " + dims_to_string(k_in.dims()) + " and V " + dims_to_string(v_in.dims()) +
                    " do not match Q " + dims_to_string(q_in.dims()) + " (K [B, Hkv, S, D], V [B, Hkv, S, Dv])");
  if (Hkv <= 0 || Hq % Hkv)
    throw ctx.error("Q's " + std::to_string(Hq) + " heads are not a multiple of K's " + std::to_string(Hkv));
  const int64_t group = Hq / Hkv;

  // sqrt(scale) is taken in float and rounded to the input type, as the reference does.
  const float scale = a.scale ? *a.scale : static_cast<float>(1.0 / std::sqrt(static_cast<double>(D)));
  const CE scale_sqrt = static_cast<CE>(load(static_cast<E>(std::sqrt(scale))));
  auto scaled_copy = [scale_sqrt](const Tensor& t) {
    std::vector<CE> out(static_cast<size_t>(t.numel()));
    const E* p = data<E>(t);
    for (size_t i = 0; i < out.size(); ++i) out[i] = rounded<E>(static_cast<CE>(load(p[i])) * scale_sqrt);
    return out;
  };
  const std::vector<CE> q = scaled_copy(q_in), k = scaled_copy(k_in);

  Tensor scores = Tensor::uninitialized(dtype_of<P>(), {B, Hq, L, S});
  P* sp = mutable_data<P>(scores);
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < Hq; ++h)
      for (int64_t i = 0; i < L; ++i)
        for (int64_t j = 0; j < S; ++j) {
          const CE* qr = q.data() + ((b * Hq + h) * L + i) * D;
          const CE* kr = k.data() + ((b * Hkv + h / group) * S + j) * D;
          CE dot = 0;
          for (int64_t d = 0; d < D; ++d) dot += qr[d] * kr[d];
          sp[((b * Hq + h) * L + i) * S + j] = static_cast<P>(static_cast<CP>(rounded<E>(dot)));
        }
  if (a.score_mod) scores = run_modifier(ctx, *a.score_mod, std::move(scores), "score_mod");

  Tensor probs = Tensor::uninitialized(dtype_of<P>(), {B, Hq, L, S});
  {
    const P* in = data<P>(scores);
    P* out = mutable_data<P>(probs);
    std::vector<CP> row(static_cast<size_t>(S));
    for (int64_t r = 0; r < B * Hq * L; ++r) {
      for (int64_t j = 0; j < S; ++j) row[static_cast<size_t>(j)] = static_cast<CP>(load(in[r * S + j]));
      softmax_row<P, CP>(row.data(), S);
      for (int64_t j = 0; j < S; ++j) out[r * S + j] = static_cast<P>(row[static_cast<size_t>(j)]);
    }
  }
  if (a.prob_mod) probs = run_modifier(ctx, *a.prob_mod, std::move(probs), "prob_mod");

  // Y = probs @ V with V in the softmax type, then the input type.
  const P* pp = data<P>(probs);
  const E* v = data<E>(v_in);
  E* y = mutable_data<E>(ctx.allocate_output_uninitialized(0, q_in.dtype(), {B, Hq, L, Dv}));
  std::vector<CP> acc(static_cast<size_t>(Dv));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < Hq; ++h) {
      const E* vh = v + (b * Hkv + h / group) * S * Dv;
      for (int64_t i = 0; i < L; ++i) {
        std::fill(acc.begin(), acc.end(), CP(0));
        const P* prow = pp + ((b * Hq + h) * L + i) * S;
        for (int64_t j = 0; j < S; ++j) {
          const CP p = static_cast<CP>(load(prow[j]));
          for (int64_t d = 0; d < Dv; ++d)
            acc[static_cast<size_t>(d)] += p * rounded<P>(static_cast<CP>(load(vh[j * Dv + d])));
        }
        E* out = y + ((b * Hq + h) * L + i) * Dv;
        for (int64_t d = 0; d < Dv; ++d)
          out[d] = static_cast<E>(static_cast<CE>(load(static_cast<P>(acc[static_cast<size_t>(d)]))));
      }
    }
}

void run_flex_attention(KernelContext& ctx, const FlexAttrs& a) {
  const DataType input = ctx.input(0).dtype();
  DataType softmax = a.softmax_type;
  if (softmax == DataType::kUndefined) softmax = input == DataType::kFloat64 ? input : DataType::kFloat32;
  dispatch(input, ctx, FloatTypes{}, [&](auto e_tag) {
    dispatch(softmax, ctx, FloatTypes{}, [&](auto p_tag) {
      flex_attention_typed<typename decltype(e_tag)::type, typename decltype(p_tag)::type>(ctx, a);
    });
  });
}

// A modifier graph attribute, checked to take one input and give one output; null when absent.
std::shared_ptr<const GraphPlan> modifier_graph(const KernelInit& init, const std::string& name) {
  if (!init.has_attr(name)) return nullptr;
  std::shared_ptr<const GraphPlan> plan = init.subgraph(name);
  if (plan->graph().inputs.size() != 1 || plan->graph().outputs.size() != 1)
    throw init.error(name + " must take one input and give one output, got " +
                     std::to_string(plan->graph().inputs.size()) + " and " +
                     std::to_string(plan->graph().outputs.size()));
  return plan;
}


using RotaryTypes = Types<float, Float16, BFloat16>;

struct RotaryAttrs {
  bool interleaved = false;
  int64_t rotary_dim = 0;  // 0: the whole head
  int64_t num_heads = 0;   // needed for a 3-D X only
};

// X is [B, H, S, D] or [B, S, H * D] (num_heads = H). cos/sin are [B, S, rot / 2] without position_ids
// (B and S may be 1, broadcast), else [max_position, rot / 2] indexed by position_ids [B, S]. The
// first `rot` values of each head rotate in pairs: halves (d, d + rot/2), or neighbours (2d, 2d + 1)
// when interleaved; the rest pass through.
void run_rotary(KernelContext& ctx, const RotaryAttrs& attrs) {
  const Tensor& x = ctx.input(0);
  const Tensor& cos_t = ctx.input(1);
  const Tensor& sin_t = ctx.input(2);
  require_same_dtype(ctx, x, cos_t);
  require_same_dtype(ctx, x, sin_t);
  if (x.rank() != 3 && x.rank() != 4)
    throw ctx.error("X must be [batch, heads, seq, head_size] or [batch, seq, hidden], got " +
                    dims_to_string(x.dims()));
  const std::vector<int64_t>& xd = x.dims();
  const bool heads_first = x.rank() == 4;
  const int64_t batch = xd[0], seq = heads_first ? xd[2] : xd[1];
  int64_t heads = 0, head_size = 0;
  if (heads_first) {
    heads = xd[1];
    head_size = xd[3];
  } else {
    if (attrs.num_heads <= 0 || xd[2] % attrs.num_heads != 0)
      throw ctx.error("a 3-D X needs num_heads dividing its hidden size " + std::to_string(xd[2]) + ", got num_heads " +
                      std::to_string(attrs.num_heads));
    heads = attrs.num_heads;
    head_size = xd[2] / heads;
  }
  const int64_t rot = attrs.rotary_dim > 0 ? attrs.rotary_dim : head_size;
  if (rot > head_size || rot % 2 != 0)
    throw ctx.error("rotary_embedding_dim " + std::to_string(rot) + " must be even and at most the head size " +
                    std::to_string(head_size));
  const int64_t half = rot / 2;
  if (cos_t.dims() != sin_t.dims())
    throw ctx.error("cos_cache " + dims_to_string(cos_t.dims()) + " and sin_cache " + dims_to_string(sin_t.dims()) +
                    " must have the same shape");
  if (cos_t.rank() == 0 || cos_t.dims().back() != half)
    throw ctx.error("the caches' last dim must be rotary_embedding_dim / 2 = " + std::to_string(half) + ", got shape " +
                    dims_to_string(cos_t.dims()));

  // cache_row[b * seq + s]: the row of the caches that position (b, s) reads.
  std::vector<int64_t> cache_row(static_cast<size_t>(batch * seq));
  if (ctx.has_input(3)) {
    const Tensor& pos_t = ctx.input(3);
    if (pos_t.dims() != std::vector<int64_t>{batch, seq})
      throw ctx.error("position_ids must be [batch, seq] = " + dims_to_string({batch, seq}) + ", got " +
                      dims_to_string(pos_t.dims()));
    if (cos_t.rank() != 2)
      throw ctx.error("with position_ids the caches must be 2-D, got " + dims_to_string(cos_t.dims()));
    const std::vector<int64_t> pos = read_int_values(pos_t, ctx);
    for (size_t i = 0; i < pos.size(); ++i) {
      if (pos[i] < 0 || pos[i] >= cos_t.dims()[0])
        throw ctx.error("position id " + std::to_string(pos[i]) + " is outside the caches' " +
                        std::to_string(cos_t.dims()[0]) + " rows");
      cache_row[i] = pos[i];
    }
  } else {
    const std::vector<int64_t>& cd = cos_t.dims();
    if (cd.size() != 3 || (cd[0] != batch && cd[0] != 1) || (cd[1] != seq && cd[1] != 1))
      throw ctx.error("without position_ids the caches must be [batch, seq, " + std::to_string(half) + "], got " +
                      dims_to_string(cd));
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t s = 0; s < seq; ++s) cache_row[b * seq + s] = (cd[0] == 1 ? 0 : b * cd[1]) + (cd[1] == 1 ? 0 : s);
  }

  dispatch(x.dtype(), ctx, RotaryTypes{}, [&](auto tag) {
    using T = typename decltype(tag)::type;
    using C = Compute<T>;
    const T* in = data<T>(x);
    const T* cos_p = data<T>(cos_t);
    const T* sin_p = data<T>(sin_t);
    T* out = mutable_data<T>(ctx.allocate_output_uninitialized(0, x.dtype(), xd));
    // Each (b, h, s) row on its own: split among the run's threads, every value computed as alone.
    const int64_t vectors = batch * heads * seq;
    const int threads = x.numel() >= kParallelElements ? static_cast<int>(std::min<int64_t>(max_threads(), vectors)) : 1;
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t t = 0; t < vectors; ++t) {
      const int64_t b = t / (heads * seq), h = t / seq % heads, s = t % seq;
      const int64_t base = (heads_first ? (b * heads + h) * seq + s : (b * seq + s) * heads + h) * head_size;
      const int64_t row = cache_row[static_cast<size_t>(b * seq + s)] * half;
      T* __restrict y = out + base;
      const T* __restrict xr = in + base;
      const T* __restrict cr = cos_p + row;
      const T* __restrict sr = sin_p + row;
      if (attrs.interleaved) {
        for (int64_t d = 0; d < half; ++d) {
          const C c = static_cast<C>(cr[d]), sn = static_cast<C>(sr[d]);
          const C x1 = static_cast<C>(xr[2 * d]), x2 = static_cast<C>(xr[2 * d + 1]);
          y[2 * d] = static_cast<T>(c * x1 - sn * x2);
          y[2 * d + 1] = static_cast<T>(sn * x1 + c * x2);
        }
      } else {
        for (int64_t d = 0; d < half; ++d) {
          const C c = static_cast<C>(cr[d]), sn = static_cast<C>(sr[d]);
          const C x1 = static_cast<C>(xr[d]), x2 = static_cast<C>(xr[d + half]);
          y[d] = static_cast<T>(c * x1 - sn * x2);
          y[d + half] = static_cast<T>(sn * x1 + c * x2);
        }
      }
      for (int64_t d = rot; d < head_size; ++d) y[d] = xr[d];
    }
  });
}

}  // namespace

void register_attention_kernels(KernelRegistry& r) {
  const KernelFactory attention = [](const KernelInit& init) {
    AttentionAttrs a;
    a.causal = init.attr_int("is_causal", 0) != 0;
    a.q_heads = init.attr_int("q_num_heads", 0);
    a.kv_heads = init.attr_int("kv_num_heads", 0);
    a.qk_mode = init.attr_int("qk_matmul_output_mode", 0);
    if (a.qk_mode < 0 || a.qk_mode > 3)
      throw init.error("qk_matmul_output_mode must be 0 to 3, got " + std::to_string(a.qk_mode));
    if (init.has_attr("scale")) a.scale = init.attr_float("scale", 1.0f);
    a.has_softcap = init.has_attr("softcap");
    a.softcap = init.attr_float("softcap", 0.0f);
    a.left_window = init.attr_int("left_window_size", -1);
    a.right_window = init.attr_int("right_window_size", -1);
    a.softmax_type = softmax_precision(init);
    if (a.left_window < -1 || a.right_window < -1) throw init.error("window sizes must be -1 or nonnegative");
    return make_kernel([a](KernelContext& ctx) {
      dispatch<float, double, Float16, BFloat16>(ctx.input(0).dtype(), ctx, [&](auto tag) {
        attention_typed<typename decltype(tag)::type>(ctx, a);
      });
    });
  };
  add_kernel(r, "Attention", 23, INT_MAX, dtypes(FloatTypes{}), attention);
  // What runtime/core/passes/fuse_attention.h makes of attention written out as products and a
  // softmax, in graphs of any opset: Attention-23's meaning (its 4-D inputs and mask).
  add_domain_kernel(r, "com.tunnx", "Attention", 1, INT_MAX, dtypes(FloatTypes{}), attention);
  KernelDef flex;
  flex.domain = "ai.onnx.preview";
  flex.op_type = "FlexAttention";
  flex.since_version = 1;
  flex.types = dtypes(FloatTypes{});
  flex.factory = [](const KernelInit& init) {
    FlexAttrs a;
    if (init.has_attr("scale")) a.scale = init.attr_float("scale", 1.0f);
    a.softmax_type = softmax_precision(init);
    a.score_mod = modifier_graph(init, "score_mod");
    a.prob_mod = modifier_graph(init, "prob_mod");
    return make_kernel([a](KernelContext& ctx) { run_flex_attention(ctx, a); });
  };
  r.add(std::move(flex));
  add_kernel(r, "RotaryEmbedding", 23, INT_MAX, dtypes(RotaryTypes{}), [](const KernelInit& init) {
    RotaryAttrs attrs;
    attrs.interleaved = init.attr_int("interleaved", 0) != 0;
    attrs.rotary_dim = init.attr_int("rotary_embedding_dim", 0);
    attrs.num_heads = init.attr_int("num_heads", 0);
    if (attrs.rotary_dim < 0)
      throw init.error("rotary_embedding_dim must be >= 0, got " + std::to_string(attrs.rotary_dim));
    return make_kernel([attrs](KernelContext& ctx) { run_rotary(ctx, attrs); });
  });
}

}  // namespace tunnx::cpu
