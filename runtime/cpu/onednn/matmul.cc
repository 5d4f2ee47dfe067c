#include "runtime/cpu/onednn/onednn_kernels.h"

namespace tunnx::cpu {

// The oneDNN MatMul/Gemm kernels are being written.
void register_onednn_kernels(KernelRegistry&) {}

}  // namespace tunnx::cpu
