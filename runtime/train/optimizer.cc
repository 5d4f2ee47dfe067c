#include "runtime/train/optimizer.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace tunnx::train {
namespace {

Tensor& state_of(StoredTensor& p, const std::string& key, bool* created) {
  for (auto& [name, t] : p.optimizer_state)
    if (name == key) {
      if (created) *created = false;
      return t;
    }
  p.optimizer_state.emplace_back(key, Tensor(p.value.dtype(), p.value.dims()));
  if (created) *created = true;
  return p.optimizer_state.back().second;
}

// The arithmetic follows torch's single-tensor paths in the parameter's dtype; scalars (lr, bias
// corrections) are computed in double as Python does and then used in T, as torch casts them. Each
// element goes through the whole rule in one pass (torch's sequence of tensor ops, element by
// element: the same operations in the same order, so the same results), reading the gradient once.
template <typename T>
void update_one(const OptimizerOptions& o, double lr, int64_t step, StoredTensor& p) {
  const int64_t n = p.value.numel();
  const T* grad = p.grad.data_as<T>();
  const double wd_d = o.effective_weight_decay();
  const T wd = static_cast<T>(wd_d);
  T* w = p.value.mutable_data_as<T>();  // bumps the version: packed copies are remade

  if (o.kind == OptimizerKind::kSgd) {
    const T rate = static_cast<T>(lr);
    if (o.momentum == 0) {
      for (int64_t i = 0; i < n; ++i) {
        const T g = wd_d != 0 ? grad[i] + wd * w[i] : grad[i];
        w[i] = w[i] - rate * g;
      }
      return;
    }
    bool created = false;
    T* buf = state_of(p, "momentum_buffer", &created).template mutable_data_as<T>();
    const T mu = static_cast<T>(o.momentum), keep = static_cast<T>(1 - o.dampening);
    for (int64_t i = 0; i < n; ++i) {
      T g = wd_d != 0 ? grad[i] + wd * w[i] : grad[i];
      buf[i] = created ? g : buf[i] * mu + keep * g;
      g = o.nesterov ? g + mu * buf[i] : buf[i];
      w[i] = w[i] - rate * g;
    }
    return;
  }

  // Adam and AdamW.
  const bool decoupled = o.kind == OptimizerKind::kAdamW;
  const T decay = static_cast<T>(1 - lr * wd_d);
  T* m = state_of(p, "exp_avg", nullptr).template mutable_data_as<T>();
  T* v = state_of(p, "exp_avg_sq", nullptr).template mutable_data_as<T>();
  const T b1 = static_cast<T>(1 - o.beta1), b2 = static_cast<T>(o.beta2), one_minus_b2 = static_cast<T>(1 - o.beta2);
  const double bias1 = 1 - std::pow(o.beta1, static_cast<double>(step));
  const double bias2 = 1 - std::pow(o.beta2, static_cast<double>(step));
  const T step_size = static_cast<T>(lr / bias1);
  const T bias2_sqrt = static_cast<T>(std::sqrt(bias2));
  const T eps = static_cast<T>(o.eps);
  for (int64_t i = 0; i < n; ++i) {
    T g = grad[i];
    if (decoupled)
      w[i] = w[i] * decay;
    else if (wd_d != 0)
      g = g + wd * w[i];
    m[i] = m[i] + b1 * (g - m[i]);  // exp_avg.lerp_(grad, 1 - beta1)
    v[i] = v[i] * b2 + one_minus_b2 * g * g;
    const T denom = std::sqrt(v[i]) / bias2_sqrt + eps;
    w[i] = w[i] - step_size * (m[i] / denom);
  }
}

}  // namespace

void optimizer_update(const OptimizerOptions& options, double lr, int64_t step, const std::vector<StoredTensor*>& params) {
  for (StoredTensor* p : params)
    if (p->grad.defined() && p->value.dtype() != DataType::kFloat32 && p->value.dtype() != DataType::kFloat64)
      throw Error(ErrorCode::kUnsupported,
                  std::string("optimizers update float32 and float64 parameters, not ") + to_string(p->value.dtype()),
                  {.tensor = p->name});
  // Parameters are independent: they are split among the caller's threads (the trainer's count), the
  // largest first so no thread is left with a big one at the end. Each element's update is the same
  // whichever thread runs it.
  std::vector<StoredTensor*> order;
  for (StoredTensor* p : params)
    if (p->grad.defined()) order.push_back(p);  // no path to the loss: torch skips a parameter whose grad is None
  std::stable_sort(order.begin(), order.end(),
                   [](const StoredTensor* a, const StoredTensor* b) { return a->value.numel() > b->value.numel(); });
  const int64_t count = static_cast<int64_t>(order.size());
#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t i = 0; i < count; ++i) {
    StoredTensor& p = *order[static_cast<size_t>(i)];
    if (p.value.dtype() == DataType::kFloat32) update_one<float>(options, lr, step, p);
    else update_one<double>(options, lr, step, p);
  }
}

double clip_grad_norm(const std::vector<StoredTensor*>& params, double max_norm) {
  double sum = 0;
  for (StoredTensor* p : params) {
    if (!p->grad.defined()) continue;
    const int64_t n = p->grad.numel();
    if (p->grad.dtype() == DataType::kFloat64) {
      const double* g = p->grad.data_as<double>();
      for (int64_t i = 0; i < n; ++i) sum += g[i] * g[i];
    } else {
      const float* g = p->grad.data_as<float>();
      for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(g[i]) * g[i];
    }
  }
  const double norm = std::sqrt(sum);
  const double coef = max_norm / (norm + 1e-6);
  if (coef >= 1) return norm;
  for (StoredTensor* p : params) {
    if (!p->grad.defined()) continue;
    const int64_t n = p->grad.numel();
    if (p->grad.dtype() == DataType::kFloat64) {
      double* g = p->grad.mutable_data_as<double>();
      for (int64_t i = 0; i < n; ++i) g[i] *= coef;
    } else {
      float* g = p->grad.mutable_data_as<float>();
      const float c = static_cast<float>(coef);
      for (int64_t i = 0; i < n; ++i) g[i] *= c;
    }
  }
  return norm;
}

double scheduled_lr(const ScheduleOptions& s, double base_lr, int64_t steps) {
  using Kind = ScheduleOptions::Kind;
  if (s.warmup_steps > 0 && steps < s.warmup_steps) {
    // LinearLR(start_factor = 1/warmup_steps, end_factor = 1, total_iters = warmup_steps)
    const double start = 1.0 / static_cast<double>(s.warmup_steps);
    return base_lr * (start + (1 - start) * static_cast<double>(steps) / static_cast<double>(s.warmup_steps));
  }
  const int64_t t = steps - std::max<int64_t>(s.warmup_steps, 0);
  switch (s.kind) {
    case Kind::kConstant: return base_lr;
    case Kind::kStep: return base_lr * std::pow(s.gamma, static_cast<double>(t / std::max<int64_t>(s.step_size, 1)));
    case Kind::kCosine: {
      const double tm = static_cast<double>(std::max<int64_t>(s.t_max, 1));
      const double tc = static_cast<double>(std::min<int64_t>(t, s.t_max));
      return s.eta_min + (base_lr - s.eta_min) * (1 + std::cos(std::numbers::pi * tc / tm)) / 2;
    }
    case Kind::kLinear: {
      const double total = static_cast<double>(std::max<int64_t>(s.total_iters, 1));
      const double tc = static_cast<double>(std::min<int64_t>(t, s.total_iters));
      return base_lr * (s.start_factor + (s.end_factor - s.start_factor) * tc / total);
    }
  }
  return base_lr;
}

}  // namespace tunnx::train
