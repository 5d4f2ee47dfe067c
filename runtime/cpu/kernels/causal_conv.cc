// CausalConvWithState (opset 27): the causal depthwise 1-D convolution of Gated DeltaNet and Mamba
// blocks, with the carry state that lets decoding run one step at a time.
//
//   input [B, C, L], weight [C, 1, k], bias [C], past_state [B, C, k - 1] (zeros when omitted).
//   output [B, C, L]; present_state [B, C, k - 1]: the last k - 1 positions of past_state ++ input.
//
// output[b, c, l] = act(bias[c] + sum_i weight[c, 0, i] * padded[b, c, l + i]), padded = past ++ input;
// act is none or SiLU (swish). Like onnx.reference, the sum is rounded to the input type before the
// bias is added and again before the activation.
#include "runtime/cpu/kernels/common.h"
#include "runtime/cpu/kernels/kernels.h"

namespace tunnx::cpu {
namespace {

using CausalConvTypes = Types<float, Float16, BFloat16>;

template <typename T> void causal_conv_typed(KernelContext& ctx, bool silu) {
  using C = Compute<T>;
  const Tensor& x_in = ctx.input(0);
  const Tensor& w_in = ctx.input(1);
  const Tensor* bias_in = ctx.has_input(2) ? &ctx.input(2) : nullptr;
  const Tensor* past_in = ctx.has_input(3) ? &ctx.input(3) : nullptr;
  if (x_in.rank() != 3) throw ctx.error("input must be [batch, channels, length], got " + dims_to_string(x_in.dims()));
  const int64_t B = x_in.dims()[0], Ch = x_in.dims()[1], L = x_in.dims()[2];
  if (w_in.rank() != 3 || w_in.dims()[0] != Ch || w_in.dims()[1] != 1 || w_in.dims()[2] < 1)
    throw ctx.error("weight must be [channels, 1, k] = [" + std::to_string(Ch) + ", 1, k >= 1], got " +
                    dims_to_string(w_in.dims()));
  require_same_dtype(ctx, x_in, w_in);
  const int64_t K = w_in.dims()[2], P = K - 1;  // P: the carried positions
  if (bias_in) {
    require_same_dtype(ctx, x_in, *bias_in);
    if (bias_in->dims() != std::vector<int64_t>{Ch})
      throw ctx.error("bias must be [channels] = [" + std::to_string(Ch) + "], got " + dims_to_string(bias_in->dims()));
  }
  if (past_in) {
    require_same_dtype(ctx, x_in, *past_in);
    if (past_in->dims() != std::vector<int64_t>{B, Ch, P})
      throw ctx.error("past_state must be [batch, channels, k - 1] = " + dims_to_string({B, Ch, P}) + ", got " +
                      dims_to_string(past_in->dims()));
  }

  const T* x = data<T>(x_in);
  const T* w = data<T>(w_in);
  T* y = mutable_data<T>(ctx.allocate_output_uninitialized(0, x_in.dtype(), {B, Ch, L}));
  T* present = ctx.output_wanted(1) ? mutable_data<T>(ctx.allocate_output_uninitialized(1, x_in.dtype(), {B, Ch, P}))
                                    : nullptr;
  std::vector<C> padded(static_cast<size_t>(P + L));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t c = 0; c < Ch; ++c) {
      const T* row = x + (b * Ch + c) * L;
      for (int64_t i = 0; i < P; ++i)
        padded[static_cast<size_t>(i)] = past_in ? static_cast<C>(load(data<T>(*past_in)[(b * Ch + c) * P + i])) : C(0);
      for (int64_t l = 0; l < L; ++l) padded[static_cast<size_t>(P + l)] = static_cast<C>(load(row[l]));
      const T* wc = w + c * K;
      for (int64_t l = 0; l < L; ++l) {
        C acc = 0;
        for (int64_t i = 0; i < K; ++i) acc += static_cast<C>(load(wc[i])) * padded[static_cast<size_t>(l + i)];
        C out = static_cast<C>(load(static_cast<T>(acc)));
        if (bias_in) out = static_cast<C>(load(static_cast<T>(out + static_cast<C>(load(data<T>(*bias_in)[c])))));
        if (silu) out = out * sigmoid(out);
        y[(b * Ch + c) * L + l] = static_cast<T>(out);
      }
      if (present)
        for (int64_t i = 0; i < P; ++i) present[(b * Ch + c) * P + i] = static_cast<T>(padded[static_cast<size_t>(L + i)]);
    }
}

}  // namespace

void register_causal_conv_kernels(KernelRegistry& r) {
  add_kernel(r, "CausalConvWithState", 27, INT_MAX, dtypes(CausalConvTypes{}), [](const KernelInit& init) {
    const std::string activation = init.attr_string("activation", "none");
    if (activation != "none" && activation != "silu" && activation != "swish")
      throw init.error("activation must be none, silu or swish, got '" + activation + "'");
    const bool silu = activation != "none";
    return make_kernel([silu](KernelContext& ctx) {
      dispatch(ctx.input(0).dtype(), ctx, CausalConvTypes{}, [&](auto tag) {
        causal_conv_typed<typename decltype(tag)::type>(ctx, silu);
      });
    });
  });
}

}  // namespace tunnx::cpu
