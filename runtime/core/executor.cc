#include "runtime/core/executor.h"

#include <algorithm>
#include <chrono>
#include <unordered_set>

namespace tunnx {
namespace {

// dtype of every value whose type the file or ONNX shape inference states.
std::unordered_map<std::string, DataType> known_types(const ir::Graph& graph, const ParameterStore* store) {
  std::unordered_map<std::string, DataType> types;
  auto note = [&types](const std::string& name, const ir::TypeInfo& t) {
    if (t.kind == ir::TypeInfo::Kind::kTensor && is_known_data_type(static_cast<int32_t>(t.elem_type)))
      types[name] = t.elem_type;
  };
  for (const auto& [name, t] : graph.inferred_types) note(name, t);
  for (const auto& v : graph.value_infos) note(v.name, v.type);
  for (const auto& v : graph.inputs) note(v.name, v.type);
  for (const auto& v : graph.outputs) note(v.name, v.type);
  if (store)
    for (const auto& init : graph.initializers) types[init.name] = store->at(init.store_key).value.dtype();
  return types;
}

std::string input_shapes(const ir::Node& node, const std::vector<const Value*>& inputs) {
  std::string out;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i]) continue;
    if (!out.empty()) out += ", ";
    out += node.inputs[i] + ": " + inputs[i]->describe();
  }
  return out;
}

// Ops whose outputs differ between runs of the same inputs: never folded.
bool draws_random_numbers(const ir::Node& node) {
  static const std::unordered_set<std::string> ops = {"RandomUniform", "RandomNormal", "RandomUniformLike",
                                                      "RandomNormalLike", "Bernoulli", "Multinomial",
                                                      "Dropout", "TrainDropout"};
  return ops.count(node.op_type) > 0;
}

// Sources of a folded value: the union of its inputs' sources, each once.
void add_sources(GraphPlan::ConstantOrigin& to, const GraphPlan::ConstantOrigin& from) {
  for (const Tensor* t : from.sources)
    if (std::find(to.sources.begin(), to.sources.end(), t) == to.sources.end()) to.sources.push_back(t);
  to.trained = to.trained || from.trained;
}

}  // namespace

const GraphPlan::ConstantOrigin* GraphPlan::constant_origin(const std::string& name) const {
  for (const GraphPlan* p = this; p; p = p->outer_) {
    auto it = p->constant_values_.find(name);
    if (it != p->constant_values_.end()) return &it->second;
    if (p->slots_.count(name) && !p->captured_names_.count(name)) return nullptr;  // computed here
  }
  return nullptr;
}

int64_t GraphPlan::folded_steps() const {
  int64_t n = 0;
  for (const auto& step : steps_) {
    n += step.folded ? 1 : 0;
    for (const auto& [attr, body] : step.subgraphs) n += body->folded_steps();
  }
  return n;
}

const Value* Frame::find(const std::string& name) const {
  for (const Frame* f = this; f; f = f->outer) {
    int slot = f->plan->slot_of(name);
    if (slot >= 0) return &f->value(static_cast<size_t>(slot));
  }
  return nullptr;
}

int GraphPlan::slot_of(const std::string& name) const {
  auto it = slots_.find(name);
  return it == slots_.end() ? -1 : it->second;
}

int GraphPlan::add_slot(const std::string& name) {
  auto [it, inserted] = slots_.emplace(name, static_cast<int>(slot_names_.size()));
  if (inserted) slot_names_.push_back(name);
  return it->second;
}

GraphPlan::GraphPlan(const ir::Graph& graph, const PlanContext& context, const GraphPlan* outer)
    : graph_(graph), outer_(outer) {
  if (context.plans_built) ++*context.plans_built;
  for (const auto& init : graph.initializers) {
    int slot = add_slot(init.name);
    constants_.emplace_back(slot, context.store->at(init.store_key).value);
  }
  std::unordered_map<std::string, const Tensor*> constant_by_name;
  std::unordered_set<std::string> trained_names;
  for (size_t i = 0; i < graph.initializers.size(); ++i) {
    constant_by_name[graph.initializers[i].name] = &constants_[i].second;
    if (context.trained.count(graph.initializers[i].store_key)) trained_names.insert(graph.initializers[i].name);
  }
  for (const auto& v : graph.inputs) input_slots_.push_back(add_slot(v.name));
  // Initializers a caller cannot override by feeding an input of the same name are folding's sources.
  std::unordered_set<std::string> fed(graph.inputs.size());
  for (const auto& v : graph.inputs) fed.insert(v.name);
  for (size_t i = 0; i < graph.initializers.size(); ++i) {
    const std::string& name = graph.initializers[i].name;
    if (fed.count(name)) continue;
    const Tensor* tensor = &constants_[i].second;
    constant_values_[name] = {{tensor}, trained_names.count(name) > 0, tensor};
  }
  std::unordered_set<std::string> returned;
  for (const auto& v : graph.outputs) returned.insert(v.name);
  // A name read from an enclosing graph: a constant there is one here.
  auto capture = [this](int slot, const std::string& name) {
    captured_.emplace_back(slot, name);
    captured_names_.insert(name);
    if (outer_)
      if (const ConstantOrigin* origin = outer_->constant_origin(name)) constant_values_[name] = *origin;
  };
  std::unordered_map<std::string, DataType> types = known_types(graph, context.store);
  // What this graph's nodes write: a node reading one of these before its writer ran would read
  // nothing (a graph rewrite that put a node too early), not a value from an enclosing graph.
  std::unordered_set<std::string> written_here;
  for (const auto& node : graph.nodes)
    for (const auto& out : node.outputs)
      if (!out.empty()) written_here.insert(out);

  for (const auto& node : graph.nodes) {
    Step step;
    step.node = &node;
    std::vector<DataType> input_types;
    std::vector<const Tensor*> constant_inputs;
    std::vector<bool> trained_inputs;
    for (const auto& in : node.inputs) {
      if (in.empty()) {
        constant_inputs.push_back(nullptr);
        trained_inputs.push_back(false);
        step.inputs.push_back(-1);
        input_types.push_back(DataType::kUndefined);
        continue;
      }
      if (!slots_.count(in)) {
        if (written_here.count(in))
          throw Error(ErrorCode::kInvalidArgument, "reads '" + in + "' before the node that writes it",
                      {.node = node.name.empty() ? "<unnamed>" : node.name, .op_type = node.op_type});
        capture(add_slot(in), in);  // from an enclosing graph
      }
      // This graph's initializers (a fed one included: kernels compare storage before using a packed
      // copy), then a tensor planning knows: a Constant node's, or an enclosing graph's initializer
      // (silero-vad's weights under If), which kernels may pack once as they do their own graph's.
      auto c = constant_by_name.find(in);
      const ConstantOrigin* origin = c == constant_by_name.end() ? constant_origin(in) : nullptr;
      const Tensor* known = origin ? origin->tensor : nullptr;
      constant_inputs.push_back(c != constant_by_name.end() ? c->second : known);
      trained_inputs.push_back(c != constant_by_name.end() ? trained_names.count(in) > 0 : known && origin->trained);
      step.inputs.push_back(slots_.at(in));
      auto t = types.find(in);
      input_types.push_back(t == types.end() ? DataType::kUndefined : t->second);
    }
    int64_t opset = 0;
    auto o = context.opsets.find(node.domain == "ai.onnx" ? "" : node.domain);
    if (o != context.opsets.end()) opset = o->second;

    std::string why_not;
    const KernelDef* def = context.registry->find(node.domain, node.op_type, opset, context.device, input_types, &why_not);
    if (!def)
      throw Error(ErrorCode::kUnsupported, why_not + " on " + std::string(context.device == DeviceType::kCpu ? "cpu" : "cuda"),
                  {.node = node.name.empty() ? "<unnamed>" : node.name, .op_type = node.op_type});

    // Subgraphs are planned with this graph as their scope; names they read from here are captured.
    std::map<std::string, std::shared_ptr<const GraphPlan>> subgraphs;
    for (const auto& attr : node.attributes)
      if (attr.g) {
        auto sub = std::make_shared<GraphPlan>(*attr.g, context, this);
        // What the body reads from this graph keeps those values alive until this step has run.
        // A name from further out is captured here too, so every frame on the way keeps it.
        for (const auto& [slot, name] : sub->captured_) {
          int here = slot_of(name);
          if (here < 0) {
            here = add_slot(name);
            capture(here, name);
          }
          step.implicit_inputs.push_back(here);
        }
        subgraphs.emplace(attr.name, std::move(sub));
      }
    for (const auto& [name, sub] : subgraphs) step.subgraphs.emplace_back(name, sub);
    try {
      const ir::AttributeReads reads;
      step.kernel = def->factory(KernelInit(node, opset, input_types, std::move(subgraphs), std::move(constant_inputs),
                                             std::move(trained_inputs)));
      // An attribute the kernel never looked at would be ignored: refuse rather than answer wrongly.
      // consumed_inputs (opsets 1-5) is a memory hint of ONNX's first releases, not a semantic.
      for (const ir::Attribute& a : node.attributes)
        if (!reads.saw(a.name) && a.name != "consumed_inputs")
          throw Error(ErrorCode::kUnsupported, "attribute '" + a.name + "' is not implemented by " + def->name +
                                                   " (opset " + std::to_string(opset) + ")");
    } catch (const Error& e) {
      throw e.with_context({.node = node.name.empty() ? "<unnamed>" : node.name, .op_type = node.op_type});
    }
    step.kernel_name = def->name;
    for (const auto& out : node.outputs) step.outputs.push_back(out.empty() ? -1 : add_slot(out));
    // Folded when every input is a constant (a Constant node has none) and nothing else stands in the way.
    ConstantOrigin origin;
    bool foldable = step.subgraphs.empty() && !draws_random_numbers(node);
    for (const auto& in : node.inputs) {
      if (!foldable || in.empty()) continue;
      auto c = constant_values_.find(in);
      if (c == constant_values_.end()) foldable = false;
      else add_sources(origin, c->second);
    }
    for (const auto& out : node.outputs) foldable = foldable && !returned.count(out);
    if (foldable && !origin.trained) {
      step.folded = std::make_unique<FoldedOutputs>();
      step.folded->sources = origin.sources;
      for (const auto& out : node.outputs)
        if (!out.empty()) constant_values_[out] = origin;
      // A Constant node's tensor is taken now, so the kernels that read it (exporters such as
      // PyTorch's for If bodies and Paddle2ONNX keep weights there) see it as a constant input and
      // pack it once, as an initializer; it is the same storage on every run.
      if ((node.domain.empty() || node.domain == "ai.onnx") && node.op_type == "Constant" && step.outputs.size() == 1 && step.outputs[0] >= 0) {
        std::vector<Value> out(1);
        int64_t bytes = 0;
        KernelContext ctx(node, {}, out, {true}, bytes, nullptr);
        try {
          step.kernel->run(ctx);
        } catch (const Error&) {
          out[0] = Value();  // it fails at run time again, with the run's context
        }
        if (out[0].is_tensor()) {
          step.folded->outputs = std::move(out);
          step.folded->kept = true;
          constant_values_[node.outputs[0]].tensor = &step.folded->outputs[0].tensor();
        }
      }
    }
    steps_.push_back(std::move(step));
  }
  for (const auto& v : graph.outputs) {
    if (!slots_.count(v.name)) capture(add_slot(v.name), v.name);
    output_slots_.push_back(slots_.at(v.name));
  }

  if (context.profile) {  // subgraphs too: a profile shows the nodes inside If/Loop/Scan bodies
    step_calls_ = std::make_unique<std::atomic<int64_t>[]>(steps_.size());
    step_ns_ = std::make_unique<std::atomic<int64_t>[]>(steps_.size());
  }

  // An output nothing reads is not wanted: kernels may skip computing it (a gradient kernel asked for
  // dX alone, Dropout's mask at inference).
  std::unordered_set<int> read(output_slots_.begin(), output_slots_.end());
  for (const auto& step : steps_) {
    read.insert(step.inputs.begin(), step.inputs.end());
    read.insert(step.implicit_inputs.begin(), step.implicit_inputs.end());
  }
  for (auto& step : steps_)
    for (int& slot : step.outputs)
      if (slot >= 0 && !read.count(slot)) slot = -1;

  // Constant nodes' tensors taken above are set with the initializers: a PyTorch-exported recurrent
  // model's If bodies run ~90 of them per run, each a step that copied its kept output under a lock.
  for (auto& step : steps_) {
    const ir::Node& node = *step.node;
    if (!step.folded || !step.folded->kept || !step.folded->sources.empty() || step.outputs.size() != 1 ||
        !(node.domain.empty() || node.domain == "ai.onnx") || node.op_type != "Constant")
      continue;
    step.preset = true;
    if (step.outputs[0] >= 0) presets_.emplace_back(step.outputs[0], step.folded->outputs[0]);
  }
  preset_borrowed_.assign(slot_names_.size(), nullptr);
  for (const auto& [slot, value] : presets_) preset_borrowed_[static_cast<size_t>(slot)] = &value;

  // Free each value after its last reader, unless the graph returns it.
  std::unordered_set<int> kept(output_slots_.begin(), output_slots_.end());
  std::unordered_map<int, size_t> last_reader;
  for (size_t i = 0; i < steps_.size(); ++i) {
    for (int slot : steps_[i].inputs)
      if (slot >= 0) last_reader[slot] = i;
    for (int slot : steps_[i].implicit_inputs) last_reader[slot] = i;
  }
  for (const auto& [slot, step] : last_reader)
    if (!kept.count(slot)) steps_[step].release.push_back(slot);
}

std::unique_ptr<Frame> GraphPlan::take_frame() const {
  {
    std::lock_guard<std::mutex> lock(spare_mutex_);
    if (!spare_frames_.empty()) {
      std::unique_ptr<Frame> frame = std::move(spare_frames_.back());
      spare_frames_.pop_back();
      return frame;
    }
  }
  auto frame = std::make_unique<Frame>();
  frame->plan = this;
  frame->values.resize(slot_names_.size());
  return frame;
}

void GraphPlan::give_back(std::unique_ptr<Frame> frame) const {
  for (Value& v : frame->values)
    if (!v.is_none()) v = Value();
  frame->outer = nullptr;
  std::lock_guard<std::mutex> lock(spare_mutex_);
  if (spare_frames_.size() < 4) spare_frames_.push_back(std::move(frame));  // more only for concurrent runs
}

std::vector<Value> GraphPlan::run(std::vector<Value> inputs, const Frame* outer, int64_t& bytes_allocated) const {
  struct Taken {  // given back however the run ends
    const GraphPlan* plan;
    std::unique_ptr<Frame> frame;
    ~Taken() { plan->give_back(std::move(frame)); }
  } taken{this, take_frame()};
  Frame& frame = *taken.frame;
  frame.outer = outer;
  // While weights may still be freed, this run is counted and takes each constant under the lock
  // that swaps it for its placeholder (release_packed_originals).
  Release* release = release_ && release_->pending.load(std::memory_order_acquire) > 0 ? release_.get() : nullptr;
  struct Leave {
    Release* counted = nullptr;
    ~Leave() {
      if (!counted) return;
      std::lock_guard<std::mutex> lock(counted->mutex);
      --counted->runs;
    }
  } leave;
  {
    std::unique_lock<std::mutex> lock;
    if (release) {
      lock = std::unique_lock<std::mutex>(release->mutex);
      ++release->runs;
      leave.counted = release;
    }
    if (release)
      for (const auto& [slot, tensor] : constants_) frame.values[static_cast<size_t>(slot)] = Value(tensor);
  }
  frame.borrowed = release ? preset_borrowed_ : borrowed_with_constants();
  std::call_once(captured_once_, [this] {
    for (const auto& [slot, name] : captured_) {
      CapturedAt at;
      for (const GraphPlan* p = outer_; p && at.slot < 0; p = p->outer_) {
        ++at.depth;
        at.plan = p;
        at.slot = p->slot_of(name);
      }
      captured_at_.push_back(at);
    }
  });
  for (size_t i = 0; i < captured_.size(); ++i) {
    const CapturedAt& at = captured_at_[i];
    const Frame* f = outer;
    for (int d = 1; f && d < at.depth; ++d) f = f->outer;
    // The frame chain follows the plan chain; a caller that ran this body otherwise is looked up by name.
    const Value* v = f && at.slot >= 0 && f->plan == at.plan ? &f->value(static_cast<size_t>(at.slot))
                     : outer ? outer->find(captured_[i].second) : nullptr;
    if (v) frame.borrowed[static_cast<size_t>(captured_[i].first)] = v;  // the enclosing frame outlives this run
  }
  for (size_t i = 0; i < inputs.size() && i < input_slots_.size(); ++i)
    if (!inputs[i].is_none()) {
      frame.values[static_cast<size_t>(input_slots_[i])] = std::move(inputs[i]);
      frame.borrowed[static_cast<size_t>(input_slots_[i])] = nullptr;  // fed over an initializer
    }

  // Buffers every step reuses (a node's inputs, outputs and wanted flags): a recurrent model's body
  // is hundreds of tiny nodes, where three allocations per node were a fifth of the run.
  std::vector<const Value*> in;
  std::vector<bool> wanted;
  std::vector<Value> out;
  for (size_t index = 0; index < steps_.size(); ++index) {
    const Step& step = steps_[index];
    if (step.preset) {
      if (step_ns_) step_calls_[index].fetch_add(1, std::memory_order_relaxed);
      continue;
    }
    const ir::Node& node = *step.node;
    in.clear();
    for (int slot : step.inputs) {
      const Value* v = slot >= 0 ? &frame.value(static_cast<size_t>(slot)) : nullptr;
      in.push_back(v && !v->is_none() ? v : nullptr);
    }
    out.clear();
    out.resize(step.outputs.size());
    wanted.clear();
    for (int slot : step.outputs) wanted.push_back(slot >= 0);
    KernelContext ctx(node, std::move(in), out, std::move(wanted), bytes_allocated, &frame);
    try {
      if (step.folded) {
        run_folded(step, ctx, out, index);
      } else if (step_ns_) {
        const auto start = std::chrono::steady_clock::now();
        step.kernel->run(ctx);
        const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start);
        step_ns_[index].fetch_add(ns.count(), std::memory_order_relaxed);
        step_calls_[index].fetch_add(1, std::memory_order_relaxed);
      } else {
        step.kernel->run(ctx);
      }
    } catch (const Error& e) {
      throw e.with_context({.node = node.name.empty() ? "<unnamed>" : node.name, .op_type = node.op_type,
                            .shapes = input_shapes(node, ctx.inputs())});
    } catch (const std::exception& e) {
      throw Error(ErrorCode::kInternal, e.what(),
                  {.node = node.name.empty() ? "<unnamed>" : node.name, .op_type = node.op_type,
                   .shapes = input_shapes(node, ctx.inputs())});
    }
    in = ctx.take_inputs();
    wanted = ctx.take_wanted();
    for (size_t i = 0; i < step.outputs.size(); ++i)
      if (step.outputs[i] >= 0) frame.values[static_cast<size_t>(step.outputs[i])] = std::move(out[i]);
    for (int slot : step.release) frame.values[static_cast<size_t>(slot)] = Value();
    if (release && !release->last_read_at[index].empty()) release_after(index);
  }

  std::vector<Value> results;
  results.reserve(output_slots_.size());
  for (int slot : output_slots_) results.push_back(frame.value(static_cast<size_t>(slot)));
  return results;
}

const std::vector<const Value*>& GraphPlan::borrowed_with_constants() const {
  if (constants_held_.load(std::memory_order_acquire)) return constant_borrowed_;
  std::lock_guard<std::mutex> lock(held_mutex_);
  if (!constants_held_.load(std::memory_order_relaxed)) {
    // Made once no weight waits to be freed: placeholders stand where originals were freed.
    constant_values_held_.assign(constants_.size(), Value());
    constant_borrowed_ = preset_borrowed_;
    for (size_t c = 0; c < constants_.size(); ++c) {
      constant_values_held_[c] = Value(constants_[c].second);
      constant_borrowed_[static_cast<size_t>(constants_[c].first)] = &constant_values_held_[c];
    }
    constants_held_.store(true, std::memory_order_release);
  }
  return constant_borrowed_;
}

void GraphPlan::run_folded(const Step& step, KernelContext& ctx, std::vector<Value>& out, size_t index) const {
  FoldedOutputs& f = *step.folded;
  std::lock_guard<std::mutex> lock(f.mutex);
  bool current = f.kept;
  for (size_t i = 0; current && i < f.sources.size(); ++i) current = f.sources[i]->version() == f.versions[i];
  if (current) {
    out = f.outputs;
    if (step_ns_) step_calls_[index].fetch_add(1, std::memory_order_relaxed);
    return;
  }
  const auto start = std::chrono::steady_clock::now();
  step.kernel->run(ctx);
  if (step_ns_) {
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - start);
    step_ns_[index].fetch_add(ns.count(), std::memory_order_relaxed);
    step_calls_[index].fetch_add(1, std::memory_order_relaxed);
  }
  int64_t bytes = 0;
  for (const Value& v : out)
    if (v.is_tensor()) bytes += static_cast<int64_t>(v.tensor().nbytes());
  if (!f.kept) {  // the first run takes its share of the plan's budget, or leaves the step unfolded
    if (folded_budget_.fetch_sub(bytes, std::memory_order_relaxed) < bytes) {
      folded_budget_.fetch_add(bytes, std::memory_order_relaxed);
      return;
    }
  }
  f.outputs = out;
  f.versions.clear();
  for (const Tensor* t : f.sources) f.versions.push_back(t->version());
  f.kept = true;
}

void GraphPlan::release_packed_originals() {
  {  // before any run: no Values of the originals are kept beside them
    std::lock_guard<std::mutex> lock(held_mutex_);
    constants_held_.store(false, std::memory_order_release);
    constant_values_held_.clear();
  }
  auto r = std::make_unique<Release>();
  r->last_read_at.resize(steps_.size());
  std::unordered_set<int> kept(output_slots_.begin(), output_slots_.end());
  for (const Step& step : steps_) {
    kept.insert(step.implicit_inputs.begin(), step.implicit_inputs.end());  // a body reads them
    if (step.folded) kept.insert(step.inputs.begin(), step.inputs.end());    // folding may run again
  }
  std::unordered_map<int, std::vector<std::pair<size_t, size_t>>> readers;  // slot -> (step, input), in order
  for (size_t s = 0; s < steps_.size(); ++s)
    for (size_t i = 0; i < steps_[s].inputs.size(); ++i) readers[steps_[s].inputs[i]].emplace_back(s, i);
  for (size_t c = 0; c < constants_.size(); ++c) {
    const auto it = readers.find(constants_[c].first);
    if (it == readers.end() || kept.count(constants_[c].first)) continue;
    bool copies = true;
    for (const auto& [step, input] : it->second)
      copies = copies && steps_[step].kernel->constant_use(input) != Kernel::ConstantUse::kReadsIt;
    if (!copies) continue;
    r->last_read_at[it->second.back().first].push_back(r->weights.size());
    r->weights.push_back({c, it->second, false});
  }
  r->pending.store(static_cast<int64_t>(r->weights.size()));
  release_ = std::move(r);
}

void GraphPlan::release_after(size_t step) const {
  Release& r = *release_;
  std::lock_guard<std::mutex> lock(r.mutex);
  if (r.runs != 1) return;  // another run may hold an original: a later run frees it
  for (size_t index : r.last_read_at[step]) release_if_held(r.weights[index], nullptr);
}

void GraphPlan::release_prepared(size_t step, const std::function<bool(size_t)>& prepared) const {
  if (!release_) return;
  Release& r = *release_;
  std::lock_guard<std::mutex> lock(r.mutex);
  for (Releasable& weight : r.weights)
    if (std::any_of(weight.readers.begin(), weight.readers.end(), [&](const auto& reader) { return reader.first == step; }))
      release_if_held(weight, &prepared);
}

void GraphPlan::release_if_held(Releasable& weight, const std::function<bool(size_t)>* prepared) const {
  Release& r = *release_;
  if (weight.released) return;
  for (const auto& [reader, input] : weight.readers)
    if ((prepared && !(*prepared)(reader)) ||
        steps_[reader].kernel->constant_use(input) != Kernel::ConstantUse::kHoldsCopies)
      return;
  Tensor& original = constants_[weight.constant].second;
  const Tensor stand_in = Tensor::placeholder(original.dtype(), original.dims());
  for (const auto& [reader, input] : weight.readers) steps_[reader].kernel->release_constant(input, stand_in);
  r.done.bytes += static_cast<int64_t>(original.nbytes());
  ++r.done.initializers;
  original = stand_in;
  weight.released = true;
  r.pending.fetch_sub(1, std::memory_order_release);
}

std::vector<std::string> GraphPlan::releasable_names() const {
  std::vector<std::string> names;
  if (!release_) return names;
  for (const Releasable& weight : release_->weights)
    names.push_back(graph_.initializers[weight.constant].store_key);  // constants_ follow the initializers
  return names;
}

GraphPlan::Released GraphPlan::released() const {
  if (!release_) return {};
  std::lock_guard<std::mutex> lock(release_->mutex);
  return release_->done;
}

GraphPlan::StepTime GraphPlan::step_time(size_t step) const {
  if (!step_ns_ || step >= steps_.size()) return {};
  return {step_calls_[step].load(std::memory_order_relaxed), step_ns_[step].load(std::memory_order_relaxed)};
}

std::vector<Value> KernelContext::run_subgraph(const GraphPlan& plan, std::vector<Value> inputs) const {
  return plan.run(std::move(inputs), static_cast<const Frame*>(frame_), bytes_allocated_);
}

std::vector<SessionStats::NodeKernel> kernel_stats(const GraphPlan& plan) {
  std::vector<SessionStats::NodeKernel> kernels;
  auto walk = [&kernels](auto& self, const GraphPlan& p, int depth, const std::string& path) -> void {
    const auto& steps = p.steps();
    for (size_t i = 0; i < steps.size(); ++i) {
      const GraphPlan::StepTime t = p.step_time(i);
      kernels.push_back({steps[i].node->name, steps[i].node->op_type, steps[i].kernel_name, t.calls,
                         static_cast<double>(t.ns) / 1e6, depth, path});
      const std::string node = steps[i].node->name.empty() ? "<unnamed>" : steps[i].node->name;
      for (const auto& [attr, body] : steps[i].subgraphs)
        self(self, *body, depth + 1, (path.empty() ? "" : path + "/") + node + "/" + attr);
    }
  };
  walk(walk, plan, 0, "");
  return kernels;
}

}  // namespace tunnx
