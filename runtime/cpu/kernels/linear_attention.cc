// LinearAttention (opset 27): the recurrent form of linear attention that Gated DeltaNet, RetNet,
// GLA and RWKV-6 layers run, one token at a time over a state S [B, kv_heads, d_k, d_v].
//
//   query [B, T, Hq * d_k], key [B, T, Hkv * d_k], value [B, T, Hkv * d_v];
//   past_state [B, Hkv, d_k, d_v] (zeros when omitted); decay [B, T, Hkv] or [B, T, Hkv * d_k] (log
//   space); beta [B, T, Hkv] or [B, T, 1].  output [B, T, Hq * d_v], present_state like past_state.
//
// Per token t and key/value head:  gated rules first decay S by exp(g_t); delta rules write
// beta_t * (v_t - S^T k_t) instead of v_t (S already decayed); then S += k_t (x) v_t, and each query
// head h of the group reads o_t = scale * q_t^T S. Everything is computed in float, as onnx.reference
// does, and rounded once to the output types.
#include <cmath>

#include "runtime/cpu/kernels/common.h"
#include "runtime/cpu/kernels/kernels.h"

namespace tunnx::cpu {
namespace {

using LinearAttentionTypes = Types<float, Float16, BFloat16>;

struct LinearAttentionAttrs {
  int64_t q_heads = 0, kv_heads = 0;
  float scale = 0;  // 0: 1 / sqrt(d_k)
  bool gated = false, delta = false;
};

// A tensor of any of LinearAttentionTypes as floats.
std::vector<float> floats_of(const Tensor& t, const KernelContext& ctx) {
  std::vector<float> out(static_cast<size_t>(t.numel()));
  dispatch(t.dtype(), ctx, LinearAttentionTypes{}, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* p = data<T>(t);
    for (size_t i = 0; i < out.size(); ++i) out[i] = static_cast<float>(load(p[i]));
  });
  return out;
}

void store_floats(const std::vector<float>& values, Tensor& t, const KernelContext& ctx) {
  dispatch(t.dtype(), ctx, LinearAttentionTypes{}, [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* p = mutable_data<T>(t);
    for (size_t i = 0; i < values.size(); ++i) p[i] = static_cast<T>(values[i]);
  });
}

void run_linear_attention(KernelContext& ctx, const LinearAttentionAttrs& a) {
  const Tensor& q_in = ctx.input(0);
  const Tensor& k_in = ctx.input(1);
  const Tensor& v_in = ctx.input(2);
  const Tensor* past = ctx.has_input(3) ? &ctx.input(3) : nullptr;
  const Tensor* decay_in = ctx.has_input(4) ? &ctx.input(4) : nullptr;
  const Tensor* beta_in = ctx.has_input(5) ? &ctx.input(5) : nullptr;
  if (q_in.rank() != 3 || k_in.rank() != 3 || v_in.rank() != 3)
    throw ctx.error("query, key and value must be 3-D [batch, seq, heads * head_size], got " +
                    dims_to_string(q_in.dims()) + ", " + dims_to_string(k_in.dims()) + ", " +
                    dims_to_string(v_in.dims()));
  require_same_dtype(ctx, q_in, k_in);
  require_same_dtype(ctx, q_in, v_in);
  if (a.gated != (decay_in != nullptr))
    throw ctx.error(a.gated ? "the update rule needs the decay input" : "the update rule takes no decay input");
  if (a.delta != (beta_in != nullptr))
    throw ctx.error(a.delta ? "the update rule needs the beta input" : "the update rule takes no beta input");

  const int64_t B = q_in.dims()[0], T = q_in.dims()[1], Hq = a.q_heads, Hkv = a.kv_heads;
  if (q_in.dims()[2] % Hq || k_in.dims()[2] % Hkv || v_in.dims()[2] % Hkv)
    throw ctx.error("hidden sizes " + dims_to_string({q_in.dims()[2], k_in.dims()[2], v_in.dims()[2]}) +
                    " do not split into q_num_heads " + std::to_string(Hq) + " / kv_num_heads " + std::to_string(Hkv));
  const int64_t Dk = q_in.dims()[2] / Hq, Dv = v_in.dims()[2] / Hkv;
  if (k_in.dims() != std::vector<int64_t>{B, T, Hkv * Dk} || v_in.dims()[0] != B || v_in.dims()[1] != T)
    throw ctx.error("key " + dims_to_string(k_in.dims()) + " and value " + dims_to_string(v_in.dims()) +
                    " do not match query " + dims_to_string(q_in.dims()) + " (key must be [" + std::to_string(B) +
                    ", " + std::to_string(T) + ", " + std::to_string(Hkv * Dk) + "])");
  const std::vector<int64_t> state_dims = {B, Hkv, Dk, Dv};
  if (past && past->dims() != state_dims)
    throw ctx.error("past_state " + dims_to_string(past->dims()) + " must be [batch, kv_heads, d_k, d_v] = " +
                    dims_to_string(state_dims));
  // Decay: per head (one value per key/value head) or per key dim; beta: per head or shared.
  bool decay_per_dim = false;
  if (decay_in) {
    require_same_dtype(ctx, q_in, *decay_in);
    const std::vector<int64_t>& dd = decay_in->dims();
    decay_per_dim = dd.size() == 3 && dd[2] == Hkv * Dk && Dk != 1;
    if (dd.size() != 3 || dd[0] != B || dd[1] != T || (dd[2] != Hkv && dd[2] != Hkv * Dk))
      throw ctx.error("decay " + dims_to_string(dd) + " must be [" + std::to_string(B) + ", " + std::to_string(T) +
                      ", kv_heads " + std::to_string(Hkv) + " or kv_heads * d_k " + std::to_string(Hkv * Dk) + "]");
  }
  int64_t beta_heads = 0;
  if (beta_in) {
    require_same_dtype(ctx, q_in, *beta_in);
    const std::vector<int64_t>& bd = beta_in->dims();
    if (bd.size() != 3 || bd[0] != B || bd[1] != T || (bd[2] != Hkv && bd[2] != 1))
      throw ctx.error("beta " + dims_to_string(bd) + " must be [" + std::to_string(B) + ", " + std::to_string(T) +
                      ", kv_heads " + std::to_string(Hkv) + " or 1]");
    beta_heads = bd[2];
  }

  const std::vector<float> q = floats_of(q_in, ctx), k = floats_of(k_in, ctx), v = floats_of(v_in, ctx);
  const std::vector<float> decay = decay_in ? floats_of(*decay_in, ctx) : std::vector<float>{};
  const std::vector<float> beta = beta_in ? floats_of(*beta_in, ctx) : std::vector<float>{};
  std::vector<float> state = past ? floats_of(*past, ctx) : std::vector<float>(static_cast<size_t>(B * Hkv * Dk * Dv));
  const float scale = a.scale != 0 ? a.scale : 1.0f / std::sqrt(static_cast<float>(Dk));
  const int64_t group = Hq / Hkv;

  std::vector<float> y(static_cast<size_t>(B * T * Hq * Dv)), write(static_cast<size_t>(Dv));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < Hkv; ++h) {
      float* s = state.data() + (b * Hkv + h) * Dk * Dv;  // [d_k, d_v]
      for (int64_t t = 0; t < T; ++t) {
        const float* kt = k.data() + (b * T + t) * Hkv * Dk + h * Dk;
        const float* vt = v.data() + (b * T + t) * Hkv * Dv + h * Dv;
        if (a.gated)
          for (int64_t d = 0; d < Dk; ++d) {
            const float g = decay[static_cast<size_t>((b * T + t) * decay_in->dims()[2] + (decay_per_dim ? h * Dk + d : h))];
            const float factor = std::exp(g);
            for (int64_t m = 0; m < Dv; ++m) s[d * Dv + m] *= factor;
          }
        for (int64_t m = 0; m < Dv; ++m) write[static_cast<size_t>(m)] = vt[m];
        if (a.delta) {
          const float bt = beta[static_cast<size_t>((b * T + t) * beta_heads + (beta_heads == 1 ? 0 : h))];
          for (int64_t m = 0; m < Dv; ++m) {
            float retrieved = 0;
            for (int64_t d = 0; d < Dk; ++d) retrieved += s[d * Dv + m] * kt[d];
            write[static_cast<size_t>(m)] = bt * (vt[m] - retrieved);
          }
        }
        for (int64_t d = 0; d < Dk; ++d)
          for (int64_t m = 0; m < Dv; ++m) s[d * Dv + m] += kt[d] * write[static_cast<size_t>(m)];
        for (int64_t hq = h * group; hq < (h + 1) * group; ++hq) {
          const float* qt = q.data() + (b * T + t) * Hq * Dk + hq * Dk;
          float* out = y.data() + (b * T + t) * Hq * Dv + hq * Dv;
          for (int64_t m = 0; m < Dv; ++m) {
            float acc = 0;
            for (int64_t d = 0; d < Dk; ++d) acc += qt[d] * s[d * Dv + m];
            out[m] = scale * acc;
          }
        }
      }
    }
  store_floats(y, ctx.allocate_output_uninitialized(0, q_in.dtype(), {B, T, Hq * Dv}), ctx);
  // The state keeps past_state's dtype, which may be wider than the activations' (else query's).
  if (ctx.output_wanted(1))
    store_floats(state, ctx.allocate_output_uninitialized(1, past ? past->dtype() : q_in.dtype(), state_dims), ctx);
}

}  // namespace

void register_linear_attention_kernels(KernelRegistry& r) {
  add_kernel(r, "LinearAttention", 27, INT_MAX, dtypes(LinearAttentionTypes{}), [](const KernelInit& init) {
    LinearAttentionAttrs a;
    a.q_heads = init.required_attr("q_num_heads").i;
    a.kv_heads = init.required_attr("kv_num_heads").i;
    if (a.q_heads <= 0 || a.kv_heads <= 0 || a.q_heads % a.kv_heads)
      throw init.error("q_num_heads " + std::to_string(a.q_heads) + " must be a positive multiple of kv_num_heads " +
                       std::to_string(a.kv_heads));
    a.scale = init.attr_float("scale", 0.0f);
    const std::string rule = init.attr_string("update_rule", "gated_delta");
    if (rule != "linear" && rule != "gated" && rule != "delta" && rule != "gated_delta")
      throw init.error("update_rule must be linear, gated, delta or gated_delta, got '" + rule + "'");
    a.gated = rule == "gated" || rule == "gated_delta";
    a.delta = rule == "delta" || rule == "gated_delta";
    return make_kernel([a](KernelContext& ctx) { run_linear_attention(ctx, a); });
  });
}

}  // namespace tunnx::cpu
