// com.tunnx training losses and dropout, and the gradients of ONNX's classification losses; contracts
// in runtime/core/ops/gradient_ops.md. Reference kernels for the float types: every value is read as
// double, computed in double and rounded once into the prediction's dtype, so float64 keeps its
// precision and the finite-difference checks hold.
//
// Loss matches PyTorch's reduction='mean' losses: nn.MSELoss, nn.L1Loss (d|x|/dx at 0 is 0, as
// torch.sign), nn.BCEWithLogitsLoss and nn.CrossEntropyLoss(ignore_index, label_smoothing), except
// that a cross entropy whose every target is ignored is 0 rather than PyTorch's 0/0 = NaN.
#include <algorithm>
#include <cmath>
#include <limits>
#include <random>

#include "runtime/cpu/kernels/common.h"
#include "runtime/cpu/kernels/grad_common.h"
#include "runtime/cpu/kernels/kernels.h"
#include "runtime/cpu/kernels/loss.h"

namespace tunnx::cpu {
namespace {

void require_float(const KernelContext& ctx, const Tensor& t, const char* what) {
  if (!is_floating_point(t.dtype()))
    throw ctx.error(std::string(what) + " must be a float tensor, got " + to_string(t.dtype()));
}

// dLoss of a scalar loss: one value.
double read_dloss(const KernelContext& ctx, const Tensor& dloss) {
  if (dloss.numel() != 1)
    throw ctx.error("dLoss must be a scalar (the loss is one value), got shape " + dims_to_string(dloss.dims()));
  return read_scalar(dloss, ctx);
}

// Log-softmax over the classes (axis 1) of x viewed as [N, C, D], max-shifted so exp cannot overflow.
std::vector<double> log_softmax_classes(const std::vector<double>& x, const LossLayout& l) {
  std::vector<double> out(x.size());
  for (int64_t n = 0; n < l.n; ++n)
    for (int64_t d = 0; d < l.d; ++d) {
      auto at = [&](int64_t c) { return static_cast<size_t>((n * l.c + c) * l.d + d); };
      double mx = -std::numeric_limits<double>::infinity();
      for (int64_t c = 0; c < l.c; ++c) mx = std::max(mx, x[at(c)]);
      double sum = 0;
      for (int64_t c = 0; c < l.c; ++c) sum += std::exp(x[at(c)] - mx);
      const double lse = std::isinf(mx) ? mx : mx + std::log(sum);
      for (int64_t c = 0; c < l.c; ++c) out[at(c)] = x[at(c)] - lse;
    }
  return out;
}

// ---- com.tunnx Loss / LossGrad --------------------------------------------------------------------

enum class LossKind { kMse, kL1, kBceWithLogits, kCrossEntropy };

struct LossSpec {
  LossKind kind = LossKind::kMse;
  int64_t ignore_index = -100;
  double label_smoothing = 0;
};

LossSpec parse_loss_spec(const KernelInit& init) {
  LossSpec spec;
  const std::string kind = init.attr_string("kind", "");
  if (kind == "mse") spec.kind = LossKind::kMse;
  else if (kind == "l1") spec.kind = LossKind::kL1;
  else if (kind == "bce_with_logits") spec.kind = LossKind::kBceWithLogits;
  else if (kind == "cross_entropy") spec.kind = LossKind::kCrossEntropy;
  else throw init.error("kind must be \"mse\", \"l1\", \"bce_with_logits\" or \"cross_entropy\", got \"" + kind + "\"");
  spec.ignore_index = init.attr_int("ignore_index", -100);
  spec.label_smoothing = init.attr_float("label_smoothing", 0.0f);
  if (!(spec.label_smoothing >= 0 && spec.label_smoothing <= 1))
    throw init.error("label_smoothing must be in [0, 1], got " + std::to_string(spec.label_smoothing));
  return spec;
}

// mse, l1, bce_with_logits: the mean over every element of a per-element loss. Returns the loss and,
// when `grad` is given, fills it with dloss * d loss / d prediction.
double elementwise_loss(const KernelContext& ctx, const LossSpec& spec, const Tensor& pred, const Tensor& target,
                        double dloss, std::vector<double>* grad) {
  if (target.dims() != pred.dims())
    throw ctx.error("target of shape " + dims_to_string(target.dims()) + " must match the prediction's shape " +
                    dims_to_string(pred.dims()));
  if (target.dtype() != pred.dtype())
    throw ctx.error(std::string("target has dtype ") + to_string(target.dtype()) + ", prediction has " +
                    to_string(pred.dtype()));
  const std::vector<double> x = read_double_values(pred, ctx), t = read_double_values(target, ctx);
  const double count = static_cast<double>(x.size());  // 0 elements: 0/0 = NaN, as PyTorch
  double total = 0;
  if (grad) grad->assign(x.size(), 0.0);
  for (size_t i = 0; i < x.size(); ++i) {
    const double diff = x[i] - t[i];
    double value = 0, slope = 0;
    switch (spec.kind) {
      case LossKind::kMse:
        value = diff * diff;
        slope = 2 * diff;
        break;
      case LossKind::kL1:
        value = std::abs(diff);
        slope = diff > 0 ? 1.0 : diff < 0 ? -1.0 : 0.0;
        break;
      default:  // bce_with_logits: max(x,0) - x*t + log(1+exp(-|x|)), stable for any |x|
        value = std::max(x[i], 0.0) - x[i] * t[i] + std::log1p(std::exp(-std::abs(x[i])));
        slope = sigmoid(x[i]) - t[i];
        break;
    }
    total += value;
    if (grad) (*grad)[i] = dloss * slope / count;
  }
  return total / count;
}

// cross_entropy: logits [N, C, d...], int targets [N, d...]. Per kept position,
// (1-eps) * -logp[target] + eps * mean_c(-logp[c]); the mean over kept positions (0 when none).
double cross_entropy_loss(const KernelContext& ctx, const LossSpec& spec, const Tensor& pred, const Tensor& target,
                          double dloss, std::vector<double>* grad) {
  const LossLayout l = check_loss_shapes(ctx, pred, target, nullptr);
  const std::vector<int64_t> labels = read_int_values(target, ctx);
  for (size_t i = 0; i < labels.size(); ++i)
    if (labels[i] != spec.ignore_index) check_class(ctx, labels[i], static_cast<int64_t>(i), l, spec.ignore_index);
  const std::vector<double> logp = log_softmax_classes(read_double_values(pred, ctx), l);
  const double eps = spec.label_smoothing, classes = static_cast<double>(l.c);
  double total = 0;
  int64_t kept = 0;
  for (int64_t n = 0; n < l.n; ++n)
    for (int64_t d = 0; d < l.d; ++d) {
      const int64_t t = labels[static_cast<size_t>(n * l.d + d)];
      if (t == spec.ignore_index) continue;
      double mean_neg = 0;
      for (int64_t c = 0; c < l.c; ++c) mean_neg -= logp[static_cast<size_t>((n * l.c + c) * l.d + d)];
      mean_neg /= classes;
      total += (1 - eps) * -logp[static_cast<size_t>((n * l.c + t) * l.d + d)] + eps * mean_neg;
      ++kept;
    }
  if (grad) {
    grad->assign(logp.size(), 0.0);
    const double s = kept ? dloss / static_cast<double>(kept) : 0.0;
    for (int64_t n = 0; n < l.n && kept; ++n)
      for (int64_t d = 0; d < l.d; ++d) {
        const int64_t t = labels[static_cast<size_t>(n * l.d + d)];
        if (t == spec.ignore_index) continue;
        for (int64_t c = 0; c < l.c; ++c) {
          const size_t k = static_cast<size_t>((n * l.c + c) * l.d + d);
          (*grad)[k] = s * (std::exp(logp[k]) - (c == t ? 1 - eps : 0.0) - eps / classes);
        }
      }
  }
  return kept ? total / static_cast<double>(kept) : 0.0;
}

double evaluate_loss(const KernelContext& ctx, const LossSpec& spec, const Tensor& pred, const Tensor& target,
                     double dloss, std::vector<double>* grad) {
  require_float(ctx, pred, "prediction");
  if (spec.kind == LossKind::kCrossEntropy) return cross_entropy_loss(ctx, spec, pred, target, dloss, grad);
  return elementwise_loss(ctx, spec, pred, target, dloss, grad);
}

// Loss(prediction, target) -> scalar loss.
std::unique_ptr<Kernel> make_loss(const KernelInit& init) {
  const LossSpec spec = parse_loss_spec(init);
  return make_kernel([spec](KernelContext& ctx) {
    const Tensor& pred = ctx.input(0);
    const double loss = evaluate_loss(ctx, spec, pred, ctx.input(1), 1.0, nullptr);
    write_output(ctx, 0, pred.dtype(), {}, {loss});
  });
}

// LossGrad(dLoss [], prediction, target) -> dPrediction.
std::unique_ptr<Kernel> make_loss_grad(const KernelInit& init) {
  const LossSpec spec = parse_loss_spec(init);
  return make_kernel([spec](KernelContext& ctx) {
    const Tensor& pred = ctx.input(1);
    const double dloss = read_dloss(ctx, ctx.input(0));
    std::vector<double> grad;
    evaluate_loss(ctx, spec, pred, ctx.input(2), dloss, &grad);
    write_output(ctx, 0, pred.dtype(), pred.dims(), grad);
  });
}

// ---- Gradients of ONNX SoftmaxCrossEntropyLoss / NegativeLogLikelihoodLoss -------------------------
// The forward kernels are runtime/cpu/kernels/loss.cc; the attributes and shapes are read by the same
// functions (loss.h).

// Per sample i = (n, d): the factor its -logp[n, target, d] has in dLoss * d(loss) — dLoss (or
// dLoss[i] for "none") times the class weight, divided by the weight sum for "mean"; 0 when ignored.
// Inputs: dLoss, scores [N, C, d...], labels [N, d...], [weight [C], checked by check_loss_shapes].
std::vector<double> sample_factors(const KernelContext& ctx, const LossAttrs& spec, const LossLayout& l,
                                   const std::vector<int64_t>& labels) {
  std::vector<double> w;
  if (ctx.has_input(3)) w = read_double_values(ctx.input(3), ctx);
  const Tensor& dloss = ctx.input(0);
  std::vector<double> dl;
  if (spec.reduction == LossReduction::kNone) {
    if (dloss.dims() != ctx.input(2).dims())
      throw ctx.error("dLoss of shape " + dims_to_string(dloss.dims()) + " must match the per-sample loss " +
                      dims_to_string(ctx.input(2).dims()) + " (reduction \"none\")");
    dl = read_double_values(dloss, ctx);
  } else {
    dl.assign(labels.size(), read_dloss(ctx, dloss));
  }
  std::vector<double> factor(labels.size(), 0.0);
  double weight_sum = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    const int64_t t = labels[i];
    if (spec.ignore_index && t == *spec.ignore_index) continue;
    check_class(ctx, t, static_cast<int64_t>(i), l, spec.ignore_index);
    const double wc = w.empty() ? 1.0 : w[static_cast<size_t>(t)];
    factor[i] = dl[i] * wc;
    weight_sum += wc;
  }
  // All weights zero (every sample ignored): the forward is 0/0 and nothing depends on the scores.
  if (spec.reduction == LossReduction::kMean)
    for (double& f : factor) f = weight_sum != 0 ? f / weight_sum : 0.0;
  return factor;
}

// SoftmaxCrossEntropyLossGrad(dLoss, scores, labels, [weight]) -> dScores = f_i * (softmax - onehot).
// NegativeLogLikelihoodLossGrad(dLoss, input, target, [weight]) -> dInput = -f_i at the target class.
std::unique_ptr<Kernel> make_onnx_loss_grad(const KernelInit& init, bool softmax) {
  const LossAttrs spec = parse_loss_attrs(init);
  return make_kernel([spec, softmax](KernelContext& ctx) {
    const Tensor& scores = ctx.input(1);
    require_float(ctx, scores, "input");
    const LossLayout l = check_loss_shapes(ctx, scores, ctx.input(2), ctx.has_input(3) ? &ctx.input(3) : nullptr);
    const std::vector<int64_t> labels = read_int_values(ctx.input(2), ctx);
    const std::vector<double> factor = sample_factors(ctx, spec, l, labels);
    std::vector<double> grad(static_cast<size_t>(scores.numel()), 0.0);
    std::vector<double> logp;
    if (softmax) logp = log_softmax_classes(read_double_values(scores, ctx), l);
    for (int64_t n = 0; n < l.n; ++n)
      for (int64_t d = 0; d < l.d; ++d) {
        const size_t i = static_cast<size_t>(n * l.d + d);
        if (factor[i] == 0) continue;
        const int64_t t = labels[i];
        auto at = [&](int64_t c) { return static_cast<size_t>((n * l.c + c) * l.d + d); };
        if (softmax)
          for (int64_t c = 0; c < l.c; ++c) grad[at(c)] = factor[i] * std::exp(logp[at(c)]);
        grad[at(t)] -= factor[i];
      }
    write_output(ctx, 0, scores.dtype(), scores.dims(), grad);
  });
}

// ---- TrainDropout / DropoutGrad ---------------------------------------------------------------------

double read_ratio(const KernelInit& init) {
  const double ratio = init.attr_float("ratio", 0.5f);
  if (!(ratio >= 0 && ratio < 1)) throw init.error("ratio must be in [0, 1), got " + std::to_string(ratio));
  return ratio;
}

// FNV-1a: a hash of the node name that is the same on every platform and build, so a checkpointed
// seed replays the same masks anywhere.
uint64_t name_hash(const std::string& name) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char ch : name) h = (h ^ ch) * 1099511628211ull;
  return h;
}

// TrainDropout(X, seed int64 []) -> Y = X * mask / (1 - ratio), mask bool. The generator is seeded
// from the seed and the node's name, so two dropout nodes fed the same step seed drop different
// elements, and the same seed gives the same mask again (finite differences, recomputation).
std::unique_ptr<Kernel> make_train_dropout(const KernelInit& init) {
  const double ratio = read_ratio(init);
  const uint64_t salt = name_hash(init.node().name);
  return make_kernel([ratio, salt](KernelContext& ctx) {
    const Tensor& x = ctx.input(0);
    if (!ctx.has_input(1)) throw ctx.error("input 1 (seed, an int64 scalar) is required");
    const std::vector<int64_t> seed = read_int_values(ctx.input(1), ctx);
    if (seed.size() != 1) throw ctx.error("seed must be a scalar, got shape " + dims_to_string(ctx.input(1).dims()));
    std::vector<bool> keep(static_cast<size_t>(x.numel()), true);
    if (ratio > 0) {
      std::mt19937_64 rng(static_cast<uint64_t>(seed[0]) * 0x9E3779B97F4A7C15ull ^ salt);
      std::uniform_real_distribution<double> uniform(0.0, 1.0);
      for (size_t i = 0; i < keep.size(); ++i) keep[i] = uniform(rng) >= ratio;
    }
    const double scale = 1.0 / (1.0 - ratio);
    dispatch(x.dtype(), ctx, FloatTypes{}, [&](auto tag) {
      using T = typename decltype(tag)::type;
      const T* in = data<T>(x);
      T* out = mutable_data<T>(ctx.allocate_output(0, x.dtype(), x.dims()));
      for (size_t i = 0; i < keep.size(); ++i) out[i] = keep[i] ? from_double<T>(to_double(in[i]) * scale) : from_double<T>(0.0);
    });
    if (ctx.num_outputs() > 1 && ctx.output_wanted(1)) {
      bool* mask = mutable_data<bool>(ctx.allocate_output(1, DataType::kBool, x.dims()));
      for (size_t i = 0; i < keep.size(); ++i) mask[i] = keep[i];
    }
  });
}

// DropoutGrad(dY, mask, [ratio], [training_mode]) -> dX = dY * mask / (1 - ratio). The optional inputs
// serve ONNX Dropout (opset 12+), whose ratio and training_mode are inputs: a ratio input overrides
// the attribute, and a false training_mode (the forward was the identity) gives dX = dY.
std::unique_ptr<Kernel> make_dropout_grad(const KernelInit& init) {
  const double attr_ratio = read_ratio(init);
  return make_kernel([attr_ratio](KernelContext& ctx) {
    const Tensor& dy = ctx.input(0);
    const Tensor& mask = ctx.input(1);
    if (mask.dtype() != DataType::kBool)
      throw ctx.error(std::string("mask must be bool, got ") + to_string(mask.dtype()));
    if (mask.dims() != dy.dims())
      throw ctx.error("mask of shape " + dims_to_string(mask.dims()) + " does not match dY of shape " +
                      dims_to_string(dy.dims()));
    const bool training = !ctx.has_input(3) || read_scalar(ctx.input(3), ctx) != 0;
    const double ratio = ctx.has_input(2) ? read_scalar(ctx.input(2), ctx) : attr_ratio;
    if (training && !(ratio >= 0 && ratio < 1))
      throw ctx.error("ratio must be in [0, 1), got " + std::to_string(ratio));
    const double scale = training ? 1.0 / (1.0 - ratio) : 1.0;
    const bool* keep = data<bool>(mask);
    dispatch(dy.dtype(), ctx, FloatTypes{}, [&](auto tag) {
      using T = typename decltype(tag)::type;
      const T* in = data<T>(dy);
      T* out = mutable_data<T>(ctx.allocate_output(0, dy.dtype(), dy.dims()));
      for (int64_t i = 0; i < dy.numel(); ++i) out[i] = keep[i] ? from_double<T>(to_double(in[i]) * scale) : from_double<T>(0.0);
    });
  });
}

}  // namespace

void register_train_loss_kernels(KernelRegistry& registry) {
  add_grad_kernel(registry, "Loss", make_loss);
  add_grad_kernel(registry, "LossGrad", make_loss_grad, 1);
  add_grad_kernel(registry, "SoftmaxCrossEntropyLossGrad",
                  [](const KernelInit& init) { return make_onnx_loss_grad(init, true); }, 1);
  add_grad_kernel(registry, "NegativeLogLikelihoodLossGrad",
                  [](const KernelInit& init) { return make_onnx_loss_grad(init, false); }, 1);
  add_grad_kernel(registry, "TrainDropout", make_train_dropout);
  add_grad_kernel(registry, "DropoutGrad", make_dropout_grad);
}

}  // namespace tunnx::cpu
