// Col2Im (opset 18): the adjoint of im2col, torch.nn.Fold for any number of spatial dims. Each of
// the L sliding blocks contributes its prod(block_shape) values to the image pixels it covers;
// overlapping blocks add up. Shape rule (k spatial dims):
//   input [N, C * prod(block_shape), L], image_shape {I1..Ik}, block_shape {B1..Bk}
//   -> output [N, C, I1..Ik], where L = prod_i ((I_i + pad_begin_i + pad_end_i
//      - dilation_i * (B_i - 1) - 1) / stride_i + 1).
// Channel row c * prod(B) + b holds kernel position b (row-major over B) of channel c; column l is
// the block at position l (row-major over the blocks' grid).
#include <string>
#include <vector>

#include "runtime/cpu/kernels/common.h"
#include "runtime/cpu/kernels/kernels.h"

namespace tunnx::cpu {
namespace {

struct Col2ImAttrs {
  std::vector<int64_t> dilations, pads, strides;  // empty: 1s, 0s, 1s
};

struct Geometry {
  std::vector<int64_t> image, block, grid;  // image dims, block_shape, blocks per dim
  std::vector<int64_t> dilations, pads_begin, strides;
};

void col2im(KernelContext& ctx, const Col2ImAttrs& a) {
  const Tensor& x = ctx.input(0);
  const Tensor& image_in = ctx.input(1);
  const Tensor& block_in = ctx.input(2);
  if (image_in.rank() != 1 || block_in.rank() != 1 || image_in.numel() != block_in.numel() || image_in.numel() < 1)
    throw ctx.error("image_shape " + dims_to_string(image_in.dims()) + " and block_shape " +
                    dims_to_string(block_in.dims()) + " must be 1-D of one length, at least 1");
  Geometry g;
  g.image = read_int_values(image_in, ctx);
  g.block = read_int_values(block_in, ctx);
  const size_t k = g.image.size();
  auto per_dim = [&](const std::vector<int64_t>& v, size_t count, int64_t fallback, const char* name) {
    if (v.empty()) return std::vector<int64_t>(count, fallback);
    if (v.size() != count)
      throw ctx.error(std::string(name) + " has " + std::to_string(v.size()) + " values, expected " +
                      std::to_string(count) + " for " + std::to_string(k) + " spatial dims");
    return v;
  };
  g.dilations = per_dim(a.dilations, k, 1, "dilations");
  g.strides = per_dim(a.strides, k, 1, "strides");
  const std::vector<int64_t> pads = per_dim(a.pads, 2 * k, 0, "pads");
  g.pads_begin.assign(pads.begin(), pads.begin() + static_cast<std::ptrdiff_t>(k));
  const int64_t kernel = product(g.block);
  if (x.rank() != 3) throw ctx.error("input must be [N, C * prod(block_shape), L], got " + dims_to_string(x.dims()));
  for (size_t i = 0; i < k; ++i) {
    if (g.image[i] < 0 || g.block[i] < 1 || g.dilations[i] < 1 || g.strides[i] < 1 || pads[i] < 0 || pads[k + i] < 0)
      throw ctx.error("dim " + std::to_string(i) + ": image " + std::to_string(g.image[i]) + ", block " +
                      std::to_string(g.block[i]) + ", dilation " + std::to_string(g.dilations[i]) + ", stride " +
                      std::to_string(g.strides[i]) + " must be positive and pads non-negative");
    const int64_t span = g.image[i] + pads[i] + pads[k + i] - g.dilations[i] * (g.block[i] - 1) - 1;
    if (span < 0)
      throw ctx.error("block_shape " + dims_to_string(g.block) + " does not fit image_shape " +
                      dims_to_string(g.image) + " with these pads and dilations along dim " + std::to_string(i));
    g.grid.push_back(span / g.strides[i] + 1);
  }
  const int64_t blocks = product(g.grid);
  if (x.dims()[1] % kernel != 0 || x.dims()[2] != blocks)
    throw ctx.error("input " + dims_to_string(x.dims()) + " must be [N, C * " + std::to_string(kernel) + ", " +
                    std::to_string(blocks) + "] for block_shape " + dims_to_string(g.block) + " over image_shape " +
                    dims_to_string(g.image));
  const int64_t n = x.dims()[0], channels = x.dims()[1] / kernel, pixels = product(g.image);
  std::vector<int64_t> out_dims{n, channels};
  out_dims.insert(out_dims.end(), g.image.begin(), g.image.end());

  // Per dim, the pixel that kernel position kp of block b lands on (-1 in a pad): [kp * grid + b].
  std::vector<std::vector<int64_t>> lands(k);
  for (size_t i = 0; i < k; ++i)
    for (int64_t kp = 0; kp < g.block[i]; ++kp)
      for (int64_t b = 0; b < g.grid[i]; ++b) {
        const int64_t p = b * g.strides[i] - g.pads_begin[i] + kp * g.dilations[i];
        lands[i].push_back(p >= 0 && p < g.image[i] ? p : -1);
      }
  const std::vector<int64_t> image_strides = strides_of(g.image);
  // The image offset of every (kernel position, block) pair, -1 when it falls in a pad: the same for
  // every channel, so computed once.
  std::vector<int64_t> target(static_cast<size_t>(kernel * blocks));
  for (int64_t kp = 0; kp < kernel; ++kp)
    for (int64_t b = 0; b < blocks; ++b) {
      int64_t offset = 0;
      for (int64_t d = static_cast<int64_t>(k) - 1, krest = kp, brest = b; d >= 0 && offset >= 0; --d) {
        const auto i = static_cast<size_t>(d);
        const int64_t p = lands[i][static_cast<size_t>((krest % g.block[i]) * g.grid[i] + brest % g.grid[i])];
        krest /= g.block[i];
        brest /= g.grid[i];
        offset = p < 0 ? -1 : offset + p * image_strides[i];
      }
      target[static_cast<size_t>(kp * blocks + b)] = offset;
    }

  dispatch(x.dtype(), ctx, NumericTypes{}, [&](auto tag) {
    using T = typename decltype(tag)::type;
    // Integers add wrapping (as numpy's +=), floats in their arithmetic type.
    using Acc = std::conditional_t<kIsFloat<T>, Compute<T>, Wide<T>>;
    Tensor& y = ctx.allocate_output_uninitialized(0, x.dtype(), out_dims);
    const T* in = data<T>(x);
    T* out = mutable_data<T>(y);
    const int64_t planes = n * channels;
    const int threads = planes > 1 && x.numel() >= kParallelElements ? max_threads() : 1;
#pragma omp parallel for schedule(static) num_threads(threads)
    for (int64_t plane = 0; plane < planes; ++plane) {
      std::vector<Acc> acc(static_cast<size_t>(pixels), Acc(0));
      const T* col = in + plane * kernel * blocks;
      for (int64_t j = 0; j < kernel * blocks; ++j) {
        const int64_t t = target[static_cast<size_t>(j)];
        if (t >= 0) acc[static_cast<size_t>(t)] += static_cast<Acc>(load(col[j]));
      }
      for (int64_t p = 0; p < pixels; ++p) out[plane * pixels + p] = static_cast<T>(acc[static_cast<size_t>(p)]);
    }
  });
}

}  // namespace

void register_col2im_kernels(KernelRegistry& r) {
  add_kernel(r, "Col2Im", 18, INT_MAX, dtypes(NumericTypes{}), [](const KernelInit& init) {
    Col2ImAttrs a;
    a.dilations = init.attr_ints("dilations");
    a.pads = init.attr_ints("pads");
    a.strides = init.attr_ints("strides");
    return make_kernel([a](KernelContext& ctx) { col2im(ctx, a); });
  });
}

}  // namespace tunnx::cpu
