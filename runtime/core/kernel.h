// The kernel interface. A kernel is built once per node when a session is planned (attributes parsed
// then) and run many times, possibly from several threads at once: run() is const and keeps no
// per-run state in the kernel.
#pragma once

#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "runtime/core/graph.h"
#include "tunnx/value.h"

namespace tunnx {

class GraphPlan;  // a planned graph (executor.h); If/Loop/Scan run their bodies through it

// What a kernel factory sees: the node, its opset, what is known of its input types, its subgraphs.
class KernelInit {
 public:
  KernelInit(const ir::Node& node, int64_t opset, std::vector<DataType> input_types,
             std::map<std::string, std::shared_ptr<const GraphPlan>> subgraphs,
             std::vector<const Tensor*> constant_inputs = {}, std::vector<bool> trained_inputs = {});

  const ir::Node& node() const { return node_; }
  int64_t opset() const { return opset_; }
  // kUndefined when the planner could not tell (the kernel then checks at run time).
  DataType input_type(size_t i) const { return i < input_types_.size() ? input_types_[i] : DataType::kUndefined; }
  size_t num_inputs() const { return node_.inputs.size(); }
  bool has_input(size_t i) const { return i < node_.inputs.size() && !node_.inputs[i].empty(); }
  // The initializer (Parameter or buffer) that input i names, or null. Its values may change between
  // runs (training, load_state_dict; see Tensor::version), and a caller may feed an input of the same
  // name instead: a kernel that keeps something derived from it checks, at run time, that the input
  // shares its storage and that the version is the one it derived from.
  const Tensor* constant_input(size_t i) const { return i < constant_inputs_.size() ? constant_inputs_[i] : nullptr; }
  // Whether input i is a Parameter that an optimizer writes after every run of this plan (a
  // trainer's plans): a copy derived from it would be remade every run, so kernels read it as it lies.
  bool trained_input(size_t i) const { return i < trained_inputs_.size() && trained_inputs_[i]; }

  bool has_attr(const std::string& name) const { return node_.attribute(name) != nullptr; }
  // The planner refuses a node with an attribute its kernel's factory never looked up (through these
  // accessors or ir::Node::attribute): a kernel never ignores an attribute silently. This marks
  // attributes as handled without reading them, for those that cannot change this kernel's result
  // (say why at the call site).
  void accept_attrs(std::initializer_list<const char*> names) const {
    for (const char* name : names) ir::AttributeReads::note(name);
  }
  int64_t attr_int(const std::string& name, int64_t fallback) const;
  float attr_float(const std::string& name, float fallback) const;
  std::string attr_string(const std::string& name, const std::string& fallback) const;
  std::vector<int64_t> attr_ints(const std::string& name, std::vector<int64_t> fallback = {}) const;
  std::vector<float> attr_floats(const std::string& name, std::vector<float> fallback = {}) const;
  std::vector<std::string> attr_strings(const std::string& name, std::vector<std::string> fallback = {}) const;
  const Tensor* attr_tensor(const std::string& name) const;  // null when absent
  // Throws Error naming the node when a required attribute is missing.
  const ir::Attribute& required_attr(const std::string& name) const;
  std::shared_ptr<const GraphPlan> subgraph(const std::string& attr_name) const;

  // An error about this node ("node 'n' (Op): message").
  Error error(const std::string& message) const;

 private:
  const ir::Node& node_;
  int64_t opset_;
  std::vector<DataType> input_types_;
  std::map<std::string, std::shared_ptr<const GraphPlan>> subgraphs_;
  std::vector<const Tensor*> constant_inputs_;
  std::vector<bool> trained_inputs_;
};

// One run of one node: its input values, its output slots, and run-wide facilities.
class KernelContext {
 public:
  // `frame` is the executor's frame of the running graph; subgraphs read outer values through it.
  KernelContext(const ir::Node& node, std::vector<const Value*> inputs, std::vector<Value>& outputs,
                std::vector<bool> outputs_wanted, int64_t& bytes_allocated, const void* frame);

  const ir::Node& node() const { return node_; }
  size_t num_inputs() const { return inputs_.size(); }
  bool has_input(size_t i) const { return i < inputs_.size() && inputs_[i] && !inputs_[i]->is_none(); }
  const Value& input_value(size_t i) const;  // throws when missing
  const Tensor& input(size_t i) const;       // throws when missing or not a tensor

  size_t num_outputs() const { return outputs_.size(); }
  bool output_wanted(size_t i) const { return i < wanted_.size() && wanted_[i]; }
  // A new zero-filled tensor as output i; counted in the session's bytes-allocated statistic.
  Tensor& allocate_output(size_t i, DataType dtype, std::vector<int64_t> dims);
  // The same without the zero fill, for kernels that write every element (products, elementwise ops,
  // transposes): on a training step the fill alone was 5% of the time.
  Tensor& allocate_output_uninitialized(size_t i, DataType dtype, std::vector<int64_t> dims);
  // Any value as output i (a sequence, or a tensor that shares another's storage, like Identity).
  void set_output(size_t i, Value value);
  // Output i, already set, viewed with other dims of the same element count (no copy).
  void reshape_output(size_t i, std::vector<int64_t> dims);

  Error error(const std::string& message) const;

  // The executor hands the same buffers to every node of a run instead of allocating them per node.
  const std::vector<const Value*>& inputs() const { return inputs_; }
  std::vector<const Value*> take_inputs() { return std::move(inputs_); }
  std::vector<bool> take_wanted() { return std::move(wanted_); }

  // Runs a planned subgraph (If/Loop/Scan body) with this graph's values visible to it.
  std::vector<Value> run_subgraph(const GraphPlan& plan, std::vector<Value> inputs) const;

  // This run with input i read from `value` instead (which must outlive the returned context); outputs
  // go where this context's go. For a kernel that hands its reference kernel a weight it restored from
  // its own copy (Kernel::release_constant).
  KernelContext with_input(size_t i, const Value* value) const;

 private:
  const ir::Node& node_;
  std::vector<const Value*> inputs_;
  std::vector<Value>& outputs_;
  std::vector<bool> wanted_;
  int64_t& bytes_allocated_;
  const void* frame_;
};

// What a session knows of a node's inputs when it is made (SessionOptions: prepared when the session
// is made): the dims of each input, where shape inference fixed them all.
struct KernelPrepare {
  std::vector<std::optional<std::vector<int64_t>>> input_dims;  // per input; nothing where unknown
};

class Kernel {
 public:
  virtual ~Kernel() = default;
  virtual void run(KernelContext& ctx) const = 0;

  // Builds now what a first run with these inputs would (a oneDNN primitive, weights packed into its
  // layout), so that run is not slow; called once when the session is made, possibly on another
  // thread than later runs and beside other kernels' prepare. Changes no result. Returns whether it
  // built anything. Default: nothing.
  virtual bool prepare(const KernelPrepare& /*inputs*/) const { return false; }

  // What the kernel keeps of constant input i (KernelInit::constant_input), for
  // SessionOptions::release_packed_originals.
  enum class ConstantUse {
    kReadsIt,      // reads the constant itself (the default: reference kernels, plain-layout paths)
    kNotYet,       // will hold copies of its own once runs have made them
    kHoldsCopies,  // computes every later run from copies of its own, whatever the shapes: it may be freed
  };
  virtual ConstantUse constant_use(size_t /*input*/) const { return ConstantUse::kReadsIt; }
  // The session freed constant input i, which kernels reading it answered kHoldsCopies for: from now
  // on runs pass `stand_in` (a Tensor::placeholder of the same dtype and dims) in its place, and the
  // kernel computes from its copies as they are (later writes to the weight are not seen). Called
  // between runs' steps, never while this kernel runs.
  virtual void release_constant(size_t /*input*/, const Tensor& /*stand_in*/) {}
};

using KernelFactory = std::function<std::unique_ptr<Kernel>(const KernelInit&)>;

// A kernel written as a function of the context, for kernels whose attributes the function reads
// from a small struct captured at plan time.
class FunctionKernel : public Kernel {
 public:
  explicit FunctionKernel(std::function<void(KernelContext&)> fn) : fn_(std::move(fn)) {}
  void run(KernelContext& ctx) const override { fn_(ctx); }

 private:
  std::function<void(KernelContext&)> fn_;
};

}  // namespace tunnx
