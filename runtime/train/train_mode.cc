#include "runtime/train/train_mode.h"

#include <unordered_map>
#include <unordered_set>

#include "runtime/core/graph_order.h"
#include "runtime/core/ops/gradient.h"

namespace tunnx::train {
namespace {

Error node_error(const ir::Node& node, const std::string& message) {
  return Error(ErrorCode::kUnsupported, message,
               {.node = node.name.empty() ? "<unnamed>" : node.name, .op_type = node.op_type});
}

// A scalar float initializer's value, or nothing.
std::optional<double> constant_scalar(const ir::Graph& graph, const ParameterStore& store, const std::string& name) {
  for (const auto& init : graph.initializers)
    if (init.name == name) {
      const Tensor& t = store.at(init.store_key).value;
      if (t.numel() != 1) return std::nullopt;
      if (t.dtype() == DataType::kFloat32) return t.data_as<float>()[0];
      if (t.dtype() == DataType::kFloat64) return t.data_as<double>()[0];
      return std::nullopt;
    }
  return std::nullopt;
}

// A bool training_mode input that is absent or a constant false (the eval form exporters write).
bool constant_false(const ir::Graph& graph, const ParameterStore& store, const std::string& name) {
  if (name.empty()) return true;
  for (const auto& init : graph.initializers)
    if (init.name == name) {
      const Tensor& t = store.at(init.store_key).value;
      return t.dtype() == DataType::kBool && t.numel() == 1 && !t.data_as<bool>()[0];
    }
  return false;
}

}  // namespace

TrainModeGraph rewrite_for_training(ir::Graph& graph, int64_t onnx_opset, const ParameterStore& store) {
  TrainModeGraph result;
  std::unordered_set<std::string> taken;
  for (const auto& node : graph.nodes)
    for (const auto& o : node.outputs) taken.insert(o);
  auto fresh = [&taken](const std::string& hint) {
    std::string name = hint;
    for (int i = 1; taken.count(name); ++i) name = hint + "_" + std::to_string(i);
    taken.insert(name);
    return name;
  };
  std::unordered_map<std::string, std::string> store_key;
  for (const auto& init : graph.initializers) store_key[init.name] = init.store_key;

  for (auto& node : graph.nodes) {
    if (!(node.domain.empty() || node.domain == "ai.onnx")) continue;
    if (node.op_type == "BatchNormalization") {
      if (onnx_opset < 7 && ops::node_int(node, "spatial", 1) == 0)
        throw node_error(node, "BatchNormalization with spatial=0 cannot be trained");
      if (node.inputs.size() < 5) throw node_error(node, "BatchNormalization needs 5 inputs");
      ir::Node train;
      train.name = node.name;
      train.op_type = "BatchNormTrain";
      train.domain = ops::kGradDomain;
      train.inputs = {node.inputs[0], node.inputs[1], node.inputs[2], node.inputs[3], node.inputs[4]};
      train.attributes = {ops::attr("epsilon", ops::node_float(node, "epsilon", 1e-5f)),
                          ops::attr("momentum", ops::node_float(node, "momentum", 0.9f))};
      const std::string base = node.name.empty() ? node.outputs[0] : node.name;
      const std::string mean = fresh(base + "/running_mean"), var = fresh(base + "/running_var");
      train.outputs = {node.outputs[0], mean, var, fresh(base + "/saved_mean"), fresh(base + "/saved_invstd")};
      // Exporters name the running statistics as initializers (buffers); update those.
      for (auto [in, out] : {std::pair{node.inputs[3], mean}, std::pair{node.inputs[4], var}}) {
        auto it = store_key.find(in);
        if (it != store_key.end()) result.running_updates.emplace_back(it->second, out);
      }
      node = std::move(train);
    } else if (node.op_type == "Dropout") {
      double ratio = ops::node_float(node, "ratio", 0.5f);
      if (onnx_opset >= 12) {
        ratio = 0.5;
        if (node.inputs.size() > 1 && !node.inputs[1].empty()) {
          auto r = constant_scalar(graph, store, node.inputs[1]);
          if (!r) throw node_error(node, "Dropout ratio '" + node.inputs[1] + "' must be a constant to train");
          ratio = *r;
        }
        if (node.inputs.size() > 2 && !constant_false(graph, store, node.inputs[2]))
          continue;  // the graph decides training_mode itself: leave it as written
      }
      ir::Node train;
      train.name = node.name;
      train.op_type = "TrainDropout";
      train.domain = ops::kGradDomain;
      train.inputs = {node.inputs[0], kDropoutSeedInput};
      train.attributes = {ops::attr("ratio", static_cast<float>(ratio))};
      const std::string base = node.name.empty() ? node.outputs[0] : node.name;
      train.outputs = {node.outputs[0],
                       node.outputs.size() > 1 && !node.outputs[1].empty() ? node.outputs[1] : fresh(base + "/mask")};
      node = std::move(train);
      ++result.dropouts;
    }
  }
  if (result.dropouts > 0) {
    ir::ValueInfo seed;
    seed.name = kDropoutSeedInput;
    seed.type = ir::TypeInfo::tensor(DataType::kInt64, Shape::of({}));
    graph.inputs.push_back(seed);
  }
  return result;
}

void remove_unused_nodes(ir::Graph& graph) {
  std::unordered_set<std::string> live;
  for (const auto& o : graph.outputs) live.insert(o.name);
  std::vector<bool> keep(graph.nodes.size(), false);
  for (size_t n = graph.nodes.size(); n-- > 0;) {
    const ir::Node& node = graph.nodes[n];
    bool used = false;
    for (const auto& o : node.outputs) used = used || (!o.empty() && live.count(o));
    if (!used) continue;
    keep[n] = true;
    for (const auto& in : node.inputs)
      if (!in.empty()) live.insert(in);
    for (const auto& in : ir::implicit_inputs(node)) live.insert(in);
  }
  std::vector<ir::Node> kept;
  for (size_t n = 0; n < graph.nodes.size(); ++n)
    if (keep[n]) kept.push_back(std::move(graph.nodes[n]));
  graph.nodes = std::move(kept);
}

}  // namespace tunnx::train
