// The conv/pool family's shared definitions (conv_pool.h) and gradient rules: Conv, ConvTranspose,
// MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool.
//
// Each forward node's gradient is one com.tunnx gradient node (runtime/core/ops/gradient_ops.md) that
// carries the forward node's attributes unchanged, so the gradient kernel reads every window (pads,
// strides, dilations, auto_pad, ceil_mode, group...) exactly as the forward kernel did, through
// parse_*_attrs and *_geometry here. What changed across opsets is only which attributes exist
// (MaxPool: storage_order and the Indices output since 8, ceil_mode and dilations since 10;
// AveragePool: count_include_pad since 7, ceil_mode since 10, dilations since 19); an absent one reads
// as its default, the value the older opset implied, so one rule serves every opset. Indices (MaxPool
// output 1) is int64: no gradient flows through it.
#include "runtime/core/ops/conv_pool.h"

#include <algorithm>
#include <utility>

#include "runtime/core/ops/gradient.h"

namespace tunnx::ops {
namespace {

// An error about a malformed attribute, worded as a kernel factory's (KernelInit::error).
Error attr_error(const ir::Node& node, const std::string& message) {
  return Error(ErrorCode::kInvalidModel, message,
               {.node = node.name.empty() ? "<unnamed>" : node.name, .op_type = node.op_type});
}

// auto_pad: "NOTSET" when absent or empty; throws on an unknown value.
std::string read_auto_pad(const ir::Node& node) {
  std::string auto_pad = node_string(node, "auto_pad", "NOTSET");
  if (auto_pad.empty()) auto_pad = "NOTSET";
  if (auto_pad != "NOTSET" && auto_pad != "VALID" && auto_pad != "SAME_UPPER" && auto_pad != "SAME_LOWER")
    throw attr_error(node, "unknown auto_pad '" + auto_pad + "'");
  return auto_pad;
}

// The window attributes pools share with convolutions, checked one way: strides and dilations >= 1,
// pads >= 0.
void check_window_attrs(const ir::Node& node, const std::vector<int64_t>& strides,
                        const std::vector<int64_t>& dilations, const std::vector<int64_t>& pads) {
  for (int64_t s : strides)
    if (s < 1) throw attr_error(node, "strides must be positive");
  for (int64_t d : dilations)
    if (d < 1) throw attr_error(node, "dilations must be positive");
  for (int64_t p : pads)
    if (p < 0) throw attr_error(node, "pads must be non-negative");
}

// Sets *why_not (when given) for `return fail(...)` in the geometry rules.
std::nullopt_t fail(std::string* why_not, const std::string& message) {
  if (why_not) *why_not = message;
  return std::nullopt;
}

// Fills g.strides and g.dilations for nd spatial dims (1 when absent) and checks the count of pads, for
// ConvAttrs / PoolAttrs and ConvGeometry / PoolGeometry. False, with why_not set, when a count is wrong.
template <typename Attrs, typename Geometry>
bool window_steps(const Attrs& a, size_t nd, Geometry& g, std::string* why_not) {
  g.strides = a.strides.empty() ? std::vector<int64_t>(nd, 1) : a.strides;
  g.dilations = a.dilations.empty() ? std::vector<int64_t>(nd, 1) : a.dilations;
  if (g.strides.size() != nd || g.dilations.size() != nd) {
    fail(why_not, "strides and dilations need " + std::to_string(nd) + " values");
    return false;
  }
  if (!a.pads.empty() && a.pads.size() != 2 * nd) {
    fail(why_not, "pads needs " + std::to_string(2 * nd) + " values, got " + std::to_string(a.pads.size()));
    return false;
  }
  return true;
}

// SAME_UPPER / SAME_LOWER along one dim: ceil(in / stride) windows of `extent`, the padding they need
// split in two with the odd one at the end (upper) or the beginning (lower).
struct SamePadding {
  int64_t out = 0, begin = 0, end = 0;
};

SamePadding same_padding(int64_t in, int64_t stride, int64_t extent, bool upper) {
  SamePadding p;
  p.out = (in + stride - 1) / stride;
  const int64_t total = std::max<int64_t>(0, (p.out - 1) * stride + extent - in);
  p.begin = upper ? total / 2 : total - total / 2;
  p.end = total - p.begin;
  return p;
}

// Conv: the grid of patch positions over X's image, and the begin pads.
std::optional<ConvGeometry> place_patches(const ConvAttrs& a, const std::vector<int64_t>& x, ConvGeometry g,
                                          std::string* why_not) {
  const size_t nd = x.size() - 2;
  g.image.assign(x.begin() + 2, x.end());
  g.grid.resize(nd);
  for (size_t d = 0; d < nd; ++d) {
    const int64_t extent = (g.kernel[d] - 1) * g.dilations[d] + 1;
    if (a.auto_pad == "SAME_UPPER" || a.auto_pad == "SAME_LOWER") {
      const SamePadding same = same_padding(g.image[d], g.strides[d], extent, a.auto_pad == "SAME_UPPER");
      g.grid[d] = same.out;
      g.pad_begin[d] = same.begin;
    } else {
      int64_t begin = 0, end = 0;
      if (a.auto_pad == "NOTSET" && !a.pads.empty()) begin = a.pads[d], end = a.pads[d + nd];
      g.pad_begin[d] = begin;
      int64_t span = g.image[d] + begin + end - extent;
      if (span < 0)
        return fail(why_not, "the kernel (extent " + std::to_string(extent) + ") is larger than the padded input " +
                                 dims_to_string(x));
      g.grid[d] = span / g.strides[d] + 1;
    }
  }
  return g;
}

// ConvTranspose: the image that the patches at X's grid positions add into, and the begin pads.
std::optional<ConvGeometry> place_transposed(const ConvAttrs& a, const std::vector<int64_t>& x,
                                             ConvGeometry g, std::string* why_not) {
  const size_t nd = x.size() - 2;
  if (!a.output_padding.empty() && a.output_padding.size() != nd && a.output_padding.size() != 2 * nd)
    return fail(why_not, "output_padding needs " + std::to_string(nd) + " values");
  if (!a.output_shape.empty() && a.output_shape.size() != nd && a.output_shape.size() != nd + 2)
    return fail(why_not, "output_shape needs " + std::to_string(nd) + " values");
  g.grid.assign(x.begin() + 2, x.end());
  g.image.resize(nd);
  const bool same = a.auto_pad == "SAME_UPPER" || a.auto_pad == "SAME_LOWER";
  for (size_t d = 0; d < nd; ++d) {
    const int64_t extent = (g.kernel[d] - 1) * g.dilations[d] + 1;
    const int64_t out_pad = a.output_padding.empty() ? 0 : a.output_padding[d];
    const int64_t full = g.strides[d] * (g.grid[d] - 1) + out_pad + extent;
    if (!a.output_shape.empty() || same) {
      // The output size is given; the pads are what makes it so (the odd one at the end for SAME_UPPER).
      g.image[d] = !a.output_shape.empty() ? a.output_shape[a.output_shape.size() - nd + d] : g.grid[d] * g.strides[d];
      // A negative total (output_shape past the full size) leaves the extra rows at the end: floor division.
      const int64_t total = full - g.image[d];
      const int64_t half = total >= 0 ? total / 2 : -((-total + 1) / 2);
      g.pad_begin[d] = a.auto_pad == "SAME_UPPER" ? half : total - half;
    } else {
      int64_t begin = 0, end = 0;
      if (a.auto_pad == "NOTSET" && !a.pads.empty()) begin = a.pads[d], end = a.pads[d + nd];
      g.pad_begin[d] = begin;
      g.image[d] = full - begin - end;
    }
    if (g.image[d] < 0) return fail(why_not, "the computed output shape is negative");
  }
  return g;
}

}  // namespace

std::optional<FusedConvAttrs> fused_conv_attrs(const ir::Node& node, std::string* why_not) {
  const std::optional<Activation> act = fused_activation(node, why_not);
  if (!act) return std::nullopt;
  FusedConvAttrs attrs{.has_bn = node_int(node, "has_bn", 0) != 0,
                       .epsilon = node_float(node, "epsilon", 1e-5f),
                       .has_residual = node_int(node, "has_residual", 0) != 0,
                       .residual_after_activation = node_int(node, "residual_after_activation", 0) != 0,
                       .channels_last = node_int(node, "channels_last", 0) != 0,
                       .channels_first_source = node_int(node, "channels_first_source", 0) != 0,
                       .x_channel_block = node_int(node, "x_channel_block", 0),
                       .y_channel_block = node_int(node, "y_channel_block", 0),
                       .activation = *act};
  for (const auto& [name, block] : {std::pair{"x_channel_block", attrs.x_channel_block},
                                    std::pair{"y_channel_block", attrs.y_channel_block}}) {
    if (block == 0) continue;
    const bool on_first_source = name[0] == 'x' && attrs.channels_first_source;
    if ((block != 8 && block != 16) || !attrs.channels_last || on_first_source) {
      if (why_not)
        *why_not = std::string(name) + " must be 0, 8 or 16, and only with channels_last on a channels-last tensor; got " +
                   std::to_string(block);
      return std::nullopt;
    }
  }
  return attrs;
}

std::optional<SqueezeExciteAttrs> squeeze_excite_attrs(const ir::Node& node, std::string* why_not) {
  auto list = [&node](const char* name) -> const ir::Attribute* { return node.attribute(name); };
  const ir::Attribute* names = list("activations");
  const ir::Attribute* approximates = list("approximates");
  const ir::Attribute* alphas = list("activation_alphas");
  const ir::Attribute* betas = list("activation_betas");
  const size_t layers = names ? names->strings.size() : 0;
  if (layers == 0 || !approximates || !alphas || !betas || approximates->strings.size() != layers ||
      alphas->floats.size() != layers || betas->floats.size() != layers) {
    if (why_not) *why_not = "activations, approximates, activation_alphas and activation_betas must list one entry per layer";
    return std::nullopt;
  }
  SqueezeExciteAttrs attrs;
  attrs.channels_last = node_int(node, "channels_last", 0) != 0;
  for (size_t l = 0; l < layers; ++l) {
    const std::optional<Activation::Kind> kind = activation_kind(names->strings[l], approximates->strings[l]);
    if (!kind) {
      if (why_not) *why_not = "activation \"" + names->strings[l] + "\" is not one the fused ops take";
      return std::nullopt;
    }
    attrs.activations.push_back({.kind = *kind, .alpha = alphas->floats[l], .beta = betas->floats[l]});
  }
  return attrs;
}

std::vector<int64_t> nchw_of_channels_last(const std::vector<int64_t>& d) {
  if (d.size() < 3) return d;
  std::vector<int64_t> out = {d[0], d.back()};
  out.insert(out.end(), d.begin() + 1, d.end() - 1);
  return out;
}

std::vector<int64_t> channels_last_of_nchw(const std::vector<int64_t>& d) {
  if (d.size() < 3) return d;
  std::vector<int64_t> out = {d[0]};
  out.insert(out.end(), d.begin() + 2, d.end());
  out.push_back(d[1]);
  return out;
}

ConvAttrs parse_conv_attrs(const ir::Node& node) {
  ConvAttrs a;
  a.auto_pad = read_auto_pad(node);
  a.group = node_int(node, "group", 1);
  if (a.group < 1) throw attr_error(node, "group must be at least 1, got " + std::to_string(a.group));
  a.kernel_shape = node_ints(node, "kernel_shape");
  a.strides = node_ints(node, "strides");
  a.dilations = node_ints(node, "dilations");
  a.pads = node_ints(node, "pads");
  a.output_padding = node_ints(node, "output_padding");
  a.output_shape = node_ints(node, "output_shape");
  a.offset_group = node_int(node, "offset_group", 1);
  if (a.offset_group < 1) throw attr_error(node, "offset_group must be at least 1");
  check_window_attrs(node, a.strides, a.dilations, a.pads);
  return a;
}

std::optional<ConvGeometry> conv_geometry(const ConvAttrs& a, const std::vector<int64_t>& x,
                                          const std::vector<int64_t>& w, bool transpose, std::string* why_not) {
  // What Conv and ConvTranspose share: kernel, strides, dilations, batch, group, channels.
  if (x.size() < 3) return fail(why_not, "X must have rank 3 or more (N, C, spatial...), got " + dims_to_string(x));
  if (w.size() != x.size())
    return fail(why_not, "W " + dims_to_string(w) + " must have the rank of X " + dims_to_string(x));
  const size_t nd = x.size() - 2;
  ConvGeometry g;
  g.kernel.assign(w.begin() + 2, w.end());
  if (!a.kernel_shape.empty() && a.kernel_shape != g.kernel)
    return fail(why_not, "kernel_shape " + dims_to_string(a.kernel_shape) + " does not match W " + dims_to_string(w));
  if (!window_steps(a, nd, g, why_not)) return std::nullopt;
  for (int64_t k : g.kernel)
    if (k < 1) return fail(why_not, "W has an empty kernel " + dims_to_string(w));
  g.batch = x[0];
  g.group = a.group;
  g.in_channels = x[1];
  g.out_channels = transpose ? w[1] * g.group : w[0];
  const bool fits = transpose ? w[0] == x[1] && x[1] % g.group == 0
                              : w[1] * g.group == x[1] && g.out_channels % g.group == 0;
  if (!fits)
    return fail(why_not, "X " + dims_to_string(x) + " and W " + dims_to_string(w) + " do not fit group " +
                             std::to_string(g.group));
  g.pad_begin.assign(nd, 0);
  return transpose ? place_transposed(a, x, std::move(g), why_not) : place_patches(a, x, std::move(g), why_not);
}

PoolAttrs parse_pool_attrs(const ir::Node& node) {
  PoolAttrs a;
  a.auto_pad = read_auto_pad(node);
  a.kernel_shape = node_ints(node, "kernel_shape");
  a.strides = node_ints(node, "strides");
  a.pads = node_ints(node, "pads");
  a.dilations = node_ints(node, "dilations");
  a.ceil_mode = node_int(node, "ceil_mode", 0) != 0;
  a.count_include_pad = node_int(node, "count_include_pad", 0) != 0;
  a.storage_order = node_int(node, "storage_order", 0);
  if (a.storage_order != 0 && a.storage_order != 1) throw attr_error(node, "storage_order must be 0 or 1");
  if (const ir::Attribute* p = node.attribute("p"))  // a float before opset 2, an int since
    a.p = p->type == ir::AttributeType::kFloat ? static_cast<double>(p->f) : static_cast<double>(p->i);
  if (a.p <= 0) throw attr_error(node, "p must be positive");
  for (int64_t k : a.kernel_shape)
    if (k < 1) throw attr_error(node, "kernel_shape values must be positive");
  check_window_attrs(node, a.strides, a.dilations, a.pads);
  return a;
}

std::optional<PoolGeometry> pool_geometry(const PoolAttrs& a, const std::vector<int64_t>& x, std::string* why_not) {
  if (x.size() < 3) return fail(why_not, "X must have rank 3 or more (N, C, spatial...), got " + dims_to_string(x));
  const size_t nd = x.size() - 2;
  if (a.kernel_shape.size() != nd)
    return fail(why_not, "kernel_shape needs " + std::to_string(nd) + " values for X " + dims_to_string(x));
  PoolGeometry g;
  if (!window_steps(a, nd, g, why_not)) return std::nullopt;
  g.planes = x[0] * x[1];
  g.in.assign(x.begin() + 2, x.end());
  g.kernel = a.kernel_shape;
  g.out.resize(nd);
  g.pad_begin.resize(nd);
  g.pad_end.resize(nd);
  for (size_t d = 0; d < nd; ++d) {
    const int64_t in = g.in[d], s = g.strides[d], extent = (g.kernel[d] - 1) * g.dilations[d] + 1;
    int64_t begin = 0, end = 0, out = 0;
    if (a.auto_pad == "SAME_UPPER" || a.auto_pad == "SAME_LOWER") {
      const SamePadding same = same_padding(in, s, extent, a.auto_pad == "SAME_UPPER");
      out = same.out, begin = same.begin, end = same.end;
    } else {
      if (a.auto_pad == "NOTSET" && !a.pads.empty()) begin = a.pads[d], end = a.pads[d + nd];
      const int64_t span = in + begin + end - extent;
      if (span < 0)
        return fail(why_not, "the window (extent " + std::to_string(extent) + ") is larger than the padded input " +
                                 dims_to_string(x));
      if (a.ceil_mode && a.auto_pad == "NOTSET") {
        out = (span + s - 1) / s + 1;
        if ((out - 1) * s >= in + begin) --out;  // the last window must start inside the input or begin pad
      } else {
        out = span / s + 1;
      }
    }
    g.out[d] = out;
    g.pad_begin[d] = begin;
    g.pad_end[d] = end;
  }
  return g;
}

std::vector<int64_t> pooled_dims(const std::vector<int64_t>& x, const std::vector<int64_t>& out) {
  std::vector<int64_t> dims = {x[0], x[1]};
  dims.insert(dims.end(), out.begin(), out.end());
  return dims;
}

namespace {

// ConvGrad / ConvTransposeGrad: dX, dW, dB for inputs 0, 1, 2.
void conv_rule(GradientBuilder& b, const std::string& grad_op) {
  // All three outputs are named; the planner marks those no node reads as unwanted, so a first layer
  // (X not trained) computes dW and dB only.
  const std::vector<std::string> grads = b.grad_op(grad_op, {b.GO(0), b.I(0), b.I(1)}, 3, b.node().attributes);
  for (size_t i = 0; i < 3; ++i) b.set_GI(i, grads[i]);  // ignored where not wanted
}

GradientRule rule(const std::string& op_type, std::vector<size_t> inputs, std::function<void(GradientBuilder&)> build) {
  return {.domain = "", .op_type = op_type, .since_version = 1, .until_version = INT_MAX,
          .differentiable_inputs = std::move(inputs), .build = std::move(build)};
}

}  // namespace

void register_conv_pool_gradients(GradientRegistry& r) {
  // Conv 1 and 11 differ only in wording; B (input 2) is optional.
  r.add(rule("Conv", {0, 1, 2}, [](GradientBuilder& b) { conv_rule(b, "ConvGrad"); }));
  r.add(rule("ConvTranspose", {0, 1, 2}, [](GradientBuilder& b) { conv_rule(b, "ConvTransposeGrad"); }));

  // dX: each dY added at its window's first maximum, found again from X.
  r.add(rule("MaxPool", {0}, [](GradientBuilder& b) {
    b.set_GI(0, b.grad_op1("MaxPoolGrad", {b.GO(0), b.I(0)}, b.node().attributes));
  }));
  // dX: each dY spread over its window; only X's shape is needed.
  r.add(rule("AveragePool", {0}, [](GradientBuilder& b) {
    b.set_GI(0, b.grad_op1("AveragePoolGrad", {b.GO(0), b.shape_of(b.I(0))}, b.node().attributes));
  }));
  r.add(rule("GlobalAveragePool", {0}, [](GradientBuilder& b) {
    b.set_GI(0, b.grad_op1("GlobalPoolGrad", {b.GO(0), b.I(0)}, {attr("mode", std::string("average"))}));
  }));
  r.add(rule("GlobalMaxPool", {0}, [](GradientBuilder& b) {
    b.set_GI(0, b.grad_op1("GlobalPoolGrad", {b.GO(0), b.I(0)}, {attr("mode", std::string("max"))}));
  }));
}

}  // namespace tunnx::ops
