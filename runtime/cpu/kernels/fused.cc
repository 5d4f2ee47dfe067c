// com.tunnx:FusedMatMul, the node runtime/core/passes/fuse_linear.cc makes of MatMul/Gemm -> [bias
// Add] -> [activation]. The reference kernel composes the reference math: the reference MatMul or
// Gemm kernel (taken from the registry, as the oneDNN fast paths do) computes Y, then each element
// gets its bias (a 1-D float32 [N] along the last dim) and the activation, in float (the activation
// table and its math are runtime/core/ops/linear.h's):
//   inputs  A, B, [C] (Gemm only; "" when absent), [bias], [R]   output  act(Y + bias) [+ or * R], Y's shape
// (R, when attribute binary is "Add" or "Mul", has Y's shape: fuse_linear proves it before fusing).
// With op "MatMul", transA / transB swap the last two dims of A / B (copies made here) and alpha scales
// the product before the bias.
// The oneDNN kernel (runtime/cpu/onednn/matmul.cc) runs on top of this one as its fallback.
#include <algorithm>
#include <climits>
#include <deque>
#include <cmath>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "runtime/core/ops/conv_pool.h"
#include "runtime/core/ops/linear.h"
#include "runtime/cpu/kernels/common.h"
#include "runtime/cpu/kernels/kernels.h"
#include "runtime/cpu/kernels/vector_loops.h"

namespace tunnx::cpu {
namespace {

// `t` (float32, rank >= 2) with its last two dims swapped, copied.
Tensor last_two_swapped(const Tensor& t, const KernelContext& ctx, const char* name) {
  if (t.rank() < 2 || t.dtype() != DataType::kFloat32)
    throw ctx.error(std::string(name) + " needs a float32 operand of rank 2 or more, got " + to_string(t.dtype()) + " " +
                    dims_to_string(t.dims()));
  std::vector<int64_t> dims = t.dims();
  const int64_t rows = dims[dims.size() - 2], cols = dims.back(), batch = t.numel() / std::max<int64_t>(rows * cols, 1);
  std::swap(dims[dims.size() - 2], dims.back());
  Tensor out = Tensor::uninitialized(DataType::kFloat32, dims);
  for (int64_t b = 0; b < batch; ++b)
    transpose_matrix(data<float>(t) + b * rows * cols, out.mutable_data_as<float>() + b * rows * cols, rows, cols);
  return out;
}

class FusedMatMul : public Kernel {
 public:
  // `matmul`: op "MatMul" with its transA, transB and alpha (ops/linear.h); unused for op "Gemm".
  FusedMatMul(std::unique_ptr<ir::Node> inner, std::unique_ptr<Kernel> product, bool gemm, bool has_bias,
              ops::GemmAttrs matmul, ops::Activation act, ops::FusedBinary binary)
      : inner_(std::move(inner)),
        product_(std::move(product)),
        gemm_(gemm),
        has_bias_(has_bias),
        matmul_(matmul),
        act_(act),
        binary_(binary) {}

  void run(KernelContext& ctx) const override {
    const size_t operands = gemm_ ? 3 : 2;
    std::vector<const Value*> in;
    for (size_t i = 0; i < operands; ++i) in.push_back(ctx.has_input(i) ? &ctx.input_value(i) : nullptr);
    Value a_transposed, b_transposed;  // op MatMul, transA / transB: the reference product reads these
    if (!gemm_ && matmul_.trans_a) {
      a_transposed = Value(last_two_swapped(ctx.input(0), ctx, "transA"));
      in[0] = &a_transposed;
    }
    if (!gemm_ && matmul_.trans_b) {
      b_transposed = Value(last_two_swapped(ctx.input(1), ctx, "transB"));
      in[1] = &b_transposed;
    }
    std::vector<Value> out(1);
    int64_t bytes = 0;  // Y is a temporary; the output below is what the run keeps
    KernelContext inner(*inner_, std::move(in), out, {true}, bytes, nullptr);
    product_->run(inner);
    const Tensor& y = out[0].tensor();
    if (y.dtype() != DataType::kFloat32) throw ctx.error(std::string("dtype ") + to_string(y.dtype()) + " is not supported");
    const float* bias = nullptr;
    const int64_t n = y.rank() == 0 ? 1 : y.dims().back();
    if (has_bias_) {
      const Tensor& b = ctx.input(operands);
      if (b.dtype() != DataType::kFloat32 || b.rank() != 1 || b.numel() != n)
        throw ctx.error("bias must be float32 [" + std::to_string(n) + "], got " + to_string(b.dtype()) + " " +
                        dims_to_string(b.dims()));
      bias = data<float>(b);
    }
    const float* r = nullptr;
    if (binary_ != ops::FusedBinary::kNone) {
      const Tensor& operand = ctx.input(operands + (has_bias_ ? 1 : 0));
      if (operand.dtype() != DataType::kFloat32 || operand.dims() != y.dims())
        throw ctx.error("binary operand must be float32 " + dims_to_string(y.dims()) + " (the product's shape), got " +
                        to_string(operand.dtype()) + " " + dims_to_string(operand.dims()));
      r = data<float>(operand);
    }
    Tensor& result = ctx.allocate_output_uninitialized(0, DataType::kFloat32, y.dims());
    const float* src = data<float>(y);
    float* dst = mutable_data<float>(result);
    const float alpha = gemm_ ? 1.0f : matmul_.alpha;  // Gemm's alpha is the inner Gemm's
    for (int64_t i = 0; i < y.numel(); ++i) {
      const float z = alpha == 1.0f ? src[i] : alpha * src[i];
      const float a = act_(bias ? z + bias[i % n] : z);
      dst[i] = binary_ == ops::FusedBinary::kAdd ? a + r[i] : binary_ == ops::FusedBinary::kMul ? a * r[i] : a;
    }
  }

 private:
  std::unique_ptr<ir::Node> inner_;  // the MatMul/Gemm node `product_` was built for
  std::unique_ptr<Kernel> product_;
  bool gemm_, has_bias_;
  ops::GemmAttrs matmul_;
  ops::Activation act_;
  ops::FusedBinary binary_;
};

// [N, spatial..., C] <-> [N, C, spatial...] float32 copies (1-D to 3-D images), for the channels-last
// nodes' reference kernels: each image is one matrix transpose ([C, S] <-> [S, C]).
Tensor channels_moved(const Tensor& t, bool to_channels_last, const KernelContext& ctx) {
  if (t.dtype() != DataType::kFloat32 || t.rank() < 3 || t.rank() > 5)
    throw ctx.error("channels_last needs a 3-D to 5-D float32 tensor, got " + std::string(to_string(t.dtype())) + " " +
                    dims_to_string(t.dims()));
  const std::vector<int64_t>& d = t.dims();
  if (t.numel() == 0) return Tensor::uninitialized(DataType::kFloat32, to_channels_last ? ops::channels_last_of_nchw(d)
                                                                                      : ops::nchw_of_channels_last(d));
  const int64_t channels = to_channels_last ? d[1] : d.back(), image = t.numel() / d[0];
  const int64_t rows = to_channels_last ? channels : image / channels, cols = image / rows;
  Tensor out = Tensor::uninitialized(DataType::kFloat32, to_channels_last ? ops::channels_last_of_nchw(d)
                                                                          : ops::nchw_of_channels_last(d));
  for (int64_t i = 0; i < d[0]; ++i)
    transpose_matrix(data<float>(t) + i * rows * cols, out.mutable_data_as<float>() + i * rows * cols, rows, cols);
  return out;
}

// [N, C, spatial...] <-> the channel-blocked layout of FusedConv's x_channel_block and
// y_channel_block (memory [N, C / block, spatial..., block], dims [N, spatial..., C]), float32.
Tensor channel_blocks_moved(const Tensor& t, bool to_blocks, int64_t block, const KernelContext& ctx) {
  if (t.dtype() != DataType::kFloat32 || t.rank() < 3 || t.rank() > 5)
    throw ctx.error("a channel block needs a 3-D to 5-D float32 tensor, got " + std::string(to_string(t.dtype())) +
                    " " + dims_to_string(t.dims()));
  const std::vector<int64_t>& d = t.dims();
  const std::vector<int64_t> out_dims = to_blocks ? ops::channels_last_of_nchw(d) : ops::nchw_of_channels_last(d);
  const int64_t channels = to_blocks ? d[1] : d.back();
  if (channels % block != 0)
    throw ctx.error("a channel block of " + std::to_string(block) + " needs a multiple of it as channels, got " +
                    dims_to_string(d));
  Tensor out = Tensor::uninitialized(DataType::kFloat32, out_dims);
  if (t.numel() == 0) return out;
  const int64_t batch = d[0], pixels = t.numel() / (batch * channels);
  const float* in = data<float>(t);
  float* o = out.mutable_data_as<float>();
  for (int64_t n = 0; n < batch; ++n)
    for (int64_t c = 0; c < channels; ++c)
      for (int64_t p = 0; p < pixels; ++p) {
        const int64_t plain = (n * channels + c) * pixels + p;
        const int64_t blocked = ((n * (channels / block) + c / block) * pixels + p) * block + c % block;
        if (to_blocks) o[blocked] = in[plain];
        else o[plain] = in[blocked];
      }
  return out;
}

// com.tunnx:FusedConv, the node runtime/core/passes/fuse_conv.cc makes of Conv -> [BatchNormalization]
// -> [Add(y, Z)] -> [activation] (or the Add after the activation). Inputs X, W, B, scale, bn_bias,
// mean, var, Z ("" for the absent). The reference composes the reference math: the reference Conv
// kernel computes Y from X, W, B; then each channel c is normalised, (y - mean) * scale /
// sqrt(var + epsilon) + bn_bias (computed in double, as the reference BatchNormalization does), Z is
// added and the activation applied in the node's order. With channels_last (passes/channels_last.h)
// X and Z are read, and Y written, as [N, H, W, C] (X as it is with channels_first_source), and X or
// Y channel-blocked where x_channel_block or y_channel_block says so: converted around the same
// computation. The oneDNN kernel (runtime/cpu/onednn/conv.cc) runs on top of this one as its fallback.
class FusedConv : public Kernel {
 public:
  FusedConv(std::unique_ptr<ir::Node> inner, std::unique_ptr<Kernel> conv, ops::FusedConvAttrs attrs)
      : inner_(std::move(inner)), conv_(std::move(conv)), attrs_(attrs) {}

  void run(KernelContext& ctx) const override {
    std::vector<const Value*> in;
    for (size_t i = 0; i < 3; ++i) in.push_back(ctx.has_input(i) ? &ctx.input_value(i) : nullptr);
    Value x_nchw;
    if (attrs_.channels_last && !attrs_.channels_first_source) {
      x_nchw = Value(attrs_.x_channel_block ? channel_blocks_moved(ctx.input(0), false, attrs_.x_channel_block, ctx)
                                            : channels_moved(ctx.input(0), false, ctx));
      in[0] = &x_nchw;
    }
    std::vector<Value> out(1);
    int64_t bytes = 0;  // Y is a temporary; the output below is what the run keeps
    KernelContext inner(*inner_, std::move(in), out, {true}, bytes, nullptr);
    conv_->run(inner);
    const Tensor& y = out[0].tensor();
    if (y.dtype() != DataType::kFloat32) throw ctx.error(std::string("dtype ") + to_string(y.dtype()) + " is not supported");
    const int64_t channels = y.dims()[1];
    const int64_t planes = y.dims()[0] * channels;  // 0 for an empty batch: nothing to compute
    const int64_t inner_size = planes > 0 ? y.numel() / planes : 0;
    std::vector<double> scale(static_cast<size_t>(channels), 1.0), shift(static_cast<size_t>(channels), 0.0);
    if (attrs_.has_bn) {
      const float* p[4];
      for (size_t i = 0; i < 4; ++i) {
        const Tensor& t = ctx.input(3 + i);
        if (t.dtype() != DataType::kFloat32 || t.numel() != channels)
          throw ctx.error("BatchNormalization input " + std::to_string(i + 1) + " must be float32 [" +
                          std::to_string(channels) + "], got " + to_string(t.dtype()) + " " + dims_to_string(t.dims()));
        p[i] = data<float>(t);
      }
      for (int64_t c = 0; c < channels; ++c) {
        scale[c] = p[0][c] / std::sqrt(static_cast<double>(p[3][c]) + attrs_.epsilon);
        shift[c] = p[1][c] - p[2][c] * scale[c];
      }
    }
    // The affine maps around the activation: scale and shift before, scale and shift after.
    const std::array<const float*, 4> a = fused_conv_affine_inputs(ctx);
    const float s0 = a[0] ? *a[0] : 1, t0 = a[1] ? *a[1] : 0, s1 = a[2] ? *a[2] : 1, t1 = a[3] ? *a[3] : 0;
    const float* z = nullptr;
    Tensor z_nchw;
    if (attrs_.has_residual) {
      if (attrs_.channels_last) z_nchw = channels_moved(ctx.input(7), false, ctx);
      const Tensor& t = attrs_.channels_last ? z_nchw : ctx.input(7);
      if (t.dtype() != DataType::kFloat32 || t.dims() != y.dims())
        throw ctx.error("the residual must be float32 " + dims_to_string(y.dims()) + ", got " + to_string(t.dtype()) +
                        " " + dims_to_string(t.dims()));
      z = data<float>(t);
    }
    Tensor nchw_result;  // with channels_last, Y before it is moved into the output
    if (attrs_.channels_last) nchw_result = Tensor::uninitialized(DataType::kFloat32, y.dims());
    Tensor& result = attrs_.channels_last ? nchw_result : ctx.allocate_output_uninitialized(0, DataType::kFloat32, y.dims());
    const float* src = data<float>(y);
    float* dst = mutable_data<float>(result);
    for (int64_t i = 0; i < y.numel(); ++i) {
      const int64_t c = i / inner_size % channels;
      float v = attrs_.has_bn ? static_cast<float>(src[i] * scale[c] + shift[c]) : src[i];
      if (z && !attrs_.residual_after_activation) v += z[i];
      v = attrs_.activation(v * s0 + t0) * s1 + t1;
      if (z && attrs_.residual_after_activation) v += z[i];
      dst[i] = v;
    }
    if (attrs_.channels_last)
      ctx.set_output(0, Value(attrs_.y_channel_block ? channel_blocks_moved(nchw_result, true, attrs_.y_channel_block, ctx)
                                                     : channels_moved(nchw_result, true, ctx)));
  }

 private:
  std::unique_ptr<ir::Node> inner_;  // the Conv node `conv_` was built for
  std::unique_ptr<Kernel> conv_;
  ops::FusedConvAttrs attrs_;
};

// com.tunnx:ChannelsLastPool (runtime/core/passes/channels_last.h): the MaxPool or AveragePool
// (attribute op, the pool's own attributes beside it) of an X [N, H, W, C], written [N, OH, OW, C];
// or a GlobalMaxPool of any rank (below). The reference moves the channels around the reference pool
// kernel.
class ChannelsLastPool : public Kernel {
 public:
  ChannelsLastPool(std::unique_ptr<ir::Node> inner, std::unique_ptr<Kernel> pool)
      : inner_(std::move(inner)), pool_(std::move(pool)) {}

  void run(KernelContext& ctx) const override {
    const Value x_nchw(channels_moved(ctx.input(0), false, ctx));
    std::vector<Value> out(1);
    int64_t bytes = 0;
    KernelContext inner(*inner_, {&x_nchw}, out, {true}, bytes, nullptr);
    pool_->run(inner);
    ctx.set_output(0, Value(channels_moved(out[0].tensor(), true, ctx)));
  }

 private:
  std::unique_ptr<ir::Node> inner_;  // the MaxPool/AveragePool node `pool_` was built for
  std::unique_ptr<Kernel> pool_;
};

// com.tunnx:ChannelsLastPool with op GlobalMaxPool: X [N, spatial..., C] -> Y [N, 1..., C], the
// largest of each (n, c) over the spatial positions, a NaN passed over as the GlobalMaxPool kernel
// does (runtime/cpu/kernels/pool.cc): one pass down the rows of each image, columns split among
// threads.
class ChannelsLastGlobalMax : public Kernel {
 public:
  void run(KernelContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    if (x.dtype() != DataType::kFloat32 || x.rank() < 3)
      throw ctx.error("X must be float32 [N, spatial..., C], got " + std::string(to_string(x.dtype())) + " " +
                      dims_to_string(x.dims()));
    std::vector<int64_t> dims = x.dims();
    std::fill(dims.begin() + 1, dims.end() - 1, 1);
    const int64_t batch = dims[0], channels = dims.back();
    const int64_t positions = batch * channels > 0 ? x.numel() / (batch * channels) : 0;
    float* out = mutable_data<float>(ctx.allocate_output_uninitialized(0, DataType::kFloat32, dims));
    std::fill_n(out, batch * channels, -std::numeric_limits<float>::infinity());
    for_column_blocks(batch, positions, channels, [&](int64_t n, int64_t c0, int64_t c1) {
      extreme_rows(data<float>(x) + n * positions * channels + c0, positions, channels, c1 - c0,
                   out + n * channels + c0, /*max=*/true, /*nan_wins=*/false);
    });
  }
};

// com.tunnx:SqueezeExcite (ops/conv_pool.h): one pass over X for the per-channel means, the layers'
// matrix-vector products on those means, one pass for X * gate. Split among the run's threads when X
// is large enough, in one parallel region: each thread scales the rows it summed, which are in its
// own cache, and the products' weight panels are split between them.
//
// A constant W is read from a copy in panels of 16 rows (panel_product's layout: four sequential
// streams at a time), made on the first run and again when the weight's version moves. The weights
// come from the L3 or memory each run (MobileNetV3-small's 576 x 144 pair is 0.66 MB), where the 16
// row streams of a plain dot-product loop ran 1.5-2x slower.
class SqueezeExcite : public Kernel {
 public:
  SqueezeExcite(const KernelInit& init, ops::SqueezeExciteAttrs attrs) : attrs_(std::move(attrs)) {
    for (size_t l = 0; l < attrs_.activations.size(); ++l) panels_.emplace_back(init, 1 + ops::kSqueezeExciteLayerInputs * l);
  }

  void run(KernelContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    const bool last = attrs_.channels_last;
    if (x.dtype() != DataType::kFloat32 || x.rank() < 3)
      throw ctx.error("X must be float32 " + std::string(last ? "[N, spatial..., C]" : "[N, C, spatial...]") + ", got " +
                      to_string(x.dtype()) + " " + dims_to_string(x.dims()));
    const int64_t batch = x.dims()[0], channels = last ? x.dims().back() : x.dims()[1];
    const int64_t positions = batch * channels > 0 ? x.numel() / (batch * channels) : 0;
    struct LayerData {
      const float *w, *b = nullptr, *a = nullptr;
      std::shared_ptr<const Panels> panels;  // W's copy in panels when W is the constant
      int64_t in = 0, out = 0;
      bool a_repeats = false;  // A is one value for every channel
    };
    std::vector<LayerData> layers;
    int64_t width = channels, widest = channels;
    for (size_t l = 0; l < attrs_.activations.size(); ++l) {
      const size_t first = 1 + l * ops::kSqueezeExciteLayerInputs;
      const Tensor& w = ctx.input(first);
      if (w.dtype() != DataType::kFloat32 || w.rank() < 2 || w.dims()[1] != width ||
          (w.dims()[0] > 0 && w.numel() != w.dims()[0] * width))
        throw ctx.error("layer " + std::to_string(l) + "'s W must be float32 [Co, " + std::to_string(width) +
                        ", 1, ...], got " + to_string(w.dtype()) + " " + dims_to_string(w.dims()));
      LayerData layer{.w = data<float>(w), .panels = panels_[l].get(w, 0, panels_of), .in = width, .out = w.dims()[0]};
      auto vector_input = [&](size_t i, const char* name, bool may_repeat) -> const float* {
        if (!ctx.has_input(i)) return nullptr;
        const Tensor& t = ctx.input(i);
        if (t.dtype() != DataType::kFloat32 || (t.numel() != layer.out && !(may_repeat && t.numel() == 1)))
          throw ctx.error("layer " + std::to_string(l) + "'s " + name + " must be float32 with " +
                          std::to_string(layer.out) + " elements" + (may_repeat ? " or one" : "") + ", got " +
                          to_string(t.dtype()) + " " + dims_to_string(t.dims()));
        return data<float>(t);
      };
      layer.b = vector_input(first + 1, "B", false);
      layer.a = vector_input(first + 2, "A", true);
      layer.a_repeats = layer.a && ctx.input(first + 2).numel() == 1 && layer.out != 1;
      width = layer.out;
      widest = std::max(widest, width);
      layers.push_back(layer);
    }
    if (width != channels)
      throw ctx.error("the last layer gives " + std::to_string(width) + " values per image for X's " +
                      std::to_string(channels) + " channels");
    Tensor& y = ctx.allocate_output_uninitialized(0, DataType::kFloat32, x.dims());
    if (x.numel() == 0) return;
    const float* in = data<float>(x);
    float* out = mutable_data<float>(y);

    // Rows: channels-last, the N * positions rows of C values; channels-first, the N * C planes.
    const int64_t rows = last ? batch * positions : batch * channels;
    const int threads = x.numel() >= kParallelSqueezeExcite ? static_cast<int>(std::min<int64_t>(max_threads(), rows)) : 1;
    std::vector<double> sums(static_cast<size_t>(threads * batch * channels), 0.0);
    std::vector<float> scratch(static_cast<size_t>(2 * batch * widest));
    float* const vectors[2] = {scratch.data(), scratch.data() + batch * widest};
    auto body = [&](int t) {
      const int64_t r0 = rows * t / threads, r1 = rows * (t + 1) / threads;
      double* sum = sums.data() + t * batch * channels;
      if (last) {
        for (int64_t n = 0; n < batch; ++n) {
          const int64_t a = std::max(r0, n * positions), b = std::min(r1, (n + 1) * positions);
          if (a < b) accumulate_rows(in + a * channels, b - a, channels, channels, sum + n * channels);
        }
      } else {
        for (int64_t r = r0; r < r1; ++r) sum[r] = plane_sum(in + r * positions, positions);
      }
#pragma omp barrier
      // The means, then each layer's outputs in blocks of 16 (its weight rows split among the threads:
      // MobileNetV3's largest is 144 x 576); each loop's end is a barrier.
#pragma omp for schedule(static)
      for (int64_t i = 0; i < batch * channels; ++i) {
        double total = 0;
        for (int u = 0; u < threads; ++u) total += sums[static_cast<size_t>(u * batch * channels + i)];
        vectors[0][i] = static_cast<float>(total / static_cast<double>(positions));
      }
      for (size_t l = 0; l < layers.size(); ++l) {
        const LayerData& layer = layers[l];
        const float* from = vectors[l % 2];
        float* to = vectors[(l + 1) % 2];
        // Four panels at a time, as panel_product reads them.
        const int64_t blocks = (layer.out + 63) / 64, panels = (layer.out + 15) / 16;
#pragma omp for schedule(static)
        for (int64_t block = 0; block < blocks; ++block) {
          const int64_t o0 = block * 64, o1 = std::min(o0 + 64, layer.out);
          if (layer.panels)
            panel_product(from, layer.in, batch, layer.panels->data(), layer.in, layer.out, nullptr, to,
                          layer.out, block * 4, std::min(block * 4 + 4, panels));
          else
            block_product_bt(from, layer.in, layer.w + o0 * layer.in, layer.in, to + o0, layer.out, batch, o1 - o0,
                             layer.in, 1.0f);
          for (int64_t n = 0; n < batch; ++n) {
            float* v = to + n * layer.out;
            if (layer.b)
              for (int64_t o = o0; o < o1; ++o) v[o] += layer.b[o];
            if (layer.a)
              for (int64_t o = o0; o < o1; ++o) v[o] += layer.a[layer.a_repeats ? 0 : o];
            attrs_.activations[l].apply(v + o0, o1 - o0);
          }
        }
      }
      const float* gate = vectors[layers.size() % 2];
      if (last) {
        for (int64_t n = 0; n < batch; ++n) {
          const int64_t a = std::max(r0, n * positions), b = std::min(r1, (n + 1) * positions);
          if (a < b)
            float_binary_rows(FloatBinaryOp::kMul, in + a * channels, channels, 1, gate + n * channels, 0, 1,
                              out + a * channels, b - a, channels);
        }
      } else if (r0 < r1) {
        float_binary_rows(FloatBinaryOp::kMul, in + r0 * positions, positions, 1, gate + r0, 1, 0,
                          out + r0 * positions, r1 - r0, positions);
      }
    };
    if (threads == 1) {
      body(0);
    } else {
#pragma omp parallel num_threads(threads)
      body(thread_index());
    }
  }

 private:
  using Panels = std::vector<float>;  // ceil(Co / 16) panels of [Ci, 16], zero past Co

  // W [Co, Ci, 1...] in panels of 16 rows.
  static Panels panels_of(const Tensor& w) {
    const int64_t out = w.dims()[0], in = out > 0 ? w.numel() / out : 0, count = (out + 15) / 16;
    Panels panels(static_cast<size_t>(count * in * 16), 0.0f);
    const float* src = data<float>(w);
    for (int64_t o = 0; o < out; ++o)
      for (int64_t k = 0; k < in; ++k) panels[static_cast<size_t>((o / 16) * in * 16 + k * 16 + o % 16)] = src[o * in + k];
    return panels;
  }

  // X's elements from which the block runs on the run's threads. Below it a second thread costs more
  // than it saves (its start, two barriers).
  static constexpr int64_t kParallelSqueezeExcite = int64_t{1} << 14;

  // The sum of n contiguous floats, in double, by accumulate_rows' vector loop.
  static double plane_sum(const float* p, int64_t n) {
    double acc[16] = {};
    const int64_t full = n / 16;
    accumulate_rows(p, full, 16, 16, acc);
    double total = 0;
    for (int64_t i = full * 16; i < n; ++i) total += p[i];
    for (double v : acc) total += v;
    return total;
  }

  ops::SqueezeExciteAttrs attrs_;
  std::deque<ConstantCopy<Panels>> panels_;  // per layer: W's copy when W is a constant no optimizer writes
};

// com.tunnx:OneHotMatMul(X, W) = MatMul(Cast(Equal(X, [0, 1, ..., K-1]), float), W), which
// runtime/core/passes/fuse_one_hot.cc makes of an embedding written as a one-hot product: Y [..., N]
// for X [..., 1] or [..., K] and W float32 [K, N]. For X [..., 1] each row of Y is W's row X (zeros for
// an X outside [0, K)), copied; the product gives exactly that when W is finite (x + 0 * w is x). A W
// holding an infinity or NaN, and X [..., K], are multiplied out in order as the product would be.
class OneHotMatMul : public Kernel {
 public:
  void run(KernelContext& ctx) const override {
    const Tensor& x = ctx.input(0);
    const Tensor& w = ctx.input(1);
    if (w.dtype() != DataType::kFloat32 || w.rank() != 2)
      throw ctx.error("W must be float32 [K, N], got " + std::string(to_string(w.dtype())) + " " + dims_to_string(w.dims()));
    const int64_t K = w.dims()[0], N = w.dims()[1];
    if (x.rank() == 0 || (x.dims().back() != 1 && x.dims().back() != K))
      throw ctx.error("X " + dims_to_string(x.dims()) + " must end in 1 or K = " + std::to_string(K));
    std::vector<int64_t> dims = x.dims();
    dims.back() = N;
    Tensor& y = ctx.allocate_output_uninitialized(0, DataType::kFloat32, dims);
    const std::vector<int64_t> index = read_int_values(x, ctx);
    const int64_t last = x.dims().back(), rows = last ? x.numel() / last : 0;
    const float* pw = data<float>(w);
    float* out = mutable_data<float>(y);
    if (last == 1 && finite(w)) {
      const int threads = rows * N >= kParallelElements ? max_threads() : 1;
#pragma omp parallel for schedule(static) num_threads(threads)
      for (int64_t r = 0; r < rows; ++r) {
        const int64_t k = index[static_cast<size_t>(r)];
        if (k >= 0 && k < K) std::copy(pw + k * N, pw + (k + 1) * N, out + r * N);
        else std::fill(out + r * N, out + (r + 1) * N, 0.0f);
      }
      return;
    }
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t n = 0; n < N; ++n) {
        float sum = 0;
        for (int64_t k = 0; k < K; ++k)
          sum += (index[static_cast<size_t>(r * last + (last == 1 ? 0 : k))] == k ? 1.0f : 0.0f) * pw[k * N + n];
        out[r * N + n] = sum;
      }
  }

 private:
  // Whether every element of W is finite, checked once per version of W.
  bool finite(const Tensor& w) const {
    std::lock_guard<std::mutex> lock(mutex_);
    if (checked_data_ != w.data() || checked_version_ != w.version()) {
      const float* p = data<float>(w);
      finite_ = std::all_of(p, p + w.numel(), [](float v) { return std::isfinite(v); });
      checked_data_ = w.data();
      checked_version_ = w.version();
    }
    return finite_;
  }

  mutable std::mutex mutex_;
  mutable const void* checked_data_ = nullptr;
  mutable uint64_t checked_version_ = 0;
  mutable bool finite_ = false;
};

}  // namespace

std::array<const float*, 4> fused_conv_affine_inputs(const KernelContext& ctx) {
  std::array<const float*, 4> out{};
  for (size_t i = 0; i < 4; ++i) {
    const size_t input = ops::kFusedConvAffineInput + i;
    if (!ctx.has_input(input)) continue;
    const Tensor& t = ctx.input(input);
    if (t.dtype() != DataType::kFloat32 || t.numel() != 1)
      throw ctx.error("input " + std::to_string(input) + " (an affine map's " + (i % 2 ? "shift" : "scale") +
                      ") must be one float32 element, got " + to_string(t.dtype()) + " " + dims_to_string(t.dims()));
    out[i] = data<float>(t);
  }
  return out;
}

void register_fused_kernels(KernelRegistry& r) {
  {
    KernelDef def;
    def.domain = "com.tunnx";
    def.op_type = "OneHotMatMul";
    def.types = {DataType::kInt32, DataType::kInt64, DataType::kUInt8};
    def.name = "cpu/reference/OneHotMatMul";
    def.factory = [](const KernelInit&) -> std::unique_ptr<Kernel> { return std::make_unique<OneHotMatMul>(); };
    r.add(std::move(def));
  }
  {
    KernelDef def;
    def.domain = "com.tunnx";
    def.op_type = "SqueezeExcite";
    def.types = {DataType::kFloat32};
    def.name = "cpu/reference/SqueezeExcite";
    def.factory = [](const KernelInit& init) -> std::unique_ptr<Kernel> {
      std::string why_not;
      std::optional<ops::SqueezeExciteAttrs> attrs = ops::squeeze_excite_attrs(init.node(), &why_not);
      if (!attrs) throw init.error(why_not);
      const size_t layers = attrs->activations.size();
      if (init.num_inputs() != 1 + ops::kSqueezeExciteLayerInputs * layers)
        throw init.error("expects X and three inputs (W, B, A) for each of its " + std::to_string(layers) +
                         " layers, got " + std::to_string(init.num_inputs()) + " inputs");
      return std::make_unique<SqueezeExcite>(init, std::move(*attrs));
    };
    r.add(std::move(def));
  }
  // ONNX kernels under com.tunnx for every opset, so rewrites can emit them into models of any opset:
  // Gelu (opset 20), which runtime/core/passes/fuse_gelu.cc makes of a spelled-out exact GELU,
  // HardSwish (opset 14), which passes/fuse_hard_swish.cc makes of Paddle's and older torch's, and
  // LayerNormalization (opset 17), which passes/lower_contrib_ops.cc makes of ONNX Runtime's contrib
  // LayerNormalization and SkipLayerNormalization.
  for (const auto& [op, opset] :
       {std::pair<const char*, int64_t>{"Gelu", 20}, {"HardSwish", 14}, {"LayerNormalization", 17}})
    if (const KernelDef* onnx_def = r.find_reference("", op, opset, DeviceType::kCpu)) {
      KernelDef def = *onnx_def;
      def.domain = "com.tunnx";
      def.since_version = 1;
      def.until_version = INT_MAX;
      r.add(std::move(def));
    }
  if (const KernelDef* onnx_conv = r.find_reference("", "Conv", 11, DeviceType::kCpu)) {
    KernelDef def;
    def.domain = "com.tunnx";
    def.op_type = "FusedConv";
    def.types = {DataType::kFloat32};
    def.name = "cpu/reference/FusedConv";
    def.factory = [conv = onnx_conv->factory](const KernelInit& init) -> std::unique_ptr<Kernel> {
      if (init.num_inputs() != 8 && init.num_inputs() != 12)
        throw init.error("expects 8 inputs (X, W, B, scale, bias, mean, var, Z) or 12 (then the affine maps' scale "
                         "and shift before and after the activation), got " +
                                                   std::to_string(init.num_inputs()));
      std::string why_not;
      const std::optional<ops::FusedConvAttrs> attrs = ops::fused_conv_attrs(init.node(), &why_not);
      if (!attrs) throw init.error(why_not);
      auto inner = std::make_unique<ir::Node>();
      inner->name = init.node().name;
      inner->op_type = "Conv";
      inner->inputs.assign(init.node().inputs.begin(), init.node().inputs.begin() + 3);
      inner->outputs = init.node().outputs;
      for (const char* name : {"auto_pad", "dilations", "group", "kernel_shape", "pads", "strides"})
        if (const ir::Attribute* a = init.node().attribute(name)) inner->attributes.push_back(*a);
      std::vector<DataType> types = {init.input_type(0), init.input_type(1), init.input_type(2)};
      std::unique_ptr<Kernel> kernel = conv(KernelInit(*inner, 11, types, {}));
      return std::make_unique<FusedConv>(std::move(inner), std::move(kernel), *attrs);
    };
    r.add(std::move(def));
  }
  KernelFactory max_pool, average_pool;
  if (const KernelDef* d = r.find_reference("", "MaxPool", 12, DeviceType::kCpu)) max_pool = d->factory;
  if (const KernelDef* d = r.find_reference("", "AveragePool", 11, DeviceType::kCpu)) average_pool = d->factory;
  if (max_pool && average_pool) {
    KernelDef def;
    def.domain = "com.tunnx";
    def.op_type = "ChannelsLastPool";
    def.types = {DataType::kFloat32};
    def.name = "cpu/reference/ChannelsLastPool";
    def.factory = [max_pool, average_pool](const KernelInit& init) -> std::unique_ptr<Kernel> {
      const std::string op = init.attr_string("op", "");
      if (op == "GlobalMaxPool") return std::make_unique<ChannelsLastGlobalMax>();
      if (op != "MaxPool" && op != "AveragePool")
        throw init.error("op must be \"MaxPool\", \"AveragePool\" or \"GlobalMaxPool\", got \"" + op + "\"");
      auto inner = std::make_unique<ir::Node>(init.node());
      inner->op_type = op;
      inner->domain.clear();
      std::erase_if(inner->attributes, [](const ir::Attribute& a) { return a.name == "op"; });
      std::unique_ptr<Kernel> pool = (op == "MaxPool" ? max_pool : average_pool)(KernelInit(*inner, 12, {init.input_type(0)}, {}));
      return std::make_unique<ChannelsLastPool>(std::move(inner), std::move(pool));
    };
    r.add(std::move(def));
  }
  KernelFactory matmul, gemm;
  if (const KernelDef* d = r.find_reference("", "MatMul", 13, DeviceType::kCpu)) matmul = d->factory;
  if (const KernelDef* d = r.find_reference("", "Gemm", 13, DeviceType::kCpu)) gemm = d->factory;
  if (!matmul || !gemm) return;  // registered before the linear kernels: nothing to compose
  KernelDef def;
  def.domain = "com.tunnx";
  def.op_type = "FusedMatMul";
  def.types = {DataType::kFloat32};
  def.name = "cpu/reference/FusedMatMul";
  def.factory = [matmul, gemm](const KernelInit& init) -> std::unique_ptr<Kernel> {
    const std::string op = init.attr_string("op", "");
    if (op != "MatMul" && op != "Gemm") throw init.error("op must be \"MatMul\" or \"Gemm\", got \"" + op + "\"");
    const bool is_gemm = op == "Gemm";
    const bool has_bias = init.attr_int("has_bias", 0) != 0;
    const size_t operands = is_gemm ? 3 : 2;
    std::string why_not;
    const std::optional<ops::FusedBinary> binary = ops::fused_binary(init.node(), &why_not);
    if (!binary) throw init.error(why_not);
    if (init.num_inputs() < operands + (has_bias ? 1 : 0) + (*binary != ops::FusedBinary::kNone ? 1 : 0))
      throw init.error("too few inputs");
    auto inner = std::make_unique<ir::Node>();
    inner->name = init.node().name;
    inner->op_type = op;
    inner->inputs.assign(init.node().inputs.begin(), init.node().inputs.begin() + static_cast<long>(operands));
    inner->outputs = init.node().outputs;
    if (is_gemm)
      for (const char* name : {"transA", "transB", "alpha", "beta"})
        if (const ir::Attribute* a = init.node().attribute(name)) inner->attributes.push_back(*a);
    const ops::GemmAttrs matmul_attrs = ops::gemm_attrs(init.node());
    std::vector<DataType> types;
    for (size_t i = 0; i < operands; ++i) types.push_back(init.input_type(i));
    const std::optional<ops::Activation> act = ops::fused_activation(init.node(), &why_not);
    if (!act) throw init.error(why_not);
    std::unique_ptr<Kernel> product = (is_gemm ? gemm : matmul)(KernelInit(*inner, 13, types, {}));
    return std::make_unique<FusedMatMul>(std::move(inner), std::move(product), is_gemm, has_bias, matmul_attrs, *act,
                                         *binary);
  };
  r.add(std::move(def));
}

}  // namespace tunnx::cpu
