// The reference CPU kernel families. Each file kernels/<family>.cc holds its ops' shape rules and
// kernels and one register function; register.cc calls them all.
#pragma once

#include "runtime/core/kernel_registry.h"

namespace tunnx::cpu {

void register_elementwise_kernels(KernelRegistry& registry);    // unary math, activations, binary, variadic, Where
void register_reduce_kernels(KernelRegistry& registry);         // Reduce*, ArgMax/Min, Softmax family, CumSum, CumProd, TopK
void register_attention_kernels(KernelRegistry& registry);      // Attention, RotaryEmbedding, FlexAttention (attention.cc)
void register_linear_attention_kernels(KernelRegistry& registry);  // LinearAttention (linear_attention.cc)
void register_causal_conv_kernels(KernelRegistry& registry);    // CausalConvWithState (causal_conv.cc)
void register_linear_kernels(KernelRegistry& registry);         // MatMul, Gemm, Einsum, quantized matmul, Det
void register_conv_pool_kernels(KernelRegistry& registry);      // Conv*, pools, LRN
void register_col2im_kernels(KernelRegistry& registry);         // Col2Im (col2im.cc)
void register_tensor_kernels(KernelRegistry& registry);         // shape, movement, CenterCropPad, Cast, BitCast, Constant
void register_normalization_kernels(KernelRegistry& registry);  // BatchNorm, InstanceNorm, LayerNorm, MVN, RMS, Group
void register_control_kernels(KernelRegistry& registry);        // If, Loop, Scan, sequences, optionals
void register_rnn_kernels(KernelRegistry& registry);            // RNN, GRU, LSTM
void register_quantized_rnn_kernels(KernelRegistry& registry);  // com.microsoft:DynamicQuantizeLSTM
void register_indexing_kernels(KernelRegistry& registry);       // Gather*, Scatter*, TensorScatter, NonZero, OneHot, Compress, Unique, Trilu
void register_quantize_kernels(KernelRegistry& registry);       // QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear
void register_signal_kernels(KernelRegistry& registry);         // DFT, STFT, window functions, MelWeightMatrix
void register_image_kernels(KernelRegistry& registry);          // Resize, Upsample, GridSample, RoiAlign, NonMaxSuppression
void register_affine_grid_kernels(KernelRegistry& registry);    // AffineGrid (affine_grid.cc)
void register_random_kernels(KernelRegistry& registry);         // Bernoulli, RandomUniform/Normal(Like), Multinomial
void register_loss_kernels(KernelRegistry& registry);           // NegativeLogLikelihoodLoss, SoftmaxCrossEntropyLoss
void register_optimizer_kernels(KernelRegistry& registry);      // ai.onnx.preview.training: Adagrad, Adam, Momentum
void register_text_kernels(KernelRegistry& registry);           // StringNormalizer, TfIdfVectorizer, StringConcat/Split, RegexFullMatch
void register_image_decoder_kernels(KernelRegistry& registry);  // ImageDecoder (image_decoder.cc)
void register_ml_kernels(KernelRegistry& registry);             // ai.onnx.ml: LabelEncoder, TreeEnsemble, ArrayFeatureExtractor, Binarizer
void register_fused_kernels(KernelRegistry& registry);          // com.tunnx FusedMatMul (after linear)
// com.tunnx gradient and training kernels (runtime/core/ops/gradient_ops.md)
void register_elementwise_grad_kernels(KernelRegistry& registry);    // ElementwiseGrad, PowGrad, SoftmaxGrad, LogSoftmaxGrad
void register_tensor_grad_kernels(KernelRegistry& registry);         // SumToShape, Scale, Zeros/OnesLike, Gather/Slice/Pad/Concat/TileGrad
void register_reduce_grad_kernels(KernelRegistry& registry);         // ReduceGrad, ReduceMaxGrad
void register_normalization_grad_kernels(KernelRegistry& registry);  // BatchNormTrain, BatchNormGrad, InstanceNormGrad, LayerNormGrad
void register_conv_pool_grad_kernels(KernelRegistry& registry);      // ConvGrad, ConvTransposeGrad, MaxPoolGrad, AveragePoolGrad, GlobalPoolGrad
void register_train_loss_kernels(KernelRegistry& registry);          // Loss, LossGrad, ONNX loss grads, TrainDropout, DropoutGrad

}  // namespace tunnx::cpu
