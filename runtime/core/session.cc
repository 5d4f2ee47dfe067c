#include "tunnx/session.h"

#include <algorithm>
#include <chrono>
#include <mutex>
#include <shared_mutex>
#include <unordered_map>
#include <unordered_set>

#include "runtime/core/executor.h"
#include "runtime/core/model_impl.h"
#include "runtime/core/prepare.h"
#include "runtime/core/run_threads.h"

namespace tunnx {
namespace {


Error input_error(const std::string& name, const std::string& message, const std::string& shapes = {}) {
  return Error(ErrorCode::kInvalidArgument, message, {.tensor = name, .shapes = shapes});
}

// Where a named dim got its size in this run: the size, and the input and axis that set it.
struct SymbolBinding {
  int64_t size = 0;
  std::string input;
  size_t axis = 0;
};

// Checks one fed value against the graph input's declared type; binds named dims in `symbols`
// (anonymous ones, "?" or empty, take any size).
void check_input(const ir::ValueInfo& declared, const Value& value,
                 std::unordered_map<std::string, SymbolBinding>& symbols) {
  using Kind = ir::TypeInfo::Kind;
  const ir::TypeInfo& type = declared.type;
  if (type.kind == Kind::kSequence && !value.is_sequence())
    throw input_error(declared.name, "expects a sequence, got " + value.describe());
  if (type.kind != Kind::kTensor) return;
  if (!value.is_tensor()) throw input_error(declared.name, "expects a tensor, got " + value.describe());
  const Tensor& t = value.tensor();
  if (is_known_data_type(static_cast<int32_t>(type.elem_type)) && t.dtype() != type.elem_type)
    throw input_error(declared.name, std::string("expects dtype ") + to_string(type.elem_type) + ", got " +
                                         to_string(t.dtype()));
  if (!type.shape) return;
  const Shape& shape = *type.shape;
  std::string shapes = "expected " + shape.to_string() + ", got " + dims_to_string(t.dims());
  if (shape.rank() != t.rank())
    throw input_error(declared.name, "expects rank " + std::to_string(shape.rank()) + ", got rank " +
                                         std::to_string(t.rank()), shapes);
  for (size_t i = 0; i < shape.rank(); ++i) {
    const Dim& d = shape.dims[i];
    int64_t got = t.dims()[i];
    if (d.is_fixed() && d.value != got)
      throw input_error(declared.name, "dimension " + std::to_string(i) + " must be " + std::to_string(d.value) +
                                           ", got " + std::to_string(got), shapes);
    if (d.is_named()) {
      auto [it, inserted] = symbols.emplace(d.symbol, SymbolBinding{got, declared.name, i});
      const SymbolBinding& first = it->second;
      if (!inserted && first.size != got)
        throw input_error(declared.name, "dimension '" + d.symbol + "' is " + std::to_string(first.size) + " in input '" +
                                             first.input + "' axis " + std::to_string(first.axis) + " but " +
                                             std::to_string(got) + " in input '" + declared.name + "' axis " +
                                             std::to_string(i),
                          shapes);
    }
  }
}

}  // namespace

struct Session::Impl {
  // Session(Model&&): the model it took. First, so it outlives what was planned from it.
  std::optional<Model> owned_model;
  int threads = 0;
  std::shared_ptr<std::shared_mutex> parameters_mutex;
  std::atomic<int64_t> plans_built{0};
  int64_t prepared_nodes = 0;
  PreparedGraph prepared;  // the session's copy of the graph (passes may rewrite it) and its plan
  const GraphPlan* plan = nullptr;
  const ir::Graph& graph() const { return *prepared.graph; }
  std::unordered_set<std::string> initializer_names;
  std::unordered_map<std::string, size_t> input_index, output_index;

  std::string model_file;  // errors of a run name it, as the errors of planning do

  // Session::run without the model file on its errors.
  NamedValues run(const Session& session, const NamedValues& inputs, const std::vector<std::string>& output_names) const;

  std::unique_ptr<ThreadGovernor> governor;  // each run's thread count on a busy machine

  // The constructors' work: plans `m` (the owned model's, when the session took one).
  void build(const ModelImpl& m, const SessionOptions& options);

  mutable std::mutex stats_mutex;
  mutable int64_t runs = 0, last_bytes = 0;
  mutable double last_ms = 0, total_ms = 0;
  mutable int last_threads = 0;
};

std::map<std::string, int64_t> dims_named_by(const Model& model, const NamedValues& inputs) {
  std::map<std::string, int64_t> sizes;
  for (const ir::ValueInfo& declared : model_impl(model).ir.graph.inputs) {
    auto given = inputs.find(declared.name);
    if (given == inputs.end() || !given->second.is_tensor() || !declared.type.shape) continue;
    const std::vector<int64_t>& dims = given->second.tensor().dims();
    const std::vector<Dim>& declared_dims = declared.type.shape->dims;
    if (dims.size() != declared_dims.size()) continue;
    for (size_t axis = 0; axis < dims.size(); ++axis)
      if (declared_dims[axis].is_named()) sizes.emplace(declared_dims[axis].symbol, dims[axis]);
  }
  return sizes;
}

std::map<std::string, std::vector<int64_t>> input_dims_of(const NamedValues& inputs) {
  std::map<std::string, std::vector<int64_t>> dims;
  for (const auto& [name, value] : inputs)
    if (value.is_tensor()) dims.emplace(name, value.tensor().dims());
  return dims;
}

std::vector<std::string> unsupported_ops(const Model& model, DeviceType device) {
  return ops_without_kernels(model_impl(model), device);
}

Session::Session(const Model& model, SessionOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->build(model_impl(model), options);
}

Session::Session(Model&& model, SessionOptions options) : impl_(std::make_unique<Impl>()) {
  impl_->owned_model.emplace(std::move(model));
  impl_->build(model_impl(*impl_->owned_model), options);
}

void Session::Impl::build(const ModelImpl& m, const SessionOptions& options) {
  if (options.optimization_level < 0 || options.optimization_level > 2)
    throw Error(ErrorCode::kInvalidArgument,
                "optimization level must be 0, 1 or 2, got " + std::to_string(options.optimization_level));
  if (options.threads < 0)
    throw Error(ErrorCode::kInvalidArgument, "threads must be 0 (all cores) or more, got " + std::to_string(options.threads));
  if (options.device.type != DeviceType::kCpu)
    throw Error(ErrorCode::kUnsupported, "device " + options.device.to_string() + " has no backend yet");
  threads = options.threads;
  governor = std::make_unique<ThreadGovernor>(options.adaptive_threads);
  parameters_mutex = m.parameters_mutex;
  model_file = m.path.string();
  PrepareOptions prepare;
  prepare.device = options.device.type;
  prepare.optimization_level = options.optimization_level;
  prepare.profile = options.profile;
  prepare.plans_built = &plans_built;
  prepared = prepare_graph(m, prepare);
  // What the expected input dims fix further in, from shape inference on the graph as loaded: skipped
  // where every input's dims are fixed already (load's inference knew them all).
  const auto free_dims = [](const ir::ValueInfo& v) { return v.type.shape && !v.type.shape->is_fixed(); };
  std::map<std::string, std::vector<int64_t>> known_dims;
  if (!options.expected_input_dims.empty() && m.fixed_dims_for && m.edits.empty() &&
      std::any_of(m.ir.graph.inputs.begin(), m.ir.graph.inputs.end(), free_dims))
    known_dims = m.fixed_dims_for(options.expected_input_dims);
  if (options.release_packed_originals) {
    if (prepared.gradient_nodes > 0)
      throw Error(ErrorCode::kInvalidArgument,
                  "release_packed_originals is for inference: this model's graph computes gradients (" +
                      std::to_string(prepared.gradient_nodes) +
                      " ONNX Gradient nodes), whose kernels read the weights as they lie",
                  {.file = model_file});
    prepared.plan->release_packed_originals();
    // A model the session owns holds its weights for nobody else: the plan's handles become the only
    // ones, so each weight is freed as soon as the plan lets go of it, while kernels are prepared.
    if (owned_model)
      for (const std::string& key : prepared.plan->releasable_names())
        if (StoredTensor* stored = model_impl(*owned_model).store.find(key))
          stored->value = Tensor::placeholder(stored->value.dtype(), stored->value.dims());
  }
  prepared_nodes = prepare_kernels(prepared, m.store, options.threads, options.expected_dims, known_dims,
                                   options.release_packed_originals);
  const ir::Graph& graph = *prepared.graph;
  plan = prepared.plan.get();
  for (const auto& init : graph.initializers) initializer_names.insert(init.name);
  for (size_t i = 0; i < graph.inputs.size(); ++i) input_index[graph.inputs[i].name] = i;
  for (size_t i = 0; i < graph.outputs.size(); ++i) output_index[graph.outputs[i].name] = i;
}

Session::~Session() = default;
Session::Session(Session&&) noexcept = default;
Session& Session::operator=(Session&&) noexcept = default;

NamedValues Session::run(const NamedValues& inputs, const std::vector<std::string>& output_names) const {
  try {
    return impl_->run(*this, inputs, output_names);
  } catch (const Error& e) {
    throw e.with_context({.file = impl_->model_file});  // "<model file>: tensor 'x': ...", as at load and plan
  }
}

NamedValues Session::Impl::run(const Session& session, const NamedValues& inputs,
                               const std::vector<std::string>& output_names) const {
  const Impl& s = *this;
  auto start = std::chrono::steady_clock::now();
  std::vector<Value> feeds(s.graph().inputs.size());
  std::unordered_map<std::string, SymbolBinding> symbols;
  uint64_t shape_sum = 0;  // the governor compares times of runs of one input size only
  for (const auto& [name, value] : inputs) {
    auto it = s.input_index.find(name);
    if (it == s.input_index.end()) {
      std::string known;
      for (const auto& in : session.input_names()) known += (known.empty() ? "" : ", ") + in;
      throw input_error(name, "is not an input of this model (inputs: " + known + ")");
    }
    check_input(s.graph().inputs[it->second], value, symbols);
    feeds[it->second] = value;
    if (value.is_tensor()) shape_sum = shape_sum * 31 + static_cast<uint64_t>(value.tensor().numel());
  }
  for (size_t i = 0; i < feeds.size(); ++i)
    if (feeds[i].is_none() && !s.initializer_names.count(s.graph().inputs[i].name) &&
        s.graph().inputs[i].type.kind != ir::TypeInfo::Kind::kOptional)
      throw input_error(s.graph().inputs[i].name, "is a required input and was not given");

  std::vector<size_t> wanted;
  if (output_names.empty()) {
    for (size_t i = 0; i < s.graph().outputs.size(); ++i) wanted.push_back(i);
  } else {
    for (const auto& name : output_names) {
      auto it = s.output_index.find(name);
      if (it == s.output_index.end())
        throw Error(ErrorCode::kInvalidArgument, "is not an output of this model", {.tensor = name});
      wanted.push_back(it->second);
    }
  }

  int64_t bytes = 0;
  const int64_t preempted_before = ThreadGovernor::preemptions();
  RunThreads threads(s.governor->choose(s.threads));
  std::vector<Value> results;
  {
    // A run reads one whole parameter version: a trainer's update waits for it, and it for the update.
    std::shared_lock<std::shared_mutex> parameters(*s.parameters_mutex);
    results = s.plan->run(std::move(feeds), nullptr, bytes);
  }
  NamedValues out;
  for (size_t i : wanted) out[s.graph().outputs[i].name] = results[i];

  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  s.governor->record(threads.granted(), ms, ThreadGovernor::preemptions() - preempted_before,
                     static_cast<int64_t>(shape_sum));
  std::lock_guard<std::mutex> lock(s.stats_mutex);
  ++s.runs;
  s.last_bytes = bytes;
  s.last_ms = ms;
  s.total_ms += ms;
  s.last_threads = threads.granted();
  return out;
}

std::vector<std::string> Session::input_names() const {
  std::vector<std::string> names;
  for (const auto& in : impl_->graph().inputs)
    if (!impl_->initializer_names.count(in.name)) names.push_back(in.name);
  return names;
}

std::vector<std::string> Session::output_names() const {
  std::vector<std::string> names;
  for (const auto& out : impl_->graph().outputs) names.push_back(out.name);
  return names;
}

SessionStats Session::stats() const {
  SessionStats stats;
  stats.kernels = kernel_stats(*impl_->plan);
  stats.plans_built = impl_->plans_built.load();
  stats.folded_nodes = impl_->plan->folded_steps();
  stats.prepared_nodes = impl_->prepared_nodes;
  const GraphPlan::Released released = impl_->plan->released();
  stats.released_initializers = released.initializers;
  stats.released_bytes = released.bytes;
  std::lock_guard<std::mutex> lock(impl_->stats_mutex);
  stats.runs = impl_->runs;
  stats.last_run_bytes_allocated = impl_->last_bytes;
  stats.last_run_ms = impl_->last_ms;
  stats.last_run_threads = impl_->last_threads;
  stats.total_run_ms = impl_->total_ms;
  return stats;
}

}  // namespace tunnx
