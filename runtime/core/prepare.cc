#include "runtime/core/prepare.h"

#include <algorithm>
#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <thread>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "runtime/core/ops/gradient.h"
#include "runtime/core/passes/attention_layout.h"
#include "runtime/core/passes/channel_blocks.h"
#include "runtime/core/passes/channels_last.h"
#include "runtime/core/passes/fuse_attention.h"
#include "runtime/core/passes/fold_matmul_operands.h"
#include "runtime/core/passes/fold_weight_transpose.h"
#include "runtime/core/passes/fuse_conv.h"
#include "runtime/core/passes/fuse_gelu.h"
#include "runtime/core/passes/fuse_hard_swish.h"
#include "runtime/core/passes/fuse_layer_norm.h"
#include "runtime/core/passes/fuse_linear.h"
#include "runtime/core/passes/fuse_one_hot.h"
#include "runtime/core/passes/fuse_squeeze_excite.h"
#include "runtime/core/passes/graph_facts.h"
#include "runtime/core/passes/inline_functions.h"
#include "runtime/core/passes/lower_contrib_ops.h"
#include "runtime/train/gradient_op.h"

namespace tunnx {
namespace {

// The model's opsets by domain ("" for ai.onnx), with com.tunnx, the domain of fused and gradient
// nodes (a model's own import of it wins).
std::map<std::string, int64_t> opsets_of(const ModelImpl& model) {
  std::map<std::string, int64_t> opsets;
  for (const auto& o : model.ir.opset_imports) opsets[o.domain == "ai.onnx" ? "" : o.domain] = o.version;
  opsets.emplace(ir::kTunnxDomain, 1);
  return opsets;
}

// The first steps of every preparation: a copy of the model's graph with functions inlined and
// contrib ops lowered.
ir::Graph lowered_copy(const ModelImpl& model) {
  ir::Graph graph = ir::deep_copy(model.ir.graph);
  ir::inline_functions(graph, model.ir.functions);
  ir::lower_contrib_ops(graph, model.ir.opset_version(""));
  return graph;
}

// fuse_conv on every If/Loop/Scan body inside `graph`, each seeing the graphs around it.
void fuse_conv_in_bodies(ir::Graph& graph, const ParameterStore& store, int64_t onnx_opset,
                         std::vector<const ir::Graph*> enclosing = {}) {
  enclosing.insert(enclosing.begin(), &graph);
  for (ir::Node& node : graph.nodes)
    for (ir::Attribute& attr : node.attributes) {
      std::vector<ir::Graph*> bodies;
      if (attr.g) bodies.push_back(attr.g.get());
      for (auto& sub : attr.graphs) bodies.push_back(sub.get());
      for (ir::Graph* body : bodies) {
        ir::fuse_conv(*body, store, onnx_opset, enclosing);
        fuse_conv_in_bodies(*body, store, onnx_opset, enclosing);
      }
    }
}

}  // namespace

PreparedGraph prepare_graph(const ModelImpl& model, const PrepareOptions& options) {
  PreparedGraph prepared;
  prepared.opsets = opsets_of(model);

  try {
    prepared.graph = std::make_unique<ir::Graph>(lowered_copy(model));
    ir::Graph& graph = *prepared.graph;
    prepared.gradient_nodes = train::lower_gradient_ops(graph, prepared.opsets, model.store);
    // Before the caller's rewrite, so autodiff differentiates the simpler graph: GELU spelled out as
    // five ops becomes one Gelu (one gradient kernel), HardSwish spelled with Clip one HardSwish, a
    // spelled-out layer normalization one LayerNormalization, and MatMul(x, Transpose(W)) one
    // product reading W as it lies (no transposes forward or backward). fuse_linear later folds bias Adds and
    // activations into the products where nothing else reads them.
    if (options.optimization_level >= 2) {
      ir::fuse_gelu(graph, model.store);
      ir::fuse_hard_swish(graph, model.store, model.ir.opset_version(""));
      ir::fuse_layer_norm(graph, model.store, model.ir.opset_version(""));
      ir::fold_weight_transpose(graph, model.store);
    }
    if (options.rewrite) options.rewrite(graph, prepared.opsets);
    if (options.optimization_level >= 2) {
      ir::fuse_one_hot_matmul(graph, model.store);
      // Forward only: com.tunnx:Attention has no gradient rule, and Attention's takes the 4-D form
      // the exporters write.
      if (!options.has_backward) {
        ir::fuse_attention(graph, model.store, model.ir.opset_version(""));
        ir::attention_heads_last(graph, model.store);
      }
      ir::fuse_linear(graph, model.store, model.ir.opset_version(""));
      ir::fold_matmul_operands(graph, model.store);
      ir::fuse_conv(graph, model.store, model.ir.opset_version(""));
      // The bodies of If, Loop and Scan get the convolution fusions too, for inference: a PyTorch
      // export of silero-vad runs its whole network inside an If, each Conv then a Relu of its own.
      if (!options.has_backward) fuse_conv_in_bodies(graph, model.store, model.ir.opset_version(""));
      const KernelDef* conv = KernelRegistry::global().find(ir::kTunnxDomain, "FusedConv", 1, options.device,
                                                            {DataType::kFloat32}, nullptr);
      if (conv && conv->prefers_channels_last && !options.has_backward) {
        ir::channels_last(graph, model.store, model.ir.opset_version(""));
        ir::fold_squeezed_conv_epilogues(graph, model.store, model.ir.opset_version(""));
      }
      // After both: it swallows the FusedConvs of the blocks' 1x1 convolutions, in either layout.
      if (!options.has_backward) ir::fuse_squeeze_excite(graph, model.store, model.ir.opset_version(""));
      // Last: the convolutions that remain hand each other blocks where their kernels take them.
      if (conv && conv->prefers_channels_last && !options.has_backward)
        ir::channel_blocks(graph, model.store, conv->channel_block_for);
    }
    PlanContext context;
    context.registry = &KernelRegistry::global();
    context.device = options.device;
    context.opsets = prepared.opsets;
    context.store = &model.store;
    context.plans_built = options.plans_built;
    context.profile = options.profile;
    context.trained = options.trained;
    prepared.plan = std::make_unique<GraphPlan>(graph, context, nullptr);
  } catch (const Error& e) {
    throw e.with_context({.file = model.path.string()});
  }
  return prepared;
}

std::vector<std::string> ops_without_kernels(const ModelImpl& model, DeviceType device) {
  const ir::Graph graph = lowered_copy(model);
  const std::map<std::string, int64_t> opsets = opsets_of(model);
  std::set<std::string> missing;
  graph.visit([&](const ir::Graph& g, int) {
    for (const auto& node : g.nodes) {
      const std::string domain = node.domain == "ai.onnx" ? "" : node.domain;
      if (domain == "ai.onnx.preview.training" && node.op_type == "Gradient") continue;  // autodiff lowers it
      auto o = opsets.find(domain);
      const int64_t opset = o == opsets.end() ? 0 : o->second;
      if (!KernelRegistry::global().find_reference(domain, node.op_type, opset, device))
        missing.insert((domain.empty() ? "" : domain + ":") + node.op_type + " (opset " + std::to_string(opset) + ")");
    }
  });
  return {missing.begin(), missing.end()};
}

int64_t prepare_kernels(const PreparedGraph& prepared, const ParameterStore& store, int threads,
                        const std::map<std::string, int64_t>& expected_dims,
                        const std::map<std::string, std::vector<int64_t>>& known_dims, bool release) {
  // Nothing to know the dims from when no input's are fixed and none are expected: a dynamic model
  // made without expected_dims skips the graph's facts altogether.
  const auto fixed = [](const ir::ValueInfo& v) { return v.type.shape && v.type.shape->is_fixed(); };
  if (expected_dims.empty() && known_dims.empty() &&
      std::none_of(prepared.graph->inputs.begin(), prepared.graph->inputs.end(), fixed))
    return 0;
  const ir::GraphFacts facts(*prepared.graph, store);
  auto dims_of = [&](const std::string& name) -> std::optional<std::vector<int64_t>> {
    if (const Tensor* t = facts.constant(name)) return t->dims();
    if (auto known = known_dims.find(name); known != known_dims.end()) return known->second;
    if (name.ends_with(ir::kChannelsLastSuffix)) {
      auto original = known_dims.find(name.substr(0, name.size() - ir::kChannelsLastSuffix.size()));
      if (original != known_dims.end() && original->second.size() >= 3) {
        std::vector<int64_t> dims = original->second;
        std::rotate(dims.begin() + 1, dims.begin() + 2, dims.end());  // [N, C, spatial...] -> [N, spatial..., C]
        return dims;
      }
    }
    auto it = facts.types.find(name);
    if (it == facts.types.end() || it->second->kind != ir::TypeInfo::Kind::kTensor || !it->second->shape)
      return std::nullopt;
    std::vector<int64_t> out;
    for (const Dim& d : it->second->shape->dims) {
      auto expected = d.is_named() ? expected_dims.find(d.symbol) : expected_dims.end();
      if (!d.is_fixed() && expected == expected_dims.end()) return std::nullopt;
      out.push_back(d.is_fixed() ? d.value : expected->second);
    }
    return out;
  };
  struct Work {
    const Kernel* kernel;
    KernelPrepare inputs;
    size_t step;
  };
  std::vector<Work> work;
  const std::vector<GraphPlan::Step>& steps = prepared.plan->steps();
  for (size_t s = 0; s < steps.size(); ++s) {
    const GraphPlan::Step& step = steps[s];
    if (step.folded || !step.kernel) continue;  // folded steps run once, from constants, at the first run
    KernelPrepare inputs;
    bool known = false;
    for (const std::string& name : step.node->inputs) {
      inputs.input_dims.push_back(name.empty() ? std::nullopt : dims_of(name));
      known = known || inputs.input_dims.back().has_value();
    }
    if (known) work.push_back({step.kernel.get(), std::move(inputs), s});
  }
  // Steps whose prepare has returned (a weight goes only once all its readers are done with it).
  std::unique_ptr<std::atomic<bool>[]> done(new std::atomic<bool>[steps.size()]);
  for (size_t s = 0; s < steps.size(); ++s) done[s].store(false);
  const std::function<bool(size_t)> prepared_step = [&done](size_t s) { return done[s].load(); };
#ifdef _OPENMP
  const int team = threads > 0 ? threads : omp_get_max_threads();
#else
  const int team = 1;
#endif
  std::atomic<size_t> next{0};
  std::atomic<int64_t> built{0};
  // Workers of their own, not an OpenMP team: oneDNN sizes a primitive for the team of the thread
  // that builds it, which inside a parallel region would be one.
  auto drain = [&] {
#ifdef _OPENMP
    const int previous = omp_get_max_threads();  // the caller's own setting, given back
    omp_set_num_threads(team);
#endif
    for (size_t i = next++; i < work.size(); i = next++) {
      try {
        if (work[i].kernel->prepare(work[i].inputs)) ++built;
      } catch (...) {
        // Left to the first run, which meets the same problem and reports it.
      }
      done[work[i].step].store(true);
      try {
        if (release) prepared.plan->release_prepared(work[i].step, prepared_step);
      } catch (...) {
        // The weight stays held; the first run's release tries again.
      }
    }
#ifdef _OPENMP
    omp_set_num_threads(previous);
#endif
  };
  const size_t workers = std::min<size_t>(static_cast<size_t>(std::max(team, 1)), work.size());
  std::vector<std::thread> helpers;
  for (size_t w = 1; w < workers; ++w) helpers.emplace_back(drain);
  drain();
  for (std::thread& t : helpers) t.join();
  return built.load();
}

}  // namespace tunnx
