#include "runtime/cpu/onednn/conv_linear.h"

#include <string>
#include <unordered_map>
#include <utility>

#include "runtime/core/run_threads.h"
#include "runtime/cpu/kernels/common.h"

namespace tunnx::cpu::onednn {

ConvLinear::ConvLinear(const PackedWeights& packed, bool b_transposed, ops::Activation activation,
                       ops::FusedBinary binary)
    : b_transposed_(b_transposed), activation_(activation), binary_(binary), packed_(packed) {}

bool ConvLinear::takes(const Tensor& b, int64_t M) const {
  // One row (a vector times a matrix) on several threads ran 1.5x slower on the convolution than on
  // the matmul's gemm (0.090 vs 0.061 ms for 1x1024x1024 on 2 threads); from 2 rows on, and for one
  // row on one thread, the convolution was as fast or faster (bench/README.md).
  if (M == 1 && RunThreads::current() > 1) return false;
  return b.rank() == 2 && packed_.is_constant(b);
}

std::shared_ptr<const ConvLinear::Primitive> ConvLinear::primitive_for(int64_t M, int64_t K, int64_t N,
                                                                       bool has_bias, double work) const {
  const Key key = {M, K, N, has_bias, team_for(work)};
  if (declined_.find(key)) return nullptr;
  std::shared_ptr<const Primitive> p = cache_.find(key);
  if (!p) {
    using dt = dnnl::memory::data_type;
    using tag = dnnl::memory::format_tag;
    auto built = std::make_shared<Primitive>();
    built->src = dnnl::memory::desc({1, K, M, 1}, dt::f32, tag::nhwc);
    built->dst = dnnl::memory::desc({1, N, M, 1}, dt::f32, tag::nhwc);
    // B [N, K] is the plain oihw weights; B [K, N] the same with the first two strides swapped.
    built->stored_weights = dnnl::memory::desc(
        {N, K, 1, 1}, dt::f32, b_transposed_ ? dnnl::memory::dims{K, 1, 1, 1} : dnnl::memory::dims{1, N, 1, 1});
    built->bias = has_bias ? dnnl::memory::desc({N}, dt::f32, tag::a) : dnnl::memory::desc();
    // An added operand goes in as a sum post-op over Y filled with it, where oneDNN builds that on
    // brgconv: with a full-tensor binary post-op it falls back to jit_1x1, which ran BERT's products
    // of K 3072 at 0.66 of brgconv's speed (AVX-512, 1 thread: 5.4 against 3.6 ms for
    // 128x3072x768); filling Y first costs about 1% of such a product.
    auto attempt = [&](bool by_sum) {
      dnnl::primitive_attr attr;
      attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
      dnnl::post_ops post;
      append_activation(post, activation_);  // the matmul kernel only builds this for activations it takes
      const int binary_index = post.len();
      if (by_sum)
        post.append_sum(1.0f);
      else if (binary_ != ops::FusedBinary::kNone)
        post.append_binary(
            binary_ == ops::FusedBinary::kAdd ? dnnl::algorithm::binary_add : dnnl::algorithm::binary_mul, built->dst);
      attr.set_post_ops(post);
      dnnl::convolution_forward::desc desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct,
                                           built->src, any_layout(built->stored_weights), built->bias, built->dst,
                                           {1, 1}, {0, 0}, {0, 0});
      dnnl::convolution_forward::primitive_desc pd(desc, attr, cpu_engine());
      if (reference_only(pd)) throw dnnl::error(dnnl_unimplemented, "reference only");
      if (by_sum && std::string(pd.impl_info_str()).rfind("brg", 0) != 0)
        throw dnnl::error(dnnl_unimplemented, "sum post-op off brgconv");
      built->primitive = dnnl::convolution_forward(pd);
      built->weights = pd.weights_desc();
      built->scratchpad = pd.scratchpad_desc();
      built->operand_by_sum = by_sum;
      // Pointers in run()'s order: SRC, DST, BIAS, the binary's operand.
      std::vector<std::pair<int, dnnl::memory::desc>> args = {{DNNL_ARG_SRC, built->src}, {DNNL_ARG_DST, built->dst}};
      args.emplace_back(DNNL_ARG_BIAS, built->bias);
      if (!by_sum && binary_ != ops::FusedBinary::kNone)
        args.emplace_back(DNNL_ARG_ATTR_MULTIPLE_POST_OP(binary_index) | DNNL_ARG_SRC_1, built->dst);
      built->bound = BoundPrimitive(built->primitive, std::move(args), built->scratchpad);
    };
    const auto built_by = [&](bool by_sum) {
      try {
        attempt(by_sum);
        return true;
      } catch (const dnnl::error&) {
        return false;
      }
    };
    if (!(binary_ == ops::FusedBinary::kAdd && built_by(true)) && !built_by(false)) {
      declined_.insert(key, std::make_shared<const bool>(true));
      return nullptr;
    }
    p = cache_.insert(key, std::move(built));
  }
  return p;
}

bool ConvLinear::prepare(const Tensor& b, int64_t M, int64_t K, int64_t N, bool has_bias) const {
  if (!takes(b, M) || M <= 0 || K <= 0 || N <= 0) return false;
  const double work = static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K);
  const SerialIfSmall serial(work);  // built for the team runs of this size get
  std::shared_ptr<const Primitive> p = primitive_for(M, K, N, has_bias, work);
  if (!p) return false;
  packed_.get(b, p->stored_weights, p->weights);
  return true;
}

bool ConvLinear::run(const Tensor& b, const float* a, int64_t M, int64_t K, int64_t N, float* y, const float* bias,
                     const float* operand) const {
  if (!takes(b, M) || M <= 0 || K <= 0 || N <= 0 || (binary_ != ops::FusedBinary::kNone) != (operand != nullptr))
    return false;
  const double work = static_cast<double>(M) * static_cast<double>(N) * static_cast<double>(K);
  const SerialIfSmall serial(work);  // built and run for the same team
  std::shared_ptr<const Primitive> p = primitive_for(M, K, N, bias != nullptr, work);
  if (!p) return false;

  std::shared_ptr<const dnnl::memory> weights = packed_.get(b, p->stored_weights, p->weights);
  if (p->operand_by_sum) {
    if (operand != y) copy_floats(y, operand, M * N);
    p->bound.run({a, y, bias}, {{DNNL_ARG_WEIGHTS, *weights}}, work);
  } else {
    p->bound.run({a, y, bias, operand}, {{DNNL_ARG_WEIGHTS, *weights}}, work);
  }
  return true;
}

}  // namespace tunnx::cpu::onednn
