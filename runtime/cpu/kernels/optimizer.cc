// Optimizer steps of the ai.onnx.preview.training domain (opset 1): Adagrad, Adam, Momentum.
//
// Inputs are R (scalar learning rate, float or double), T (scalar int64 update count), then for n
// optimized tensors the variadic groups X_1..X_n, G_1..G_n and each state S_1..S_n (Adagrad: H;
// Momentum: V; Adam: V then H). Outputs are X_new_1..X_new_n followed by each state's new values in
// the same order. Every G and state tensor has its X's shape and dtype. Each element is updated on
// its own (the spec's "concatenate the tensors" reading is the same thing), computed in double and
// rounded once into the tensors' dtype.
#include <array>
#include <cmath>

#include "runtime/cpu/kernels/common.h"
#include "runtime/cpu/kernels/kernels.h"

namespace tunnx::cpu {
namespace {

constexpr const char* kTrainingDomain = "ai.onnx.preview.training";

// The scalars of one step: R as given and T as an integer.
struct StepScalars {
  double r = 0;
  int64_t t = 0;
};

StepScalars read_step_scalars(const KernelContext& ctx) {
  StepScalars s;
  const Tensor& r = ctx.input(0);
  if (!is_floating_point(r.dtype()))
    throw ctx.error(std::string("R (learning rate) must be a float scalar, got ") + to_string(r.dtype()));
  if (r.numel() != 1) throw ctx.error("R (learning rate) must be a scalar, got shape " + dims_to_string(r.dims()));
  s.r = read_scalar(r, ctx);
  const Tensor& t = ctx.input(1);
  if (t.dtype() != DataType::kInt64)
    throw ctx.error(std::string("T (update count) must be an int64 scalar, got ") + to_string(t.dtype()));
  if (t.numel() != 1) throw ctx.error("T (update count) must be a scalar, got shape " + dims_to_string(t.dims()));
  s.t = data<int64_t>(t)[0];
  return s;
}

// How many tensors a node optimizes: (inputs - 2) / groups, with `groups` tensors per optimized X
// (X, G and the states) and groups - 1 outputs each. Checked once, when the kernel is built.
int64_t count_optimized(const KernelInit& init, int64_t groups) {
  const int64_t tensors = static_cast<int64_t>(init.num_inputs()) - 2;
  if (tensors <= 0 || tensors % groups != 0)
    throw init.error("expects R, T and " + std::to_string(groups) + " groups of equally many tensors, got " +
                     std::to_string(init.num_inputs()) + " inputs");
  const int64_t n = tensors / groups;
  const int64_t outputs = static_cast<int64_t>(init.node().outputs.size());
  if (outputs != n * (groups - 1))
    throw init.error("optimizes " + std::to_string(n) + " tensor(s), so it must have " +
                     std::to_string(n * (groups - 1)) + " outputs, got " + std::to_string(outputs));
  return n;
}

// Runs `update` over every element of the n optimized tensors. Kinds = 1 + number of states
// (Adagrad, Momentum: 2; Adam: 3); inputs are [X, G, S...] per tensor, outputs [X_new, S_new...].
// update(x, g, const double* states, double* new_values) writes new_values[0] = x_new and
// new_values[1..] = the new states.
template <size_t Kinds, typename Update>
void run_step(KernelContext& ctx, int64_t n, Update update) {
  constexpr size_t kInputs = Kinds + 1;  // X, G, states
  const Tensor& x0 = ctx.input(2);
  dispatch(x0.dtype(), ctx, FloatTypes{}, [&](auto tag) {
    using T = typename decltype(tag)::type;
    static const char* const kNames[] = {"X", "G", "state 1", "state 2"};
    for (int64_t j = 0; j < n; ++j) {
      std::array<const T*, kInputs> in{};
      const Tensor& x = ctx.input(static_cast<size_t>(2 + j));
      for (size_t k = 0; k < kInputs; ++k) {
        const Tensor& t = ctx.input(static_cast<size_t>(2 + static_cast<int64_t>(k) * n + j));
        if (t.dtype() != x0.dtype())
          throw ctx.error(std::string(kNames[k]) + " of tensor " + std::to_string(j + 1) + " has dtype " +
                          to_string(t.dtype()) + ", the first X has " + to_string(x0.dtype()));
        if (t.dims() != x.dims())
          throw ctx.error(std::string(kNames[k]) + " of tensor " + std::to_string(j + 1) + " has shape " +
                          dims_to_string(t.dims()) + ", its X has " + dims_to_string(x.dims()));
        in[k] = data<T>(t);
      }
      std::array<T*, Kinds> out{};
      for (size_t k = 0; k < Kinds; ++k) {
        const size_t slot = static_cast<size_t>(static_cast<int64_t>(k) * n + j);
        out[k] = ctx.output_wanted(slot) ? mutable_data<T>(ctx.allocate_output(slot, x0.dtype(), x.dims())) : nullptr;
      }
      std::array<double, Kinds - 1> states{};
      std::array<double, Kinds> results{};
      for (int64_t e = 0; e < x.numel(); ++e) {
        for (size_t k = 0; k + 1 < Kinds; ++k) states[k] = to_double(in[k + 2][e]);
        update(to_double(in[0][e]), to_double(in[1][e]), states.data(), results.data());
        for (size_t k = 0; k < Kinds; ++k)
          if (out[k]) out[k][e] = from_double<T>(results[k]);
      }
    }
  });
}

void add_training_kernel(KernelRegistry& r, const std::string& op_type, KernelFactory factory) {
  KernelDef def;
  def.domain = kTrainingDomain;
  def.op_type = op_type;
  def.since_version = 1;
  def.until_version = INT_MAX;
  def.type_input = 2;  // the first X
  def.types = kFloatTypes;
  def.factory = std::move(factory);
  r.add(std::move(def));
}

// Adagrad:
//   r = R / (1 + T * decay_factor);  G' = norm_coefficient * X + G;  H_new = H + G'^2
//   X_new = X - r * G' / (sqrt(H_new) + epsilon)
std::unique_ptr<Kernel> make_adagrad(const KernelInit& init) {
  const int64_t n = count_optimized(init, 3);
  const double norm = init.attr_float("norm_coefficient", 0.0f);
  const double decay = init.attr_float("decay_factor", 0.0f);
  const double epsilon = init.attr_float("epsilon", 1e-6f);
  return make_kernel([=](KernelContext& ctx) {
    const StepScalars s = read_step_scalars(ctx);
    const double rate = s.r / (1.0 + static_cast<double>(s.t) * decay);
    run_step<2>(ctx, n, [&](double x, double g, const double* st, double* res) {
      const double gr = norm * x + g;
      const double h = st[0] + gr * gr;
      res[0] = x - rate * gr / (std::sqrt(h) + epsilon);
      res[1] = h;
    });
  });
}

// Adam:
//   G' = norm_coefficient * X + G;  V_new = alpha * V + (1 - alpha) * G'
//   H_new = beta * H + (1 - beta) * G'^2
//   R' = T > 0 ? R * sqrt(1 - beta^T) / (1 - alpha^T) : R   (bias correction)
//   X_new = (1 - norm_coefficient_post) * (X - R' * V_new / (sqrt(H_new) + epsilon))
std::unique_ptr<Kernel> make_adam(const KernelInit& init) {
  const int64_t n = count_optimized(init, 4);
  const double alpha = init.attr_float("alpha", 0.9f);
  const double beta = init.attr_float("beta", 0.999f);
  const double epsilon = init.attr_float("epsilon", 1e-6f);
  const double norm = init.attr_float("norm_coefficient", 0.0f);
  const double norm_post = init.attr_float("norm_coefficient_post", 0.0f);
  return make_kernel([=](KernelContext& ctx) {
    const StepScalars s = read_step_scalars(ctx);
    double rate = s.r;
    if (s.t > 0) {
      const double t = static_cast<double>(s.t);
      rate = s.r * std::sqrt(1.0 - std::pow(beta, t)) / (1.0 - std::pow(alpha, t));
    }
    run_step<3>(ctx, n, [&](double x, double g, const double* st, double* res) {
      const double gr = norm * x + g;
      const double v = alpha * st[0] + (1.0 - alpha) * gr;
      const double h = beta * st[1] + (1.0 - beta) * gr * gr;
      res[0] = (1.0 - norm_post) * (x - rate * v / (std::sqrt(h) + epsilon));
      res[1] = v;
      res[2] = h;
    });
  });
}

// Momentum (alpha, beta, mode and norm_coefficient are required):
//   G' = norm_coefficient * X + G;  beta' = T > 0 ? beta : 1;  V_new = alpha * V + beta' * G'
//   standard: X_new = X - R * V_new;  nesterov: X_new = X - R * (G' + alpha * V_new)
std::unique_ptr<Kernel> make_momentum(const KernelInit& init) {
  const int64_t n = count_optimized(init, 3);
  for (const char* name : {"alpha", "beta", "mode", "norm_coefficient"}) init.required_attr(name);
  const double alpha = init.attr_float("alpha", 0.0f);
  const double beta = init.attr_float("beta", 0.0f);
  const double norm = init.attr_float("norm_coefficient", 0.0f);
  const std::string mode = init.attr_string("mode", "standard");
  if (mode != "standard" && mode != "nesterov")
    throw init.error("mode must be \"standard\" or \"nesterov\", got \"" + mode + "\"");
  const bool nesterov = mode == "nesterov";
  return make_kernel([=](KernelContext& ctx) {
    const StepScalars s = read_step_scalars(ctx);
    const double beta_adjusted = s.t > 0 ? beta : 1.0;
    run_step<2>(ctx, n, [&](double x, double g, const double* st, double* res) {
      const double gr = norm * x + g;
      const double v = alpha * st[0] + beta_adjusted * gr;
      res[0] = nesterov ? x - s.r * (gr + alpha * v) : x - s.r * v;
      res[1] = v;
    });
  });
}

}  // namespace

void register_optimizer_kernels(KernelRegistry& r) {
  add_training_kernel(r, "Adagrad", make_adagrad);
  add_training_kernel(r, "Adam", make_adam);
  add_training_kernel(r, "Momentum", make_momentum);
}

}  // namespace tunnx::cpu
