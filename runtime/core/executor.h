// The executor: a graph planned once (a kernel per node, a slot per value, when each value dies) and
// run many times. Each run gets its own frame of values, so concurrent runs share nothing mutable.
// Subgraphs (If/Loop/Scan bodies) are planned with their parent and see its values through the frame.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <unordered_map>
#include <unordered_set>
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

// Constant folding that keeps Parameters: a step whose inputs all derive from initializers and
// Constant nodes (an LSTM's weights sliced and concatenated from the file's, a shape computed from a
// constant) runs once, and its outputs are kept for later runs until one of the initializers they
// derive from is written (Tensor::version), as packed weights are. So a model's Parameters stay
// Parameters (trainable, saveable, their writes seen by the next run) and nothing is folded away.
// Not for steps that read a trained Parameter (remade after every step anyway), that run a body, that
// draw random numbers, or that the graph returns (a caller could write into the kept tensor).
struct FoldedOutputs {
  std::vector<const Tensor*> sources;  // initializers the outputs derive from
  std::mutex mutex;                    // concurrent runs: one computes, the others wait and reuse
  bool kept = false;
  std::vector<Value> outputs;
  std::vector<uint64_t> versions;  // of `sources` when `outputs` were made
};

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
    // Set when every input derives from initializers and Constant nodes alone (constant folding
    // that keeps Parameters: see FoldedOutputs).
    std::unique_ptr<FoldedOutputs> folded;
    // A Constant node whose tensor planning took (folded, from no source): a run finds its output in
    // place with the initializers and skips the step.
    bool preset = false;
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

  // What a value computed from initializers and Constant nodes alone derives from: the initializers
  // whose writes make it stale, and whether an optimizer writes one of them after every run. `tensor`
  // is the value itself when planning knows it (an initializer, a Constant node's tensor): kernels
  // reading it take it as a constant input.
  struct ConstantOrigin {
    std::vector<const Tensor*> sources;
    bool trained = false;
    const Tensor* tensor = nullptr;
  };
  // `name` as this plan sees it, when it is such a value (here or in an enclosing graph), else null.
  const ConstantOrigin* constant_origin(const std::string& name) const;
  int64_t folded_steps() const;  // steps whose outputs are kept between runs (FoldedOutputs), bodies included

  // Per step: runs and nanoseconds spent in its kernel so far (zero unless planned with `profile`).
  struct StepTime {
    int64_t calls = 0, ns = 0;
  };
  StepTime step_time(size_t step) const;

  // SessionOptions::release_packed_originals, for the main graph of an inference session: from now on
  // an initializer whose every reader is a kernel that keeps copies of its own (Kernel::constant_use)
  // is freed once all of them hold one, checked after the step that reads it last. Its slot then
  // holds a Tensor::placeholder of the same dtype and dims, which those kernels recognise in its
  // place. A run frees only while no other run is in flight (another may still read the original),
  // and none starts meanwhile. Initializers a body reads, the graph returns or a folded step reads
  // are kept.
  void release_packed_originals();
  // The store keys of the initializers release_packed_originals() watches, for a session that owns
  // its model and so may drop the model's own handles to them.
  std::vector<std::string> releasable_names() const;
  // While the session is made (no run in flight, none starting): frees the weights `step` reads whose
  // readers all are `prepared` (their Kernel::prepare has returned) and hold copies. Calls for
  // different steps may come from different preparing threads.
  void release_prepared(size_t step, const std::function<bool(size_t)>& prepared) const;
  struct Released {
    int64_t initializers = 0, bytes = 0;  // freed so far, and their bytes
  };
  Released released() const;

 private:
  // What release_packed_originals() watches.
  struct Releasable {
    size_t constant = 0;                             // index into constants_
    std::vector<std::pair<size_t, size_t>> readers;  // (step, input)
    bool released = false;
  };
  struct Release {
    std::vector<Releasable> weights;
    std::vector<std::vector<size_t>> last_read_at;  // per step: the weights it reads last
    std::mutex mutex;                               // guards the rest, and constants_ while weights are pending
    int runs = 0;                                   // runs in flight that started while weights were pending
    std::atomic<int64_t> pending{0};                // weights not freed yet: at 0 runs stop taking part
    Released done;
  };
  // Frees the weights `step` reads last whose readers all hold copies, when this run is the only one.
  void release_after(size_t step) const;
  // Frees `weight` when every reader holds copies (and, with `prepared`, is prepared); r.mutex held.
  void release_if_held(Releasable& weight, const std::function<bool(size_t)>* prepared) const;

  int add_slot(const std::string& name);
  // Runs a folded step, or hands out the outputs it kept while its sources are unwritten.
  void run_folded(const Step& step, KernelContext& ctx, std::vector<Value>& out, size_t index) const;

  const ir::Graph& graph_;
  const GraphPlan* outer_;
  std::unordered_map<std::string, int> slots_;
  std::vector<std::string> slot_names_;
  std::vector<int> input_slots_, output_slots_;
  mutable std::vector<std::pair<int, Tensor>> constants_;  // initializers (placeholders once freed)
  std::vector<std::pair<int, Value>> presets_;        // the preset steps' outputs (Step::preset)
  // A run's borrowed slots before its captures: the presets' values, and once no weight waits to be
  // freed (no release_packed_originals, or all freed), the initializers' as Values kept here. While
  // weights wait, runs copy the initializers under the release mutex instead, so a freed original
  // lives on in the runs that hold it.
  std::vector<const Value*> preset_borrowed_;
  mutable std::vector<const Value*> constant_borrowed_;
  mutable std::vector<Value> constant_values_held_;
  mutable std::atomic<bool> constants_held_{false};
  mutable std::mutex held_mutex_;
  const std::vector<const Value*>& borrowed_with_constants() const;
  // Where each captured_ name lives: the enclosing plan that has it, and its slot there (resolved on
  // the first run, once every enclosing plan has its slots), so a run need not hash the names.
  struct CapturedAt {
    const GraphPlan* plan = nullptr;
    int depth = 0, slot = -1;
  };
  mutable std::vector<CapturedAt> captured_at_;
  mutable std::once_flag captured_once_;
  // Frames of finished runs, their slots all none, for the next runs: a frame's slots were made and
  // destroyed with every run (an If body's, every time the model ran it).
  mutable std::mutex spare_mutex_;
  mutable std::vector<std::unique_ptr<Frame>> spare_frames_;
  std::unique_ptr<Frame> take_frame() const;
  void give_back(std::unique_ptr<Frame> frame) const;
  std::vector<std::pair<int, std::string>> captured_;  // read from enclosing graphs
  std::vector<Step> steps_;
  std::unordered_map<std::string, ConstantOrigin> constant_values_;
  std::unordered_set<std::string> captured_names_;
  // Bytes the folded steps may keep between runs, together; past it a step runs every time.
  mutable std::atomic<int64_t> folded_budget_{int64_t{256} << 20};
  // Summed by concurrent runs; sized once planning is done.
  std::unique_ptr<std::atomic<int64_t>[]> step_calls_, step_ns_;
  std::unique_ptr<Release> release_;  // set by release_packed_originals()
};

// Every step of `plan` in execution order with its runs and time so far, each If/Loop/Scan body's
// steps after the node that runs them, one level deeper (SessionStats::kernels).
std::vector<SessionStats::NodeKernel> kernel_stats(const GraphPlan& plan);

// The values of one run of one graph. A slot's value is either the frame's own (`values`: what the
// run's steps compute, the inputs fed) or borrowed from where it lives for the whole run: the plan's
// initializers and preset Constant outputs, an enclosing frame's value that a body reads. Borrowing
// spares a run a copy of each (a Tensor copy allocates its dims): silero-vad's run copied ~150 such
// values into its frames, most of them the weights its If bodies read from the main graph.
struct Frame {
  const GraphPlan* plan = nullptr;
  const Frame* outer = nullptr;
  std::vector<Value> values;
  std::vector<const Value*> borrowed;  // per slot: where the value lives when not in `values`

  const Value& value(size_t slot) const { return borrowed[slot] ? *borrowed[slot] : values[slot]; }
  const Value* find(const std::string& name) const;  // here or in an enclosing frame
};

}  // namespace tunnx
