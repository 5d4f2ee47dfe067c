#include "runtime/cpu/kernels/kernels.h"
#ifdef TUNNX_WITH_ONEDNN
#include "runtime/cpu/onednn/onednn_kernels.h"
#endif

namespace tunnx {

void register_cpu_kernels(KernelRegistry& registry) {
  cpu::register_elementwise_kernels(registry);
  cpu::register_reduce_kernels(registry);
  cpu::register_linear_kernels(registry);
  cpu::register_conv_pool_kernels(registry);
  cpu::register_col2im_kernels(registry);
  cpu::register_tensor_kernels(registry);
  cpu::register_normalization_kernels(registry);
  cpu::register_attention_kernels(registry);
  cpu::register_linear_attention_kernels(registry);
  cpu::register_causal_conv_kernels(registry);
  cpu::register_control_kernels(registry);
  cpu::register_rnn_kernels(registry);
  cpu::register_quantized_rnn_kernels(registry);
  cpu::register_indexing_kernels(registry);
  cpu::register_quantize_kernels(registry);
  cpu::register_signal_kernels(registry);
  cpu::register_image_kernels(registry);
  cpu::register_affine_grid_kernels(registry);
  cpu::register_random_kernels(registry);
  cpu::register_loss_kernels(registry);
  cpu::register_optimizer_kernels(registry);
  cpu::register_text_kernels(registry);
  cpu::register_image_decoder_kernels(registry);
  cpu::register_ml_kernels(registry);
  cpu::register_fused_kernels(registry);  // composes the MatMul/Gemm kernels registered above
  cpu::register_elementwise_grad_kernels(registry);
  cpu::register_tensor_grad_kernels(registry);
  cpu::register_reduce_grad_kernels(registry);
  cpu::register_normalization_grad_kernels(registry);
  cpu::register_conv_pool_grad_kernels(registry);
  cpu::register_train_loss_kernels(registry);
#ifdef TUNNX_WITH_ONEDNN
  cpu::register_onednn_kernels(registry);  // fast paths, chosen above the reference kernels
#endif
}

}  // namespace tunnx
