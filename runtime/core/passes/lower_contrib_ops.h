// ONNX Runtime's contrib ops (com.microsoft), as its quantization and transformer tools write them into
// shipped models, lowered to the ops they are defined by: ai.onnx ops whose meaning no opset changed,
// and com.tunnx's opset-free copies (Gelu, LayerNormalization). The fusion passes that run after this
// one fold the pieces back into fused kernels (Gemm + activation, Conv + residual + activation), and
// autodiff differentiates them like any ONNX graph. The model's graph keeps the contrib nodes: export
// writes them back as they were.
//
//   Gelu(X)                           -> com.tunnx:Gelu(X)
//   FastGelu(X[, bias])               -> com.tunnx:Gelu(X + bias, approximate "tanh")
//   BiasGelu(A, B)                    -> com.tunnx:Gelu(A + B)
//   QuickGelu(X; alpha = 1.702)       -> X * Sigmoid(alpha X)
//   FusedGemm(A, B[, C]; activation)  -> activation(Gemm(A, B, C))
//   FusedConv(X, W[, B[, Z]]; ...)    -> activation(Conv(X, W, B) + Z)
//   SkipLayerNormalization(X, skip, gamma[, beta[, bias]]) -> LayerNorm over the last axis of
//                                        X + skip + bias; outputs mean, inv_std_var, the sum
//   LayerNormalization (com.microsoft, or ai.onnx below opset 17: ORT's contrib schema)
//                                     -> com.tunnx:LayerNormalization
//   QuantizeLinear, DequantizeLinear  -> ONNX's, whose kernels take int4/uint4/int16/uint16 at any opset
//   MatMulIntegerToFloat(A, B, a_scale, b_scale[, a_zp, b_zp, bias])
//                                     -> Cast(MatMulInteger(A, B, a_zp, b_zp)) * a_scale * b_scale + bias
//   DynamicQuantizeMatMul(A, B, b_scale[, b_zp, bias])
//                                     -> DynamicQuantizeLinear(A), then as MatMulIntegerToFloat
//   Attention(input, weights[, bias, mask_index, past, attention_bias]; num_heads, qkv_hidden_sizes,
//             scale, unidirectional, mask_filter_value)
//                                     -> the projections, heads split, softmax(Q K^T scale + bias +
//                                        masks) V, heads merged; present = past and this step's K, V.
//                                        mask_index as declared: [B] key lengths, [B, T] or [B, S, T]
//                                        0/1; causal keys get the lowest float, as in ONNX Runtime;
//                                        not taken: do_rotary, past_sequence_length
//   MultiHeadAttention(query[, key, value, bias, key_padding_mask, attention_bias, past_key,
//                      past_value, past_sequence_length])
//                                     -> the same after unpacking Q, K, V by rank: separate [B, S, D],
//                                        packed QKV [B, S, N, 3, H], packed KV [B, L, N, 2, H], or
//                                        key/value already [B, N, L, H]; past concatenated, or one
//                                        shared buffer written at past_sequence_length; present_key,
//                                        present_value, qk. Not taken: cache_indirection, bias with
//                                        packed KV, past with [B, N, L, H] key/value
//   EmbedLayerNormalization(ids[, segment_ids], word, position[, segment], gamma, beta[, mask,
//                           position_ids]) -> embeddings summed, LayerNorm; mask_index = mask row sums
//
// The activations FusedGemm and FusedConv take: Relu, LeakyRelu, Sigmoid, Tanh, HardSigmoid, Clip.
#pragma once

#include <cstdint>

#include "runtime/core/graph.h"

namespace tunnx::ir {

// Lowers every contrib node of `graph` and its subgraphs; `onnx_opset` is the model's ai.onnx
// version (Clip's bounds are inputs from 11, attributes before). Returns how many nodes were lowered;
// throws Error naming the node for an attribute value the lowering does not take.
int lower_contrib_ops(Graph& graph, int64_t onnx_opset);

}  // namespace tunnx::ir
