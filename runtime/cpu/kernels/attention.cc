// Attention building blocks: RotaryEmbedding (opset 23). Y has X's shape and dtype.
#include "runtime/cpu/kernels/common.h"
#include "runtime/cpu/kernels/kernels.h"

namespace tunnx::cpu {
namespace {

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
    for (int64_t b = 0; b < batch; ++b)
      for (int64_t h = 0; h < heads; ++h)
        for (int64_t s = 0; s < seq; ++s) {
          const int64_t base = (heads_first ? (b * heads + h) * seq + s : (b * seq + s) * heads + h) * head_size;
          const int64_t row = cache_row[b * seq + s] * half;
          for (int64_t d = 0; d < half; ++d) {
            const int64_t i1 = attrs.interleaved ? 2 * d : d, i2 = attrs.interleaved ? 2 * d + 1 : d + half;
            const C c = static_cast<C>(cos_p[row + d]), sn = static_cast<C>(sin_p[row + d]);
            const C x1 = static_cast<C>(in[base + i1]), x2 = static_cast<C>(in[base + i2]);
            out[base + i1] = static_cast<T>(c * x1 - sn * x2);
            out[base + i2] = static_cast<T>(sn * x1 + c * x2);
          }
          for (int64_t d = rot; d < head_size; ++d) out[base + d] = in[base + d];
        }
  });
}

}  // namespace

void register_attention_kernels(KernelRegistry& r) {
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
