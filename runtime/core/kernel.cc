#include "runtime/core/kernel.h"

namespace tunnx {
namespace {

Error node_error(const ir::Node& node, ErrorCode code, const std::string& message) {
  return Error(code, message, {.node = node.name.empty() ? "<unnamed>" : node.name, .op_type = node.op_type});
}

}  // namespace

KernelInit::KernelInit(const ir::Node& node, int64_t opset, std::vector<DataType> input_types,
                       std::map<std::string, std::shared_ptr<const GraphPlan>> subgraphs,
                       std::vector<const Tensor*> constant_inputs, std::vector<bool> trained_inputs)
    : node_(node),
      opset_(opset),
      input_types_(std::move(input_types)),
      subgraphs_(std::move(subgraphs)),
      constant_inputs_(std::move(constant_inputs)),
      trained_inputs_(std::move(trained_inputs)) {}

int64_t KernelInit::attr_int(const std::string& name, int64_t fallback) const {
  const ir::Attribute* a = node_.attribute(name);
  return a ? a->i : fallback;
}

float KernelInit::attr_float(const std::string& name, float fallback) const {
  const ir::Attribute* a = node_.attribute(name);
  return a ? a->f : fallback;
}

std::string KernelInit::attr_string(const std::string& name, const std::string& fallback) const {
  const ir::Attribute* a = node_.attribute(name);
  return a ? a->s : fallback;
}

std::vector<int64_t> KernelInit::attr_ints(const std::string& name, std::vector<int64_t> fallback) const {
  const ir::Attribute* a = node_.attribute(name);
  return a ? a->ints : fallback;
}

std::vector<float> KernelInit::attr_floats(const std::string& name, std::vector<float> fallback) const {
  const ir::Attribute* a = node_.attribute(name);
  return a ? a->floats : fallback;
}

std::vector<std::string> KernelInit::attr_strings(const std::string& name, std::vector<std::string> fallback) const {
  const ir::Attribute* a = node_.attribute(name);
  return a ? a->strings : fallback;
}

const Tensor* KernelInit::attr_tensor(const std::string& name) const {
  const ir::Attribute* a = node_.attribute(name);
  return a && a->t.defined() ? &a->t : nullptr;
}

const ir::Attribute& KernelInit::required_attr(const std::string& name) const {
  if (const ir::Attribute* a = node_.attribute(name)) return *a;
  throw node_error(node_, ErrorCode::kInvalidModel, "required attribute '" + name + "' is missing");
}

std::shared_ptr<const GraphPlan> KernelInit::subgraph(const std::string& attr_name) const {
  ir::AttributeReads::note(attr_name);
  auto it = subgraphs_.find(attr_name);
  if (it == subgraphs_.end())
    throw node_error(node_, ErrorCode::kInvalidModel, "graph attribute '" + attr_name + "' is missing");
  return it->second;
}

Error KernelInit::error(const std::string& message) const {
  return node_error(node_, ErrorCode::kInvalidModel, message);
}

KernelContext::KernelContext(const ir::Node& node, std::vector<const Value*> inputs, std::vector<Value>& outputs,
                             std::vector<bool> outputs_wanted, int64_t& bytes_allocated, const void* frame)
    : node_(node),
      inputs_(std::move(inputs)),
      outputs_(outputs),
      wanted_(std::move(outputs_wanted)),
      bytes_allocated_(bytes_allocated),
      frame_(frame) {}

const Value& KernelContext::input_value(size_t i) const {
  if (i >= inputs_.size() || !inputs_[i])
    throw error("input " + std::to_string(i) + " is required but missing");
  return *inputs_[i];
}

const Tensor& KernelContext::input(size_t i) const {
  const Value& v = input_value(i);
  if (!v.is_tensor())
    throw error("input " + std::to_string(i) + " ('" + node_.inputs[i] + "') must be a tensor, got " + v.describe());
  return v.tensor();
}

Tensor& KernelContext::allocate_output(size_t i, DataType dtype, std::vector<int64_t> dims) {
  if (i >= outputs_.size()) throw error("output " + std::to_string(i) + " does not exist");
  Tensor t(dtype, std::move(dims));
  bytes_allocated_ += static_cast<int64_t>(t.nbytes());
  outputs_[i] = Value(std::move(t));
  return outputs_[i].tensor();
}

Tensor& KernelContext::allocate_output_uninitialized(size_t i, DataType dtype, std::vector<int64_t> dims) {
  if (i >= outputs_.size()) throw error("output " + std::to_string(i) + " does not exist");
  Tensor t = Tensor::uninitialized(dtype, std::move(dims));
  bytes_allocated_ += static_cast<int64_t>(t.nbytes());
  outputs_[i] = Value(std::move(t));
  return outputs_[i].tensor();
}

void KernelContext::set_output(size_t i, Value value) {
  if (i >= outputs_.size()) throw error("output " + std::to_string(i) + " does not exist");
  outputs_[i] = std::move(value);
}

void KernelContext::reshape_output(size_t i, std::vector<int64_t> dims) {
  if (i >= outputs_.size() || !outputs_[i].is_tensor()) throw error("output " + std::to_string(i) + " is not set");
  outputs_[i] = Value(outputs_[i].tensor().reshaped(std::move(dims)));
}

KernelContext KernelContext::with_input(size_t i, const Value* value) const {
  std::vector<const Value*> inputs = inputs_;
  if (i < inputs.size()) inputs[i] = value;
  return KernelContext(node_, std::move(inputs), outputs_, wanted_, bytes_allocated_, frame_);
}

Error KernelContext::error(const std::string& message) const {
  return node_error(node_, ErrorCode::kInvalidArgument, message);
}

}  // namespace tunnx
