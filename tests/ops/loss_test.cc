// Losses and dropout: com.tunnx Loss against PyTorch's definitions (computed here by hand in double),
// gradient checks of every Loss kind, ONNX SoftmaxCrossEntropyLoss / NegativeLogLikelihoodLoss and
// TrainDropout, and the DropoutGrad kernel and rule that serve ONNX Dropout in training mode.
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "tests/ops/grad_check.h"

namespace tunnx::ops {
void dropout_training_gradient(GradientBuilder& b);  // runtime/core/ops/loss.cc; wired by the registry
}  // namespace tunnx::ops

namespace tunnx_test {
namespace {

using namespace tunnx;
using ops::attr;

// ---- Running one node ---------------------------------------------------------------------------

struct NodeRun {
  std::string op_type;
  std::string domain = "com.tunnx";
  int64_t opset = 1;
  std::vector<ir::Attribute> attributes{};
  std::vector<Tensor> inputs{};  // an undefined tensor is an omitted input
  size_t num_outputs = 1;
};

std::map<std::string, int64_t> opsets_of(const std::string& domain, int64_t opset) {
  if (domain.empty()) return {{"", opset}, {ops::kGradDomain, 1}};
  return {{"", 17}, {domain, opset}};
}

// Plans and runs `nodes` over graph inputs x0.. fed `inputs`; returns the graph outputs `outputs`.
std::vector<Value> run_graph(const std::vector<ir::Node>& nodes, const std::vector<Tensor>& inputs,
                             const std::vector<std::string>& outputs, const std::map<std::string, int64_t>& opsets) {
  ir::Graph g;
  std::vector<Value> feeds;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].defined()) continue;
    ir::ValueInfo in;
    in.name = "x" + std::to_string(i);
    in.type = ir::TypeInfo::tensor(inputs[i].dtype(), Shape::of(inputs[i].dims()));
    g.inputs.push_back(in);
    feeds.emplace_back(inputs[i]);
  }
  g.nodes = nodes;
  for (const auto& o : outputs) {
    ir::ValueInfo out;
    out.name = o;
    g.outputs.push_back(out);
  }
  ParameterStore store;
  PlanContext context;
  context.registry = &KernelRegistry::global();
  context.opsets = opsets;
  context.store = &store;
  GraphPlan plan(g, context, nullptr);
  int64_t bytes = 0;
  return plan.run(feeds, nullptr, bytes);
}

std::vector<Value> run_node(const NodeRun& r) {
  ir::Node node;
  node.name = "node_under_test";
  node.op_type = r.op_type;
  node.domain = r.domain;
  node.attributes = r.attributes;
  for (size_t i = 0; i < r.inputs.size(); ++i) node.inputs.push_back(r.inputs[i].defined() ? "x" + std::to_string(i) : "");
  std::vector<std::string> outputs;
  for (size_t k = 0; k < r.num_outputs; ++k) outputs.push_back("y" + std::to_string(k));
  node.outputs = outputs;
  return run_graph({node}, r.inputs, outputs, opsets_of(r.domain, r.opset));
}

double run_loss(std::vector<ir::Attribute> attributes, Tensor prediction, Tensor target) {
  std::vector<Value> out = run_node({.op_type = "Loss", .attributes = std::move(attributes),
                                     .inputs = {std::move(prediction), std::move(target)}});
  EXPECT_EQ(out[0].tensor().rank(), 0u);
  return out[0].tensor().data_as<double>()[0];
}

// The message of the error `fn` throws, or "" when it throws none.
template <typename Fn> std::string error_of(Fn fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

std::vector<double> values_of(const Value& v) {
  const Tensor& t = v.tensor();
  return std::vector<double>(t.data_as<double>(), t.data_as<double>() + t.numel());
}

// -log softmax(row)[k], straight from the definition.
double neg_log_softmax(const std::vector<double>& row, size_t k) {
  double sum = 0;
  for (double v : row) sum += std::exp(v);
  return std::log(sum) - row[k];
}

// ---- Loss values against PyTorch -------------------------------------------------------------------

TEST(LossForward, MseAndL1AreMeansOverElements) {
  Tensor x = f64({2, 2}, {1, 2, 3, 4}), t = f64({2, 2}, {0, 2, 5, 1});  // diffs 1, 0, -2, 3
  EXPECT_DOUBLE_EQ(run_loss({attr("kind", std::string("mse"))}, x, t), (1.0 + 0 + 4 + 9) / 4);
  EXPECT_DOUBLE_EQ(run_loss({attr("kind", std::string("l1"))}, x, t), (1.0 + 0 + 2 + 3) / 4);
}

TEST(LossForward, BceWithLogitsMatchesTheLogSigmoidDefinition) {
  const std::vector<double> x = {0, 2, -1, 30}, t = {0, 1, 0.5, 1};
  double expected = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    const double s = 1 / (1 + std::exp(-x[i]));
    expected -= t[i] * std::log(s) + (1 - t[i]) * std::log(1 - s);
  }
  expected /= 4;
  EXPECT_NEAR(run_loss({attr("kind", std::string("bce_with_logits"))}, f64({4}, x), f64({4}, t)), expected, 1e-12);
  // Logits far out stay finite (log(1 - sigmoid(-800)) would be log 0 done naively).
  EXPECT_NEAR(run_loss({attr("kind", std::string("bce_with_logits"))}, f64({2}, {800, -800}), f64({2}, {0, 1})), 800,
              1e-9);
}

TEST(LossForward, CrossEntropyOfRows) {
  // torch.nn.functional.cross_entropy(torch.tensor([[1., 2., 3.]]), torch.tensor([2])) = 0.40760596
  EXPECT_NEAR(run_loss({attr("kind", std::string("cross_entropy"))}, f64({1, 3}, {1, 2, 3}), i64({1}, {2})),
              0.40760596444438, 1e-12);
  const std::vector<double> r0 = {1, 2, 3}, r1 = {0.5, -1, 2};
  Tensor logits = f64({2, 3}, {1, 2, 3, 0.5, -1, 2});
  EXPECT_NEAR(run_loss({attr("kind", std::string("cross_entropy"))}, logits, i64({2}, {2, 0})),
              (neg_log_softmax(r0, 2) + neg_log_softmax(r1, 0)) / 2, 1e-12);
}

TEST(LossForward, CrossEntropyWithLabelSmoothing) {
  const double eps = static_cast<double>(0.1f);  // the attribute is a float
  const std::vector<double> r0 = {1, 2, 3}, r1 = {0.5, -1, 2};
  auto smoothed = [&](const std::vector<double>& row, size_t k) {
    double uniform = 0;
    for (size_t c = 0; c < row.size(); ++c) uniform += neg_log_softmax(row, c) / 3;
    return (1 - eps) * neg_log_softmax(row, k) + eps * uniform;
  };
  Tensor logits = f64({2, 3}, {1, 2, 3, 0.5, -1, 2});
  EXPECT_NEAR(run_loss({attr("kind", std::string("cross_entropy")), attr("label_smoothing", 0.1f)}, logits,
                       i64({2}, {2, 1})),
              (smoothed(r0, 2) + smoothed(r1, 1)) / 2, 1e-12);
}

TEST(LossForward, CrossEntropyIgnoresTargetsAndAveragesOverTheRest) {
  const std::vector<double> r0 = {1, 2, 3};
  Tensor logits = f64({2, 3}, {1, 2, 3, 0.5, -1, 2});
  EXPECT_NEAR(run_loss({attr("kind", std::string("cross_entropy"))}, logits, i64({2}, {2, -100})),
              neg_log_softmax(r0, 2), 1e-12);
  EXPECT_NEAR(run_loss({attr("kind", std::string("cross_entropy")), attr("ignore_index", int64_t{0})}, logits,
                       i64({2}, {2, 0})),
              neg_log_softmax(r0, 2), 1e-12);
  // Every target ignored: 0 (PyTorch's 0/0 would be NaN).
  EXPECT_EQ(run_loss({attr("kind", std::string("cross_entropy"))}, logits, i64({2}, {-100, -100})), 0.0);
}

TEST(LossForward, CrossEntropyOverSpatialPositions) {
  // logits [N=1, C=2, d=3]: class axis 1, one target per position.
  Tensor logits = f64({1, 2, 3}, {1, 2, 3, 4, 0, -1});
  const double expected =
      (neg_log_softmax({1, 4}, 1) + neg_log_softmax({2, 0}, 0) + neg_log_softmax({3, -1}, 1)) / 3;
  EXPECT_NEAR(run_loss({attr("kind", std::string("cross_entropy"))}, logits, i64({1, 3}, {1, 0, 1})), expected, 1e-12);
}

TEST(LossForward, CrossEntropyIsStableForLargeLogits) {
  EXPECT_NEAR(run_loss({attr("kind", std::string("cross_entropy"))}, f64({1, 2}, {1000, 0}), i64({1}, {1})), 1000,
              1e-9);
}

TEST(LossForward, Float32ComputesTheSameLoss) {
  std::vector<Value> out = run_node({.op_type = "Loss", .attributes = {attr("kind", std::string("mse"))},
                                     .inputs = {Tensor::from_vector<float>({2}, {1, 3}),
                                                Tensor::from_vector<float>({2}, {0, 1})}});
  ASSERT_EQ(out[0].tensor().dtype(), DataType::kFloat32);
  EXPECT_FLOAT_EQ(out[0].tensor().data_as<float>()[0], 2.5f);
}

TEST(LossForward, ErrorsNameWhatIsWrong) {
  Tensor logits = f64({2, 3}, {1, 2, 3, 0.5, -1, 2});
  std::string e = error_of([&] { run_loss({attr("kind", std::string("cross_entropy"))}, logits, i64({2}, {3, 0})); });
  EXPECT_NE(e.find("target value 3"), std::string::npos) << e;
  EXPECT_NE(e.find("[0, 3)"), std::string::npos) << e;
  e = error_of([&] { run_loss({attr("kind", std::string("cross_entropy"))}, logits, i64({2}, {-1, 0})); });
  EXPECT_NE(e.find("target value -1"), std::string::npos) << e;
  e = error_of([&] { run_loss({attr("kind", std::string("cross_entropy"))}, logits, i64({3}, {0, 0, 0})); });
  EXPECT_NE(e.find("does not match"), std::string::npos) << e;
  e = error_of([&] { run_loss({attr("kind", std::string("mse"))}, f64({2}, {1, 2}), f64({3}, {1, 2, 3})); });
  EXPECT_NE(e.find("must match the prediction's shape"), std::string::npos) << e;
  e = error_of([&] { run_loss({attr("kind", std::string("huber"))}, f64({1}, {1}), f64({1}, {1})); });
  EXPECT_NE(e.find("\"huber\""), std::string::npos) << e;
  EXPECT_NE(e.find("node_under_test"), std::string::npos) << e;
}

// ---- Loss gradients ---------------------------------------------------------------------------------

GradCase loss_case(std::string kind, std::vector<GradInput> inputs, std::vector<ir::Attribute> extra = {}) {
  GradCase c;
  c.op_type = "Loss";
  c.domain = "com.tunnx";
  c.opset = 1;
  c.inputs = std::move(inputs);
  c.attributes = {attr("kind", std::move(kind))};
  for (auto& a : extra) c.attributes.push_back(std::move(a));
  return c;
}

TEST(LossGrad, Mse) { check_gradient(loss_case("mse", {GradInput::of({2, 3}), GradInput::of({2, 3}).frozen()})); }

TEST(LossGrad, L1AwayFromItsKink) {
  const std::vector<double> t = {0.3, -0.7, 1.1, 0.0, -1.5, 0.9};
  check_gradient(loss_case("l1", {GradInput::of({2, 3}).away_from(t, 0.05), GradInput::constant(f64({2, 3}, t))}));
}

TEST(LossGrad, L1AtItsKinkIsZeroAsTorchSign) {
  std::vector<Value> out =
      run_node({.op_type = "LossGrad", .attributes = {attr("kind", std::string("l1"))},
                .inputs = {f64({}, {1}), f64({3}, {1, 2, 3}), f64({3}, {1, 0, 5})}});
  EXPECT_EQ(values_of(out[0]), (std::vector<double>{0, 1.0 / 3, -1.0 / 3}));
}

TEST(LossGrad, BceWithLogits) {
  check_gradient(loss_case("bce_with_logits", {GradInput::of({2, 3}, -4, 4), GradInput::of({2, 3}, 0, 1).frozen()}));
}

TEST(LossGrad, CrossEntropyRows) {
  check_gradient(loss_case("cross_entropy", {GradInput::of({3, 4}), GradInput::constant(i64({3}, {1, 3, 0}))}));
}

TEST(LossGrad, CrossEntropySpatial) {
  check_gradient(
      loss_case("cross_entropy", {GradInput::of({2, 3, 2}), GradInput::constant(i64({2, 2}, {0, 2, 1, 1}))}));
}

TEST(LossGrad, CrossEntropyIgnoreIndexHit) {
  check_gradient(loss_case("cross_entropy", {GradInput::of({4, 3}), GradInput::constant(i64({4}, {1, -100, 2, -100}))}));
  check_gradient(loss_case("cross_entropy", {GradInput::of({3, 3}), GradInput::constant(i64({3}, {1, 2, 2}))},
                           {attr("ignore_index", int64_t{2})}));
}

TEST(LossGrad, CrossEntropyLabelSmoothing) {
  check_gradient(loss_case("cross_entropy", {GradInput::of({3, 4}), GradInput::constant(i64({3}, {1, 3, -100}))},
                           {attr("label_smoothing", 0.1f)}));
  check_gradient(loss_case("cross_entropy", {GradInput::of({2, 3, 2}), GradInput::constant(i64({2, 2}, {0, 2, 1, 1}))},
                           {attr("label_smoothing", 0.1f)}));
}

// ---- ONNX SoftmaxCrossEntropyLoss / NegativeLogLikelihoodLoss ---------------------------------------

GradCase onnx_loss_case(std::string op, int64_t opset, std::string reduction, std::vector<GradInput> inputs,
                        std::vector<ir::Attribute> extra = {}) {
  GradCase c;
  c.op_type = std::move(op);
  c.opset = opset;
  c.inputs = std::move(inputs);
  c.attributes = {attr("reduction", std::move(reduction))};
  for (auto& a : extra) c.attributes.push_back(std::move(a));
  return c;
}

TEST(OnnxLossGrad, SoftmaxCrossEntropyReductions) {
  for (int64_t opset : {12, 13}) {
    for (const char* reduction : {"mean", "sum", "none"}) {
      SCOPED_TRACE(reduction);
      check_gradient(onnx_loss_case("SoftmaxCrossEntropyLoss", opset, reduction,
                                    {GradInput::of({3, 4}), GradInput::constant(i64({3}, {1, 3, 0}))}));
      check_gradient(onnx_loss_case("SoftmaxCrossEntropyLoss", opset, reduction,
                                    {GradInput::of({2, 3, 2}), GradInput::constant(i64({2, 2}, {0, 2, 1, 1}))}));
    }
  }
}

TEST(OnnxLossGrad, SoftmaxCrossEntropyWeightsAndIgnoreIndex) {
  for (const char* reduction : {"mean", "sum", "none"}) {
    SCOPED_TRACE(reduction);
    check_gradient(onnx_loss_case("SoftmaxCrossEntropyLoss", 13, reduction,
                                  {GradInput::of({4, 3}), GradInput::constant(i64({4}, {1, 2, 2, 0})),
                                   GradInput::of({3}, 0.5, 2).frozen()},
                                  {attr("ignore_index", int64_t{2})}));
  }
}

TEST(OnnxLossGrad, SoftmaxCrossEntropyLogProbOutput) {
  GradCase both = onnx_loss_case("SoftmaxCrossEntropyLoss", 13, "mean",
                                 {GradInput::of({3, 4}), GradInput::constant(i64({3}, {1, 3, 0}))});
  both.num_outputs = 2;
  check_gradient(both);
  GradCase only_log_prob = both;
  only_log_prob.checked_outputs = {1};
  check_gradient(only_log_prob);
}

TEST(OnnxLossGrad, NegativeLogLikelihood) {
  for (const char* reduction : {"mean", "sum", "none"}) {
    SCOPED_TRACE(reduction);
    check_gradient(onnx_loss_case("NegativeLogLikelihoodLoss", 12, reduction,
                                  {GradInput::of({3, 4}), GradInput::constant(i64({3}, {1, 3, 0}))}));
    check_gradient(onnx_loss_case("NegativeLogLikelihoodLoss", 13, reduction,
                                  {GradInput::of({2, 3, 2}), GradInput::constant(i64({2, 2}, {0, 2, 1, 1})),
                                   GradInput::of({3}, 0.5, 2).frozen()},
                                  {attr("ignore_index", int64_t{1})}));
  }
}

TEST(OnnxLossGrad, GradientKernelsCheckLabels) {
  std::string e = error_of([] {
    run_node({.op_type = "NegativeLogLikelihoodLossGrad", .inputs = {f64({}, {1}), f64({2, 2}, {0, 0, 0, 0}), i64({2}, {0, 5})}});
  });
  EXPECT_NE(e.find("target value 5"), std::string::npos) << e;
}

// ---- Dropout ------------------------------------------------------------------------------------------

std::vector<Value> train_dropout(Tensor x, int64_t seed, float ratio) {
  return run_node({.op_type = "TrainDropout", .attributes = {attr("ratio", ratio)},
                   .inputs = {std::move(x), i64({}, {seed})}, .num_outputs = 2});
}

std::vector<bool> mask_of(const Value& v) {
  const Tensor& t = v.tensor();
  EXPECT_EQ(t.dtype(), DataType::kBool);
  return std::vector<bool>(t.data_as<bool>(), t.data_as<bool>() + t.numel());
}

TEST(TrainDropout, SameSeedSameMaskScaledByTheKeptFraction) {
  std::vector<double> xs(1000);
  for (size_t i = 0; i < xs.size(); ++i) xs[i] = 1.0 + static_cast<double>(i);
  Tensor x = f64({1000}, xs);
  std::vector<Value> a = train_dropout(x, 7, 0.25f), b = train_dropout(x, 7, 0.25f), c = train_dropout(x, 8, 0.25f);
  const std::vector<bool> mask = mask_of(a[1]);
  EXPECT_EQ(mask, mask_of(b[1]));
  EXPECT_NE(mask, mask_of(c[1]));
  const std::vector<double> y = values_of(a[0]);
  size_t kept = 0;
  for (size_t i = 0; i < xs.size(); ++i) {
    kept += mask[i];
    EXPECT_DOUBLE_EQ(y[i], mask[i] ? xs[i] / (1 - static_cast<double>(0.25f)) : 0.0) << i;
  }
  EXPECT_GT(kept, 690u);  // 750 expected; binomial sd ~14
  EXPECT_LT(kept, 810u);
}

TEST(TrainDropout, RatioZeroKeepsAllAndRatioOneIsAnError) {
  std::vector<Value> out = train_dropout(f64({3}, {1, 2, 3}), 1, 0.0f);
  EXPECT_EQ(values_of(out[0]), (std::vector<double>{1, 2, 3}));
  EXPECT_EQ(mask_of(out[1]), (std::vector<bool>{true, true, true}));
  const std::string e = error_of([] { train_dropout(f64({3}, {1, 2, 3}), 1, 1.0f); });
  EXPECT_NE(e.find("ratio must be in [0, 1)"), std::string::npos) << e;
}

TEST(TrainDropoutGrad, FixedSeed) {
  for (float ratio : {0.0f, 0.3f, 0.6f}) {
    GradCase c;
    c.op_type = "TrainDropout";
    c.domain = "com.tunnx";
    c.opset = 1;
    c.attributes = {attr("ratio", ratio)};
    c.inputs = {GradInput::of({4, 5}), GradInput::constant(i64({}, {1234}))};
    c.num_outputs = 2;
    c.checked_outputs = {0};
    check_gradient(c);
  }
}

TEST(DropoutGrad, KernelReadsRatioAndTrainingModeInputs) {
  Tensor dy = f64({4}, {1, 2, 3, 4});
  Tensor mask = Tensor::from_vector<bool>({4}, {true, false, true, true});
  auto run = [&](std::vector<Tensor> extra) {
    std::vector<Tensor> inputs = {dy, mask};
    for (auto& t : extra) inputs.push_back(t);
    return values_of(run_node({.op_type = "DropoutGrad", .attributes = {attr("ratio", 0.5f)}, .inputs = inputs})[0]);
  };
  EXPECT_EQ(run({}), (std::vector<double>{2, 0, 6, 8}));
  EXPECT_EQ(run({Tensor::from_vector<float>({}, {0.75f})}), (std::vector<double>{4, 0, 12, 16}));
  EXPECT_EQ(run({Tensor(), Tensor::from_vector<bool>({}, {false})}), (std::vector<double>{1, 0, 3, 4}));
  EXPECT_EQ(run({Tensor::from_vector<float>({}, {0.0f}), Tensor::from_vector<bool>({}, {true})}),
            (std::vector<double>{1, 0, 3, 4}));
}

// ONNX Dropout (opset 13, training_mode input): the rule's DropoutGrad, run after the forward node,
// gives dY * mask / (1 - ratio) with the mask the forward drew.
ir::Node onnx_dropout(std::vector<std::string> outputs) {
  ir::Node n;
  n.name = "drop";
  n.op_type = "Dropout";
  n.inputs = {"x0", "x1", "x2"};
  n.outputs = std::move(outputs);
  n.attributes = {attr("seed", int64_t{5})};
  return n;
}

std::vector<ir::Node> dropout_backward(const ir::Node& forward, const std::string& dy) {
  ir::Graph g;
  ParameterStore store;
  ir::GraphFacts facts(g, store);
  std::vector<ir::Node> emitted;
  int counter = 0;
  ops::GradientBuilder b(forward, 13, facts, {dy, ""}, {true, false, false},
                         [&](ir::Node n) { emitted.push_back(std::move(n)); },
                         [&](const std::string& hint) { return hint + "_" + std::to_string(counter++); });
  ops::dropout_training_gradient(b);
  emitted.back().outputs[0] = "dx";
  return emitted;
}

TEST(DropoutTrainingGradient, MatchesTheForwardMask) {
  const ir::Node forward = onnx_dropout({"y", "mask"});
  std::vector<ir::Node> nodes = {forward};
  for (ir::Node& n : dropout_backward(forward, "x3")) nodes.push_back(std::move(n));
  std::vector<double> xs(50), dys(50);
  for (size_t i = 0; i < xs.size(); ++i) {
    xs[i] = 0.1 * static_cast<double>(i) - 2;
    dys[i] = 1 + static_cast<double>(i);
  }
  for (bool training : {true, false}) {
    SCOPED_TRACE(training);
    std::vector<Value> out =
        run_graph(nodes, {f64({50}, xs), Tensor::from_vector<float>({}, {0.4f}), Tensor::from_vector<bool>({}, {training}), f64({50}, dys)},
                  {"mask", "dx"}, opsets_of("", 13));
    const std::vector<bool> mask = mask_of(out[0]);
    const std::vector<double> dx = values_of(out[1]);
    const double scale = training ? 1 / (1 - static_cast<double>(0.4f)) : 1.0;
    for (size_t i = 0; i < dx.size(); ++i) EXPECT_DOUBLE_EQ(dx[i], mask[i] ? dys[i] * scale : 0.0) << i;
  }
}

TEST(DropoutTrainingGradient, WithoutMaskOutputIsAnError) {
  const std::string e = error_of([] { dropout_backward(onnx_dropout({"y"}), "dy"); });
  EXPECT_NE(e.find("no mask output"), std::string::npos) << e;
  EXPECT_NE(e.find("drop"), std::string::npos) << e;
}

}  // namespace
}  // namespace tunnx_test
