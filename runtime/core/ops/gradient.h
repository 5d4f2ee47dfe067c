// Gradient rules: for each op (domain, type, opset range), which inputs a gradient flows through and
// the graph fragment that computes those gradients from the outputs' gradients. Rules read like the
// math, as ONNX Runtime's gradient builders do:   GI(0) = Mul(GO(0), Cos(I(0)))
// The engine that walks a graph and calls them is runtime/train/autodiff.h; the rules themselves live
// with their op family in runtime/core/ops/<family>.cc.
//
// Backward nodes are ordinary ONNX ops whose meaning does not change across the opsets they are
// emitted for (Mul, Add, Neg, MatMul, Gemm, Transpose with perm, Reshape with a shape input, Where,
// Equal, Shape), and com.tunnx ops (version 1) where the composed form would be slow, unstable or
// opset-dependent: the gradient kernels listed in runtime/core/ops/gradient_ops.md.
#pragma once

#include <climits>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "runtime/core/graph.h"
#include "runtime/core/passes/graph_facts.h"
#include "tunnx/status.h"

namespace tunnx::ops {

inline constexpr const char* kGradDomain = "com.tunnx";

// Attribute makers for emitted nodes.
ir::Attribute attr(const std::string& name, int64_t value);
ir::Attribute attr(const std::string& name, float value);
ir::Attribute attr(const std::string& name, const std::string& value);
ir::Attribute attr(const std::string& name, const std::vector<int64_t>& values);
ir::Attribute attr(const std::string& name, const std::vector<float>& values);
ir::Attribute attr(const std::string& name, const std::vector<std::string>& values);
ir::Attribute attr_tensor(const std::string& name, Tensor value);

// A new default-domain node with one output (graph rewrites and edits make them).
ir::Node make_node(std::string name, std::string op, std::vector<std::string> inputs, std::string output,
                   std::vector<ir::Attribute> attrs = {});

// The forward node's attribute `name` (int, float, ints, string), or `fallback`.
int64_t node_int(const ir::Node& node, const std::string& name, int64_t fallback);
float node_float(const ir::Node& node, const std::string& name, float fallback);
std::string node_string(const ir::Node& node, const std::string& name, const std::string& fallback);
std::vector<int64_t> node_ints(const ir::Node& node, const std::string& name, std::vector<int64_t> fallback = {});

// What one rule sees of its node and how it adds backward nodes. Made by the autodiff engine.
class GradientBuilder {
 public:
  // `emit_node` appends a backward node; `fresh` returns a new value name with the given hint.
  // `onnx_opset`: the graph's ai.onnx opset, which the ONNX ops a rule emits follow (-1: `opset`).
  GradientBuilder(const ir::Node& node, int64_t opset, const ir::GraphFacts& facts,
                  std::vector<std::string> output_grads, std::vector<bool> input_wanted,
                  std::function<void(ir::Node)> emit_node, std::function<std::string(const std::string&)> fresh,
                  int64_t onnx_opset = -1);

  const ir::Node& node() const { return node_; }
  int64_t opset() const { return opset_; }  // of the node's own domain
  // The ai.onnx opset of the backward nodes: differs from opset() for com.tunnx nodes.
  int64_t onnx_opset() const { return onnx_opset_; }
  size_t num_inputs() const { return node_.inputs.size(); }
  size_t num_outputs() const { return node_.outputs.size(); }
  bool has_input(size_t i) const { return i < node_.inputs.size() && !node_.inputs[i].empty(); }
  const std::string& I(size_t i) const;  // forward input i; throws when omitted
  const std::string& O(size_t i) const;  // forward output i; throws when omitted

  // Whether a gradient flows into output i; GO(i) is it, or zeros shaped like O(i) when none does.
  bool has_GO(size_t i) const { return i < output_grads_.size() && !output_grads_[i].empty(); }
  std::string GO(size_t i);
  // Whether the engine wants the gradient of input i (it is on a path from a source).
  bool wants_GI(size_t i) const { return i < input_wanted_.size() && input_wanted_[i]; }
  // Sets the gradient of input i; it must have I(i)'s shape (use sum_to_shape_of after broadcasting).
  // Ignored when the engine does not want it.
  void set_GI(size_t i, const std::string& grad);
  const std::vector<std::string>& input_grads() const { return input_grads_; }

  // Static facts, when the graph states them.
  std::optional<size_t> rank(const std::string& value) const;
  std::optional<std::vector<int64_t>> dims(const std::string& value) const;
  std::optional<DataType> dtype(const std::string& value) const;
  const Tensor* constant(const std::string& value) const;  // an initializer's value, or null

  // Emits a node and returns its outputs (fresh names).
  std::vector<std::string> emit(const std::string& op_type, std::vector<std::string> inputs, size_t num_outputs,
                                std::vector<ir::Attribute> attributes = {}, const std::string& domain = "");
  std::string emit1(const std::string& op_type, std::vector<std::string> inputs,
                    std::vector<ir::Attribute> attributes = {}, const std::string& domain = "");
  // The same, for com.tunnx gradient ops.
  std::vector<std::string> grad_op(const std::string& op_type, std::vector<std::string> inputs, size_t num_outputs,
                                   std::vector<ir::Attribute> attributes = {});
  std::string grad_op1(const std::string& op_type, std::vector<std::string> inputs,
                       std::vector<ir::Attribute> attributes = {});

  // Helpers used by many rules.
  std::string shape_of(const std::string& value);  // Shape(value), one node per value
  // `grad` summed over the dims broadcasting added to `like` (com.tunnx SumToShape); `grad` itself
  // when the shapes are statically known to be equal.
  std::string sum_to_shape_of(const std::string& grad, const std::string& like, const std::string& broadcast_result);
  std::string reshape_like(const std::string& value, const std::string& like);  // Reshape(value, Shape(like))
  std::string scale(const std::string& value, double alpha);                      // com.tunnx Scale
  std::string zeros_like(const std::string& value);                               // com.tunnx ZerosLike
  std::string ones_like(const std::string& value);                                // com.tunnx OnesLike
  std::string add(const std::string& a, const std::string& b) { return emit1("Add", {a, b}); }
  std::string mul(const std::string& a, const std::string& b) { return emit1("Mul", {a, b}); }
  std::string neg(const std::string& a) { return emit1("Neg", {a}); }

  // An error about this node, for rules that meet a case they cannot differentiate.
  Error error(const std::string& message) const;

 private:
  const ir::Node& node_;
  int64_t opset_, onnx_opset_;
  const ir::GraphFacts& facts_;
  std::vector<std::string> output_grads_;
  std::vector<bool> input_wanted_;
  std::vector<std::string> input_grads_;
  std::function<void(ir::Node)> emit_node_;
  std::function<std::string(const std::string&)> fresh_;
  std::map<std::string, std::string> shapes_;
};

struct GradientRule {
  std::string domain;  // "" is ai.onnx
  std::string op_type;
  int64_t since_version = 1;
  int64_t until_version = INT_MAX;  // inclusive
  // Inputs a gradient flows through. Empty: none (a gradient stops here: Shape, Equal, ArgMax...).
  std::vector<size_t> differentiable_inputs;
  bool all_inputs_differentiable = false;  // variadic ops (Sum, Concat, Max...)
  // Emits the gradients of the wanted inputs. May be empty when no input is differentiable.
  std::function<void(GradientBuilder&)> build;

  bool differentiable(size_t input) const;
};

class GradientRegistry {
 public:
  // Every family's rules, registered on first use.
  static const GradientRegistry& global();

  void add(GradientRule rule);
  const GradientRule* find(const std::string& domain, const std::string& op_type, int64_t opset) const;
  std::vector<std::string> ops() const;  // "Op" and "domain:Op" that have a rule at some opset

 private:
  std::map<std::pair<std::string, std::string>, std::vector<GradientRule>> rules_;
};

// Each family registers its rules (runtime/core/ops/<family>.cc); GradientRegistry::global() calls them.
void register_elementwise_gradients(GradientRegistry& registry);    // unary math, activations, binary, variadic, Where
void register_linear_gradients(GradientRegistry& registry);         // MatMul, Gemm, FusedMatMul, Einsum
void register_reduce_gradients(GradientRegistry& registry);         // Reduce*, Softmax, LogSoftmax
void register_normalization_gradients(GradientRegistry& registry);  // BatchNorm, InstanceNorm, LayerNorm
void register_conv_pool_gradients(GradientRegistry& registry);      // Conv, ConvTranspose, pools
void register_tensor_gradients(GradientRegistry& registry);         // shape and movement ops, Gather*, Cast
void register_loss_gradients(GradientRegistry& registry);           // ONNX and com.tunnx losses, Dropout

// ONNX Dropout 12+ run with a training_mode input: DropoutGrad from its mask output (loss.cc); the
// tensor family's Dropout rule calls it.
void dropout_training_gradient(GradientBuilder& b);

}  // namespace tunnx::ops
