// What every implementation of the linear ops must agree on: the MatMul shape rule, Gemm's
// attributes and FusedMatMul's activation table. The reference kernels (runtime/cpu/kernels/linear.cc,
// fused.cc), the oneDNN kernel (runtime/cpu/onednn/matmul.cc), the fusion pass
// (runtime/core/passes/fuse_linear.cc) and the gradient rules (linear.cc here) all read them from here.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "runtime/core/graph.h"

namespace tunnx::ops {

// ---- MatMul: A [..., M, K] x B [..., K, N] -> [broadcast(...), M, N] (numpy.matmul). A 1-D A is
// read as [1, K] and a 1-D B as [K, 1], and the added dim is dropped from the result. --------------
struct MatMulShape {
  int64_t M = 1, K = 1, N = 1;
  // The operands as matrices of one rank r >= 2 (1-D ones promoted, then leading 1s added):
  // a [batch_a..., M, K], b [batch_b..., K, N]; y [broadcast batch..., M, N].
  std::vector<int64_t> a, b, y;
  std::vector<int64_t> out;  // the output's shape: y without the dims a 1-D operand gained
};

// Nothing, with `why_not` (when given) saying what does not fit, in words for an error message.
std::optional<MatMulShape> matmul_shape(const std::vector<int64_t>& a, const std::vector<int64_t>& b,
                                        std::string* why_not);

// ---- Gemm: Y [M, N] = alpha * A' B' + beta * C, A' = A^T when transA, B' = B^T when transB. -------
struct GemmAttrs {
  bool trans_a = false, trans_b = false;
  float alpha = 1, beta = 1;
};

// The node's transA, transB, alpha, beta with ONNX's defaults (Gemm, and FusedMatMul with op "Gemm").
GemmAttrs gemm_attrs(const ir::Node& node);

// ---- com.tunnx:FusedMatMul: act(product + bias), attributes op ("MatMul" / "Gemm"), Gemm's four,
// has_bias, activation, activation_alpha, activation_beta, approximate. With op "MatMul" the product
// is alpha * A' B' (numpy.matmul, A' and B' with their last two dims swapped when transA / transB,
// any rank >= 2; alpha default 1): transB holds a Linear weight as it lies [N, K]
// (passes/fold_weight_transpose.h), and transposes and scalar scales next to a product fold into it
// (passes/fold_matmul_operands.h). gemm_attrs reads them (beta unused). ----------------------------
struct Activation {
  // kSilu is x * Sigmoid(x) (two ONNX nodes, which the fusion passes recognise as one).
  enum class Kind { kNone, kRelu, kLeakyRelu, kClip, kSigmoid, kTanh, kGelu, kGeluTanh, kHardSigmoid, kHardSwish, kSilu };
  Kind kind = Kind::kNone;
  // LeakyRelu: alpha (slope below 0); Clip: [alpha, beta]; HardSigmoid: max(0, min(1, alpha x + beta))
  float alpha = 0, beta = 0;

  // As the standalone op computes it in float (Clip: NaN stays, and lo > hi gives hi).
  float operator()(float x) const;
  // The same on each of `n` values in place, the kind chosen once for the whole array.
  void apply(float* values, int64_t n) const;
};

// The activation table: the kind of an `activation` name ("" is kNone; the ONNX op types, and "Silu")
// with Gelu's `approximate` ("none" / "tanh"); nothing for a name or approximation the fused ops do
// not take. Shared by FusedMatMul and FusedConv (conv_pool.h).
std::optional<Activation::Kind> activation_kind(const std::string& name, const std::string& approximate);

// A FusedMatMul or FusedConv node's activation. Missing parameters take the standalone op's defaults
// (LeakyRelu alpha 0.01, Clip unbounded, HardSigmoid 0.2 and 0.5). Nothing, with `why_not` set, for one FusedMatMul does not take.
std::optional<Activation> fused_activation(const ir::Node& node, std::string* why_not);

// FusedMatMul's last step, attribute `binary`: "" (none), "Add" or "Mul" of the activation's result
// and the node's last input R, which has Y's shape: Y = act(product + bias) + R (a residual) or
// * R (SwiGLU's gate). Nothing, with `why_not` set, for another name.
enum class FusedBinary { kNone, kAdd, kMul };
std::optional<FusedBinary> fused_binary(const ir::Node& node, std::string* why_not);

}  // namespace tunnx::ops
