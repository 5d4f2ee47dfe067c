// What every implementation of the convolutions and the windowed pools must agree on: their
// attributes and the window geometry (output shapes, pads). The reference kernels and their gradient
// kernels (runtime/cpu/kernels/conv_pool.cc, pool.cc, conv_pool_grad.cc) read them from here: a
// gradient must place each window exactly as the forward kernel did. The gradient rules live in
// conv_pool.cc here.
//
// Shape rule (Conv): X is (N, C, D1..Dn), W is (M, C/group, k1..kn), B is (M); Y is (N, M, O1..On) with
//   O = floor((D + pad_begin + pad_end - ((k - 1) * dilation + 1)) / stride) + 1       (NOTSET, VALID: pads 0)
//   O = ceil(D / stride), pads split to fit, the odd one at the end (SAME_UPPER) or begin (SAME_LOWER).
// Shape rule (ConvTranspose): W is (C, M/group, k1..kn); Y is (N, M, O1..On) with
//   O = stride * (D - 1) + output_padding + (k - 1) * dilation + 1 - pad_begin - pad_end,
//   or O = output_shape (or D * stride under SAME_*), the pads then derived from O.
// Shape rule (windowed pools): X is (N, C, D1..Dn), Y is (N, C, O1..On) with, per spatial dim,
//   extent = (kernel - 1) * dilation + 1
//   NOTSET: O = floor_or_ceil((D + pad_begin + pad_end - extent) / stride) + 1; under ceil_mode a last
//           window that would start in the end padding is dropped;
//   VALID:  O = floor((D - extent) / stride) + 1;
//   SAME_*: O = ceil(D / stride), the pads split to fit (odd one at the end for SAME_UPPER).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "runtime/core/graph.h"
#include "runtime/core/ops/linear.h"

namespace tunnx::ops {

// ---- Conv, ConvTranspose, DeformConv, ConvInteger, QLinearConv --------------------------------------
struct ConvAttrs {
  std::string auto_pad;  // "NOTSET" when absent or empty
  int64_t group = 1;
  std::vector<int64_t> kernel_shape, strides, dilations, pads;
  std::vector<int64_t> output_padding, output_shape;  // ConvTranspose only
  int64_t offset_group = 1;                            // DeformConv only
};

// Throws Error (invalid model) naming the node on an unknown auto_pad, a group or offset_group below 1,
// strides or dilations below 1, negative pads.
ConvAttrs parse_conv_attrs(const ir::Node& node);

// ---- com.tunnx:FusedConv (runtime/core/passes/fuse_conv.h): the convolution's attributes plus what
// follows it. Y = after(act(before(BN(conv) + Z))), or after(act(before(BN(conv)))) + Z when
// residual_after_activation, where before and after are the scalar affine maps y * s + t that
// inputs 8-11 give (s before, t before, s after, t after: one-element float32 tensors, read every
// run; absent inputs are 1 and 0). --------------------------------------------------------------
struct FusedConvAttrs {
  bool has_bn = false;
  float epsilon = 1e-5f;
  bool has_residual = false, residual_after_activation = false;
  // X, Z and Y are [N, spatial..., C] (runtime/core/passes/channels_last.h); W and the rest as in Conv.
  bool channels_last = false;
  // With channels_last: X alone stays [N, C, spatial...] (attribute channels_first_source), for a
  // network's first convolution, which reads the image as the model takes it (see channels_last.h).
  bool channels_first_source = false;
  // With channels_last: X (Y) lies channel-blocked, [N, C / b, spatial..., b] in memory (oneDNN's
  // nChw16c for b = 16), while its dims still read [N, spatial..., C]; 0: as the dims say. Set by
  // runtime/core/passes/channel_blocks.h on a tensor one convolution hands another; C is a multiple
  // of b, which is 8 or 16.
  int64_t x_channel_block = 0, y_channel_block = 0;
  Activation activation;
};

inline constexpr size_t kFusedConvAffineInput = 8;  // the first of the four

// Nothing, with `why_not` set, for an activation the fused ops do not take, or a channel block other
// than 0, 8 and 16 (or one without channels_last, or on a channels-first X).
std::optional<FusedConvAttrs> fused_conv_attrs(const ir::Node& node, std::string* why_not);

// ---- com.tunnx:SqueezeExcite (runtime/core/passes/fuse_squeeze_excite.h): a squeeze-and-excitation
// block as one node. Shape rule: Y has X's shape, and
//   g = mean of X over its spatial dims, per image and channel      [N, C]
//   g = act_l(W_l g + B_l + A_l), for each layer l in order         (W_l [Co, Ci, 1, ...] as [Co, Ci])
//   Y = X * g, each channel of each image scaled by its g           (the last layer's Co is C)
// X is float32 [N, C, spatial...], or [N, spatial..., C] with channels_last. Inputs: X, then three per
// layer: W, B ([Co] or "") and A (Co elements or ""): a 1x1 convolution's weight and bias, and the
// per-channel constant an Add after it puts on (Paddle's exports add the bias so). Attributes: one
// entry per layer in activations (the activation table's names of ops/linear.h, "" for none),
// approximates, activation_alphas, activation_betas. Inference only: it has no gradient. -----------
struct SqueezeExciteAttrs {
  bool channels_last = false;
  std::vector<Activation> activations;  // one per layer
};

inline constexpr size_t kSqueezeExciteLayerInputs = 3;

// Nothing, with `why_not` set, when the lists disagree in length or name an activation the fused ops
// do not take.
std::optional<SqueezeExciteAttrs> squeeze_excite_attrs(const ir::Node& node, std::string* why_not);

// The dims of a tensor as the shape rules read them, for one lying channels-last ([N, H, W, C] ->
// [N, C, H, W], and the same for 1-D and 3-D images), or as it lies channels-last (back). Ranks below
// 3 are returned as they are.
std::vector<int64_t> nchw_of_channels_last(const std::vector<int64_t>& nhwc);
std::vector<int64_t> channels_last_of_nchw(const std::vector<int64_t>& nchw);

// The sizes of one convolution. `image` is the spatial shape of the tensor patches are read from
// (Conv) or added into (ConvTranspose); `grid` is the spatial shape of the patch positions.
struct ConvGeometry {
  int64_t batch = 0, in_channels = 0, out_channels = 0, group = 1;
  std::vector<int64_t> image, grid, kernel, strides, dilations, pad_begin;
};

// x and w are the dims of X and W; `transpose` asks for ConvTranspose's geometry, else Conv's. Nothing,
// with `why_not` (when given) naming the shapes, when they do not fit the attributes.
std::optional<ConvGeometry> conv_geometry(const ConvAttrs& a, const std::vector<int64_t>& x,
                                          const std::vector<int64_t>& w, bool transpose, std::string* why_not);

// ---- AveragePool, MaxPool, LpPool, GlobalLpPool, MaxUnpool --------------------------------------------
struct PoolAttrs {
  std::string auto_pad;  // "NOTSET" when absent or empty
  std::vector<int64_t> kernel_shape, strides, pads, dilations;
  bool ceil_mode = false;
  bool count_include_pad = false;
  int64_t storage_order = 0;
  double p = 2;  // LpPool: a float attribute before opset 2, an int since
};

// Throws Error (invalid model) naming the node on an unknown auto_pad, a storage_order other than 0
// or 1, p <= 0, kernel_shape, strides or dilations below 1, negative pads. kernel_shape may be empty
// (GlobalLpPool reads only p); the windowed pools require it themselves.
PoolAttrs parse_pool_attrs(const ir::Node& node);

// Where the windows of a pool lie: along spatial dim d there are out[d] windows, and tap k of window o
// reads input position o * strides[d] - pad_begin[d] + k * dilations[d] (padding outside [0, in[d])).
struct PoolGeometry {
  int64_t planes = 0;  // N * C
  std::vector<int64_t> in, out, kernel, strides, dilations, pad_begin, pad_end;
};

// x: the dims of X, (N, C, D1..Dn). Nothing, with `why_not` (when given) naming X, when it does not fit
// the attributes.
std::optional<PoolGeometry> pool_geometry(const PoolAttrs& a, const std::vector<int64_t>& x, std::string* why_not);

// Y's dims: (N, C, out...).
std::vector<int64_t> pooled_dims(const std::vector<int64_t>& x, const std::vector<int64_t>& out);

}  // namespace tunnx::ops
