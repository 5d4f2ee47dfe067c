#include "runtime/cpu/onednn/blocked_reorder.h"

#include <algorithm>
#include <cstdint>
#include <optional>
#include <vector>

#include "runtime/cpu/kernels/common.h"
#include "runtime/cpu/kernels/vector_loops.h"

namespace tunnx::cpu::onednn {
namespace {

// A blocked layout as one offset table per dim: element (i_0, ..., i_n-1) lies at
// base + sum_d offsets[d][i_d], for each i_d below the dim's padded size. The destination needs only
// its dims (its walk is levels_of's), so its tables are left empty (`with_offsets` false).
struct OffsetTables {
  int ndims = 0;
  int64_t base = 0;
  int64_t dims[DNNL_MAX_NDIMS] = {};
  int64_t padded[DNNL_MAX_NDIMS] = {};
  std::vector<int64_t> offsets[DNNL_MAX_NDIMS];
};

std::optional<OffsetTables> tables_of(const dnnl_memory_desc_t& md, bool with_offsets) {
  if (md.format_kind != dnnl_blocked || md.data_type != dnnl_f32 || md.extra.flags != 0) return std::nullopt;
  if (md.ndims <= 0 || md.ndims > DNNL_MAX_NDIMS) return std::nullopt;
  const dnnl_blocking_desc_t& b = md.format_desc.blocking;
  OffsetTables t;
  t.ndims = md.ndims;
  t.base = md.offset0;
  int64_t block_of[DNNL_MAX_NDIMS];
  std::fill(block_of, block_of + DNNL_MAX_NDIMS, int64_t{1});
  int64_t inner_stride[DNNL_MAX_NDIMS];  // of each inner block: the product of the blocks after it
  int64_t after = 1;
  for (int k = b.inner_nblks - 1; k >= 0; --k) {
    if (b.inner_idxs[k] < 0 || b.inner_idxs[k] >= md.ndims || b.inner_blks[k] <= 0) return std::nullopt;
    inner_stride[k] = after;
    after *= b.inner_blks[k];
    block_of[b.inner_idxs[k]] *= b.inner_blks[k];
  }
  for (int d = 0; d < md.ndims; ++d) {
    if (md.padded_offsets[d] != 0 || md.dims[d] < 0 || md.padded_dims[d] < md.dims[d]) return std::nullopt;
    if (md.padded_dims[d] % block_of[d] != 0) return std::nullopt;
    t.dims[d] = md.dims[d];
    t.padded[d] = md.padded_dims[d];
    if (!with_offsets) continue;
    std::vector<int64_t>& off = t.offsets[d];
    off.resize(static_cast<size_t>(md.padded_dims[d]));
    for (int64_t i = 0; i < md.padded_dims[d]; ++i) {
      int64_t at = (i / block_of[d]) * b.strides[d];
      int64_t rest = i % block_of[d];
      for (int k = b.inner_nblks - 1; k >= 0; --k) {  // the last block on a dim holds its fastest digit
        if (b.inner_idxs[k] != d) continue;
        at += (rest % b.inner_blks[k]) * inner_stride[k];
        rest /= b.inner_blks[k];
      }
      off[static_cast<size_t>(i)] = at;
    }
  }
  return t;
}

// One digit of the destination's layout: a dim's outer blocks, or one of its inner blocks. An
// element's place in the destination is the sum over levels of digit x dst_step; its index in the
// dim is the sum over that dim's levels of digit x index_step.
struct Level {
  int dim;
  int64_t count, dst_step, index_step;
};

// The destination's levels in the order the copy walks them, outermost first: by falling step, so a
// dense destination is written front to back, and a 16 x 16 tile of OIhw16i16o reads its 16 rows of
// the source while they are in the cache.
std::vector<Level> levels_of(const dnnl_memory_desc_t& to) {
  const dnnl_blocking_desc_t& b = to.format_desc.blocking;
  int64_t block_of[DNNL_MAX_NDIMS];
  std::fill(block_of, block_of + DNNL_MAX_NDIMS, int64_t{1});
  std::vector<Level> inner;
  int64_t after = 1;
  for (int k = b.inner_nblks - 1; k >= 0; --k) {
    const int d = static_cast<int>(b.inner_idxs[k]);
    inner.push_back({d, b.inner_blks[k], after, block_of[d]});
    after *= b.inner_blks[k];
    block_of[d] *= b.inner_blks[k];
  }
  std::vector<Level> levels;
  for (int d = 0; d < to.ndims; ++d) levels.push_back({d, to.padded_dims[d] / block_of[d], b.strides[d], block_of[d]});
  levels.insert(levels.end(), inner.rbegin(), inner.rend());
  levels.erase(std::remove_if(levels.begin(), levels.end(), [](const Level& l) { return l.count == 1; }), levels.end());
  if (levels.empty()) levels.push_back({0, 1, 1, 1});
  std::stable_sort(levels.begin(), levels.end(), [](const Level& x, const Level& y) { return x.dst_step > y.dst_step; });
  return levels;
}

// Copies the rows [first, last) of the walk: a row is one digit of every level but the last two
// (`tile` of them: the last two when they are of different dims, else the last one), whose elements
// are copied as a tile.
void copy_rows(const float* src, const OffsetTables& s, float* dst, const OffsetTables& t,
               const std::vector<Level>& levels, int tile, int64_t first, int64_t last) {
  const int n = static_cast<int>(levels.size()), outer = n - tile;
  const Level& in = levels.back();
  const Level& mid = tile == 2 ? levels[static_cast<size_t>(n - 2)] : Level{in.dim == 0 ? 1 : 0, 1, 0, 0};
  const int64_t* src_in = s.offsets[in.dim].data();
  const int64_t* src_mid = tile == 2 ? s.offsets[mid.dim].data() : nullptr;
  int64_t digit[2 * DNNL_MAX_NDIMS] = {};
  int64_t rest = first;  // row `first` as digits, the last outer level fastest
  for (int k = outer - 1; k >= 0; --k) {
    digit[k] = rest % levels[static_cast<size_t>(k)].count;
    rest /= levels[static_cast<size_t>(k)].count;
  }
  for (int64_t row = first; row < last; ++row) {
    int64_t index[DNNL_MAX_NDIMS] = {};
    int64_t dst_at = t.base;
    for (int k = 0; k < outer; ++k) {
      index[levels[static_cast<size_t>(k)].dim] += digit[k] * levels[static_cast<size_t>(k)].index_step;
      dst_at += digit[k] * levels[static_cast<size_t>(k)].dst_step;
    }
    int64_t src_at = s.base;
    bool inside = true;  // every other dim names an element, not the destination's padding
    for (int d = 0; d < t.ndims; ++d) {
      if (d == in.dim || (tile == 2 && d == mid.dim)) continue;
      if (index[d] < t.dims[d])
        src_at += s.offsets[d][static_cast<size_t>(index[d])];
      else
        inside = false;
    }
    // How many of a level's digits, from the row's index in its dim, name elements of the source.
    const auto valid = [&](const Level& l) {
      if (!inside) return int64_t{0};
      const int64_t left = t.dims[l.dim] - index[l.dim];
      return left <= 0 ? int64_t{0} : std::min(l.count, (left + l.index_step - 1) / l.index_step);
    };
    const int64_t in_valid = valid(in), mid_valid = tile == 2 ? valid(mid) : 1;
    const int64_t in_start = index[in.dim];
    for (int64_t m = 0; m < mid.count; ++m) {
      float* out = dst + dst_at + m * mid.dst_step;
      const int64_t n_valid = m < mid_valid ? in_valid : 0;
      const float* from = src + src_at + (tile == 2 ? src_mid[index[mid.dim] + m * mid.index_step] : 0);
      if (in.dst_step == 1) {
        for (int64_t i = 0; i < n_valid; ++i) out[i] = from[src_in[in_start + i * in.index_step]];
        for (int64_t i = n_valid; i < in.count; ++i) out[i] = 0.0f;
      } else {
        for (int64_t i = 0; i < n_valid; ++i) out[i * in.dst_step] = from[src_in[in_start + i * in.index_step]];
        for (int64_t i = n_valid; i < in.count; ++i) out[i * in.dst_step] = 0.0f;
      }
    }
    for (int k = outer - 1; k >= 0; --k) {  // next row
      if (++digit[k] < levels[static_cast<size_t>(k)].count) break;
      digit[k] = 0;
    }
  }
}

}  // namespace

bool blocked_reorder_into(const dnnl::memory& from, const dnnl::memory& to) {
  // Past this, oneDNN's generated loops pay for their making: they move a float in ~0.5 ns, these
  // in 0.8-2.8 (a 768 x 3072 weight into AB16b64a: 6.7 ms against 2.4 with oneDNN's 0.13 to make).
  constexpr size_t kMaxElements = size_t{1} << 17;
  if (to.get_desc().get_size() / sizeof(float) > kMaxElements) return false;
  const dnnl_memory_desc_t& f = from.get_desc().data;
  const dnnl_memory_desc_t& t = to.get_desc().data;
  if (f.ndims != t.ndims) return false;
  for (int d = 0; d < f.ndims; ++d)
    if (f.dims[d] != t.dims[d]) return false;
  const std::optional<OffsetTables> source = tables_of(f, true), target = tables_of(t, false);
  if (!source || !target) return false;
  const std::vector<Level> levels = levels_of(t);
  const size_t n = levels.size();
  const int tile = n >= 2 && levels[n - 2].dim != levels[n - 1].dim ? 2 : 1;
  int64_t rows = 1, elements = 1;
  for (size_t k = 0; k < n; ++k) (k + static_cast<size_t>(tile) < n ? rows : elements) *= levels[k].count;
  elements *= rows;
  if (elements == 0) return true;  // an empty tensor: nothing to move
  const auto* src = static_cast<const float*>(from.get_data_handle());
  auto* dst = static_cast<float*>(to.get_data_handle());
  // A weight of a few thousand floats is copied in microseconds: the team would only wake for it.
  const int threads = static_cast<int>(std::min<int64_t>(rows, elements >= (int64_t{1} << 16) ? max_threads() : 1));
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int w = 0; w < threads; ++w) copy_rows(src, *source, dst, *target, levels, tile, rows * w / threads, rows * (w + 1) / threads);
  return true;
}

namespace {

// The channel block of `md` when it is float32 [N, C, spatial...] in channels-blocked form (nChw16c,
// nChw8c: inner block on C only, C a multiple of it, outer order N, C-block, spatial), else 0.
int64_t channel_block_of(const dnnl_memory_desc_t& md) {
  if (md.format_kind != dnnl_blocked || md.data_type != dnnl_f32 || md.extra.flags != 0 || md.offset0 != 0) return 0;
  const dnnl_blocking_desc_t& b = md.format_desc.blocking;
  if (md.ndims < 3 || b.inner_nblks != 1 || b.inner_idxs[0] != 1) return 0;
  const int64_t block = b.inner_blks[0], c = md.dims[1];
  if (block <= 1 || c % block != 0 || md.padded_dims[1] != c) return 0;
  int64_t stride = block;
  for (int d = md.ndims - 1; d >= 2; --d) {
    if (md.padded_dims[d] != md.dims[d] || b.strides[d] != stride) return 0;
    stride *= md.dims[d];
  }
  if (b.strides[1] != stride || b.strides[0] != stride * (c / block)) return 0;
  return block;
}

// Whether `md` is float32 [N, C, spatial...] with no blocks and no gaps, its dims laid out from the
// outermost to the innermost in `order` (dim indices).
bool dense_in_order(const dnnl_memory_desc_t& md, const std::vector<int>& order) {
  if (md.format_kind != dnnl_blocked || md.data_type != dnnl_f32 || md.extra.flags != 0 || md.offset0 != 0 ||
      md.ndims < 3 || md.format_desc.blocking.inner_nblks != 0)
    return false;
  int64_t stride = 1;
  for (auto d = order.rbegin(); d != order.rend(); ++d) {
    if (md.format_desc.blocking.strides[*d] != stride) return false;
    stride *= md.dims[*d];
  }
  return true;
}

// nhwc, nwc, ndhwc: N, the spatial dims, C.
bool channels_last_dense(const dnnl_memory_desc_t& md) {
  std::vector<int> order = {0};
  for (int d = 2; d < md.ndims; ++d) order.push_back(d);
  order.push_back(1);
  return dense_in_order(md, order);
}

// nchw, ncw, ncdhw: every dim in order.
bool channels_first_dense(const dnnl_memory_desc_t& md) {
  std::vector<int> order;
  for (int d = 0; d < md.ndims; ++d) order.push_back(d);
  return dense_in_order(md, order);
}

// How channel_block_reorder moves `f` into `t`, if it does: a transpose either way between
// channels-first and channels-last, or a copy of channel blocks of `block` channels.
struct ChannelMove {
  enum class Kind { kTransposeIn, kTransposeOut, kIntoBlocks, kOutOfBlocks } kind;
  int64_t block = 0;
};

std::optional<ChannelMove> channel_move(const dnnl_memory_desc_t& f, const dnnl_memory_desc_t& t) {
  using Kind = ChannelMove::Kind;
  if (f.ndims != t.ndims) return std::nullopt;
  for (int d = 0; d < f.ndims; ++d)
    if (f.dims[d] != t.dims[d]) return std::nullopt;
  if (channels_first_dense(f) && channels_last_dense(t)) return ChannelMove{Kind::kTransposeIn};
  if (channels_last_dense(f) && channels_first_dense(t)) return ChannelMove{Kind::kTransposeOut};
  const bool to_blocked = channels_last_dense(f);
  const int64_t block = to_blocked ? channel_block_of(t) : channels_last_dense(t) ? channel_block_of(f) : 0;
  if (block != 8 && block != 16) return std::nullopt;  // the widths copy_blocks moves
  return ChannelMove{to_blocked ? Kind::kIntoBlocks : Kind::kOutOfBlocks, block};
}

}  // namespace

bool channel_block_reorder_takes(const dnnl::memory::desc& from, const dnnl::memory::desc& to) {
  return channel_move(from.data, to.data).has_value();
}

bool channel_block_reorder(const dnnl::memory::desc& from, const float* x, const dnnl::memory::desc& to, float* y,
                           const std::function<void(float*, int64_t)>& then) {
  using Kind = ChannelMove::Kind;
  const dnnl_memory_desc_t& f = from.data;
  const std::optional<ChannelMove> move = channel_move(f, to.data);
  if (!move) return false;
  int64_t pixels = 1;
  for (int d = 2; d < f.ndims; ++d) pixels *= f.dims[d];
  const int64_t batch = f.dims[0], channels = f.dims[1];
  // Channels-first <-> channels-last: a transpose of each image's [C, pixels] (then `then` over y).
  if (move->kind == Kind::kTransposeIn || move->kind == Kind::kTransposeOut) {
    const bool in = move->kind == Kind::kTransposeIn;
    transpose_matrices(x, y, batch, in ? channels : pixels, in ? pixels : channels);
    if (then) then(y, batch * pixels * channels);
    return true;
  }
  const bool to_blocked = move->kind == Kind::kIntoBlocks;
  const int64_t block = move->block;
  const int64_t blocks = channels / block;
  // Pixels in chunks; each chunk moves all its channels, a block at a time.
  constexpr int64_t kChunk = 64;  // pixels: a chunk of 64 channels is 16 KiB, read from the L1 once per block
  const int64_t chunks = (pixels + kChunk - 1) / kChunk, tasks = batch * chunks;
  const int threads = static_cast<int>(std::min<int64_t>(tasks, batch * pixels * channels >= kParallelElements ? max_threads() : 1));
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t task = 0; task < tasks; ++task) {
    const int64_t n = task / chunks, p0 = task % chunks * kChunk, p1 = std::min(pixels, p0 + kChunk);
    const float* xn = x + n * pixels * channels;
    float* yn = y + n * pixels * channels;
    // Into blocks: a block of channels at a time over the chunk's pixels (the blocked side one
    // sequential stream); out of them: a pixel's channels at a time (each row of channels written
    // whole). The other orders measured 1.5-2x slower (56x56x64, one thread).
    if (to_blocked) {
      for (int64_t cb = 0; cb < blocks; ++cb) {
        float* written = yn + (cb * pixels + p0) * block;
        copy_blocks(xn + p0 * channels + cb * block, channels, written, block, p1 - p0, block);
        if (then) then(written, (p1 - p0) * block);
      }
    } else {
      for (int64_t p = p0; p < p1; ++p) copy_blocks(xn + p * block, pixels * block, yn + p * channels, block, blocks, block);
      if (then) then(yn + p0 * channels, (p1 - p0) * channels);
    }
  }
  return true;
}

}  // namespace tunnx::cpu::onednn
