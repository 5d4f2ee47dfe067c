// The linear family's shared definitions (linear.h) and gradient rules: MatMul, Gemm,
// com.tunnx:FusedMatMul, Einsum.
//
// Products in backward graphs are MatMul and Gemm nodes, which run on oneDNN for float32: Gemm takes
// transposes as strides (no copy), so 2-D weights (the linear layers of an MLP or a transformer,
// whatever the rank of the activations) get both gradients as Gemms of flattened views. Batched
// products (attention) transpose the other operand's last two dims and use MatMul.
#include "runtime/core/ops/linear.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <numbers>
#include <set>

#include "runtime/core/ops/gradient.h"

namespace tunnx::ops {

std::optional<MatMulShape> matmul_shape(const std::vector<int64_t>& a_dims, const std::vector<int64_t>& b_dims,
                                        std::string* why_not) {
  auto fail = [why_not](const std::string& message) -> std::optional<MatMulShape> {
    if (why_not) *why_not = message;
    return std::nullopt;
  };
  if (a_dims.empty() || b_dims.empty())
    return fail("inputs must have rank >= 1, got " + dims_to_string(a_dims) + " and " + dims_to_string(b_dims));
  MatMulShape s;
  s.a = a_dims;
  s.b = b_dims;
  if (s.a.size() == 1) s.a.insert(s.a.begin(), 1);
  if (s.b.size() == 1) s.b.push_back(1);
  s.M = s.a[s.a.size() - 2];
  s.K = s.a.back();
  s.N = s.b.back();
  if (s.b[s.b.size() - 2] != s.K)
    return fail("inner dimensions differ: A is " + dims_to_string(a_dims) + ", B is " + dims_to_string(b_dims));
  const std::vector<int64_t> a_outer(s.a.begin(), s.a.end() - 2), b_outer(s.b.begin(), s.b.end() - 2);
  const size_t r = std::max(s.a.size(), s.b.size());
  s.a.insert(s.a.begin(), r - s.a.size(), 1);
  s.b.insert(s.b.begin(), r - s.b.size(), 1);
  s.y.resize(r);
  for (size_t i = 0; i + 2 < r; ++i) {
    if (s.a[i] != s.b[i] && s.a[i] != 1 && s.b[i] != 1)
      return fail("shapes " + dims_to_string(a_outer) + " and " + dims_to_string(b_outer) + " do not broadcast");
    s.y[i] = s.a[i] == 1 ? s.b[i] : s.a[i];
  }
  s.y[r - 2] = s.M;
  s.y[r - 1] = s.N;
  s.out.assign(s.y.begin(), s.y.end() - 2);
  if (a_dims.size() > 1) s.out.push_back(s.M);
  if (b_dims.size() > 1) s.out.push_back(s.N);
  return s;
}

GemmAttrs gemm_attrs(const ir::Node& node) {
  return {.trans_a = node_int(node, "transA", 0) != 0,
          .trans_b = node_int(node, "transB", 0) != 0,
          .alpha = node_float(node, "alpha", 1.0f),
          .beta = node_float(node, "beta", 1.0f)};
}

float Activation::operator()(float x) const {
  switch (kind) {
    case Kind::kNone: return x;
    case Kind::kRelu: return x > 0 ? x : 0.0f;
    case Kind::kLeakyRelu: return x >= 0 ? x : alpha * x;
    case Kind::kClip: {
      if (x < alpha) x = alpha;
      return x > beta ? beta : x;
    }
    case Kind::kSigmoid: return x >= 0 ? 1.0f / (1.0f + std::exp(-x)) : std::exp(x) / (1.0f + std::exp(x));
    case Kind::kTanh: return std::tanh(x);
    case Kind::kGelu: return 0.5f * x * (1.0f + std::erf(x / std::numbers::sqrt2_v<float>));
    case Kind::kGeluTanh: {
      const float k = static_cast<float>(std::sqrt(2.0 / std::numbers::pi));
      return 0.5f * x * (1.0f + std::tanh(k * (x + 0.044715f * x * x * x)));
    }
    case Kind::kHardSigmoid: return std::fmax(0.0f, std::fmin(1.0f, alpha * x + beta));
    case Kind::kHardSwish: return x * std::fmax(0.0f, std::fmin(1.0f, x / 6.0f + 0.5f));
    case Kind::kSilu: return x * Activation{.kind = Kind::kSigmoid}(x);
  }
  return x;
}

void Activation::apply(float* values, int64_t n) const {
  // The piecewise-linear kinds get loops of their own, which the compiler inlines; the others call
  // operator() per value (their exp, tanh or erf costs more than the call).
  auto each = [values, n](auto f) {
    for (int64_t i = 0; i < n; ++i) values[i] = f(values[i]);
  };
  const float a = alpha, b = beta;
  switch (kind) {
    case Kind::kNone: return;
    case Kind::kRelu: return each([](float x) { return x > 0 ? x : 0.0f; });
    case Kind::kLeakyRelu: return each([a](float x) { return x >= 0 ? x : a * x; });
    case Kind::kClip:
      return each([a, b](float x) {
        if (x < a) x = a;
        return x > b ? b : x;
      });
    // fmin(1, v) then fmax(0, .) as comparisons, which vectorize where the calls did not (a NaN v
    // gives 1, as fmin passes over it).
    case Kind::kHardSigmoid:
      return each([a, b](float x) {
        const float v = a * x + b, upper = v < 1.0f ? v : 1.0f;
        return upper > 0.0f ? upper : 0.0f;
      });
    case Kind::kHardSwish:
      return each([](float x) {
        const float v = x / 6.0f + 0.5f, upper = v < 1.0f ? v : 1.0f;
        return x * (upper > 0.0f ? upper : 0.0f);
      });
    default: return each([this](float x) { return (*this)(x); });
  }
}

std::optional<Activation::Kind> activation_kind(const std::string& name, const std::string& approximate) {
  using Kind = Activation::Kind;
  if (name.empty()) return Kind::kNone;
  if (name == "Relu") return Kind::kRelu;
  if (name == "LeakyRelu") return Kind::kLeakyRelu;
  if (name == "Clip") return Kind::kClip;
  if (name == "Sigmoid") return Kind::kSigmoid;
  if (name == "Tanh") return Kind::kTanh;
  if (name == "HardSigmoid") return Kind::kHardSigmoid;
  if (name == "HardSwish") return Kind::kHardSwish;
  if (name == "Silu") return Kind::kSilu;
  if (name == "Gelu") {
    if (approximate == "none") return Kind::kGelu;
    if (approximate == "tanh") return Kind::kGeluTanh;
  }
  return std::nullopt;
}

std::optional<Activation> fused_activation(const ir::Node& node, std::string* why_not) {
  const std::string name = node_string(node, "activation", "");
  const std::string approximate = node_string(node, "approximate", "none");
  std::optional<Activation::Kind> kind = activation_kind(name, approximate);
  if (!kind) {
    if (why_not)
      *why_not = name == "Gelu" ? "approximate must be \"none\" or \"tanh\", got \"" + approximate + "\""
                                : "activation \"" + name + "\" is not one the fused ops take";
    return std::nullopt;
  }
  Activation act;
  act.kind = *kind;
  const float inf = std::numeric_limits<float>::infinity();
  const bool clip = act.kind == Activation::Kind::kClip;
  const bool hard_sigmoid = act.kind == Activation::Kind::kHardSigmoid;
  const float alpha_default = act.kind == Activation::Kind::kLeakyRelu ? 0.01f : clip ? -inf : hard_sigmoid ? 0.2f : 0.0f;
  act.alpha = node_float(node, "activation_alpha", alpha_default);
  act.beta = node_float(node, "activation_beta", clip ? inf : hard_sigmoid ? 0.5f : 0.0f);
  return act;
}

std::optional<FusedBinary> fused_binary(const ir::Node& node, std::string* why_not) {
  const std::string name = node_string(node, "binary", "");
  if (name.empty()) return FusedBinary::kNone;
  if (name == "Add") return FusedBinary::kAdd;
  if (name == "Mul") return FusedBinary::kMul;
  if (why_not) *why_not = "binary \"" + name + "\" is not one FusedMatMul takes (\"Add\" or \"Mul\")";
  return std::nullopt;
}

namespace {

// ---- Helpers for the rules ----------------------------------------------------------------------

std::string constant_i64(GradientBuilder& b, const std::vector<int64_t>& values) {
  const Tensor t = Tensor::from_vector<int64_t>({static_cast<int64_t>(values.size())}, values);
  return b.emit1("Constant", {}, {attr_tensor("value", t)});
}

std::string constant_f32(GradientBuilder& b, float value) {
  return b.emit1("Constant", {}, {attr_tensor("value", Tensor::from_vector<float>({}, {value}))});
}

// `x` [d0, ..., d(r-1)] as the matrix [d0 * ... * d(r-2), d(r-1)] (a 1-D x as [1, d0]), a view.
// `rank` is x's rank when known; unknown needs Flatten's negative axis (opset 11).
std::string rows_of(GradientBuilder& b, const std::string& x, std::optional<size_t> rank) {
  if (rank == 2) return x;
  if (!rank && b.onnx_opset() < 11)
    throw b.error("the gradient needs the rank of '" + x + "' before opset 11, and the graph does not state it");
  const int64_t axis = rank ? std::max<int64_t>(static_cast<int64_t>(*rank) - 1, 0) : -1;
  return b.emit1("Flatten", {x}, {attr("axis", axis)});
}

// x with its last two dims swapped; rank r >= 2 known, else Einsum (opset 12) swaps them.
std::string swap_last_two(GradientBuilder& b, const std::string& x, std::optional<size_t> rank) {
  if (!rank) {
    if (b.onnx_opset() < 12)
      throw b.error("the gradient needs the rank of '" + x + "' before opset 12, and the graph does not state it");
    return b.emit1("Einsum", {x}, {attr("equation", std::string("...ij->...ji"))});
  }
  std::vector<int64_t> perm;
  for (size_t i = 0; i < *rank; ++i) perm.push_back(static_cast<int64_t>(i));
  std::swap(perm[*rank - 1], perm[*rank - 2]);
  return b.emit1("Transpose", {x}, {attr("perm", perm)});
}

std::string gemm(GradientBuilder& b, const std::string& x, const std::string& y, bool trans_x, bool trans_y,
                 float alpha) {
  std::vector<ir::Attribute> attrs;
  if (trans_x) attrs.push_back(attr("transA", int64_t{1}));
  if (trans_y) attrs.push_back(attr("transB", int64_t{1}));
  if (alpha != 1.0f) attrs.push_back(attr("alpha", alpha));
  return b.emit1("Gemm", {x, y}, std::move(attrs));
}

// Whether a MatMul operand of `dims` (with `other` the other operand's dims) was broadcast along the
// batch dims, so its gradient must be summed back. True when either is unknown.
bool batch_broadcast(const std::optional<std::vector<int64_t>>& dims, const std::optional<std::vector<int64_t>>& other,
                     bool is_a) {
  if (!dims || !other) return true;
  std::optional<MatMulShape> s = is_a ? matmul_shape(*dims, *other, nullptr) : matmul_shape(*other, *dims, nullptr);
  if (!s) return true;  // the forward reports it
  const std::vector<int64_t>& mine = is_a ? s->a : s->b;
  if (dims->size() < s->y.size()) return true;
  return !std::equal(mine.begin(), mine.end() - 2, s->y.begin());
}

// The gradients of Y = MatMul(A, B) (inputs ia, ib of the node) from dY, set as GI(ia), GI(ib).
void matmul_grads(GradientBuilder& b, const std::string& dy, size_t ia, size_t ib) {
  const bool want_a = b.wants_GI(ia), want_b = b.wants_GI(ib);
  const std::string &A = b.I(ia), &B = b.I(ib);
  const std::optional<size_t> ra = b.rank(A), rb = b.rank(B);
  if (rb == 2) {
    // A [..., K] x B [K, N]: the product of [rows, K] and [K, N], whatever A's rank.
    const std::string dy2 = rows_of(b, dy, ra);
    if (want_a) {
      const std::string g = gemm(b, dy2, B, false, true, 1.0f);
      b.set_GI(ia, ra == 2 ? g : b.reshape_like(g, A));
    }
    if (want_b) b.set_GI(ib, gemm(b, rows_of(b, A, ra), dy2, true, false, 1.0f));
    return;
  }
  if (rb == 1) {
    // Y [...] = A [..., K] . b [K]: dA = dY[..., None] * b, db = sum of dY[..., None] * A.
    const std::string one = constant_i64(b, {1});
    const std::string shape = b.emit1("Concat", {b.shape_of(dy), one}, {attr("axis", int64_t{0})});
    const std::string u = b.emit1("Reshape", {dy, shape});
    if (want_a) b.set_GI(ia, b.mul(u, B));
    if (want_b) {
      const std::string g = b.mul(u, A);
      b.set_GI(ib, ra == 1 ? g : b.grad_op1("SumToShape", {g, b.shape_of(B)}));
    }
    return;
  }
  std::string a2 = A, dy2 = dy;
  std::optional<size_t> ra2 = ra;
  if (ra == 1) {
    // a [K] is [1, K] against a batched B; dY [..., N] gains the dropped M = 1.
    if (!rb) throw b.error("the gradient of a 1-D A needs the rank of B, and the graph does not state it");
    std::vector<int64_t> dy_shape(*rb - 2, 0);
    dy_shape.push_back(1);
    dy_shape.push_back(-1);
    a2 = b.emit1("Reshape", {A, constant_i64(b, {1, -1})});
    dy2 = b.emit1("Reshape", {dy, constant_i64(b, dy_shape)});
    ra2 = 2;
  }
  // Batched: dA = dY B^T, dB = A^T dY, each summed over the batch dims it was broadcast along.
  const auto a_dims = b.dims(A), b_dims = b.dims(B);
  if (want_a) {
    const std::string g = b.emit1("MatMul", {dy2, swap_last_two(b, B, rb)});
    b.set_GI(ia, ra == 1 || batch_broadcast(a_dims, b_dims, true) ? b.grad_op1("SumToShape", {g, b.shape_of(A)}) : g);
  }
  if (want_b) {
    const std::string g = b.emit1("MatMul", {swap_last_two(b, a2, ra2), dy2});
    b.set_GI(ib, batch_broadcast(b_dims, a_dims, false) ? b.grad_op1("SumToShape", {g, b.shape_of(B)}) : g);
  }
}

// The gradients of Y = alpha * A' B' + beta * C (inputs ia, ia + 1, ia + 2) from dY.
void gemm_grads(GradientBuilder& b, const std::string& dy, const GemmAttrs& g, size_t ia) {
  const std::string &A = b.I(ia), &B = b.I(ia + 1);
  if (b.wants_GI(ia))
    b.set_GI(ia, g.trans_a ? gemm(b, B, dy, g.trans_b, true, g.alpha) : gemm(b, dy, B, false, !g.trans_b, g.alpha));
  if (b.wants_GI(ia + 1))
    b.set_GI(ia + 1, g.trans_b ? gemm(b, dy, A, true, g.trans_a, g.alpha) : gemm(b, A, dy, !g.trans_a, false, g.alpha));
  if (!b.has_input(ia + 2) || !b.wants_GI(ia + 2)) return;
  const std::string& C = b.I(ia + 2);
  const std::string dc = b.scale(dy, g.beta);
  // C broadcasts one way to [M, N]; summed back unless it is [M, N] already.
  const auto a = b.dims(A), bd = b.dims(B), c = b.dims(C);
  const bool full = a && bd && c && a->size() == 2 && bd->size() == 2 &&
                    *c == std::vector<int64_t>{(*a)[g.trans_a ? 1 : 0], (*bd)[g.trans_b ? 0 : 1]};
  b.set_GI(ia + 2, full ? dc : b.grad_op1("SumToShape", {dc, b.shape_of(C)}));
}

// ---- FusedMatMul: Y = act(Z), Z = product + bias ---------------------------------------------------

// Z, the pre-activation: the same node without its activation (the forward does not keep it).
std::string recompute_pre_activation(GradientBuilder& b) {
  std::vector<ir::Attribute> attrs;
  for (const auto& a : b.node().attributes)
    if (a.name != "activation" && a.name != "activation_alpha" && a.name != "activation_beta" &&
        a.name != "approximate")
      attrs.push_back(a);
  attrs.push_back(attr("activation", std::string()));
  return b.emit1("FusedMatMul", b.node().inputs, std::move(attrs), kGradDomain);
}

// dZ = dY * act'(Z) through com.tunnx:ElementwiseGrad; Relu, Sigmoid, Tanh and LeakyRelu (alpha > 0)
// read Y, the others the recomputed Z.
std::string activation_grad(GradientBuilder& b, const std::string& dy, const Activation& act) {
  using Kind = Activation::Kind;
  auto eg = [&](const std::string& op, std::vector<std::string> inputs, std::vector<ir::Attribute> attrs) {
    attrs.push_back(attr("op", op));
    inputs.insert(inputs.begin(), dy);
    return b.grad_op1("ElementwiseGrad", std::move(inputs), std::move(attrs));
  };
  switch (act.kind) {
    case Kind::kNone: return dy;
    case Kind::kRelu: return eg("Relu", {"", b.O(0)}, {});
    case Kind::kSigmoid: return eg("Sigmoid", {"", b.O(0)}, {});
    case Kind::kTanh: return eg("Tanh", {"", b.O(0)}, {});
    case Kind::kLeakyRelu:
      // With a positive slope Y has Z's sign, which is all the derivative reads.
      return eg("LeakyRelu", {act.alpha > 0 ? b.O(0) : recompute_pre_activation(b), ""}, {attr("alpha", act.alpha)});
    case Kind::kGelu:
    case Kind::kGeluTanh:
      return eg("Gelu", {recompute_pre_activation(b), ""},
                {attr("approximate", std::string(act.kind == Kind::kGelu ? "none" : "tanh"))});
    case Kind::kClip:  // FusedMatMul is float32: so are the bounds
      return eg("Clip", {recompute_pre_activation(b), "", constant_f32(b, act.alpha), constant_f32(b, act.beta)}, {});
    case Kind::kHardSigmoid:
      return eg("HardSigmoid", {recompute_pre_activation(b), ""}, {attr("alpha", act.alpha), attr("beta", act.beta)});
    case Kind::kHardSwish: return eg("HardSwish", {recompute_pre_activation(b), ""}, {});
    case Kind::kSilu: {  // d/dz z s(z) = s (1 + z (1 - s))
      const std::string z = recompute_pre_activation(b);
      const std::string s = b.emit1("Sigmoid", {z});
      const std::string one = constant_f32(b, 1.0f);
      const std::string inner = b.emit1("Add", {one, b.emit1("Mul", {z, b.emit1("Sub", {one, s})})});
      return b.emit1("Mul", {dy, b.emit1("Mul", {s, inner})});
    }
  }
  return dy;
}

void fused_matmul_grads(GradientBuilder& b) {
  const std::string op = node_string(b.node(), "op", "");
  if (op != "MatMul" && op != "Gemm") throw b.error("op must be \"MatMul\" or \"Gemm\", got \"" + op + "\"");
  std::string why_not;
  std::optional<Activation> act = fused_activation(b.node(), &why_not);
  if (!act) throw b.error(why_not);
  // Made after autodiff, for kernels only (fuse_linear), as the folded transposes are.
  if (fused_binary(b.node(), nullptr) != FusedBinary::kNone) throw b.error("no gradient rule for a FusedMatMul with binary");
  if (op == "MatMul") {
    // Folded transposes and scales are made after autodiff, for kernels only (fold_matmul_operands).
    const GemmAttrs g = gemm_attrs(b.node());
    if (g.trans_a || g.alpha != 1.0f) throw b.error("no gradient rule for a MatMul with transA or alpha");
  }
  const std::string dz = activation_grad(b, b.GO(0), *act);
  size_t bias = 2;
  if (op == "MatMul" && node_int(b.node(), "transB", 0) != 0) {
    // Y = A W^T with W [N, K] as it lies (fold_weight_transpose): dA = dZ W, dW = dZ^T A, in the rows
    // of A's rank; no transposes.
    const std::string &A = b.I(0), &W = b.I(1);
    if (b.rank(W) != 2) throw b.error("transB needs a 2-D B");
    if (b.wants_GI(0)) b.set_GI(0, b.emit1("MatMul", {dz, W}));
    if (b.wants_GI(1)) {
      const std::optional<size_t> ra = b.rank(A);
      b.set_GI(1, gemm(b, rows_of(b, dz, ra), rows_of(b, A, ra), true, false, 1.0f));
    }
  } else if (op == "MatMul") {
    matmul_grads(b, dz, 0, 1);
  } else {
    gemm_grads(b, dz, gemm_attrs(b.node()), 0);
    bias = 3;
  }
  if (node_int(b.node(), "has_bias", 0) != 0 && b.wants_GI(bias))
    b.set_GI(bias, b.grad_op1("SumToShape", {dz, b.shape_of(b.I(bias))}));
}

// ---- Einsum -------------------------------------------------------------------------------------

// An equation as terms of labels: letters, and '.' standing for the whole "...".
struct EinsumTerms {
  std::vector<std::string> inputs;
  std::string output;
};

EinsumTerms parse_einsum(const GradientBuilder& b, const std::string& equation) {
  std::string eq;
  for (char ch : equation)
    if (ch != ' ') eq += ch;
  auto compact = [&](const std::string& term) {
    std::string out;
    for (size_t i = 0; i < term.size(); ++i) {
      if (term.compare(i, 3, "...") == 0) {
        out += '.';
        i += 2;
      } else if ((term[i] >= 'a' && term[i] <= 'z') || (term[i] >= 'A' && term[i] <= 'Z')) {
        out += term[i];
      } else {
        throw b.error("einsum equation '" + equation + "' has an unexpected '" + std::string(1, term[i]) + "'");
      }
    }
    return out;
  };
  EinsumTerms t;
  const size_t arrow = eq.find("->");
  const std::string lhs = eq.substr(0, arrow);
  for (size_t start = 0;;) {
    const size_t comma = lhs.find(',', start);
    t.inputs.push_back(compact(lhs.substr(start, comma - start)));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  if (arrow != std::string::npos) {
    t.output = compact(eq.substr(arrow + 2));
    return t;
  }
  // Implicit output: the ellipsis, then the letters used exactly once, in ASCII order.
  std::map<char, int> uses;
  bool ellipsis = false;
  for (const auto& term : t.inputs)
    for (char ch : term) {
      if (ch == '.') ellipsis = true;
      else ++uses[ch];
    }
  if (ellipsis) t.output += '.';
  for (const auto& [ch, n] : uses)
    if (n == 1) t.output += ch;
  return t;
}

std::string expand(const std::string& term) {
  std::string out;
  for (char ch : term) out += ch == '.' ? std::string("...") : std::string(1, ch);
  return out;
}

// Whether input i's dims are the sizes its labels take in the product (no size-1 or shorter-ellipsis
// broadcast), so its gradient needs no summing. False when any dim is unknown.
bool einsum_exact(const GradientBuilder& b, const EinsumTerms& t, size_t i) {
  std::map<char, int64_t> size;
  std::vector<int64_t> ellipsis;  // right-aligned broadcast of every "..."
  std::vector<std::vector<int64_t>> dims;
  for (size_t k = 0; k < t.inputs.size(); ++k) {
    auto d = b.dims(b.I(k));
    if (!d) return false;
    const std::string& term = t.inputs[k];
    const size_t letters = term.size() - (term.find('.') == std::string::npos ? 0 : 1);
    if (d->size() < letters) return false;
    const size_t e_rank = d->size() - letters;
    size_t at = 0;
    for (char ch : term) {
      if (ch == '.') {
        const auto first = d->begin() + static_cast<std::ptrdiff_t>(at);
        const std::vector<int64_t> e(first, first + static_cast<std::ptrdiff_t>(e_rank));
        if (e.size() > ellipsis.size()) ellipsis.insert(ellipsis.begin(), e.size() - ellipsis.size(), 1);
        for (size_t j = 0; j < e.size(); ++j) {
          int64_t& o = ellipsis[ellipsis.size() - e.size() + j];
          o = std::max(o, e[j]);
        }
        at += e_rank;
      } else {
        size[ch] = std::max(size[ch], (*d)[at++]);
      }
    }
    dims.push_back(*d);
  }
  const std::string& term = t.inputs[i];
  std::vector<int64_t> want;
  for (char ch : term) {
    if (ch == '.') want.insert(want.end(), ellipsis.begin(), ellipsis.end());
    else want.push_back(size[ch]);
  }
  return want == dims[i];
}

// dXi = Einsum(dY, the other inputs -> Xi's term): every label of Xi must appear in the output or in
// another input, and none twice in Xi (a diagonal).
void einsum_grads(GradientBuilder& b) {
  const std::string equation = node_string(b.node(), "equation", "");
  const EinsumTerms t = parse_einsum(b, equation);
  if (t.inputs.size() != b.num_inputs())
    throw b.error("einsum equation '" + equation + "' has " + std::to_string(t.inputs.size()) + " terms for " +
                  std::to_string(b.num_inputs()) + " inputs");
  const std::string dy = b.GO(0);
  for (size_t i = 0; i < t.inputs.size(); ++i) {
    if (!b.wants_GI(i)) continue;
    const std::string& term = t.inputs[i];
    std::set<char> seen;
    for (char ch : term) {
      const std::string label = ch == '.' ? std::string("...") : std::string(1, ch);
      if (!seen.insert(ch).second)
        throw b.error("einsum equation '" + equation + "': input " + std::to_string(i) + " repeats label '" + label +
                      "' (a diagonal), which has no gradient rule");
      bool elsewhere = t.output.find(ch) != std::string::npos;
      for (size_t k = 0; k < t.inputs.size() && !elsewhere; ++k)
        elsewhere = k != i && t.inputs[k].find(ch) != std::string::npos;
      if (!elsewhere)
        throw b.error("einsum equation '" + equation + "': label '" + label + "' of input " + std::to_string(i) +
                      " is summed away by that input alone, which has no gradient rule");
    }
    std::string grad_eq = expand(t.output);
    std::vector<std::string> inputs = {dy};
    for (size_t k = 0; k < t.inputs.size(); ++k) {
      if (k == i) continue;
      grad_eq += "," + expand(t.inputs[k]);
      inputs.push_back(b.I(k));
    }
    grad_eq += "->" + expand(term);
    const std::string g = b.emit1("Einsum", std::move(inputs), {attr("equation", grad_eq)});
    b.set_GI(i, einsum_exact(b, t, i) ? g : b.grad_op1("SumToShape", {g, b.shape_of(b.I(i))}));
  }
}

}  // namespace

void register_linear_gradients(GradientRegistry& registry) {
  registry.add({.domain = "", .op_type = "MatMul", .differentiable_inputs = {0, 1},
                .build = [](GradientBuilder& b) { matmul_grads(b, b.GO(0), 0, 1); }});
  // Gemm's C was required before opset 11 and broadcast only with `broadcast` before 7: the same math.
  registry.add({.domain = "", .op_type = "Gemm", .differentiable_inputs = {0, 1, 2},
                .build = [](GradientBuilder& b) { gemm_grads(b, b.GO(0), gemm_attrs(b.node()), 0); }});
  registry.add({.domain = kGradDomain, .op_type = "FusedMatMul", .differentiable_inputs = {0, 1, 2, 3},
                .build = fused_matmul_grads});
  registry.add({.domain = "", .op_type = "Einsum", .since_version = 12, .differentiable_inputs = {},
                .all_inputs_differentiable = true, .build = einsum_grads});
}

}  // namespace tunnx::ops
