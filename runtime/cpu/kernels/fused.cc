// com.tunnx:FusedMatMul, the node runtime/core/passes/fuse_linear.cc makes of MatMul/Gemm -> [bias
// Add] -> [activation]. The reference kernel composes the reference math: the reference MatMul or
// Gemm kernel (taken from the registry, as the oneDNN fast paths do) computes Y, then each element
// gets its bias (a 1-D float32 [N] along the last dim) and the activation, in float:
//   inputs  A, B, [C] (Gemm only; "" when absent), [bias]        output  act(Y + bias), Y's shape
// The oneDNN kernel (runtime/cpu/onednn/matmul.cc) runs on top of this one as its fallback.
#include <climits>
#include <cmath>
#include <memory>
#include <numbers>
#include <string>
#include <utility>
#include <vector>

#include "runtime/cpu/kernels/common.h"
#include "runtime/cpu/kernels/kernels.h"

namespace tunnx::cpu {
namespace {

struct Activation {
  enum class Kind { kNone, kRelu, kLeakyRelu, kClip, kSigmoid, kTanh, kGelu, kGeluTanh };
  Kind kind = Kind::kNone;
  float alpha = 0, beta = 0;  // LeakyRelu: alpha; Clip: [alpha, beta]

  float operator()(float x) const {
    switch (kind) {
      case Kind::kNone: return x;
      case Kind::kRelu: return x > 0 ? x : 0.0f;
      case Kind::kLeakyRelu: return x >= 0 ? x : alpha * x;
      case Kind::kClip: {  // as the Clip kernel: NaN stays, and lo > hi gives hi
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
    }
    return x;
  }
};

Activation parse_activation(const KernelInit& init) {
  using Kind = Activation::Kind;
  const std::string name = init.attr_string("activation", "");
  Activation act;
  act.alpha = init.attr_float("activation_alpha", 0.0f);
  act.beta = init.attr_float("activation_beta", 0.0f);
  if (name.empty()) act.kind = Kind::kNone;
  else if (name == "Relu") act.kind = Kind::kRelu;
  else if (name == "LeakyRelu") act.kind = Kind::kLeakyRelu;
  else if (name == "Clip") act.kind = Kind::kClip;
  else if (name == "Sigmoid") act.kind = Kind::kSigmoid;
  else if (name == "Tanh") act.kind = Kind::kTanh;
  else if (name == "Gelu") {
    const std::string approximate = init.attr_string("approximate", "none");
    if (approximate != "none" && approximate != "tanh")
      throw init.error("approximate must be \"none\" or \"tanh\", got \"" + approximate + "\"");
    act.kind = approximate == "tanh" ? Kind::kGeluTanh : Kind::kGelu;
  } else {
    throw init.error("activation \"" + name + "\" is not one FusedMatMul takes");
  }
  return act;
}

class FusedMatMul : public Kernel {
 public:
  FusedMatMul(std::unique_ptr<ir::Node> inner, std::unique_ptr<Kernel> product, bool gemm, bool has_bias,
              Activation act)
      : inner_(std::move(inner)), product_(std::move(product)), gemm_(gemm), has_bias_(has_bias), act_(act) {}

  void run(KernelContext& ctx) const override {
    const size_t operands = gemm_ ? 3 : 2;
    std::vector<const Value*> in;
    for (size_t i = 0; i < operands; ++i) in.push_back(ctx.has_input(i) ? &ctx.input_value(i) : nullptr);
    std::vector<Value> out(1);
    int64_t bytes = 0;  // Y is a temporary; the output below is what the run keeps
    KernelContext inner(*inner_, std::move(in), out, {true}, bytes, nullptr);
    product_->run(inner);
    const Tensor& y = out[0].tensor();
    if (y.dtype() != DataType::kFloat32) throw ctx.error(std::string("dtype ") + to_string(y.dtype()) + " is not supported");
    const float* bias = nullptr;
    const int64_t n = y.rank() == 0 ? 1 : y.dims().back();
    if (has_bias_) {
      const Tensor& b = ctx.input(operands);
      if (b.dtype() != DataType::kFloat32 || b.rank() != 1 || b.numel() != n)
        throw ctx.error("bias must be float32 [" + std::to_string(n) + "], got " + to_string(b.dtype()) + " " +
                        dims_to_string(b.dims()));
      bias = data<float>(b);
    }
    Tensor& result = ctx.allocate_output(0, DataType::kFloat32, y.dims());
    const float* src = data<float>(y);
    float* dst = mutable_data<float>(result);
    for (int64_t i = 0; i < y.numel(); ++i) dst[i] = act_(bias ? src[i] + bias[i % n] : src[i]);
  }

 private:
  std::unique_ptr<ir::Node> inner_;  // the MatMul/Gemm node `product_` was built for
  std::unique_ptr<Kernel> product_;
  bool gemm_, has_bias_;
  Activation act_;
};

}  // namespace

void register_fused_kernels(KernelRegistry& r) {
  // com.tunnx:Gelu, which runtime/core/passes/fuse_gelu.cc makes of a spelled-out exact GELU: ONNX's
  // Gelu kernel (opset 20) under the session's own domain, so models of any opset can run it.
  if (const KernelDef* onnx_gelu = r.find("", "Gelu", 20, DeviceType::kCpu, {}, nullptr)) {
    KernelDef def = *onnx_gelu;
    def.domain = "com.tunnx";
    def.since_version = 1;
    def.until_version = INT_MAX;
    r.add(std::move(def));
  }
  KernelFactory matmul, gemm;
  if (const KernelDef* d = r.find("", "MatMul", 13, DeviceType::kCpu, {}, nullptr)) matmul = d->factory;
  if (const KernelDef* d = r.find("", "Gemm", 13, DeviceType::kCpu, {}, nullptr)) gemm = d->factory;
  if (!matmul || !gemm) return;  // registered before the linear kernels: nothing to compose
  KernelDef def;
  def.domain = "com.tunnx";
  def.op_type = "FusedMatMul";
  def.types = {DataType::kFloat32};
  def.name = "cpu/reference/FusedMatMul";
  def.factory = [matmul, gemm](const KernelInit& init) -> std::unique_ptr<Kernel> {
    const std::string op = init.attr_string("op", "");
    if (op != "MatMul" && op != "Gemm") throw init.error("op must be \"MatMul\" or \"Gemm\", got \"" + op + "\"");
    const bool is_gemm = op == "Gemm";
    const bool has_bias = init.attr_int("has_bias", 0) != 0;
    const size_t operands = is_gemm ? 3 : 2;
    if (init.num_inputs() < operands + (has_bias ? 1 : 0)) throw init.error("too few inputs");
    auto inner = std::make_unique<ir::Node>();
    inner->name = init.node().name;
    inner->op_type = op;
    inner->inputs.assign(init.node().inputs.begin(), init.node().inputs.begin() + static_cast<long>(operands));
    inner->outputs = init.node().outputs;
    for (const char* name : {"transA", "transB", "alpha", "beta"})
      if (const ir::Attribute* a = init.node().attribute(name)) inner->attributes.push_back(*a);
    std::vector<DataType> types;
    for (size_t i = 0; i < operands; ++i) types.push_back(init.input_type(i));
    std::unique_ptr<Kernel> product = (is_gemm ? gemm : matmul)(KernelInit(*inner, 13, types, {}));
    return std::make_unique<FusedMatMul>(std::move(inner), std::move(product), is_gemm, has_bias,
                                         parse_activation(init));
  };
  r.add(std::move(def));
}

}  // namespace tunnx::cpu
