#include "runtime/cpu/onednn/winograd_weights.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "runtime/cpu/kernels/common.h"
#include "runtime/cpu/onednn/onednn_common.h"

// The clones are resolved through an ifunc; a compiler or target without them gets the plain loops.
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
#define TUNNX_MULTI_ISA __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define TUNNX_MULTI_ISA
#endif

namespace tunnx::cpu::onednn {
namespace {

constexpr int64_t kMaxAlpha = 6, kMaxTiles = kMaxAlpha * kMaxAlpha, kTaps = 9;
constexpr int64_t kBlock = 16;  // oc_block and ic_block of the layout on AVX-512, the one taken
// One block's 16 channels of a tap or a tile (GCC's and Clang's vector extension).
typedef float Lanes __attribute__((vector_size(kBlock * sizeof(float))));

// Where wino_wei_OBaaIBOIio puts things: [oc chunk][alpha][alpha][ic chunk][oc2 block][ic2 block]
// [ic block][oc block], the channels padded to whole blocks with zeros (the format's name, outermost
// first; oc chunks group oc2_block blocks of oc_block channels, ic chunks likewise).
struct Layout {
  int64_t alpha = kMaxAlpha;       // tile size: 6 for F(4x4, 3x3), 4 for F(2x2, 3x3)
  int64_t oc = 0, ic = 0;          // padded channel counts
  int64_t weights_oc = 0, weights_ic = 0;  // the tensor's own
  int64_t oc2_block = 1, ic2_block = 1, ic_chunks = 1;

  // wino_wei_aaOBiOo (F(2x2, 3x3)'s): [alpha][alpha][oc chunk][ic block][ic][oc2 block][oc block].
  // F(2x2, 3x3)'s other layout, wino_wei_aaOio ([alpha][alpha][oc block][ic][oc], what oneDNN gives
  // small images: 14x14, 7x7), is this one with oc2_block 1, whatever its descriptor's oc2_block says
  // (that is the kernel's register blocking, not the layout's; checked in the tests against oneDNN's
  // reorder).
  bool tiles_outermost = false;

  // The first of the oc block's kBlock floats for output block `nb`, input channel `c`, tile `a`.
  int64_t offset(int64_t nb, int64_t c, int64_t a) const {
    const int64_t occ = nb / oc2_block, ob = nb % oc2_block;
    if (tiles_outermost)
      return ((((a * (oc / (kBlock * oc2_block)) + occ) * (ic / kBlock) + c / kBlock) * kBlock + c % kBlock) * oc2_block +
              ob) * kBlock;
    const int64_t icc = c / (ic2_block * kBlock), ib = c / kBlock % ic2_block, i = c % kBlock;
    return ((((((occ * alpha + a / alpha) * alpha + a % alpha) * ic_chunks + icc) * oc2_block + ob) * ic2_block +
             ib) * kBlock + i) * kBlock;
  }
  // offset(nb, c, a + 1) - offset(nb, c, a): both layouts step through tiles by a constant.
  int64_t tile_stride() const { return tiles_outermost ? oc * ic : ic_chunks * oc2_block * ic2_block * kBlock * kBlock; }
};

std::optional<Layout> layout_of(const dnnl::memory::desc& desc) {
  const dnnl_memory_desc_t& d = desc.data;
  if (d.format_kind != dnnl_format_kind_wino || d.data_type != dnnl_f32 || d.ndims != 4 || d.dims[2] != 3 ||
      d.dims[3] != 3)
    return std::nullopt;
  const dnnl_wino_desc_t& w = d.format_desc.wino_desc;
  const bool blocked_first = w.wino_format == dnnl_wino_wei_OBaaIBOIio;
  const bool oc_blocks_only = w.wino_format == dnnl_wino_wei_aaOio;
  const bool tiles_first = w.wino_format == dnnl_wino_wei_aaOBiOo || oc_blocks_only;
  if ((!blocked_first && !(tiles_first && w.ic2_block == 1)) || w.r != 3 || (w.alpha != 4 && w.alpha != 6) ||
      w.oc_block != kBlock ||
      w.ic_block != kBlock || w.oc2_block < 1 || w.ic2_block < 1 || w.oc % (kBlock * w.oc2_block) != 0 ||
      w.ic % (kBlock * w.ic2_block) != 0 || d.dims[0] > w.oc || d.dims[1] > w.ic ||
      w.size < static_cast<size_t>(w.alpha * w.alpha * w.oc * w.ic) * sizeof(float))
    return std::nullopt;
  Layout l;
  l.alpha = w.alpha;
  l.tiles_outermost = tiles_first;
  l.oc = w.oc;
  l.ic = w.ic;
  l.weights_oc = d.dims[0];
  l.weights_ic = d.dims[1];
  l.oc2_block = oc_blocks_only ? 1 : w.oc2_block;
  l.ic2_block = w.ic2_block;
  l.ic_chunks = w.ic / (kBlock * w.ic2_block);
  return l;
}

// Dense f32 OIHW [oc, ic, 3, 3].
bool dense_oihw(const dnnl::memory::desc& desc, const Layout& l) {
  const dnnl_memory_desc_t& d = desc.data;
  if (d.format_kind != dnnl_blocked || d.data_type != dnnl_f32 || d.ndims != 4 || d.dims[0] != l.weights_oc ||
      d.dims[1] != l.weights_ic || d.dims[2] != 3 || d.dims[3] != 3 || d.format_desc.blocking.inner_nblks != 0 ||
      d.offset0 != 0)
    return false;
  const dnnl_dims_t& s = d.format_desc.blocking.strides;
  return s[0] == l.weights_ic * kTaps && s[1] == kTaps && s[2] == 3 && s[3] == 1;
}

// Output blocks [nb_begin, nb_end) of every input channel: each 3x3 kernel g of 16 output channels
// becomes its alpha^2 tiles (36 or 16), tile a = sum_k m[a][k] g[k], written as 16 consecutive floats.
TUNNX_MULTI_ISA void transform_blocks(const float* w, const Layout& l, const float (*m)[kTaps], float* out,
                                      int64_t nb_begin, int64_t nb_end) {
  alignas(64) float g[kTaps][kBlock];
  const int64_t stride = l.tile_stride();
  for (int64_t nb = nb_begin; nb < nb_end; ++nb)
    for (int64_t c = 0; c < l.ic; ++c) {
      for (int64_t o = 0; o < kBlock; ++o) {
        const int64_t oc = nb * kBlock + o;
        const float* kernel = oc < l.weights_oc && c < l.weights_ic ? w + (oc * l.weights_ic + c) * kTaps : nullptr;
        for (int64_t k = 0; k < kTaps; ++k) g[k][o] = kernel ? kernel[k] : 0.0f;
      }
      // The 16 channels as one vector (a zmm register in the AVX-512 clone), the taps summed in
      // turn, and the offset worked out once per kernel: with an offset (four divisions) per tile
      // and the sums left to the auto-vectorizer (scalar among shuffles), a 128 x 128 weight took
      // 0.50 ms into F(4x4)'s layout, warm, at 1 thread; now 0.20.
      Lanes taps[kTaps];
      std::memcpy(taps, g, sizeof taps);
      float* tile = out + l.offset(nb, c, 0);
      for (int64_t a = 0; a < l.alpha * l.alpha; ++a, tile += stride) {
        Lanes sum = taps[0] * m[a][0];
        for (int64_t k = 1; k < kTaps; ++k) sum += taps[k] * m[a][k];
        std::memcpy(tile, &sum, sizeof sum);
      }
    }
}

void transform(const float* w, const Layout& l, const float (*m)[kTaps], float* out) {
  const int64_t blocks = l.oc / kBlock;
  // Whole output blocks per thread: each reads its 16 channels' rows front to back.
  const int threads = static_cast<int>(std::min<int64_t>(blocks, l.oc * l.ic >= 4096 ? max_threads() : 1));
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int t = 0; t < threads; ++t)
    transform_blocks(w, l, m, out, blocks * t / threads, blocks * (t + 1) / threads);
}

// oneDNN's own reorder into `to` (never the fast path).
void onednn_reorder(dnnl::memory from, dnnl::memory to) {
  dnnl::stream stream(cpu_engine());
  dnnl::reorder(from, to).execute(stream, from, to);
  stream.wait();
}

// The alpha^2 x 9 matrix, read off oneDNN, and whether its check passed.
struct TransformMatrix {
  bool usable = false;
  float m[kMaxTiles][kTaps] = {};
};

// For the layout of tile size `alpha`: a probe convolution oneDNN runs on that Winograd form.
TransformMatrix read_off_onednn(int64_t alpha) {
  TransformMatrix t;
  try {
    // A convolution oneDNN runs on this form with two-block chunks both ways (32 -> 32 channels).
    constexpr int64_t kChannels = 32;
    using dt = dnnl::memory::data_type;
    using tag = dnnl::memory::format_tag;
    const dnnl::memory::desc image({1, kChannels, 32, 32}, dt::f32, tag::any);
    // Named: the primitive descriptor's iterator reads it while next_impl() moves on.
    const dnnl::convolution_forward::desc desc(dnnl::prop_kind::forward_inference,
                                               dnnl::algorithm::convolution_winograd, image,
                                               dnnl::memory::desc({kChannels, kChannels, 3, 3}, dt::f32, tag::any),
                                               image, {1, 1}, {1, 1}, {1, 1});
    dnnl::convolution_forward::primitive_desc pd(desc, cpu_engine());
    std::optional<Layout> l;
    do {
      l = layout_of(pd.weights_desc());
      if (l && l->alpha != alpha) l.reset();
    } while (!l && pd.next_impl());
    if (!l) return t;
    const dnnl::memory::desc plain({kChannels, kChannels, 3, 3}, dt::f32, tag::oihw);
    dnnl::memory units(plain, cpu_engine()), tiles(pd.weights_desc(), cpu_engine());
    // Output channel k holds a one at tap k of input channel 0: its tiles are column k.
    float* u = static_cast<float*>(units.get_data_handle());
    std::fill(u, u + kChannels * kChannels * kTaps, 0.0f);
    for (int64_t k = 0; k < kTaps; ++k) u[(k * kChannels + 0) * kTaps + k] = 1.0f;
    onednn_reorder(units, tiles);
    const float* got = static_cast<const float*>(tiles.get_data_handle());
    for (int64_t a = 0; a < alpha * alpha; ++a)
      for (int64_t k = 0; k < kTaps; ++k) t.m[a][k] = got[l->offset(0, 0, a) + k];

    // Both ways on random weights: the layout and the matrix must give oneDNN's tiles.
    std::mt19937 rng(3);
    std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
    for (int64_t i = 0; i < kChannels * kChannels * kTaps; ++i) u[i] = uniform(rng);
    onednn_reorder(units, tiles);
    std::vector<float> mine(pd.weights_desc().get_size() / sizeof(float), 0.0f);
    transform_blocks(u, *l, t.m, mine.data(), 0, l->oc / kBlock);
    float scale = 0, worst = 0;
    for (int64_t i = 0; i < alpha * alpha * l->oc * l->ic; ++i) {
      scale = std::max(scale, std::fabs(got[i]));
      worst = std::max(worst, std::fabs(got[i] - mine[static_cast<size_t>(i)]));
    }
    t.usable = scale > 0 && worst <= 1e-5f * scale;
  } catch (const dnnl::error&) {
    t.usable = false;  // no such Winograd form here: nothing to transform for
  }
  return t;
}

// Each form's matrix, read off oneDNN the first time that form is transformed (a model whose
// layers all take one form pays for one probe).
const TransformMatrix& matrix_for(int64_t alpha) {
  if (alpha == 6) {
    static const TransformMatrix f4x4 = read_off_onednn(6);
    return f4x4;
  }
  static const TransformMatrix f2x2 = read_off_onednn(4);
  return f2x2;
}

}  // namespace

bool winograd_weights_into(dnnl::memory from, dnnl::memory to) {
  const std::optional<Layout> l = layout_of(to.get_desc());
  if (!l || !dense_oihw(from.get_desc(), *l)) return false;
  const TransformMatrix& matrix = matrix_for(l->alpha);
  if (!matrix.usable) return false;
  transform(static_cast<const float*>(from.get_data_handle()), *l, matrix.m, static_cast<float*>(to.get_data_handle()));
  return true;
}

}  // namespace tunnx::cpu::onednn
