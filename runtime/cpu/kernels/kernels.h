// The reference CPU kernel families. Each file kernels/<family>.cc holds its ops' shape rules and
// kernels and one register function; register.cc calls them all.
#pragma once

#include "runtime/core/kernel_registry.h"

namespace tunnx::cpu {

void register_elementwise_kernels(KernelRegistry& registry);    // unary math, activations, binary, variadic, Where
void register_reduce_kernels(KernelRegistry& registry);         // Reduce*, ArgMax/Min, Softmax family, CumSum, TopK
void register_linear_kernels(KernelRegistry& registry);         // MatMul, Gemm, Einsum, quantized matmul, Det
void register_conv_pool_kernels(KernelRegistry& registry);      // Conv*, pools, LRN
void register_tensor_kernels(KernelRegistry& registry);         // shape, movement, indexing, Cast, Constant
void register_normalization_kernels(KernelRegistry& registry);  // BatchNorm, InstanceNorm, LayerNorm, MVN
void register_control_kernels(KernelRegistry& registry);        // If, Loop, Scan, sequences, optionals
void register_rnn_kernels(KernelRegistry& registry);            // RNN, GRU, LSTM
void register_indexing_kernels(KernelRegistry& registry);       // Gather*, Scatter*, NonZero, OneHot, Compress, Unique, Trilu
void register_quantize_kernels(KernelRegistry& registry);       // QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear
void register_signal_kernels(KernelRegistry& registry);         // DFT, STFT, window functions, MelWeightMatrix
void register_image_kernels(KernelRegistry& registry);          // Resize, Upsample, GridSample, RoiAlign, NonMaxSuppression
void register_random_kernels(KernelRegistry& registry);         // Bernoulli, RandomUniform/Normal(Like), Multinomial
void register_loss_kernels(KernelRegistry& registry);           // NegativeLogLikelihoodLoss, SoftmaxCrossEntropyLoss
void register_optimizer_kernels(KernelRegistry& registry);      // ai.onnx.preview.training: Adagrad, Adam, Momentum
void register_text_kernels(KernelRegistry& registry);           // StringNormalizer, TfIdfVectorizer
void register_fused_kernels(KernelRegistry& registry);          // com.tunnx FusedMatMul (after linear)

}  // namespace tunnx::cpu
