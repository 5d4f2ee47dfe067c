// Gradient rules of the tensor family: shape and movement ops, Gather*, Cast, eval-mode Dropout.
// Movement ops are linear maps that only move elements, so each gradient moves dY back: views are
// reshaped back to X's shape, permutations run inverted, gathers become scatter-adds (com.tunnx
// GatherGrad, SliceGrad, PadGrad, TileGrad, ConcatGrad in runtime/cpu/kernels/tensor_grad.cc).
// Shapes are read at run time (Shape(X)), so the rules work when the graph states no static shapes.
#include <string>
#include <vector>

#include "runtime/core/ops/gradient.h"

namespace tunnx::ops {

namespace {

using Build = std::function<void(GradientBuilder&)>;

void add(GradientRegistry& r, const std::string& op_type, int64_t since, int64_t until, std::vector<size_t> inputs,
         Build build, const std::string& domain = "") {
  GradientRule rule;
  rule.domain = domain;
  rule.op_type = op_type;
  rule.since_version = since;
  rule.until_version = until;
  rule.differentiable_inputs = std::move(inputs);
  rule.build = std::move(build);
  r.add(std::move(rule));
}

// An op through which no gradient flows (its outputs are integers, or do not depend on input values).
void stop(GradientRegistry& r, const std::string& op_type) { add(r, op_type, 1, INT_MAX, {}, nullptr); }

// An int64 [n] Constant node: opset 1-9 Slice and 2-10 Pad hold these values as attributes, the
// gradient kernels take them as inputs. Constant's `value` attribute has not changed since opset 1.
std::string int_constant(GradientBuilder& b, const std::vector<int64_t>& values) {
  Tensor t = Tensor::from_vector<int64_t>({static_cast<int64_t>(values.size())}, values);
  return b.emit1("Constant", {}, {attr_tensor("value", std::move(t))});
}

// `grad` reshaped to `like`'s shape. Reshape took its shape as an attribute before opset 5, so there
// only a statically known shape will do.
std::string reshape_back(GradientBuilder& b, const std::string& grad, const std::string& like) {
  if (b.opset() >= 5) return b.reshape_like(grad, like);
  auto dims = b.dims(like);
  if (!dims)
    throw b.error("at opset " + std::to_string(b.opset()) + " (Reshape without a shape input) the gradient needs the "
                  "static shape of '" + like + "', which the graph does not state");
  return b.emit1("Reshape", {grad}, {attr("shape", *dims)});
}

// Views: the gradient is dY reshaped back to X (Identity keeps it as is).
void view_rules(GradientRegistry& r) {
  add(r, "Identity", 1, INT_MAX, {0}, [](GradientBuilder& b) { b.set_GI(0, b.GO(0)); });
  auto reshape = [](GradientBuilder& b) { b.set_GI(0, reshape_back(b, b.GO(0), b.I(0))); };
  // Reshape's shape, and Squeeze/Unsqueeze's axes (an attribute before opset 13, an input from 13),
  // only say how to view X: reshaping dY to Shape(X) serves every opset.
  add(r, "Reshape", 1, INT_MAX, {0}, reshape);
  add(r, "Flatten", 1, INT_MAX, {0}, reshape);
  add(r, "Squeeze", 1, INT_MAX, {0}, reshape);
  add(r, "Unsqueeze", 1, INT_MAX, {0}, reshape);
}

// Permutations: the gradient applies the inverse permutation.
void permutation_rules(GradientRegistry& r) {
  // Transpose: the inverse of perm; the default perm (reversed dims) is its own inverse, so the rule
  // needs no rank when perm is absent.
  add(r, "Transpose", 1, INT_MAX, {0}, [](GradientBuilder& b) {
    const std::vector<int64_t> perm = node_ints(b.node(), "perm");
    if (perm.empty()) return b.set_GI(0, b.emit1("Transpose", {b.GO(0)}));
    const int64_t rank = static_cast<int64_t>(perm.size());
    std::vector<int64_t> inverse(perm.size(), -1);
    for (size_t i = 0; i < perm.size(); ++i) {
      const int64_t p = perm[i] < 0 ? perm[i] + rank : perm[i];
      if (p < 0 || p >= rank || inverse[static_cast<size_t>(p)] >= 0)
        throw b.error("perm " + std::to_string(perm[i]) + " is out of range or repeated");
      inverse[static_cast<size_t>(p)] = static_cast<int64_t>(i);
    }
    b.set_GI(0, b.emit1("Transpose", {b.GO(0)}, {attr("perm", inverse)}));
  });

  // ReverseSequence and Trilu are their own adjoints (a swap of elements, a mask).
  add(r, "ReverseSequence", 10, INT_MAX, {0}, [](GradientBuilder& b) {
    b.set_GI(0, b.emit1("ReverseSequence", {b.GO(0), b.I(1)},
                        {attr("batch_axis", node_int(b.node(), "batch_axis", 1)),
                         attr("time_axis", node_int(b.node(), "time_axis", 0))}));
  });
  add(r, "Trilu", 14, INT_MAX, {0}, [](GradientBuilder& b) {
    std::vector<std::string> inputs{b.GO(0)};
    if (b.has_input(1)) inputs.push_back(b.I(1));
    b.set_GI(0, b.emit1("Trilu", inputs, {attr("upper", node_int(b.node(), "upper", 1))}));
  });

  // SpaceToDepth inverts DepthToSpace of the same mode (DCR the only one before opset 11, and
  // SpaceToDepth's before 28) and the other way round.
  add(r, "SpaceToDepth", 1, INT_MAX, {0}, [](GradientBuilder& b) {
    std::vector<ir::Attribute> attrs{attr("blocksize", node_int(b.node(), "blocksize", 0))};
    if (node_string(b.node(), "mode", "DCR") == "CRD") attrs.push_back(attr("mode", std::string("CRD")));
    b.set_GI(0, b.emit1("DepthToSpace", {b.GO(0)}, attrs));
  });
  add(r, "DepthToSpace", 1, INT_MAX, {0}, [](GradientBuilder& b) {
    const int64_t bs = node_int(b.node(), "blocksize", 0);
    std::string g = b.emit1("SpaceToDepth", {b.GO(0)}, {attr("blocksize", bs)});
    if (node_string(b.node(), "mode", "DCR") == "CRD") {
      // CRD reads channel c*bs*bs + k where DCR reads k*C + c: SpaceToDepth's [N, bs*bs*C, H, W] is
      // regrouped as [N, H, W, bs*bs, C] -> [N, C, bs*bs, H, W] -> X's shape (0s keep N, H, W).
      g = b.emit1("Transpose", {g}, {attr("perm", std::vector<int64_t>{0, 2, 3, 1})});
      g = b.emit1("Reshape", {g, int_constant(b, {0, 0, 0, bs * bs, -1})});
      g = b.emit1("Transpose", {g}, {attr("perm", std::vector<int64_t>{0, 4, 3, 1, 2})});
      g = reshape_back(b, g, b.I(0));
    }
    b.set_GI(0, g);
  });
}

// Joins and parts: Concat's gradient is split by the inputs' extents, Split's is the concatenation
// of its outputs' gradients (zeros for outputs no gradient reaches).
void concat_split_rules(GradientRegistry& r) {
  GradientRule concat;
  concat.op_type = "Concat";
  concat.all_inputs_differentiable = true;
  concat.build = [](GradientBuilder& b) {
    std::vector<std::string> inputs{b.GO(0)};
    for (size_t i = 0; i < b.num_inputs(); ++i) inputs.push_back(b.shape_of(b.I(i)));
    // Opset 1 defaulted axis to 1; it is required since 4.
    const auto grads = b.grad_op("ConcatGrad", inputs, b.num_inputs(), {attr("axis", node_int(b.node(), "axis", 1))});
    for (size_t i = 0; i < b.num_inputs(); ++i) b.set_GI(i, grads[i]);
  };
  r.add(std::move(concat));

  // The sizes (attribute `split` before 13, an input from 13, or opset 18's num_outputs) only fix the
  // outputs' extents, which their gradients carry: one rule for every opset.
  add(r, "Split", 1, INT_MAX, {0}, [](GradientBuilder& b) {
    std::vector<std::string> parts;
    for (size_t k = 0; k < b.num_outputs(); ++k) parts.push_back(b.GO(k));
    if (parts.size() == 1) return b.set_GI(0, parts[0]);
    b.set_GI(0, b.emit1("Concat", parts, {attr("axis", node_int(b.node(), "axis", 0))}));
  });
}

// Slice: starts/ends/axes attributes in opset 1-9, inputs (plus steps) from 10. SliceGrad clamps as
// Slice does, so out-of-range and negative starts, ends and steps need nothing here.
void slice_rules(GradientRegistry& r) {
  add(r, "Slice", 1, 9, {0}, [](GradientBuilder& b) {
    const ir::Node& n = b.node();
    std::vector<std::string> inputs{b.GO(0), b.shape_of(b.I(0)), int_constant(b, node_ints(n, "starts")),
                                    int_constant(b, node_ints(n, "ends"))};
    const std::vector<int64_t> axes = node_ints(n, "axes");
    if (!axes.empty()) inputs.push_back(int_constant(b, axes));
    b.set_GI(0, b.grad_op1("SliceGrad", inputs));
  });
  add(r, "Slice", 10, INT_MAX, {0}, [](GradientBuilder& b) {
    std::vector<std::string> inputs{b.GO(0), b.shape_of(b.I(0)), b.I(1), b.I(2)};
    inputs.push_back(b.has_input(3) ? b.I(3) : "");
    inputs.push_back(b.has_input(4) ? b.I(4) : "");
    while (inputs.back().empty()) inputs.pop_back();
    b.set_GI(0, b.grad_op1("SliceGrad", inputs));
  });
}

// Pad: `paddings` (opset 1) or `pads` (2-10) attributes, a pads input from 11 and an axes input from
// 18. PadGrad crops constant padding and folds reflect/edge/wrap padding back onto its source. The
// constant value (input 2 from opset 11) gets no gradient.
void pad_rules(GradientRegistry& r) {
  add(r, "Pad", 1, 10, {0}, [](GradientBuilder& b) {
    const std::vector<int64_t> pads = node_ints(b.node(), b.opset() == 1 ? "paddings" : "pads");
    b.set_GI(0, b.grad_op1("PadGrad", {b.GO(0), int_constant(b, pads)},
                           {attr("mode", node_string(b.node(), "mode", "constant"))}));
  });
  add(r, "Pad", 11, INT_MAX, {0}, [](GradientBuilder& b) {
    std::vector<std::string> inputs{b.GO(0), b.I(1)};
    if (b.opset() >= 18 && b.has_input(3)) inputs.push_back(b.I(3));
    b.set_GI(0, b.grad_op1("PadGrad", inputs, {attr("mode", node_string(b.node(), "mode", "constant"))}));
  });
}

// Gathers: the gradient scatter-adds dY into zeros of the data's shape (repeated indices add up).
// Indices are integers: no gradient.
void gather_rules(GradientRegistry& r) {
  add(r, "Gather", 1, INT_MAX, {0}, [](GradientBuilder& b) {
    b.set_GI(0, b.grad_op1("GatherGrad", {b.GO(0), b.shape_of(b.I(0)), b.I(1)},
                           {attr("axis", node_int(b.node(), "axis", 0))}));
  });
  add(r, "GatherElements", 11, INT_MAX, {0}, [](GradientBuilder& b) {
    b.set_GI(0, b.grad_op1("GatherElementsGrad", {b.GO(0), b.shape_of(b.I(0)), b.I(1)},
                           {attr("axis", node_int(b.node(), "axis", 0))}));
  });
  // TopK's values are X gathered along `axis` at the indices output (k: attribute before 10, input from 10).
  add(r, "TopK", 1, INT_MAX, {0}, [](GradientBuilder& b) {
    b.set_GI(0, b.grad_op1("GatherElementsGrad", {b.GO(0), b.shape_of(b.I(0)), b.O(1)},
                           {attr("axis", node_int(b.node(), "axis", -1))}));
  });
}

// Broadcasts: Expand's gradient sums over the broadcast dims, Tile's over the repeats (opset 1's
// tiles/axis inputs and 6's repeats input alike: TileGrad reads the repeats off the shapes).
void broadcast_rules(GradientRegistry& r) {
  add(r, "Expand", 8, INT_MAX, {0},
      [](GradientBuilder& b) { b.set_GI(0, b.sum_to_shape_of(b.GO(0), b.I(0), b.O(0))); });
  add(r, "Tile", 1, INT_MAX, {0}, [](GradientBuilder& b) {
    b.set_GI(0, b.grad_op1("TileGrad", {b.GO(0), b.shape_of(b.I(0))}));
  });
}

// Cast's target: an int (opset 6+) or a name ("FLOAT", opset 1-5); whether it is a float type.
bool casts_to_float(const GradientBuilder& b) {
  const ir::Attribute* to = b.node().attribute("to");
  if (!to) throw b.error("Cast has no 'to' attribute");
  if (to->type == ir::AttributeType::kString)
    return to->s == "FLOAT" || to->s == "DOUBLE" || to->s == "FLOAT16" || to->s == "BFLOAT16";
  return is_known_data_type(static_cast<int32_t>(to->i)) && is_floating_point(static_cast<DataType>(to->i));
}

// dY cast back to X's dtype: nothing when both are statically the same, else com.tunnx CastLike (ONNX's
// CastLike needs opset 15, and Cast names types differently across opsets).
std::string cast_back(GradientBuilder& b, const std::string& grad, const std::string& like) {
  auto from = b.dtype(grad), to = b.dtype(like);
  if (from && to && *from == *to) return grad;
  return b.grad_op1("CastLike", {grad, like});
}

void cast_dropout_rules(GradientRegistry& r) {
  // A cast to an integer or bool rounds: its derivative is zero almost everywhere.
  add(r, "Cast", 1, INT_MAX, {0}, [](GradientBuilder& b) {
    b.set_GI(0, casts_to_float(b) ? cast_back(b, b.GO(0), b.I(0)) : b.zeros_like(b.I(0)));
  });
  add(r, "CastLike", 15, INT_MAX, {0}, [](GradientBuilder& b) {
    auto to = b.dtype(b.I(1));
    if (to && !is_floating_point(*to)) return b.set_GI(0, b.zeros_like(b.I(0)));
    b.set_GI(0, cast_back(b, b.GO(0), b.I(0)));
  });

  // Dropout at inference passes X through. Before opset 12 tunnx always runs it so (see the kernel);
  // from 12 a training_mode input can make it train: the loss family's rule, through the mask.
  add(r, "Dropout", 1, 11, {0}, [](GradientBuilder& b) { b.set_GI(0, b.GO(0)); });
  add(r, "Dropout", 12, INT_MAX, {0}, [](GradientBuilder& b) {
    if (!b.has_input(2)) return b.set_GI(0, b.GO(0));
    dropout_training_gradient(b);
  });
}

// Gradients of com.tunnx helpers, so a backward graph can itself be differentiated.
void helper_rules(GradientRegistry& r) {
  // SumToShape's adjoint broadcasts dY back to G's shape (dY * ones: Mul broadcasts like numpy).
  add(r, "SumToShape", 1, INT_MAX, {0}, [](GradientBuilder& b) {
    b.set_GI(0, b.mul(b.GO(0), b.ones_like(b.I(0))));
  }, kGradDomain);
  add(r, "Scale", 1, INT_MAX, {0}, [](GradientBuilder& b) {
    b.set_GI(0, b.scale(b.GO(0), node_float(b.node(), "alpha", 1.0f)));
  }, kGradDomain);
  add(r, "ZerosLike", 1, INT_MAX, {}, nullptr, kGradDomain);
  add(r, "OnesLike", 1, INT_MAX, {}, nullptr, kGradDomain);
}

}  // namespace

void register_tensor_gradients(GradientRegistry& registry) {
  view_rules(registry);
  permutation_rules(registry);
  concat_split_rules(registry);
  slice_rules(registry);
  pad_rules(registry);
  gather_rules(registry);
  broadcast_rules(registry);
  cast_dropout_rules(registry);
  helper_rules(registry);
  // Integer results, or values that do not depend on the inputs' values: the gradient stops.
  for (const char* op : {"Shape", "Size", "ConstantOfShape", "Range", "NonZero", "OneHot", "EyeLike", "Constant"})
    stop(registry, op);
}

}  // namespace tunnx::ops
