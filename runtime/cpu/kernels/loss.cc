// Classification losses: NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss (opset 12 on).
//
// Both read scores [N, C, d1..dk] (k >= 0) and integer labels [N, d1..dk], viewed as [N, C, D] and
// [N, D] with D = d1*..*dk. Per sample i = (n, d) with class c = labels[n, d]:
//   loss[i] = -logp[n, c, d] * w[i],  w[i] = weight[c] (1 without a weight input),
// and a sample whose label equals ignore_index has loss 0 and w 0. Reductions: "none" keeps the
// [N, d1..dk] losses; "sum" is sum(loss); "mean" is sum(loss) / sum(w), so ignored samples leave the
// denominator and weights average rather than scale. When every sample is ignored, "mean" is 0/0 =
// NaN, as the spec's function body and PyTorch give.
// Sums and log-softmax are computed in double and rounded once into the input's dtype.
#include <algorithm>
#include <limits>
#include <optional>

#include "runtime/cpu/kernels/common.h"
#include "runtime/cpu/kernels/kernels.h"
#include "runtime/cpu/kernels/loss.h"

namespace tunnx::cpu {

LossAttrs parse_loss_attrs(const KernelInit& init) {
  LossAttrs attrs;
  const std::string reduction = init.attr_string("reduction", "mean");
  if (reduction == "none") attrs.reduction = LossReduction::kNone;
  else if (reduction == "sum") attrs.reduction = LossReduction::kSum;
  else if (reduction == "mean") attrs.reduction = LossReduction::kMean;
  else throw init.error("reduction must be \"none\", \"sum\" or \"mean\", got \"" + reduction + "\"");
  if (init.has_attr("ignore_index")) attrs.ignore_index = init.attr_int("ignore_index", 0);
  return attrs;
}

LossLayout check_loss_shapes(const KernelContext& ctx, const Tensor& scores, const Tensor& labels,
                             const Tensor* weight) {
  const auto& sd = scores.dims();
  if (sd.size() < 2)
    throw ctx.error("input must have shape [N, C, d1..dk], got " + dims_to_string(sd));
  std::vector<int64_t> want(sd.begin(), sd.end());
  want.erase(want.begin() + 1);
  if (labels.dims() != want)
    throw ctx.error("target of shape " + dims_to_string(labels.dims()) + " does not match input of shape " +
                    dims_to_string(sd) + " (expected " + dims_to_string(want) + ")");
  if (labels.dtype() != DataType::kInt32 && labels.dtype() != DataType::kInt64)
    throw ctx.error(std::string("target must be int32 or int64, got ") + to_string(labels.dtype()));
  if (weight) {
    if (weight->dtype() != scores.dtype())
      throw ctx.error(std::string("weight has dtype ") + to_string(weight->dtype()) + ", input has " +
                      to_string(scores.dtype()));
    if (weight->rank() != 1 || weight->dims()[0] != sd[1])
      throw ctx.error("weight must have shape [" + std::to_string(sd[1]) + "] (one per class), got " +
                      dims_to_string(weight->dims()));
  }
  LossLayout layout;
  layout.n = sd[0];
  layout.c = sd[1];
  for (size_t i = 2; i < sd.size(); ++i) layout.d *= sd[i];
  return layout;
}

void check_class(const KernelContext& ctx, int64_t label, int64_t flat, const LossLayout& layout,
                 std::optional<int64_t> ignore_index) {
  if (label >= 0 && label < layout.c) return;
  throw ctx.error("target value " + std::to_string(label) + " at flat index " + std::to_string(flat) +
                  " is outside the classes [0, " + std::to_string(layout.c) + ")" +
                  (ignore_index ? " and is not ignore_index " + std::to_string(*ignore_index) : std::string()));
}

namespace {

// Gathers the per-sample losses from log-probabilities `logp(n, c, d)` (as double), applies the
// weights and the reduction, and writes output 0 in `dtype` T.
template <typename T, typename LogProb>
void nll_from_log_probs(KernelContext& ctx, const LossAttrs& attrs, const LossLayout& layout, const Tensor& labels,
                        const Tensor* weight, LogProb logp) {
  const std::vector<int64_t> label = read_int_values(labels, ctx);
  const T* w = weight ? data<T>(*weight) : nullptr;
  const int64_t samples = layout.n * layout.d;
  std::vector<double> loss(static_cast<size_t>(samples), 0.0);
  double loss_sum = 0, weight_sum = 0;
  for (int64_t n = 0; n < layout.n; ++n) {
    for (int64_t d = 0; d < layout.d; ++d) {
      const int64_t i = n * layout.d + d;
      const int64_t c = label[static_cast<size_t>(i)];
      if (attrs.ignore_index && c == *attrs.ignore_index) continue;
      check_class(ctx, c, i, layout, attrs.ignore_index);
      const double wc = w ? to_double(w[c]) : 1.0;
      const double l = -logp(n, c, d) * wc;
      loss[static_cast<size_t>(i)] = l;
      loss_sum += l;
      weight_sum += wc;
    }
  }
  if (attrs.reduction == LossReduction::kNone) {
    Tensor& out = ctx.allocate_output(0, dtype_of<T>(), labels.dims());
    T* o = mutable_data<T>(out);
    for (int64_t i = 0; i < samples; ++i) o[i] = from_double<T>(loss[static_cast<size_t>(i)]);
    return;
  }
  const double value = attrs.reduction == LossReduction::kSum ? loss_sum : loss_sum / weight_sum;
  Tensor& out = ctx.allocate_output(0, dtype_of<T>(), {});
  mutable_data<T>(out)[0] = from_double<T>(value);
}

// NegativeLogLikelihoodLoss: the input already holds log-probabilities.
void run_nll(KernelContext& ctx, const LossAttrs& attrs) {
  const Tensor& x = ctx.input(0);
  const Tensor& labels = ctx.input(1);
  const Tensor* weight = ctx.has_input(2) ? &ctx.input(2) : nullptr;
  const LossLayout layout = check_loss_shapes(ctx, x, labels, weight);
  dispatch(x.dtype(), ctx, FloatTypes{}, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* in = data<T>(x);
    nll_from_log_probs<T>(ctx, attrs, layout, labels, weight, [&](int64_t n, int64_t c, int64_t d) {
      return to_double(in[(n * layout.c + c) * layout.d + d]);
    });
  });
}

// SoftmaxCrossEntropyLoss: log_prob = LogSoftmax(scores, axis 1), then the NLL of it. The optional
// second output is log_prob itself, of the scores' shape.
void run_sce(KernelContext& ctx, const LossAttrs& attrs) {
  const Tensor& x = ctx.input(0);
  const Tensor& labels = ctx.input(1);
  const Tensor* weight = ctx.has_input(2) ? &ctx.input(2) : nullptr;
  const LossLayout layout = check_loss_shapes(ctx, x, labels, weight);
  dispatch(x.dtype(), ctx, FloatTypes{}, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* in = data<T>(x);
    const int64_t C = layout.c, D = layout.d;
    auto at = [&](int64_t n, int64_t c, int64_t d) {
      return to_double(in[(n * C + c) * D + d]);
    };
    // log-sum-exp over the classes of each sample, walking the classes as the outer loop so the
    // inner loop reads contiguous memory.
    std::vector<double> lse(static_cast<size_t>(layout.n * D));
    std::vector<double> mx(static_cast<size_t>(D)), sum(static_cast<size_t>(D));
    for (int64_t n = 0; n < layout.n; ++n) {
      std::fill(mx.begin(), mx.end(), -std::numeric_limits<double>::infinity());
      std::fill(sum.begin(), sum.end(), 0.0);
      for (int64_t c = 0; c < C; ++c)
        for (int64_t d = 0; d < D; ++d) mx[static_cast<size_t>(d)] = std::max(mx[static_cast<size_t>(d)], at(n, c, d));
      for (int64_t c = 0; c < C; ++c)
        for (int64_t d = 0; d < D; ++d) sum[static_cast<size_t>(d)] += std::exp(at(n, c, d) - mx[static_cast<size_t>(d)]);
      for (int64_t d = 0; d < D; ++d) {
        const double m = mx[static_cast<size_t>(d)];
        // All -inf (or +inf) scores: keep the NaN/inf the arithmetic gives rather than inventing one.
        lse[static_cast<size_t>(n * D + d)] = std::isinf(m) ? m : m + std::log(sum[static_cast<size_t>(d)]);
      }
    }
    auto logp = [&](int64_t n, int64_t c, int64_t d) { return at(n, c, d) - lse[static_cast<size_t>(n * D + d)]; };
    nll_from_log_probs<T>(ctx, attrs, layout, labels, weight, logp);
    if (ctx.num_outputs() > 1 && ctx.output_wanted(1)) {
      Tensor& lp = ctx.allocate_output(1, x.dtype(), x.dims());
      T* o = mutable_data<T>(lp);
      for (int64_t n = 0; n < layout.n; ++n)
        for (int64_t c = 0; c < C; ++c)
          for (int64_t d = 0; d < D; ++d) o[(n * C + c) * D + d] = from_double<T>(logp(n, c, d));
    }
  });
}

}  // namespace

void register_loss_kernels(KernelRegistry& r) {
  // Later versions (13, 22) changed the function bodies and added bfloat16, not the semantics, so one
  // kernel serves from 12 on, bfloat16 included.
  add_kernel(r, "NegativeLogLikelihoodLoss", 12, INT_MAX, kFloatTypes, [](const KernelInit& init) {
    const LossAttrs attrs = parse_loss_attrs(init);
    return make_kernel([attrs](KernelContext& ctx) { run_nll(ctx, attrs); });
  });
  add_kernel(r, "SoftmaxCrossEntropyLoss", 12, INT_MAX, kFloatTypes, [](const KernelInit& init) {
    const LossAttrs attrs = parse_loss_attrs(init);
    return make_kernel([attrs](KernelContext& ctx) { run_sce(ctx, attrs); });
  });
}

}  // namespace tunnx::cpu
