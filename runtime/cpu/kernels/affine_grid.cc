// AffineGrid (opset 20): the sampling grid GridSample reads, from a batch of affine matrices.
// Shape rule:
//   2-D  theta [N,2,3], size {N,C,H,W}   -> grid [N,H,W,2], grid[n,h,w] = theta[n] * (x_w, y_h, 1)
//   3-D  theta [N,3,4], size {N,C,D,H,W} -> grid [N,D,H,W,3], theta[n] * (x_w, y_h, z_d, 1)
// dtype of theta. Positions span [-1, 1] along each dim: the centres of the end pixels with
// align_corners, their outer edges without (so the centres lie at -1 + (2i + 1) / n).
#include <string>
#include <vector>

#include "runtime/cpu/kernels/common.h"
#include "runtime/cpu/kernels/kernels.h"

namespace tunnx::cpu {
namespace {

// The n evenly spaced positions along one dim. One pixel is at -1 with align_corners (as torch's
// linspace(-1, 1, 1) gives) and at 0 without.
std::vector<double> base_positions(int64_t n, bool align_corners) {
  std::vector<double> p;
  const auto len = static_cast<double>(n);
  for (int64_t i = 0; i < n; ++i) {
    const auto at = static_cast<double>(i);
    if (align_corners) p.push_back(n > 1 ? -1.0 + 2.0 * at / (len - 1) : -1.0);
    else p.push_back(-1.0 + (2.0 * at + 1.0) / len);
  }
  return p;
}

void affine_grid(KernelContext& ctx, bool align_corners) {
  const Tensor& theta = ctx.input(0);
  const Tensor& size_in = ctx.input(1);
  if (size_in.dtype() != DataType::kInt64 || size_in.rank() != 1 || (size_in.numel() != 4 && size_in.numel() != 5))
    throw ctx.error("size must be int64 {N, C, H, W} or {N, C, D, H, W}, got " +
                    std::string(to_string(size_in.dtype())) + " " + dims_to_string(size_in.dims()));
  const std::vector<int64_t> size = read_int_values(size_in, ctx);
  const int64_t k = static_cast<int64_t>(size.size()) - 2;  // spatial dims: 2 or 3
  const int64_t n = size[0];
  if (theta.dims() != std::vector<int64_t>{n, k, k + 1})
    throw ctx.error("theta must be [" + std::to_string(n) + ", " + std::to_string(k) + ", " + std::to_string(k + 1) +
                    "] for size " + dims_to_string(size) + ", got " + dims_to_string(theta.dims()));
  for (int64_t d : size)
    if (d < 0) throw ctx.error("size " + dims_to_string(size) + " has a negative dim");
  // Spatial dims outermost first (D,) H, W; positions along each, z, y, x.
  const std::vector<int64_t> spatial(size.begin() + 2, size.end());
  std::vector<std::vector<double>> pos;
  for (int64_t d : spatial) pos.push_back(base_positions(d, align_corners));
  std::vector<int64_t> out_dims{n};
  out_dims.insert(out_dims.end(), spatial.begin(), spatial.end());
  out_dims.push_back(k);
  dispatch(theta.dtype(), ctx, FloatTypes{}, [&](auto tag) {
    using T = typename decltype(tag)::type;
    Tensor& y = ctx.allocate_output_uninitialized(0, theta.dtype(), out_dims);
    const T* th = data<T>(theta);
    T* out = mutable_data<T>(y);
    const int64_t points = product(spatial);
    const auto kk = static_cast<size_t>(k);
    std::vector<double> m(kk * (kk + 1));
    std::vector<double> homo(kk + 1, 1.0);  // (x, y[, z], 1)
    for (int64_t b = 0; b < n; ++b) {
      for (size_t i = 0; i < m.size(); ++i) m[i] = to_double(th[static_cast<size_t>(b) * m.size() + i]);
      for (int64_t p = 0; p < points; ++p) {
        // The point's index along each spatial dim, innermost (W, giving x) first.
        for (int64_t rest = p, d = k - 1; d >= 0; --d) {
          const int64_t len = spatial[static_cast<size_t>(d)];
          homo[static_cast<size_t>(k - 1 - d)] = pos[static_cast<size_t>(d)][static_cast<size_t>(rest % len)];
          rest /= len;
        }
        T* dst = out + (b * points + p) * k;
        for (size_t r = 0; r < kk; ++r) {
          double v = 0;
          for (size_t c = 0; c <= kk; ++c) v += m[r * (kk + 1) + c] * homo[c];
          dst[r] = from_double<T>(v);
        }
      }
    }
  });
}

}  // namespace

void register_affine_grid_kernels(KernelRegistry& r) {
  add_kernel(r, "AffineGrid", 20, INT_MAX, kFloatTypes, [](const KernelInit& init) {
    const bool align_corners = init.attr_int("align_corners", 0) != 0;
    return make_kernel([align_corners](KernelContext& ctx) { affine_grid(ctx, align_corners); });
  });
}

}  // namespace tunnx::cpu
