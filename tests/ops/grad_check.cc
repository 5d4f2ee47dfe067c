#include "tests/ops/grad_check.h"

#include <algorithm>
#include <map>
#include <memory>

namespace tunnx_test {
namespace {

using namespace tunnx;

// A float64 tensor in [lo, hi], pushed away from kinks and ties.
Tensor sample(const GradInput& in, std::mt19937_64& rng) {
  Tensor t(DataType::kFloat64, in.dims);
  double* p = t.mutable_data_as<double>();
  std::uniform_real_distribution<double> u(in.lo, in.hi);
  std::vector<double> taken;
  for (int64_t i = 0; i < t.numel(); ++i) {
    double v = 0;
    for (int attempt = 0; attempt < 1000; ++attempt) {
      v = u(rng);
      bool ok = true;
      for (double k : in.kinks) ok = ok && std::abs(v - k) >= in.min_gap;
      if (in.distinct)
        for (double o : taken) ok = ok && std::abs(v - o) >= in.min_gap;
      if (ok) break;
    }
    p[i] = v;
    if (in.distinct) taken.push_back(v);
  }
  return t;
}

ir::ValueInfo value_info(const std::string& name, ir::TypeInfo type = {}) {
  ir::ValueInfo v;
  v.name = name;
  v.type = std::move(type);
  return v;
}

struct Program {
  ir::Graph graph;
  ParameterStore store;
  std::unique_ptr<GraphPlan> plan;
};

std::map<std::string, int64_t> opsets_for(const GradCase& c) {
  std::map<std::string, int64_t> opsets{{"", c.domain.empty() ? c.opset : 17}, {ops::kGradDomain, 1}};
  if (!c.domain.empty()) opsets[c.domain] = c.opset;
  return opsets;
}

}  // namespace

Tensor f64(std::vector<int64_t> dims, std::vector<double> values) { return Tensor::from_vector<double>(std::move(dims), values); }
Tensor i64(std::vector<int64_t> dims, std::vector<int64_t> values) { return Tensor::from_vector<int64_t>(std::move(dims), values); }

GradCase make_grad_case(const std::string& op, int64_t opset, std::vector<GradInput> inputs,
                        std::vector<tunnx::ir::Attribute> attributes) {
  GradCase c;
  c.op_type = op;
  c.opset = opset;
  c.inputs = std::move(inputs);
  c.attributes = std::move(attributes);
  return c;
}

std::vector<tunnx::Value> run_node(const std::string& domain, const std::string& op, const std::vector<Tensor>& inputs,
                                   std::vector<tunnx::ir::Attribute> attributes, int64_t opset) {
  ir::Graph g;
  ir::Node n;
  n.name = "node";
  n.domain = domain;
  n.op_type = op;
  n.attributes = std::move(attributes);
  std::vector<Value> feeds;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].defined()) {  // an omitted optional input
      n.inputs.push_back("");
      continue;
    }
    n.inputs.push_back("i" + std::to_string(i));
    g.inputs.emplace_back();
    g.inputs.back().name = n.inputs.back();
    feeds.emplace_back(inputs[i]);
  }
  n.outputs = {"o0"};
  g.outputs.emplace_back();
  g.outputs.back().name = "o0";
  g.nodes.push_back(n);
  ParameterStore store;
  PlanContext context;
  context.registry = &KernelRegistry::global();
  context.opsets = {{"", opset}, {"com.tunnx", 1}};
  context.store = &store;
  GraphPlan plan(g, context, nullptr);
  int64_t bytes = 0;
  return plan.run(std::move(feeds), nullptr, bytes);
}

void check_gradient(const GradCase& c) {
  const std::string label = (c.domain.empty() ? "" : c.domain + ":") + c.op_type + " opset " + std::to_string(c.opset);
  SCOPED_TRACE(label);
  std::mt19937_64 rng(c.seed);

  // Inputs: sampled or fixed.
  std::vector<Tensor> values(c.inputs.size());
  for (size_t i = 0; i < c.inputs.size(); ++i) {
    const GradInput& in = c.inputs[i];
    if (in.omitted) continue;
    values[i] = in.fixed.defined() ? in.fixed : sample(in, rng);
  }

  // The forward graph: inputs x0.., the node, outputs y0..; seeds s0.. are graph inputs too.
  auto make_graph = [&](bool with_seeds) {
    auto p = std::make_unique<Program>();
    ir::Node node;
    node.name = "under_test";
    node.op_type = c.op_type;
    node.domain = c.domain;
    node.attributes = c.attributes;
    for (size_t i = 0; i < c.inputs.size(); ++i) {
      if (c.inputs[i].omitted) {
        node.inputs.push_back("");
        continue;
      }
      std::string name = "x" + std::to_string(i);
      node.inputs.push_back(name);
      if (c.inputs[i].as_initializer) {
        StoredTensor entry;
        entry.name = name;
        entry.value = values[i];
        p->store.add(std::move(entry));
        ir::Initializer init;
        init.name = init.store_key = name;
        p->graph.initializers.push_back(init);
      } else {
        p->graph.inputs.push_back(value_info(name, ir::TypeInfo::tensor(values[i].dtype(), Shape::of(values[i].dims()))));
      }
    }
    for (size_t k = 0; k < c.num_outputs; ++k) {
      node.outputs.push_back("y" + std::to_string(k));
      p->graph.outputs.push_back(value_info("y" + std::to_string(k)));
    }
    p->graph.nodes.push_back(node);
    if (with_seeds)
      for (size_t k = 0; k < c.num_outputs; ++k) p->graph.inputs.push_back(value_info("s" + std::to_string(k)));
    return p;
  };

  std::vector<size_t> checked = c.checked_outputs;
  if (checked.empty())
    for (size_t k = 0; k < c.num_outputs; ++k) checked.push_back(k);

  PlanContext context;
  context.registry = &KernelRegistry::global();
  context.opsets = opsets_for(c);

  // Forward-only program, for finite differences.
  auto forward = make_graph(false);
  context.store = &forward->store;
  forward->plan = std::make_unique<GraphPlan>(forward->graph, context, nullptr);

  auto feeds_for = [&](const std::vector<Tensor>& xs) {
    std::vector<Value> feeds;
    for (size_t i = 0; i < c.inputs.size(); ++i)
      if (!c.inputs[i].omitted && !c.inputs[i].as_initializer) feeds.emplace_back(xs[i]);
    return feeds;
  };
  int64_t bytes = 0;
  std::vector<Value> y0 = forward->plan->run(feeds_for(values), nullptr, bytes);

  // Seeds: random, one per checked output, of the output's shape.
  std::vector<Tensor> seeds(c.num_outputs);
  std::uniform_real_distribution<double> u(-1, 1);
  for (size_t k : checked) {
    ASSERT_TRUE(y0[k].is_tensor()) << "output " << k;
    const Tensor& y = y0[k].tensor();
    ASSERT_EQ(y.dtype(), DataType::kFloat64) << "output " << k << " of a float64 case must be float64";
    Tensor s(DataType::kFloat64, y.dims());
    for (int64_t j = 0; j < s.numel(); ++j) s.mutable_data_as<double>()[j] = u(rng);
    seeds[k] = s;
  }
  auto objective = [&](const std::vector<Value>& ys) {
    double total = 0;
    for (size_t k : checked) {
      const double* y = ys[k].tensor().data_as<double>();
      const double* s = seeds[k].data_as<double>();
      for (int64_t j = 0; j < seeds[k].numel(); ++j) total += y[j] * s[j];
    }
    return total;
  };

  // Backward program: the same graph plus autodiff's nodes; gradients become outputs.
  auto backward = make_graph(true);
  train::GradientRequest request;
  std::vector<size_t> sources;
  for (size_t i = 0; i < c.inputs.size(); ++i)
    if (!c.inputs[i].omitted && c.inputs[i].differentiable) {
      request.sources.push_back("x" + std::to_string(i));
      sources.push_back(i);
    }
  for (size_t k : checked) {
    request.outputs.push_back("y" + std::to_string(k));
    request.seeds.push_back("s" + std::to_string(k));
  }
  train::GradientGraph grads = train::differentiate(backward->graph, context.opsets, backward->store, request);
  for (size_t j = 0; j < sources.size(); ++j) {
    ASSERT_FALSE(grads.gradients[j].empty()) << "no gradient for input " << sources[j];
    backward->graph.outputs.push_back(value_info(grads.gradients[j]));
  }
  context.store = &backward->store;
  backward->plan = std::make_unique<GraphPlan>(backward->graph, context, nullptr);
  std::vector<Value> feeds = feeds_for(values);
  for (size_t k = 0; k < c.num_outputs; ++k) feeds.emplace_back(seeds[k].defined() ? Value(seeds[k]) : Value());
  std::vector<Value> outs = backward->plan->run(feeds, nullptr, bytes);

  for (size_t j = 0; j < sources.size(); ++j) {
    const size_t i = sources[j];
    const Value& gv = outs[c.num_outputs + j];
    ASSERT_TRUE(gv.is_tensor()) << "gradient of input " << i;
    const Tensor& g = gv.tensor();
    ASSERT_EQ(g.dims(), values[i].dims()) << "gradient of input " << i << " has the wrong shape";
    ASSERT_EQ(g.dtype(), DataType::kFloat64) << "gradient of input " << i;
    for (int64_t e = 0; e < values[i].numel(); ++e) {
      std::vector<Tensor> plus = values, minus = values;
      plus[i] = values[i].clone();
      minus[i] = values[i].clone();
      plus[i].mutable_data_as<double>()[e] += c.step;
      minus[i].mutable_data_as<double>()[e] -= c.step;
      const double fd = (objective(forward->plan->run(feeds_for(plus), nullptr, bytes)) -
                         objective(forward->plan->run(feeds_for(minus), nullptr, bytes))) /
                        (2 * c.step);
      const double analytic = g.data_as<double>()[e];
      EXPECT_LE(std::abs(fd - analytic), c.tolerance * std::max(1.0, std::abs(analytic)))
          << "input " << i << " element " << e << ": finite difference " << fd << ", autodiff " << analytic;
    }
  }
}

}  // namespace tunnx_test
