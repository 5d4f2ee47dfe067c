// The executor: a graph planned once (a kernel per node, a slot per value, when each value dies) and
// run many times. Each run gets its own frame of values, so concurrent runs share nothing mutable.
// Subgraphs (If/Loop/Scan bodies) are planned with their parent and see its values through the frame.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "runtime/core/graph.h"
#include "runtime/core/kernel_registry.h"
#include "runtime/core/parameter_store.h"
#include "tunnx/session.h"

namespace tunnx {

// What planning needs besides the graph itself.
struct PlanContext {
  const KernelRegistry* registry = nullptr;
  DeviceType device = DeviceType::kCpu;
  std::map<std::string, int64_t> opsets;  // domain ("" = ai.onnx) -> version
  const ParameterStore* store = nullptr;  // initializer values, read in place
  std::atomic<int64_t>* plans_built = nullptr;
  bool profile = false;  // time every step, subgraphs included (SessionOptions::profile)
  // Store keys of the Parameters an optimizer writes after every run of this plan (a trainer's):
  // kernels read them as they lie instead of keeping packed copies (KernelInit::trained_input).
  std::set<std::string> trained;
};

struct Frame;

class GraphPlan {
 public:
  struct Step {
    const ir::Node* node = nullptr;
    std::unique_ptr<Kernel> kernel;
    std::string kernel_name;
    std::vector<int> inputs;   // slot per input, -1 for an omitted optional input
    std::vector<int> outputs;  // slot per output, -1 for an omitted optional output
    std::vector<int> implicit_inputs;  // slots its subgraphs read
    std::vector<int> release;          // slots whose last reader is this step
    // The bodies its kernel runs (If's branches, Loop's body), by attribute name: for profiles.
    std::vector<std::pair<std::string, std::shared_ptr<const GraphPlan>>> subgraphs;
  };

  // Plans `graph`. `outer` is the plan of the enclosing graph (null for the main graph); names the
  // graph reads but does not define are taken from it at run time. Throws Error naming the first node
  // no kernel supports.
  GraphPlan(const ir::Graph& graph, const PlanContext& context, const GraphPlan* outer);

  // Runs the graph. `inputs` follow graph.inputs (a none Value leaves an initializer-backed input at
  // its initializer); returns values in graph.outputs order.
  std::vector<Value> run(std::vector<Value> inputs, const Frame* outer, int64_t& bytes_allocated) const;

  const ir::Graph& graph() const { return graph_; }
  const std::vector<Step>& steps() const { return steps_; }
  int slot_of(const std::string& name) const;  // -1 when not in this graph

  // Per step: runs and nanoseconds spent in its kernel so far (zero unless planned with `profile`).
  struct StepTime {
    int64_t calls = 0, ns = 0;
  };
  StepTime step_time(size_t step) const;

 private:
  int add_slot(const std::string& name);

  const ir::Graph& graph_;
  const GraphPlan* outer_;
  std::unordered_map<std::string, int> slots_;
  std::vector<std::string> slot_names_;
  std::vector<int> input_slots_, output_slots_;
  std::vector<std::pair<int, Tensor>> constants_;      // initializers
  std::vector<std::pair<int, std::string>> captured_;  // read from enclosing graphs
  std::vector<Step> steps_;
  // Summed by concurrent runs; sized once planning is done.
  std::unique_ptr<std::atomic<int64_t>[]> step_calls_, step_ns_;
};

// Every step of `plan` in execution order with its runs and time so far, each If/Loop/Scan body's
// steps after the node that runs them, one level deeper (SessionStats::kernels).
std::vector<SessionStats::NodeKernel> kernel_stats(const GraphPlan& plan);

// The values of one run of one graph.
struct Frame {
  const GraphPlan* plan = nullptr;
  const Frame* outer = nullptr;
  std::vector<Value> values;

  const Value* find(const std::string& name) const;  // here or in an enclosing frame
};

}  // namespace tunnx
