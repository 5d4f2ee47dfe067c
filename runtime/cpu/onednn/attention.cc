// float32 Attention (opsets 23-25). Per (batch, query head, block of query rows):
// scores [rows, keys] = scale * Q K^T over the keys some row of the block may see (causal and window
// limits cut the block's key range, so a causal model computes about half the products), the mask
// added and softmax per row, then Y rows = P V, written where Y keeps them. Blocks are spread over the
// run's threads. The products are vector_loops' block_product, not oneDNN's sgemm: at these sizes
// (a block of 32 rows by a head's 32-128 dims) it is as fast, and sgemm's first call in a process
// spends ~28 ms generating its kernels, more than a small model's whole first run.
//
// The reference kernel (runtime/cpu/kernels/attention.cc) runs what this does not take, and reports
// every malformed input in its words: other dtypes, softcap, the qk_matmul_output output, a
// softmax_precision other than float, empty dims, and any shape that does not fit. It differs from
// the reference by rounding only: Q K^T is one product scaled by `scale` instead of Q and K each
// scaled by sqrt(scale), sums run in block_product's order, and exp is vector_loops' polynomial.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "runtime/cpu/kernels/common.h"
#include "runtime/cpu/kernels/vector_loops.h"
#include "runtime/cpu/onednn/onednn_common.h"

namespace tunnx::cpu::onednn {
namespace {

struct Attrs {
  bool causal = false;
  int64_t q_heads = 0, kv_heads = 0;
  std::optional<float> scale;
  int64_t left_window = -1, right_window = -1;
};

// Query rows per task: the scores of a block ([32, keys] floats) stay in L1/L2 between the two products.
constexpr int64_t kRowBlock = 32;

// Where Q, K, V and Y live, as [b, h, s, d] element strides (d's stride is 1).
using Strides = std::array<int64_t, 3>;

struct Geometry {
  int64_t B = 0, Hq = 0, Hkv = 0, Sq = 0, Skv = 0, Sp = 0, T = 0, D = 0, Dv = 0;
  Strides qs{}, ks{}, vs{};
  std::vector<int64_t> mask_dims, mask_strides;  // the mask right-aligned to 4-D; broadcast dims stride 0
  std::vector<int64_t> lens;                     // nonpad_kv_seqlen per batch, when given
};

// The geometry of a call the fast path takes; nothing for anything the reference should see (it
// computes, or reports, those).
std::optional<Geometry> geometry(const KernelContext& ctx, const Attrs& a) {
  for (size_t i = 0; i < 6 && i < ctx.num_inputs(); ++i)
    if (ctx.has_input(i) && i != 3 && ctx.input(i).dtype() != DataType::kFloat32) return std::nullopt;
  const Tensor& q = ctx.input(0);
  const Tensor& k = ctx.input(1);
  const Tensor& v = ctx.input(2);
  const Tensor* mask = ctx.has_input(3) ? &ctx.input(3) : nullptr;
  const Tensor* past_k = ctx.has_input(4) ? &ctx.input(4) : nullptr;
  const Tensor* past_v = ctx.has_input(5) ? &ctx.input(5) : nullptr;
  const Tensor* nonpad = ctx.has_input(6) ? &ctx.input(6) : nullptr;
  const size_t rank = q.rank();
  if ((rank != 3 && rank != 4) || k.rank() != rank || v.rank() != rank) return std::nullopt;
  if ((past_k == nullptr) != (past_v == nullptr) || (nonpad && past_k)) return std::nullopt;
  Geometry g;
  g.B = q.dims()[0];
  if (rank == 3) {
    if (a.q_heads <= 0 || a.kv_heads <= 0) return std::nullopt;
    g.Hq = a.q_heads;
    g.Hkv = a.kv_heads;
    g.Sq = q.dims()[1];
    g.Skv = k.dims()[1];
    if (q.dims()[2] % g.Hq || k.dims()[2] % g.Hkv || v.dims()[2] % g.Hkv) return std::nullopt;
    g.D = q.dims()[2] / g.Hq;
    g.Dv = v.dims()[2] / g.Hkv;
    if (k.dims()[2] / g.Hkv != g.D || v.dims()[1] != g.Skv) return std::nullopt;
    g.qs = {g.Sq * g.Hq * g.D, g.D, g.Hq * g.D};
    g.ks = {g.Skv * g.Hkv * g.D, g.D, g.Hkv * g.D};
    g.vs = {g.Skv * g.Hkv * g.Dv, g.Dv, g.Hkv * g.Dv};
  } else {
    g.Hq = q.dims()[1];
    g.Hkv = k.dims()[1];
    g.Sq = q.dims()[2];
    g.Skv = k.dims()[2];
    g.D = q.dims()[3];
    g.Dv = v.dims()[3];
    if (k.dims()[3] != g.D || v.dims()[1] != g.Hkv || v.dims()[2] != g.Skv) return std::nullopt;
    g.qs = {g.Hq * g.Sq * g.D, g.Sq * g.D, g.D};
    g.ks = {g.Hkv * g.Skv * g.D, g.Skv * g.D, g.D};
    g.vs = {g.Hkv * g.Skv * g.Dv, g.Skv * g.Dv, g.Dv};
  }
  if (k.dims()[0] != g.B || v.dims()[0] != g.B || g.Hkv <= 0 || g.Hq % g.Hkv) return std::nullopt;
  g.Sp = past_k ? past_k->dims().size() == 4 ? past_k->dims()[2] : -1 : 0;
  g.T = g.Sp + g.Skv;
  if (past_k && (past_k->dims() != std::vector<int64_t>{g.B, g.Hkv, g.Sp, g.D} ||
                 past_v->dims() != std::vector<int64_t>{g.B, g.Hkv, g.Sp, g.Dv}))
    return std::nullopt;
  if (g.B == 0 || g.Sq == 0 || g.T == 0 || g.D == 0 || g.Dv == 0) return std::nullopt;
  if (mask) {
    if (mask->rank() < 1 || mask->rank() > 4) return std::nullopt;
    if (mask->dtype() != DataType::kBool && mask->dtype() != DataType::kFloat32) return std::nullopt;
    g.mask_dims = std::vector<int64_t>(4, 1);
    std::copy(mask->dims().begin(), mask->dims().end(), g.mask_dims.end() - static_cast<std::ptrdiff_t>(mask->rank()));
    const int64_t want[3] = {g.B, g.Hq, g.Sq};
    for (size_t i = 0; i < 3; ++i)
      if (g.mask_dims[i] != 1 && g.mask_dims[i] != want[i]) return std::nullopt;
    if (g.mask_dims[3] > g.T) return std::nullopt;
    g.mask_strides = strides_of(g.mask_dims);
    for (size_t i = 0; i < 3; ++i)
      if (g.mask_dims[i] == 1) g.mask_strides[i] = 0;
  }
  if (nonpad) {
    if (nonpad->dtype() != DataType::kInt64 && nonpad->dtype() != DataType::kInt32) return std::nullopt;
    g.lens = read_int_values(*nonpad, ctx);
    if (static_cast<int64_t>(g.lens.size()) != g.B) return std::nullopt;
  }
  return g;
}

// Fewer query rows than this (a decoding step's one) score by dot products on the keys in place: the
// block product would first transpose all the keys for a handful of rows.
constexpr int64_t kFewRows = 4;

int64_t round_up16(int64_t n) { return (n + 15) / 16 * 16; }

// One (batch, kv head)'s keys transposed to [D, width_room] (zero past T), and its values packed to
// [T, dv_padded] when Dv is not a multiple of 16, as block_product reads them. Kept per thread while
// its tasks stay on one kv head (consecutive query heads of a group, and the blocks of each).
struct KeyValueCache {
  int64_t b = -1, kvh = -1;
  bool values_only = false;
  std::vector<float> keys_t, values;

  void load(int64_t nb, int64_t nkvh, const Geometry& g, const float* k, const Strides& ks, const float* v,
            const Strides& vs, int64_t width_room, int64_t dv_padded, bool need_values_only) {
    if (nb == b && nkvh == kvh && (need_values_only || !values_only)) return;
    b = nb;
    kvh = nkvh;
    values_only = need_values_only;
    if (!need_values_only) {
      keys_t.assign(static_cast<size_t>(g.D * width_room), 0.0f);
      for (int64_t j = 0; j < g.T; ++j)
        for (int64_t d = 0; d < g.D; ++d) keys_t[static_cast<size_t>(d * width_room + j)] = k[j * ks[2] + d];
    }
    if (dv_padded != g.Dv) {
      values.assign(static_cast<size_t>(g.T * dv_padded), 0.0f);
      for (int64_t j = 0; j < g.T; ++j) std::copy_n(v + j * vs[2], g.Dv, values.data() + j * dv_padded);
    }
  }
};

// present_* [B, Hkv, T, d]: past (when given) then the new keys or values laid [b, h, s, d].
void concat_present(const float* past, const float* now, const Strides& now_strides, float* present, int64_t B,
                    int64_t H, int64_t Sp, int64_t S, int64_t d) {
  const int64_t T = Sp + S;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < H; ++h) {
      float* dst = present + (b * H + h) * T * d;
      if (Sp) std::copy_n(past + (b * H + h) * Sp * d, Sp * d, dst);
      for (int64_t s = 0; s < S; ++s)
        std::copy_n(now + b * now_strides[0] + h * now_strides[1] + s * now_strides[2], d, dst + (Sp + s) * d);
    }
}

class OnednnAttention : public Kernel {
 public:
  OnednnAttention(std::unique_ptr<Kernel> reference, Attrs attrs) : reference_(std::move(reference)), a_(attrs) {}

  void run(KernelContext& ctx) const override {
    if (ctx.num_outputs() > 3 && ctx.output_wanted(3)) return reference_->run(ctx);
    const std::optional<Geometry> found = geometry(ctx, a_);
    if (!found) return reference_->run(ctx);
    const Geometry& g = *found;
    const size_t rank = ctx.input(0).rank();

    // The keys and values attention reads: the inputs in place, or present_* when there is a past or
    // present_* is wanted (then it has to be written anyway).
    const float* k = data<float>(ctx.input(1));
    const float* v = data<float>(ctx.input(2));
    Strides ks = g.ks, vs = g.vs;
    const bool past = ctx.has_input(4);
    const bool want_k = ctx.num_outputs() > 1 && ctx.output_wanted(1);
    const bool want_v = ctx.num_outputs() > 2 && ctx.output_wanted(2);
    Tensor present_k, present_v;  // this run's, when read from
    // past ++ this run's keys (values) as output `out` [B, Hkv, T, depth], or a scratch copy of it.
    auto read_present = [&](size_t out, size_t past_input, int64_t depth, bool wanted, Tensor& present,
                            const float*& p, Strides& s) {
      present = wanted ? ctx.allocate_output_uninitialized(out, DataType::kFloat32, {g.B, g.Hkv, g.T, depth})
                       : Tensor::uninitialized(DataType::kFloat32, {g.B, g.Hkv, g.T, depth});
      concat_present(past ? data<float>(ctx.input(past_input)) : nullptr, p, s, mutable_data<float>(present), g.B,
                     g.Hkv, g.Sp, g.Skv, depth);
      p = data<float>(present);
      s = {g.Hkv * g.T * depth, g.T * depth, depth};
    };
    if (past || want_k) read_present(1, 4, g.D, want_k, present_k, k, ks);
    if (past || want_v) read_present(2, 5, g.Dv, want_v, present_v, v, vs);

    const std::vector<int64_t> y_dims = rank == 3 ? std::vector<int64_t>{g.B, g.Sq, g.Hq * g.Dv}
                                                  : std::vector<int64_t>{g.B, g.Hq, g.Sq, g.Dv};
    float* y = mutable_data<float>(ctx.allocate_output_uninitialized(0, DataType::kFloat32, y_dims));
    const Strides ys = rank == 3 ? Strides{g.Sq * g.Hq * g.Dv, g.Dv, g.Hq * g.Dv} : Strides{g.Hq * g.Sq * g.Dv, g.Sq * g.Dv, g.Dv};
    attend(ctx, g, data<float>(ctx.input(0)), k, ks, v, vs, y, ys);
  }

 private:
  // Y for every (b, h, block).
  void attend(const KernelContext& ctx, const Geometry& g, const float* q, const float* k, const Strides& ks,
              const float* v, const Strides& vs, float* y, const Strides& ys) const {
    const Tensor* mask = ctx.has_input(3) ? &ctx.input(3) : nullptr;
    const bool bool_mask = mask && mask->dtype() == DataType::kBool;
    const bool* mask_b = bool_mask ? data<bool>(*mask) : nullptr;
    const float* mask_f = mask && !bool_mask ? data<float>(*mask) : nullptr;
    const float scale = a_.scale ? *a_.scale : static_cast<float>(1.0 / std::sqrt(static_cast<double>(g.D)));
    const int64_t group = g.Hq / g.Hkv;
    const int64_t blocks = (g.Sq + kRowBlock - 1) / kRowBlock, tasks = g.B * g.Hq * blocks;
    const double work = static_cast<double>(g.B * g.Hq) * static_cast<double>(g.Sq) * static_cast<double>(g.T) *
                        static_cast<double>(g.D + g.Dv);
    const int threads =
        work < SerialIfSmall::kSerialWork ? 1 : static_cast<int>(std::min<int64_t>(max_threads(), tasks));
    const float neg_inf = -std::numeric_limits<float>::infinity();
    // block_product works on 16 columns at a time: the keys' transpose has room for a block's key range
    // rounded up to 16 wherever it starts, and values and outputs are padded to 16 unless they fit.
    const int64_t width_room = round_up16(g.T) + 16, dv_padded = round_up16(g.Dv);
    const bool pack_values = dv_padded != g.Dv;

    const int64_t chunk = g.B * g.Hq >= 2 * threads ? blocks : 1;
#pragma omp parallel num_threads(threads)
    {
      std::vector<float> scores(static_cast<size_t>(std::min(kRowBlock, g.Sq) * round_up16(g.T)));
      std::vector<float> outputs(static_cast<size_t>(std::min(kRowBlock, g.Sq) * dv_padded));
      KeyValueCache cache;  // this thread's last (b, kv head), transposed and packed
      std::vector<int64_t> lo(static_cast<size_t>(kRowBlock)), hi(static_cast<size_t>(kRowBlock));
      std::vector<float> sums(static_cast<size_t>(kRowBlock));  // each row's softmax denominator
      // A head's blocks at a time where there are heads enough for the threads, so a thread's blocks
      // share heads: one block at a time, the threads took turns at each head's blocks and each
      // transposed every head's keys. Dynamic, for causal rows of unequal length.
#pragma omp for schedule(dynamic, chunk)
      for (int64_t t = 0; t < tasks; ++t) {
        const int64_t b = t / (g.Hq * blocks), h = t / blocks % g.Hq, i0 = t % blocks * kRowBlock;
        const int64_t rows = std::min(kRowBlock, g.Sq - i0), kvh = h / group;
        // Each row's allowed keys [lo, hi): causal, window and padding limits; past the mask's last
        // dim keys are masked too.
        const int64_t offset = ctx.has_input(4) ? g.Sp : g.lens.empty() ? 0 : g.lens[static_cast<size_t>(b)] - g.Sq;
        int64_t first = g.T, last = 0;
        for (int64_t r = 0; r < rows; ++r) {
          const int64_t i = i0 + r, at = i + offset;
          int64_t l = 0, u = g.T;
          if (a_.causal) u = std::min(u, at + 1);
          if (a_.right_window >= 0) u = std::min(u, at + a_.right_window + 1);
          if (a_.left_window >= 0) l = std::max(l, at - a_.left_window);
          if (!g.lens.empty()) u = std::min(u, g.lens[static_cast<size_t>(b)]);
          if (mask) u = std::min(u, g.mask_dims[3]);
          u = std::max(u, int64_t{0});
          l = std::min(l, u);
          lo[static_cast<size_t>(r)] = l;
          hi[static_cast<size_t>(r)] = u;
          if (l < u) {
            first = std::min(first, l);
            last = std::max(last, u);
          }
        }
        float* out = y + b * ys[0] + h * ys[1] + i0 * ys[2];
        if (first >= last) {  // no row sees any key: zeros, as the reference gives
          for (int64_t r = 0; r < rows; ++r) std::fill_n(out + r * ys[2], g.Dv, 0.0f);
          continue;
        }
        const int64_t width = last - first, stride = round_up16(width);
        const float* q_rows = q + b * g.qs[0] + h * g.qs[1] + i0 * g.qs[2];
        const float* keys = k + b * ks[0] + kvh * ks[1];
        const float* values = v + b * vs[0] + kvh * vs[1];
        // A few rows (a decoding step) take one dot product per score, without transposing the keys.
        const bool few_rows = rows < kFewRows;
        if (!few_rows || pack_values) cache.load(b, kvh, g, keys, ks, values, vs, width_room, dv_padded, few_rows);
        float* s = scores.data();
        if (few_rows)
          block_product_bt(q_rows, g.qs[2], keys + first * ks[2], ks[2], s, stride, rows, width, g.D, scale);
        else
          block_product(q_rows, g.qs[2], cache.keys_t.data() + first, width_room, s, stride, rows, stride, g.D, scale);
        // Keys a row may not see are -inf over the block's whole width, so softmax runs on full rows
        // (the vector loop without a tail per row: a causal block's rows all end elsewhere) and
        // gives them 0.
        for (int64_t r = 0; r < rows; ++r) {
          float* row = s + r * stride;
          const int64_t l = lo[static_cast<size_t>(r)] - first, u = hi[static_cast<size_t>(r)] - first;
          if (l >= u) {
            std::fill_n(row, width, 0.0f);
            sums[static_cast<size_t>(r)] = 0;
            continue;
          }
          std::fill_n(row, l, neg_inf);
          std::fill(row + u, row + width, neg_inf);
          if (mask) {
            const int64_t at = b * g.mask_strides[0] + h * g.mask_strides[1] + (i0 + r) * g.mask_strides[2] + first;
            if (bool_mask) {
              for (int64_t j = l; j < u; ++j)
                if (!mask_b[at + j]) row[j] = neg_inf;
            } else {
              for (int64_t j = l; j < u; ++j) row[j] += mask_f[at + j];
            }
          }
          sums[static_cast<size_t>(r)] = softmax_numerators(row, width);
        }
        const float* v_rows = pack_values ? cache.values.data() + first * dv_padded : values + first * vs[2];
        block_product(s, stride, v_rows, pack_values ? dv_padded : vs[2], outputs.data(), dv_padded, rows, dv_padded,
                      width, 1.0f);
        // The softmax's division, on the Dv outputs of a row instead of its keys.
        for (int64_t r = 0; r < rows; ++r) {
          const float sum = sums[static_cast<size_t>(r)];
          const float inv = sum == 0 ? 0.0f : 1.0f / sum;
          const float* o = outputs.data() + r * dv_padded;
          float* dst = out + r * ys[2];
          for (int64_t d = 0; d < g.Dv; ++d) dst[d] = o[d] * inv;
        }
      }
    }
  }

  std::unique_ptr<Kernel> reference_;
  Attrs a_;
};

}  // namespace

void register_onednn_attention(KernelRegistry& registry) {
  const auto make = [](const KernelInit& init, std::unique_ptr<Kernel> reference) -> std::unique_ptr<Kernel> {
    // What the fast path never computes: a softcap, and a softmax in another precision than float.
    if (init.has_attr("softcap") && init.attr_float("softcap", 0.0f) > 0) return reference;
    if (init.has_attr("softmax_precision") &&
        init.attr_int("softmax_precision", 0) != static_cast<int64_t>(DataType::kFloat32))
      return reference;
    Attrs a;
    a.causal = init.attr_int("is_causal", 0) != 0;
    a.q_heads = init.attr_int("q_num_heads", 0);
    a.kv_heads = init.attr_int("kv_num_heads", 0);
    if (init.has_attr("scale")) a.scale = init.attr_float("scale", 1.0f);
    a.left_window = init.attr_int("left_window_size", -1);
    a.right_window = init.attr_int("right_window_size", -1);
    if (a.left_window < -1 || a.right_window < -1) return reference;  // it reports the error
    return std::make_unique<OnednnAttention>(std::move(reference), a);
  };
  add_fast_path(registry, "Attention", make, 23);
  add_fast_path(registry, "Attention", make, 1, "com.tunnx");  // passes/fuse_attention.h
}

}  // namespace tunnx::cpu::onednn
