#include "importer/parameter_policy.h"

#include <initializer_list>
#include <unordered_map>

#include "onnx/defs/schema.h"

namespace tunnx {
namespace {

// Inputs ONNX's schema calls differentiable that are nevertheless statistics, not weights: they are
// buffers, as in PyTorch. Keep this table small and say why for each entry.
struct NonTrainableInput {
  const char* op_type;
  int input_index;
  const char* why;
};
constexpr NonTrainableInput kRunningStatistics[] = {
    {"BatchNormalization", 3, "running mean of BatchNormalization"},
    {"BatchNormalization", 4, "running variance of BatchNormalization"},
};

// The scale and zero point of a quantized op are calibration results, not weights, though ONNX's
// schemas call some of them differentiable and com.microsoft's ops have no schema here: in
// QuantizeLinear / DequantizeLinear (any domain) inputs 1 and 2; in QLinear* ops every floating input
// (their data inputs are integers); in com.microsoft's dynamic-quantization ops the listed inputs.
struct QuantizationInputs {
  const char* op_type;
  std::initializer_list<int> inputs;
};
const QuantizationInputs kQuantizationParameters[] = {
    {"QuantizeLinear", {1, 2}},
    {"DequantizeLinear", {1, 2}},
    {"DynamicQuantizeMatMul", {2, 3}},           // b_scale, b_zero_point
    {"MatMulIntegerToFloat", {2, 3, 4, 5}},      // a_scale, b_scale, a_zero_point, b_zero_point
    {"DynamicQuantizeLSTM", {8, 9, 10, 11}},     // W_scale, W_zero_point, R_scale, R_zero_point
};

bool is_quantization_parameter(const ir::Node& node, int index) {
  if (node.op_type.rfind("QLinear", 0) == 0) return true;
  for (const auto& q : kQuantizationParameters)
    if (node.op_type == q.op_type)
      for (int i : q.inputs)
        if (i == index) return true;
  return false;
}

enum class Use { kTrainable, kNonDifferentiable };

struct UseVerdict {
  Use use;
  std::string why;
};

// How a node uses its input `index`, according to ONNX's schema for the model's opset.
UseVerdict classify_use(const ir::ModelIR& model, const ir::Node& node, int index) {
  bool onnx_domain = node.domain.empty() || node.domain == "ai.onnx";
  if (onnx_domain)
    for (const auto& entry : kRunningStatistics)
      if (node.op_type == entry.op_type && index == entry.input_index)
        return {Use::kNonDifferentiable, entry.why};

  if (is_quantization_parameter(node, index))
    return {Use::kNonDifferentiable, "quantization scale or zero point of " + node.op_type};

  int64_t opset = model.opset_version(node.domain);
  const onnx::OpSchema* schema = opset > 0 ? onnx::OpSchemaRegistry::Schema(
                                                 node.op_type, static_cast<int>(opset), node.domain)
                                           : nullptr;
  if (!schema || schema->inputs().empty())
    return {Use::kTrainable, "input " + std::to_string(index) + " of " + node.op_type + " (no ONNX schema)"};
  const auto& formals = schema->inputs();
  size_t formal = std::min<size_t>(static_cast<size_t>(index), formals.size() - 1);
  const auto& param = formals[formal];
  std::string where = param.GetName() + " of " + node.op_type;
  switch (param.GetDifferentiationCategory()) {
    case onnx::OpSchema::NonDifferentiable: return {Use::kNonDifferentiable, where + " is non-differentiable"};
    case onnx::OpSchema::Differentiable: return {Use::kTrainable, where + " is differentiable"};
    case onnx::OpSchema::Unknown: break;
  }
  return {Use::kTrainable, where + " (differentiability unknown)"};
}

struct Consumer {
  const ir::Node* node;
  int index;
};

using KeyByName = std::unordered_map<std::string, std::string>;  // initializer name -> store key

// Records every node input that reads an initializer visible in `graph`: its own, or an enclosing
// graph's that no name defined here shadows.
void collect_consumers(const ir::Graph& graph, KeyByName visible,
                       std::unordered_map<std::string, std::vector<Consumer>>& consumers) {
  for (const auto& v : graph.inputs) visible.erase(v.name);
  for (const auto& node : graph.nodes)
    for (const auto& out : node.outputs) visible.erase(out);
  for (const auto& init : graph.initializers) visible[init.name] = init.store_key;
  for (const auto& node : graph.nodes) {
    for (size_t i = 0; i < node.inputs.size(); ++i)
      if (auto it = visible.find(node.inputs[i]); it != visible.end())
        consumers[it->second].push_back({&node, static_cast<int>(i)});
    for (const auto& attr : node.attributes) {
      if (attr.g) collect_consumers(*attr.g, visible, consumers);
      for (const auto& sub : attr.graphs) collect_consumers(*sub, visible, consumers);
    }
  }
}

}  // namespace

void assign_parameter_roles(const ir::ModelIR& model, ParameterStore& store) {
  std::unordered_map<std::string, std::vector<Consumer>> consumers;  // by store key
  collect_consumers(model.graph, {}, consumers);

  for (const auto& entry : store.entries()) {
    StoredTensor& t = *entry;
    t.role = TensorRole::kBuffer;
    t.requires_grad = false;
    if (!is_floating_point(t.value.dtype())) {
      t.reason = std::string(to_string(t.value.dtype())) + " tensor";
      continue;
    }
    if (t.value.rank() == 0) {
      t.reason = "rank-0 constant";
      continue;
    }
    if (t.value.numel() == 0) {  // nothing to train (exporters write empty tensors for absent inputs)
      t.reason = "empty tensor";
      continue;
    }
    auto it = consumers.find(t.name);
    if (it == consumers.end()) {
      t.reason = "not read by any node";
      continue;
    }
    std::string last_why;
    for (const auto& c : it->second) {
      UseVerdict v = classify_use(model, *c.node, c.index);
      if (v.use == Use::kTrainable) {
        t.role = TensorRole::kParameter;
        t.requires_grad = true;
        t.reason = v.why;
        break;
      }
      last_why = v.why;
    }
    if (t.role == TensorRole::kBuffer) t.reason = last_why;
  }
}

}  // namespace tunnx
