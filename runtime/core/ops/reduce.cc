// Gradient rules of the reduce family: Reduce* (axes an attribute, then an input: ReduceSum from
// opset 13, the others from 18), Softmax and LogSoftmax (2-D coercion before opset 13), CumSum, and
// the ops a gradient stops at (ArgMax, ArgMin, Hardmax).
#include <climits>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "runtime/core/ops/gradient.h"

namespace tunnx::ops {
namespace {

void add(GradientRegistry& r, const std::string& op, int64_t since, int64_t until, std::vector<size_t> inputs,
         std::function<void(GradientBuilder&)> build) {
  GradientRule rule;
  rule.op_type = op;
  rule.since_version = since;
  rule.until_version = until;
  rule.differentiable_inputs = std::move(inputs);
  rule.build = std::move(build);
  r.add(std::move(rule));
}

// The forward reduction's axes and keepdims as ReduceGrad/ReduceMaxGrad take them: the `axes`
// attribute before `axes_input_since`, the optional input 1 (appended to `inputs`) from then on.
std::vector<ir::Attribute> reduction_of(GradientBuilder& b, int64_t axes_input_since,
                                        std::vector<std::string>& inputs) {
  const ir::Node& node = b.node();
  std::vector<ir::Attribute> attributes = {attr("keepdims", node_int(node, "keepdims", 1))};
  if (b.opset() < axes_input_since) {
    if (node.attribute("axes")) attributes.push_back(attr("axes", node_ints(node, "axes")));
  } else {
    attributes.push_back(attr("noop_with_empty_axes", node_int(node, "noop_with_empty_axes", 0)));
    if (b.has_input(1)) inputs.push_back(b.I(1));
  }
  return attributes;
}

// `value`, shaped like the reduction's output, broadcast back to its input's shape (/ count: mean).
std::string broadcast_back(GradientBuilder& b, const std::string& value, int64_t axes_input_since, bool mean = false) {
  std::vector<std::string> inputs = {value, b.shape_of(b.I(0))};
  std::vector<ir::Attribute> attributes = reduction_of(b, axes_input_since, inputs);
  if (mean) attributes.push_back(attr("mean", int64_t{1}));
  return b.grad_op1("ReduceGrad", inputs, attributes);
}

// One rule per axes convention: [1, since - 1] and [since, inf).
void add_reduce(GradientRegistry& r, const std::string& op, int64_t axes_input_since,
                std::function<void(GradientBuilder&, int64_t)> build) {
  auto bound = [build, axes_input_since](GradientBuilder& b) { build(b, axes_input_since); };
  add(r, op, 1, axes_input_since - 1, {0}, bound);
  add(r, op, axes_input_since, INT_MAX, {0}, bound);
}

void register_reductions(GradientRegistry& r) {
  add_reduce(r, "ReduceSum", 13, [](GradientBuilder& b, int64_t since) {
    b.set_GI(0, broadcast_back(b, b.GO(0), since));
  });
  add_reduce(r, "ReduceMean", 18, [](GradientBuilder& b, int64_t since) {
    b.set_GI(0, broadcast_back(b, b.GO(0), since, /*mean=*/true));
  });
  // Max and min: dY to the extreme elements, split among ties.
  for (const char* op : {"ReduceMax", "ReduceMin"}) {
    add_reduce(r, op, 18, [](GradientBuilder& b, int64_t since) {
      std::vector<std::string> inputs = {b.GO(0), b.I(0), b.O(0)};
      std::vector<ir::Attribute> attributes = reduction_of(b, since, inputs);
      b.set_GI(0, b.grad_op1("ReduceMaxGrad", inputs, attributes));
    });
  }
  // sum(x^2): 2 * x * dY
  add_reduce(r, "ReduceSumSquare", 18, [](GradientBuilder& b, int64_t since) {
    b.set_GI(0, b.scale(b.mul(broadcast_back(b, b.GO(0), since), b.I(0)), 2.0));
  });
  // sqrt(sum(x^2)): x * dY / y (NaN where y = 0, as the forward's derivative is undefined there)
  add_reduce(r, "ReduceL2", 18, [](GradientBuilder& b, int64_t since) {
    b.set_GI(0, b.mul(b.I(0), broadcast_back(b, b.emit1("Div", {b.GO(0), b.O(0)}), since)));
  });
  // sum(|x|): sign(x) * dY, through ElementwiseGrad's Abs
  add_reduce(r, "ReduceL1", 18, [](GradientBuilder& b, int64_t since) {
    b.set_GI(0, b.grad_op1("ElementwiseGrad", {broadcast_back(b, b.GO(0), since), b.I(0), ""},
                           {attr("op", std::string("Abs"))}));
  });
  // log(sum(x)): dY / sum(x) = dY / exp(y)
  add_reduce(r, "ReduceLogSum", 18, [](GradientBuilder& b, int64_t since) {
    b.set_GI(0, broadcast_back(b, b.emit1("Div", {b.GO(0), b.emit1("Exp", {b.O(0)})}), since));
  });
  // log(sum(exp(x))): dY * exp(x - y), the softmax of x over the reduced axes
  add_reduce(r, "ReduceLogSumExp", 18, [](GradientBuilder& b, int64_t since) {
    const std::string softmax = b.emit1("Exp", {b.emit1("Sub", {b.I(0), broadcast_back(b, b.O(0), since)})});
    b.set_GI(0, b.mul(broadcast_back(b, b.GO(0), since), softmax));
  });
}

// Softmax / LogSoftmax: before opset 13 the input is coerced to 2-D at `axis` (default 1); from 13
// the op works along `axis` (default -1).
void register_softmax(GradientRegistry& r) {
  for (const char* op : {"Softmax", "LogSoftmax"}) {
    const std::string grad = std::string(op) + "Grad";
    for (const bool coerce : {true, false}) {
      add(r, op, coerce ? 1 : 13, coerce ? 12 : INT_MAX, {0}, [grad, coerce](GradientBuilder& b) {
        const int64_t axis = node_int(b.node(), "axis", coerce ? 1 : -1);
        b.set_GI(0, b.grad_op1(grad, {b.GO(0), b.O(0)}, {attr("axis", axis), attr("coerce_2d", int64_t{coerce})}));
      });
    }
  }
}

void register_along_axis(GradientRegistry& r) {
  // CumSum: each x_k reaches the sums that include it, so dX is dY summed the other way round.
  add(r, "CumSum", 11, INT_MAX, {0}, [](GradientBuilder& b) {
    const int64_t reverse = node_int(b.node(), "reverse", 0) != 0 ? 0 : 1;
    b.set_GI(0, b.emit1("CumSum", {b.GO(0), b.I(1)},
                        {attr("exclusive", node_int(b.node(), "exclusive", 0)), attr("reverse", reverse)}));
  });
  // Ops a gradient does not flow through: integer or piecewise-constant outputs.
  for (const char* op : {"ArgMax", "ArgMin", "Hardmax"}) add(r, op, 1, INT_MAX, {}, nullptr);
}

}  // namespace

void register_reduce_gradients(GradientRegistry& registry) {
  register_reductions(registry);
  register_softmax(registry);
  register_along_axis(registry);
}

}  // namespace tunnx::ops
