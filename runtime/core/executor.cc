#include "runtime/core/executor.h"

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

}  // namespace

const Value* Frame::find(const std::string& name) const {
  for (const Frame* f = this; f; f = f->outer) {
    int slot = f->plan->slot_of(name);
    if (slot >= 0) return &f->values[static_cast<size_t>(slot)];
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
  std::unordered_map<std::string, DataType> types = known_types(graph, context.store);

  for (const auto& node : graph.nodes) {
    Step step;
    step.node = &node;
    std::vector<DataType> input_types;
    std::vector<const Tensor*> constant_inputs;
    std::vector<bool> trained_inputs;
    for (const auto& in : node.inputs) {
      auto c = in.empty() ? constant_by_name.end() : constant_by_name.find(in);
      constant_inputs.push_back(c == constant_by_name.end() ? nullptr : c->second);
      trained_inputs.push_back(c != constant_by_name.end() && trained_names.count(in) > 0);
      if (in.empty()) {
        step.inputs.push_back(-1);
        input_types.push_back(DataType::kUndefined);
        continue;
      }
      if (!slots_.count(in)) captured_.emplace_back(add_slot(in), in);  // from an enclosing graph
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
            captured_.emplace_back(here, name);
          }
          step.implicit_inputs.push_back(here);
        }
        subgraphs.emplace(attr.name, std::move(sub));
      }
    for (const auto& [name, sub] : subgraphs) step.subgraphs.emplace_back(name, sub);
    try {
      step.kernel = def->factory(KernelInit(node, opset, input_types, std::move(subgraphs), std::move(constant_inputs),
                                             std::move(trained_inputs)));
    } catch (const Error& e) {
      throw e.with_context({.node = node.name.empty() ? "<unnamed>" : node.name, .op_type = node.op_type});
    }
    step.kernel_name = def->name;
    for (const auto& out : node.outputs) step.outputs.push_back(out.empty() ? -1 : add_slot(out));
    steps_.push_back(std::move(step));
  }
  for (const auto& v : graph.outputs) {
    if (!slots_.count(v.name)) captured_.emplace_back(add_slot(v.name), v.name);
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

std::vector<Value> GraphPlan::run(std::vector<Value> inputs, const Frame* outer, int64_t& bytes_allocated) const {
  Frame frame;
  frame.plan = this;
  frame.outer = outer;
  frame.values.resize(slot_names_.size());
  for (const auto& [slot, tensor] : constants_) frame.values[static_cast<size_t>(slot)] = Value(tensor);
  for (const auto& [slot, name] : captured_) {
    const Value* v = outer ? outer->find(name) : nullptr;
    if (v) frame.values[static_cast<size_t>(slot)] = *v;
  }
  for (size_t i = 0; i < inputs.size() && i < input_slots_.size(); ++i)
    if (!inputs[i].is_none()) frame.values[static_cast<size_t>(input_slots_[i])] = std::move(inputs[i]);

  for (size_t index = 0; index < steps_.size(); ++index) {
    const Step& step = steps_[index];
    const ir::Node& node = *step.node;
    std::vector<const Value*> in;
    in.reserve(step.inputs.size());
    for (int slot : step.inputs) {
      const Value* v = slot >= 0 ? &frame.values[static_cast<size_t>(slot)] : nullptr;
      in.push_back(v && !v->is_none() ? v : nullptr);
    }
    std::vector<Value> out(step.outputs.size());
    std::vector<bool> wanted;
    for (int slot : step.outputs) wanted.push_back(slot >= 0);
    KernelContext ctx(node, in, out, std::move(wanted), bytes_allocated, &frame);
    try {
      if (step_ns_) {
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
                            .shapes = input_shapes(node, in)});
    } catch (const std::exception& e) {
      throw Error(ErrorCode::kInternal, e.what(),
                  {.node = node.name.empty() ? "<unnamed>" : node.name, .op_type = node.op_type,
                   .shapes = input_shapes(node, in)});
    }
    for (size_t i = 0; i < step.outputs.size(); ++i)
      if (step.outputs[i] >= 0) frame.values[static_cast<size_t>(step.outputs[i])] = std::move(out[i]);
    for (int slot : step.release) frame.values[static_cast<size_t>(slot)] = Value();
  }

  std::vector<Value> results;
  results.reserve(output_slots_.size());
  for (int slot : output_slots_) results.push_back(frame.values[static_cast<size_t>(slot)]);
  return results;
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
