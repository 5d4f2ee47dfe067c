// Gradient rules of the elementwise family: binary arithmetic (broadcasting), Pow, unary math and
// activations (com.tunnx ElementwiseGrad), Clip, Where, variadic Sum/Mean/Max/Min, and the ops a
// gradient stops at (comparisons, logic, rounding).
#include <climits>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "runtime/core/ops/gradient.h"

namespace tunnx::ops {
namespace {

// `grad`, shaped like the output, summed back to input i's shape. Before opset 7 a binary op's B may
// be aligned at `axis` of A (broadcast=1); only the trailing alignment, numpy's, is supported here.
std::string to_input(GradientBuilder& b, const std::string& grad, size_t i) {
  const ir::Node& node = b.node();
  if (b.opset() < 7 && i == 1 && node_int(node, "broadcast", 0) != 0 && node.attribute("axis")) {
    const auto rank_a = b.rank(b.I(0)), rank_b = b.rank(b.I(1));
    if (!rank_a || !rank_b) throw b.error("needs the ranks of A and B to differentiate broadcast=1 with an axis");
    const int64_t axis = node_int(node, "axis", 0);
    const int64_t start = axis < 0 ? axis + static_cast<int64_t>(*rank_a) : axis;
    if (start + static_cast<int64_t>(*rank_b) != static_cast<int64_t>(*rank_a))
      throw b.error("no gradient for B aligned at axis " + std::to_string(axis) + " short of A's last dim");
  }
  return b.sum_to_shape_of(grad, b.I(i), b.O(0));
}

// Rules for one op over [since, until]; `inputs` are the differentiable ones.
void add(GradientRegistry& r, const std::string& op, int64_t since, int64_t until, std::vector<size_t> inputs,
         std::function<void(GradientBuilder&)> build, const std::string& domain = "") {
  GradientRule rule;
  rule.domain = domain;
  rule.op_type = op;
  rule.since_version = since;
  rule.until_version = until;
  rule.differentiable_inputs = std::move(inputs);
  rule.build = std::move(build);
  r.add(std::move(rule));
}

void add_variadic(GradientRegistry& r, const std::string& op, int64_t since,
                  std::function<void(GradientBuilder&)> build) {
  GradientRule rule;
  rule.op_type = op;
  rule.since_version = since;
  rule.all_inputs_differentiable = true;
  rule.build = std::move(build);
  r.add(std::move(rule));
}

void register_arithmetic(GradientRegistry& r) {
  add(r, "Add", 1, INT_MAX, {0, 1}, [](GradientBuilder& b) {
    const std::string g = b.GO(0);
    for (size_t i : {0, 1})
      if (b.wants_GI(i)) b.set_GI(i, to_input(b, g, i));
  });
  add(r, "Sub", 1, INT_MAX, {0, 1}, [](GradientBuilder& b) {
    const std::string g = b.GO(0);
    if (b.wants_GI(0)) b.set_GI(0, to_input(b, g, 0));
    if (b.wants_GI(1)) b.set_GI(1, to_input(b, b.neg(g), 1));
  });
  add(r, "Mul", 1, INT_MAX, {0, 1}, [](GradientBuilder& b) {
    const std::string g = b.GO(0);
    if (b.wants_GI(0)) b.set_GI(0, to_input(b, b.mul(g, b.I(1)), 0));
    if (b.wants_GI(1)) b.set_GI(1, to_input(b, b.mul(g, b.I(0)), 1));
  });
  // d(a/b)/da = 1/b; d(a/b)/db = -(a/b)/b, from the output so a need not be kept.
  add(r, "Div", 1, INT_MAX, {0, 1}, [](GradientBuilder& b) {
    const std::string g = b.GO(0);
    if (b.wants_GI(0)) b.set_GI(0, to_input(b, b.emit1("Div", {g, b.I(1)}), 0));
    if (b.wants_GI(1)) b.set_GI(1, to_input(b, b.neg(b.emit1("Div", {b.mul(g, b.O(0)), b.I(1)})), 1));
  });
  add(r, "Neg", 1, INT_MAX, {0}, [](GradientBuilder& b) { b.set_GI(0, b.neg(b.GO(0))); });
  // PowGrad gives both gradients at the broadcast shape; the one no node reads (an integer exponent's)
  // is not computed.
  add(r, "Pow", 1, INT_MAX, {0, 1}, [](GradientBuilder& b) {
    const auto d = b.grad_op("PowGrad", {b.GO(0), b.I(0), b.I(1)}, 2);
    for (size_t i : {0, 1})
      if (b.wants_GI(i)) b.set_GI(i, to_input(b, d[i], i));
  });
}

// Unary ops whose gradient is com.tunnx:ElementwiseGrad(dY, X, Y) with the forward's attributes.
struct Unary {
  const char* op;
  int64_t since;
  bool x, y;  // which of X and Y the gradient reads
  std::vector<std::pair<const char*, float>> attrs = {};  // forward attribute and its default
};

void register_unary(GradientRegistry& r) {
  const std::vector<Unary> unary = {
      {"Relu", 1, false, true},
      {"LeakyRelu", 1, true, false, {{"alpha", 0.01f}}},
      {"Elu", 1, true, true, {{"alpha", 1.0f}}},
      {"Selu", 1, true, false, {{"alpha", 1.67326319217681884765625f}, {"gamma", 1.05070102214813232421875f}}},
      {"Celu", 12, true, false, {{"alpha", 1.0f}}},
      {"ThresholdedRelu", 10, true, false, {{"alpha", 1.0f}}},
      {"Sigmoid", 1, false, true},
      {"Tanh", 1, false, true},
      {"Erf", 9, true, false},
      {"Softplus", 1, true, false},
      {"Softsign", 1, true, false},
      {"HardSigmoid", 1, true, false, {{"alpha", 0.2f}, {"beta", 0.5f}}},
      {"HardSwish", 14, true, false},
      {"Sqrt", 1, false, true},
      {"Reciprocal", 1, false, true},
      {"Exp", 1, false, true},
      {"Log", 1, true, false},
      {"Abs", 1, true, false},
      {"Sin", 7, true, false},
      {"Cos", 7, true, false},
      {"Mish", 18, true, false},
  };
  for (const Unary& u : unary) {
    add(r, u.op, u.since, INT_MAX, {0}, [u](GradientBuilder& b) {
      std::vector<ir::Attribute> attributes = {attr("op", std::string(u.op))};
      for (const auto& [name, fallback] : u.attrs)
        attributes.push_back(attr(name, node_float(b.node(), name, fallback)));
      b.set_GI(0, b.grad_op1("ElementwiseGrad", {b.GO(0), u.x ? b.I(0) : "", u.y ? b.O(0) : ""}, attributes));
    });
  }
  auto gelu = [](GradientBuilder& b) {
    b.set_GI(0, b.grad_op1("ElementwiseGrad", {b.GO(0), b.I(0), ""},
                           {attr("op", std::string("Gelu")),
                            attr("approximate", node_string(b.node(), "approximate", "none"))}));
  };
  add(r, "Gelu", 20, INT_MAX, {0}, gelu);
  add(r, "Gelu", 1, INT_MAX, {0}, gelu, kGradDomain);  // made by the fuse_gelu pass
  add(r, "HardSwish", 1, INT_MAX, {0}, [](GradientBuilder& b) {  // made by the fuse_hard_swish pass
    b.set_GI(0, b.grad_op1("ElementwiseGrad", {b.GO(0), b.I(0), ""}, {attr("op", std::string("HardSwish"))}));
  }, kGradDomain);

  // Clip: the bounds are attributes before opset 11, optional inputs from then on. As torch.clamp,
  // the gradient passes where min <= x <= max, and the bounds get none.
  add(r, "Clip", 1, 10, {0}, [](GradientBuilder& b) {
    std::vector<ir::Attribute> attributes = {attr("op", std::string("Clip"))};
    for (const char* bound : {"min", "max"})
      if (b.node().attribute(bound)) attributes.push_back(attr(bound, node_float(b.node(), bound, 0.0f)));
    b.set_GI(0, b.grad_op1("ElementwiseGrad", {b.GO(0), b.I(0), ""}, attributes));
  });
  add(r, "Clip", 11, INT_MAX, {0}, [](GradientBuilder& b) {
    std::vector<std::string> inputs = {b.GO(0), b.I(0), ""};
    for (size_t i : {1, 2}) inputs.push_back(b.has_input(i) ? b.I(i) : "");
    b.set_GI(0, b.grad_op1("ElementwiseGrad", inputs, {attr("op", std::string("Clip"))}));
  });
}

// Where, Sum, Mean, Max, Min: every input is broadcast to the output.
void register_selection(GradientRegistry& r) {
  // The condition takes no gradient; X gets dY where it was chosen, Y the rest.
  add(r, "Where", 9, INT_MAX, {1, 2}, [](GradientBuilder& b) {
    const std::string g = b.GO(0);
    const std::string zeros = b.zeros_like(g);
    if (b.wants_GI(1)) b.set_GI(1, b.sum_to_shape_of(b.emit1("Where", {b.I(0), g, zeros}), b.I(1), b.O(0)));
    if (b.wants_GI(2)) b.set_GI(2, b.sum_to_shape_of(b.emit1("Where", {b.I(0), zeros, g}), b.I(2), b.O(0)));
  });
  add_variadic(r, "Sum", 1, [](GradientBuilder& b) {
    const std::string g = b.GO(0);
    for (size_t i = 0; i < b.num_inputs(); ++i)
      if (b.wants_GI(i)) b.set_GI(i, b.sum_to_shape_of(g, b.I(i), b.O(0)));
  });
  add_variadic(r, "Mean", 1, [](GradientBuilder& b) {
    const std::string g = b.scale(b.GO(0), 1.0 / static_cast<double>(b.num_inputs()));
    for (size_t i = 0; i < b.num_inputs(); ++i)
      if (b.wants_GI(i)) b.set_GI(i, b.sum_to_shape_of(g, b.I(i), b.O(0)));
  });
  // Max/Min: dY goes to each input equal to the result (to every one of them on a tie). Where
  // exists from opset 9; older models get no rule.
  for (const char* op : {"Max", "Min"}) {
    add_variadic(r, op, 9, [](GradientBuilder& b) {
      const std::string g = b.GO(0);
      std::string zeros;
      for (size_t i = 0; i < b.num_inputs(); ++i) {
        if (!b.wants_GI(i)) continue;
        if (b.num_inputs() == 1) {
          b.set_GI(i, g);
          continue;
        }
        if (zeros.empty()) zeros = b.zeros_like(g);
        const std::string chosen = b.emit1("Equal", {b.I(i), b.O(0)});
        b.set_GI(i, b.sum_to_shape_of(b.emit1("Where", {chosen, g, zeros}), b.I(i), b.O(0)));
      }
    });
  }
}

// Ops a gradient does not flow through: their outputs are bool or piecewise constant.
void register_stops(GradientRegistry& r) {
  for (const char* op : {"Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual", "Not", "And", "Or", "Xor",
                         "IsNaN", "IsInf", "Sign", "Floor", "Ceil", "Round"})
    add(r, op, 1, INT_MAX, {}, nullptr);
}

}  // namespace

void register_elementwise_gradients(GradientRegistry& registry) {
  register_arithmetic(registry);
  register_unary(registry);
  register_selection(registry);
  register_stops(registry);
}

}  // namespace tunnx::ops
