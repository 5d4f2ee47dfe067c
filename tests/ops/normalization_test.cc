// Gradient checks of the normalization family against finite differences (tests/ops/grad_check.h):
// BatchNormalization in inference form, com.tunnx:BatchNormTrain, InstanceNormalization,
// LayerNormalization. Plus BatchNormTrain's forward outputs (running statistics as torch.nn.BatchNorm
// updates them) against hand-computed values.
#include <gtest/gtest.h>

#include <cmath>

#include "tests/ops/grad_check.h"

namespace tunnx_test {
namespace {

using tunnx::ops::attr;
using A = std::vector<tunnx::ir::Attribute>;
using Ints = std::vector<int64_t>;

GradCase make(const std::string& op, const std::string& domain, int64_t opset, std::vector<GradInput> inputs,
              A attributes = {}) {
  GradCase c;
  c.op_type = op;
  c.domain = domain;
  c.opset = opset;
  c.inputs = std::move(inputs);
  c.attributes = std::move(attributes);
  return c;
}

// Running statistics: constants, the variance positive.
std::vector<GradInput> batch_norm_inputs(Ints x, int64_t channels) {
  return {GradInput::of(std::move(x)), GradInput::of({channels}, 0.5, 2), GradInput::of({channels}),
          GradInput::of({channels}, -0.5, 0.5).frozen(), GradInput::of({channels}, 0.5, 2).frozen()};
}

TEST(NormalizationGrad, BatchNormalizationInference) {
  check_gradient(make("BatchNormalization", "", 15, batch_norm_inputs({2, 3, 4}, 3), {attr("epsilon", 1e-3f)}));
  check_gradient(make("BatchNormalization", "", 15, batch_norm_inputs({4, 3}, 3)));
  check_gradient(make("BatchNormalization", "", 9, batch_norm_inputs({2, 2, 3, 2}, 2)));
  check_gradient(make("BatchNormalization", "", 7, batch_norm_inputs({2, 2, 3}, 2)));
}

TEST(NormalizationGrad, BatchNormalizationTrainingModeNamesBatchNormTrain) {
  GradCase c = make("BatchNormalization", "", 15, batch_norm_inputs({2, 3, 4}, 3), {attr("training_mode", int64_t{1})});
  c.num_outputs = 3;
  c.checked_outputs = {0};
  try {
    check_gradient(c);
    ADD_FAILURE() << "training-mode BatchNormalization has no gradient rule but did not throw";
  } catch (const tunnx::Error& e) {
    EXPECT_NE(std::string(e.what()).find("BatchNormTrain"), std::string::npos) << e.what();
  }
}

GradCase batch_norm_train(Ints x, int64_t channels) {
  GradCase c = make("BatchNormTrain", tunnx::ops::kGradDomain, 1, batch_norm_inputs(std::move(x), channels),
                    {attr("epsilon", 1e-5f), attr("momentum", 0.9f)});
  c.num_outputs = 5;  // Y, new running mean and var, saved mean and invstd
  c.checked_outputs = {0};
  return c;
}

TEST(NormalizationGrad, BatchNormTrain) {
  check_gradient(batch_norm_train({4, 3, 2, 2}, 3));
  check_gradient(batch_norm_train({5, 2}, 2));  // BatchNorm1d on [N, C]
  check_gradient(batch_norm_train({2, 3, 5}, 3));
}

TEST(NormalizationGrad, BatchNormTrainFrozenScaleAndBias) {
  GradCase c = batch_norm_train({3, 2, 4}, 2);
  c.inputs[1].frozen();
  c.inputs[2].frozen();
  check_gradient(c);
}

TEST(NormalizationGrad, InstanceNormalization) {
  auto instance = [](Ints x, int64_t channels, int64_t opset) {
    return make("InstanceNormalization", "", opset,
                {GradInput::of(std::move(x)), GradInput::of({channels}, 0.5, 2), GradInput::of({channels})},
                {attr("epsilon", 1e-4f)});
  };
  check_gradient(instance({2, 3, 5}, 3, 6));
  check_gradient(instance({2, 2, 3, 3}, 2, 6));
  check_gradient(instance({1, 2, 4}, 2, 1));
}

GradCase layer_norm(Ints x, int64_t axis, Ints scale, Ints bias, size_t outputs = 1) {
  std::vector<GradInput> inputs = {GradInput::of(std::move(x)), GradInput::of(std::move(scale), 0.5, 2)};
  if (!bias.empty()) inputs.push_back(GradInput::of(std::move(bias)));
  GradCase c = make("LayerNormalization", "", 17, std::move(inputs), {attr("axis", axis)});
  c.num_outputs = outputs;
  c.checked_outputs = {0};
  return c;
}

TEST(NormalizationGrad, LayerNormalizationLastAxis) {
  check_gradient(layer_norm({2, 3, 6}, -1, {6}, {6}));
  check_gradient(layer_norm({4, 5}, -1, {5}, {}));      // no bias
  check_gradient(layer_norm({2, 3, 4}, 2, {4}, {4}, 3));  // Mean and InvStdDev asked for too
}

TEST(NormalizationGrad, LayerNormalizationAxis1) {
  check_gradient(layer_norm({2, 3, 4}, 1, {3, 4}, {3, 4}));
  check_gradient(layer_norm({2, 3, 4}, -2, {3, 4}, {3, 4}));
}

TEST(NormalizationGrad, LayerNormalizationBroadcastParameters) {
  // Scale and B broadcast to X.shape[axis:]: their gradients are summed back to their shapes.
  check_gradient(layer_norm({2, 3, 4}, 1, {1, 4}, {4}));
  check_gradient(layer_norm({2, 3, 4}, 1, {3, 1}, {1}));
}

TEST(NormalizationGrad, LayerNormalizationInputOnly) {
  GradCase c = layer_norm({3, 4}, -1, {4}, {4});
  c.inputs[1].frozen();
  c.inputs[2].frozen();
  check_gradient(c);
}

// ---- BatchNormTrain's forward: outputs against values computed by hand ----

// A graph input or output (designated initializers would leave fields out, which -Wextra rejects).
tunnx::ir::ValueInfo value_info(const std::string& name, tunnx::ir::TypeInfo type = {}) {
  tunnx::ir::ValueInfo v;
  v.name = name;
  v.type = std::move(type);
  return v;
}

std::vector<tunnx::Value> run_batch_norm_train(const std::vector<Tensor>& inputs, float momentum) {
  using namespace tunnx;
  ir::Graph g;
  ir::Node n;
  n.name = "bn";
  n.domain = ops::kGradDomain;
  n.op_type = "BatchNormTrain";
  n.attributes = {attr("epsilon", 1e-5f), attr("momentum", momentum)};
  std::vector<Value> feeds;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const std::string name = "x" + std::to_string(i);
    n.inputs.push_back(name);
    g.inputs.push_back(value_info(name, ir::TypeInfo::tensor(inputs[i].dtype(), Shape::of(inputs[i].dims()))));
    feeds.emplace_back(inputs[i]);
  }
  for (int k = 0; k < 5; ++k) {
    n.outputs.push_back("y" + std::to_string(k));
    g.outputs.push_back(value_info(n.outputs.back()));
  }
  g.nodes.push_back(n);
  ParameterStore store;
  PlanContext context;
  context.registry = &KernelRegistry::global();
  context.opsets = {{"", 17}, {ops::kGradDomain, 1}};
  context.store = &store;
  GraphPlan plan(g, context, nullptr);
  int64_t bytes = 0;
  return plan.run(std::move(feeds), nullptr, bytes);
}

TEST(NormalizationGrad, BatchNormTrainForwardMatchesTorch) {
  // X [N=2, C=2, 2]: channel 0 holds 1, 2, 3, 4 (mean 2.5, biased var 1.25, unbiased 5/3); channel 1
  // holds 0, 0, 2, -2 (mean 0, biased var 2, unbiased 8/3).
  const Tensor x = Tensor::from_vector<float>({2, 2, 2}, {1, 2, 0, 0, 3, 4, 2, -2});
  const Tensor scale = Tensor::from_vector<float>({2}, {2, 0.5f});
  const Tensor bias = Tensor::from_vector<float>({2}, {1, -1});
  const Tensor running_mean = Tensor::from_vector<float>({2}, {0.5f, -1});
  const Tensor running_var = Tensor::from_vector<float>({2}, {1, 3});
  const float m = 0.9f;  // ONNX's momentum: torch's 0.1
  std::vector<tunnx::Value> out = run_batch_norm_train({x, scale, bias, running_mean, running_var}, m);
  ASSERT_EQ(out.size(), 5u);
  const double eps = 1e-5f;
  const double is0 = 1 / std::sqrt(1.25 + eps), is1 = 1 / std::sqrt(2.0 + eps);
  const std::vector<double> y = {2 * (1 - 2.5) * is0 + 1, 2 * (2 - 2.5) * is0 + 1, 0.5 * 0 * is1 - 1,
                                 0.5 * 0 * is1 - 1,        2 * (3 - 2.5) * is0 + 1, 2 * (4 - 2.5) * is0 + 1,
                                 0.5 * 2 * is1 - 1,        0.5 * -2 * is1 - 1};
  const double mm = m;
  const std::vector<std::vector<double>> want = {
      y,
      {mm * 0.5 + (1 - mm) * 2.5, mm * -1 + (1 - mm) * 0},
      {mm * 1 + (1 - mm) * 5.0 / 3, mm * 3 + (1 - mm) * 8.0 / 3},
      {2.5, 0},
      {is0, is1}};
  for (size_t k = 0; k < want.size(); ++k) {
    const Tensor& t = out[k].tensor();
    ASSERT_EQ(t.dtype(), tunnx::DataType::kFloat32) << "output " << k;
    ASSERT_EQ(t.numel(), static_cast<int64_t>(want[k].size())) << "output " << k;
    for (int64_t i = 0; i < t.numel(); ++i)
      EXPECT_NEAR(t.data_as<float>()[i], want[k][static_cast<size_t>(i)], 1e-6) << "output " << k << " element " << i;
  }
}

TEST(NormalizationGrad, BatchNormTrainOneValuePerChannelIsAnError) {
  const Tensor x = Tensor::from_vector<float>({1, 2}, {1, 2});
  const Tensor p = Tensor::from_vector<float>({2}, {1, 1});
  try {
    run_batch_norm_train({x, p, p, p, p}, 0.9f);
    ADD_FAILURE() << "expected an error";
  } catch (const tunnx::Error& e) {
    EXPECT_NE(std::string(e.what()).find("more than one value per channel"), std::string::npos) << e.what();
  }
}

TEST(NormalizationForward, RMSNormalization) {
  // rms([1, 2]) = sqrt(2.5); scale [1, 2].
  const auto y = values_of<double>(
      run_node("", "RMSNormalization", {f64({1, 2}, {1, 2}), f64({2}, {1, 2})}, {attr("epsilon", 0.0f)}, 23)[0]);
  ASSERT_EQ(y.size(), 2u);
  EXPECT_NEAR(y[0], 1 / std::sqrt(2.5), 1e-12);
  EXPECT_NEAR(y[1], 4 / std::sqrt(2.5), 1e-12);
  const std::string why =
      error_of([] { run_node("", "RMSNormalization", {f64({1, 2}, {1, 2}), f64({3}, {1, 2, 3})}, {}, 23); });
  EXPECT_NE(why.find("shapes [3] and [1,2] do not broadcast"), std::string::npos) << why;
}

TEST(NormalizationForward, GroupNormalizationPerGroupThenPerChannel) {
  // Two groups of two channels: {1, 3} and {5, 9} both normalize to {-1, 1}.
  const Tensor x = f64({1, 4, 1}, {1, 3, 5, 9});
  const A attrs = {attr("num_groups", int64_t{2}), attr("epsilon", 0.0f)};
  // Opset 18: scale and bias per group.
  EXPECT_EQ(
      values_of<double>(run_node("", "GroupNormalization", {x, f64({2}, {1, 2}), f64({2}, {0, 1})}, attrs, 18)[0]),
      (std::vector<double>{-1, 1, -1, 3}));
  // Opset 21: per channel.
  EXPECT_EQ(values_of<double>(
                run_node("", "GroupNormalization", {x, f64({4}, {1, 2, 3, 4}), f64({4}, {0, 0, 0, 1})}, attrs, 21)[0]),
            (std::vector<double>{-1, 2, -3, 5}));
  const std::string why = error_of([&] {
    run_node("", "GroupNormalization", {x, f64({3}, {1, 1, 1}), f64({3}, {0, 0, 0})},
             {attr("num_groups", int64_t{3})}, 21);
  });
  EXPECT_NE(why.find("num_groups 3 must divide the channel count 4"), std::string::npos) << why;
}

}  // namespace
}  // namespace tunnx_test
