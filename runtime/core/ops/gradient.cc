#include "runtime/core/ops/gradient.h"

#include <algorithm>

namespace tunnx::ops {

ir::Attribute attr(const std::string& name, int64_t value) {
  ir::Attribute a;
  a.name = name;
  a.type = ir::AttributeType::kInt;
  a.i = value;
  return a;
}

ir::Attribute attr(const std::string& name, float value) {
  ir::Attribute a;
  a.name = name;
  a.type = ir::AttributeType::kFloat;
  a.f = value;
  return a;
}

ir::Attribute attr(const std::string& name, const std::string& value) {
  ir::Attribute a;
  a.name = name;
  a.type = ir::AttributeType::kString;
  a.s = value;
  return a;
}

ir::Attribute attr(const std::string& name, const std::vector<int64_t>& values) {
  ir::Attribute a;
  a.name = name;
  a.type = ir::AttributeType::kInts;
  a.ints = values;
  return a;
}

ir::Attribute attr(const std::string& name, const std::vector<float>& values) {
  ir::Attribute a;
  a.name = name;
  a.type = ir::AttributeType::kFloats;
  a.floats = values;
  return a;
}

ir::Attribute attr(const std::string& name, const std::vector<std::string>& values) {
  ir::Attribute a;
  a.name = name;
  a.type = ir::AttributeType::kStrings;
  a.strings = values;
  return a;
}

ir::Node make_node(std::string name, std::string op, std::vector<std::string> inputs, std::string output,
                   std::vector<ir::Attribute> attrs) {
  ir::Node n;
  n.name = std::move(name);
  n.op_type = std::move(op);
  n.inputs = std::move(inputs);
  n.outputs = {std::move(output)};
  n.attributes = std::move(attrs);
  return n;
}

ir::Attribute attr_tensor(const std::string& name, Tensor value) {
  ir::Attribute a;
  a.name = name;
  a.type = ir::AttributeType::kTensor;
  a.t = std::move(value);
  return a;
}

int64_t node_int(const ir::Node& node, const std::string& name, int64_t fallback) {
  const ir::Attribute* a = node.attribute(name);
  return a ? a->i : fallback;
}

float node_float(const ir::Node& node, const std::string& name, float fallback) {
  const ir::Attribute* a = node.attribute(name);
  return a ? a->f : fallback;
}

std::string node_string(const ir::Node& node, const std::string& name, const std::string& fallback) {
  const ir::Attribute* a = node.attribute(name);
  return a ? a->s : fallback;
}

std::vector<int64_t> node_ints(const ir::Node& node, const std::string& name, std::vector<int64_t> fallback) {
  const ir::Attribute* a = node.attribute(name);
  return a ? a->ints : fallback;
}

GradientBuilder::GradientBuilder(const ir::Node& node, int64_t opset, const ir::GraphFacts& facts,
                                 std::vector<std::string> output_grads, std::vector<bool> input_wanted,
                                 std::function<void(ir::Node)> emit_node,
                                 std::function<std::string(const std::string&)> fresh, int64_t onnx_opset)
    : node_(node),
      opset_(opset),
      onnx_opset_(onnx_opset < 0 ? opset : onnx_opset),
      facts_(facts),
      output_grads_(std::move(output_grads)),
      input_wanted_(std::move(input_wanted)),
      input_grads_(node.inputs.size()),
      emit_node_(std::move(emit_node)),
      fresh_(std::move(fresh)) {}

const std::string& GradientBuilder::I(size_t i) const {
  if (!has_input(i)) throw error("gradient rule reads input " + std::to_string(i) + ", which the node omits");
  return node_.inputs[i];
}

const std::string& GradientBuilder::O(size_t i) const {
  if (i >= node_.outputs.size() || node_.outputs[i].empty())
    throw error("gradient rule reads output " + std::to_string(i) + ", which the node omits");
  return node_.outputs[i];
}

std::string GradientBuilder::GO(size_t i) {
  if (has_GO(i)) return output_grads_[i];
  std::string zeros = zeros_like(O(i));
  if (i >= output_grads_.size()) output_grads_.resize(i + 1);
  output_grads_[i] = zeros;
  return zeros;
}

void GradientBuilder::set_GI(size_t i, const std::string& grad) {
  if (!wants_GI(i)) return;
  if (!input_grads_[i].empty())
    throw error("gradient rule sets the gradient of input " + std::to_string(i) + " twice");
  input_grads_[i] = grad;
}

std::optional<size_t> GradientBuilder::rank(const std::string& value) const {
  auto it = facts_.types.find(value);
  if (const Tensor* t = facts_.constant(value)) return t->rank();
  if (it == facts_.types.end() || it->second->kind != ir::TypeInfo::Kind::kTensor || !it->second->shape)
    return std::nullopt;
  return it->second->shape->rank();
}

std::optional<std::vector<int64_t>> GradientBuilder::dims(const std::string& value) const { return facts_.dims(value); }

std::optional<DataType> GradientBuilder::dtype(const std::string& value) const {
  auto t = facts_.dtype(value);
  if (t && *t == DataType::kUndefined) return std::nullopt;
  return t;
}

const Tensor* GradientBuilder::constant(const std::string& value) const { return facts_.constant(value); }

std::vector<std::string> GradientBuilder::emit(const std::string& op_type, std::vector<std::string> inputs,
                                               size_t num_outputs, std::vector<ir::Attribute> attributes,
                                               const std::string& domain) {
  ir::Node n;
  n.op_type = op_type;
  n.domain = domain;
  n.inputs = std::move(inputs);
  n.attributes = std::move(attributes);
  const std::string base = (node_.name.empty() ? node_.op_type : node_.name) + "/grad/" + op_type;
  n.name = fresh_(base);
  for (size_t i = 0; i < num_outputs; ++i) n.outputs.push_back(fresh_(base));
  std::vector<std::string> outs = n.outputs;
  emit_node_(std::move(n));
  return outs;
}

std::string GradientBuilder::emit1(const std::string& op_type, std::vector<std::string> inputs,
                                   std::vector<ir::Attribute> attributes, const std::string& domain) {
  return emit(op_type, std::move(inputs), 1, std::move(attributes), domain)[0];
}

std::vector<std::string> GradientBuilder::grad_op(const std::string& op_type, std::vector<std::string> inputs,
                                                  size_t num_outputs, std::vector<ir::Attribute> attributes) {
  return emit(op_type, std::move(inputs), num_outputs, std::move(attributes), kGradDomain);
}

std::string GradientBuilder::grad_op1(const std::string& op_type, std::vector<std::string> inputs,
                                      std::vector<ir::Attribute> attributes) {
  return grad_op(op_type, std::move(inputs), 1, std::move(attributes))[0];
}

std::string GradientBuilder::shape_of(const std::string& value) {
  auto it = shapes_.find(value);
  if (it != shapes_.end()) return it->second;
  std::string s = emit1("Shape", {value});
  shapes_[value] = s;
  return s;
}

namespace {

// Whether two declared shapes are the same size in every dim: fixed sizes that match, or one named
// symbol ("batch"; a symbol stands for one size throughout the graph). Anonymous dims ("?", unknown)
// prove nothing.
bool provably_same_shape(const Shape& a, const Shape& b) {
  if (a.rank() != b.rank()) return false;
  for (size_t i = 0; i < a.rank(); ++i) {
    const Dim &x = a.dims[i], &y = b.dims[i];
    const bool named = x.is_named();
    if (!(x.is_fixed() || named) || x.value != y.value || x.symbol != y.symbol) return false;
  }
  return true;
}

}  // namespace

std::string GradientBuilder::sum_to_shape_of(const std::string& grad, const std::string& like,
                                             const std::string& broadcast_result) {
  auto a = dims(like), b = dims(broadcast_result);
  if (a && b && *a == *b) return grad;
  // Symbolic shapes from the model's shape inference: a bias Add's [batch, seq, N] input is not
  // broadcast, so its gradient needs no SumToShape (and no Shape node that keeps the product's output
  // alive and stops fuse_linear from folding the bias into it).
  auto declared = [&](const std::string& v) -> const Shape* {
    auto it = facts_.types.find(v);
    if (it == facts_.types.end() || it->second->kind != ir::TypeInfo::Kind::kTensor || !it->second->shape) return nullptr;
    return &*it->second->shape;
  };
  const Shape *sa = declared(like), *sb = declared(broadcast_result);
  if (sa && sb && provably_same_shape(*sa, *sb)) return grad;
  return grad_op1("SumToShape", {grad, shape_of(like)});
}

std::string GradientBuilder::reshape_like(const std::string& value, const std::string& like) {
  return emit1("Reshape", {value, shape_of(like)});
}

std::string GradientBuilder::scale(const std::string& value, double alpha) {
  if (alpha == 1.0) return value;
  return grad_op1("Scale", {value}, {attr("alpha", static_cast<float>(alpha))});
}

std::string GradientBuilder::zeros_like(const std::string& value) { return grad_op1("ZerosLike", {value}); }
std::string GradientBuilder::ones_like(const std::string& value) { return grad_op1("OnesLike", {value}); }

Error GradientBuilder::error(const std::string& message) const {
  return Error(ErrorCode::kUnsupported, message,
               {.node = node_.name.empty() ? "<unnamed>" : node_.name, .op_type = node_.op_type});
}

bool GradientRule::differentiable(size_t input) const {
  if (all_inputs_differentiable) return true;
  return std::find(differentiable_inputs.begin(), differentiable_inputs.end(), input) != differentiable_inputs.end();
}

const GradientRegistry& GradientRegistry::global() {
  static const GradientRegistry registry = [] {
    GradientRegistry r;
    register_elementwise_gradients(r);
    register_linear_gradients(r);
    register_reduce_gradients(r);
    register_normalization_gradients(r);
    register_conv_pool_gradients(r);
    register_tensor_gradients(r);
    register_loss_gradients(r);
    return r;
  }();
  return registry;
}

void GradientRegistry::add(GradientRule rule) {
  std::string domain = rule.domain == "ai.onnx" ? "" : rule.domain;
  rules_[{domain, rule.op_type}].push_back(std::move(rule));
}

const GradientRule* GradientRegistry::find(const std::string& domain, const std::string& op_type, int64_t opset) const {
  auto it = rules_.find({domain == "ai.onnx" ? "" : domain, op_type});
  if (it == rules_.end()) return nullptr;
  for (const auto& rule : it->second)
    if (opset >= rule.since_version && opset <= rule.until_version) return &rule;
  return nullptr;
}

std::vector<std::string> GradientRegistry::ops() const {
  std::vector<std::string> out;
  for (const auto& [key, rules] : rules_) out.push_back(key.first.empty() ? key.second : key.first + ":" + key.second);
  return out;
}

}  // namespace tunnx::ops
