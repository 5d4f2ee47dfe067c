// The Trainer: two prepared graphs of one model (train: train-mode rewrites + loss + backward; eval:
// loss only) on the same executor and kernels as inference, and PyTorch's optimizers over the
// Parameters that require a gradient.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <mutex>
#include <shared_mutex>
#include <unordered_map>
#include <unordered_set>

#include "runtime/core/model_impl.h"
#include "runtime/core/ops/gradient.h"
#include "runtime/core/prepare.h"
#include "runtime/core/run_threads.h"
#include "runtime/train/autodiff.h"
#include "runtime/train/optimizer.h"
#include "runtime/train/train_mode.h"
#include "tunnx/train.h"

namespace tunnx {

const char* to_string(LossKind kind) {
  switch (kind) {
    case LossKind::kMse: return "mse";
    case LossKind::kL1: return "l1";
    case LossKind::kBceWithLogits: return "bce_with_logits";
    case LossKind::kCrossEntropy: return "cross_entropy";
    case LossKind::kGraphOutput: return "graph_output";
  }
  return "?";
}

LossKind loss_kind_from_string(const std::string& name) {
  for (LossKind k : {LossKind::kMse, LossKind::kL1, LossKind::kBceWithLogits, LossKind::kCrossEntropy, LossKind::kGraphOutput})
    if (name == to_string(k)) return k;
  throw Error(ErrorCode::kInvalidArgument,
              "unknown loss '" + name + "' (choices: mse, l1, bce_with_logits, cross_entropy, graph_output)");
}

const char* to_string(OptimizerKind kind) {
  switch (kind) {
    case OptimizerKind::kSgd: return "sgd";
    case OptimizerKind::kAdam: return "adam";
    case OptimizerKind::kAdamW: return "adamw";
  }
  return "?";
}

OptimizerKind optimizer_kind_from_string(const std::string& name) {
  for (OptimizerKind k : {OptimizerKind::kSgd, OptimizerKind::kAdam, OptimizerKind::kAdamW})
    if (name == to_string(k)) return k;
  throw Error(ErrorCode::kInvalidArgument, "unknown optimizer '" + name + "' (choices: sgd, adam, adamw)");
}

double OptimizerOptions::effective_weight_decay() const {
  if (weight_decay) return *weight_decay;
  return kind == OptimizerKind::kAdamW ? 0.01 : 0.0;
}

namespace {

constexpr const char* kLossValue = "__tunnx_loss";

Error invalid(const std::string& message) { return Error(ErrorCode::kInvalidArgument, message); }

// Appends the loss node reading `output` (and the target input) and returns the loss value's name.
std::string append_loss(ir::Graph& graph, const LossOptions& loss, const std::string& output) {
  if (loss.kind == LossKind::kGraphOutput) return output;
  ir::ValueInfo target;
  target.name = loss.target;
  target.type.kind = ir::TypeInfo::Kind::kTensor;
  target.type.elem_type = loss.kind == LossKind::kCrossEntropy ? DataType::kInt64 : DataType::kUndefined;
  graph.inputs.push_back(target);
  ir::Node node;
  node.name = "__tunnx_loss_node";
  node.op_type = "Loss";
  node.domain = ops::kGradDomain;
  node.inputs = {output, loss.target};
  node.outputs = {kLossValue};
  node.attributes = {ops::attr("kind", std::string(to_string(loss.kind))), ops::attr("ignore_index", loss.ignore_index),
                     ops::attr("label_smoothing", loss.label_smoothing)};
  graph.nodes.push_back(std::move(node));
  return kLossValue;
}

// Adds `value` to the graph outputs unless it already is one; returns its index.
size_t add_output(ir::Graph& graph, const std::string& value) {
  for (size_t i = 0; i < graph.outputs.size(); ++i)
    if (graph.outputs[i].name == value) return i;
  ir::ValueInfo info;
  info.name = value;
  graph.outputs.push_back(info);
  return graph.outputs.size() - 1;
}

Tensor scalar_int64(int64_t v) { return Tensor::from_vector<int64_t>({}, {v}); }

double scalar_of(const Tensor& t) {
  if (t.numel() != 1) throw Error(ErrorCode::kInvalidArgument, "the loss must be a scalar, got " + dims_to_string(t.dims()));
  if (t.dtype() == DataType::kFloat32) return t.data_as<float>()[0];
  if (t.dtype() == DataType::kFloat64) return t.data_as<double>()[0];
  throw Error(ErrorCode::kInvalidArgument, std::string("the loss must be float32 or float64, got ") + to_string(t.dtype()));
}

// Adds g into acc (same shape and dtype), or makes acc g itself when `g_is_private` (nothing else
// can see its storage, so in-place accumulation, clipping and reading are safe), else a copy of g.
void accumulate(Tensor& acc, const Tensor& g, const std::string& name, bool g_is_private) {
  if (!acc.defined()) {
    acc = g_is_private ? g : g.clone();
    return;
  }
  if (acc.dims() != g.dims() || acc.dtype() != g.dtype())
    throw Error(ErrorCode::kInternal, "gradient shape changed between micro-batches", {.tensor = name});
  const int64_t n = g.numel();
  if (g.dtype() == DataType::kFloat64) {
    double* a = acc.mutable_data_as<double>();
    const double* b = g.data_as<double>();
    for (int64_t i = 0; i < n; ++i) a[i] += b[i];
  } else {
    float* a = acc.mutable_data_as<float>();
    const float* b = g.data_as<float>();
    for (int64_t i = 0; i < n; ++i) a[i] += b[i];
  }
}

// Predictions (argmax over axis 1 of logits [N,C,...]) equal to the int64 targets [N,...], ignored
// positions left out.
void count_correct(const Tensor& logits, const Tensor& target, int64_t ignore_index, int64_t& correct, int64_t& counted) {
  if (logits.rank() < 2 || target.dtype() != DataType::kInt64) return;
  const int64_t n = logits.dims()[0], c = logits.dims()[1];
  const int64_t inner = logits.numel() / std::max<int64_t>(n * c, 1);
  if (target.numel() != n * inner) return;
  const int64_t* y = target.data_as<int64_t>();
  for (int64_t i = 0; i < n; ++i)
    for (int64_t k = 0; k < inner; ++k) {
      const int64_t label = y[i * inner + k];
      if (label == ignore_index) continue;
      int64_t best = 0;
      double best_v = -INFINITY;
      for (int64_t j = 0; j < c; ++j) {
        const int64_t at = (i * c + j) * inner + k;
        const double v = logits.dtype() == DataType::kFloat64 ? logits.data_as<double>()[at] : logits.data_as<float>()[at];
        if (v > best_v) {
          best_v = v;
          best = j;
        }
      }
      correct += best == label;
      ++counted;
    }
}

}  // namespace

struct Trainer::Impl {
  ModelImpl* model = nullptr;
  TrainerOptions options;
  std::string output;  // the graph output the loss reads

  PreparedGraph train, eval;
  std::vector<std::string> train_inputs, eval_inputs;  // graph inputs in order
  std::vector<StoredTensor*> params;                   // trainable, in store order
  std::vector<size_t> grad_outputs;                    // per param: train-graph output index, or SIZE_MAX
  std::vector<std::pair<StoredTensor*, size_t>> running_updates;  // buffer, train-graph output index
  bool has_dropout = false;
  size_t eval_prediction = 0;
  size_t train_prediction = SIZE_MAX;  // cross_entropy: the logits, for the batch's accuracy

  int64_t micro_steps = 0;  // backward() calls since the last optimizer step
  int64_t steps = 0;        // optimizer steps taken
  int64_t seed_counter = 0; // dropout masks: one seed per forward

  std::vector<Value> feeds(const std::vector<std::string>& inputs, const NamedValues& batch, bool dropout_seed) {
    std::vector<Value> out(inputs.size());
    for (size_t i = 0; i < inputs.size(); ++i) {
      if (dropout_seed && inputs[i] == train::kDropoutSeedInput) {
        out[i] = Value(scalar_int64(static_cast<int64_t>(options.seed) * 1000003 + seed_counter));
        continue;
      }
      auto it = batch.find(inputs[i]);
      if (it != batch.end()) out[i] = it->second;
    }
    return out;
  }
  double backward(const NamedValues& batch, StepResult* accuracy);
  void check_batch(const std::vector<std::string>& inputs, const NamedValues& batch) const {
    std::unordered_set<std::string> known(inputs.begin(), inputs.end());
    for (const auto& [name, v] : batch)
      if (!known.count(name)) throw Error(ErrorCode::kInvalidArgument, "is neither an input of this model nor the target", {.tensor = name});
    for (const auto& name : inputs) {
      if (name == train::kDropoutSeedInput) continue;
      bool initializer = false;
      for (const auto& init : model->ir.graph.initializers) initializer = initializer || init.name == name;
      if (!batch.count(name) && !initializer)
        throw Error(ErrorCode::kInvalidArgument, "is a required input and was not given", {.tensor = name});
    }
  }
};

Trainer::Trainer(Model& model, TrainerOptions options) : impl_(std::make_unique<Impl>()) {
  Impl& t = *impl_;
  t.model = &model_impl(model);
  t.options = options;
  if (options.accumulate < 1) throw invalid("accumulate must be 1 or more, got " + std::to_string(options.accumulate));
  if (!(options.optimizer.lr >= 0)) throw invalid("the learning rate must be 0 or more");
  if (options.clip_grad_norm < 0) throw invalid("clip_grad_norm must be 0 (off) or more");
  if (options.loss.label_smoothing < 0 || options.loss.label_smoothing > 1)
    throw invalid("label_smoothing must be in [0, 1], got " + std::to_string(options.loss.label_smoothing));
  const ir::Graph& g = t.model->ir.graph;
  if (options.loss.output.empty()) {
    if (g.outputs.size() != 1)
      throw invalid("the model has " + std::to_string(g.outputs.size()) + " outputs: name the one the loss reads");
    t.output = g.outputs[0].name;
  } else {
    bool found = false;
    std::string known;
    for (const auto& o : g.outputs) {
      found = found || o.name == options.loss.output;
      known += (known.empty() ? "" : ", ") + o.name;
    }
    if (!found) throw invalid("'" + options.loss.output + "' is not an output of the model (outputs: " + known + ")");
    t.output = options.loss.output;
  }
  if (options.loss.kind != LossKind::kGraphOutput) {
    std::unordered_set<std::string> names;
    g.visit([&names](const ir::Graph& sub, int) {
      for (const auto& n : sub.nodes)
        for (const auto& o : n.outputs) names.insert(o);
      for (const auto& v : sub.inputs) names.insert(v.name);
      for (const auto& i : sub.initializers) names.insert(i.name);
    });
    if (names.count(options.loss.target))
      throw invalid("the target name '" + options.loss.target + "' is already a value of the model: choose another");
  }

  // Trainable Parameters: requires_grad and read by the main graph.
  std::unordered_map<std::string, std::string> init_of_key;
  for (const auto& init : g.initializers) init_of_key[init.store_key] = init.name;
  for (const auto& entry : t.model->store.entries())
    if (entry->role == TensorRole::kParameter && entry->requires_grad && init_of_key.count(entry->name))
      t.params.push_back(entry.get());

  // The training graph.
  // Kernels of both plans read the trained Parameters as they lie from the first step on, so a step
  // computes the same way whatever ran before it (a resumed run is bit-identical to an uninterrupted one).
  std::set<std::string> trained;
  for (const StoredTensor* p : t.params) trained.insert(p->name);
  PrepareOptions prepare;
  prepare.optimization_level = options.optimization_level;
  prepare.trained = trained;
  prepare.has_backward = true;
  prepare.profile = options.profile;
  std::vector<std::pair<std::string, std::string>> running;
  std::vector<std::string> grads;
  const int64_t onnx_opset = t.model->ir.opset_version("");
  prepare.rewrite = [&](ir::Graph& graph, const std::map<std::string, int64_t>& opsets) {
    train::TrainModeGraph mode = train::rewrite_for_training(graph, onnx_opset, t.model->store);
    t.has_dropout = mode.dropouts > 0;
    running = mode.running_updates;
    const std::string loss = append_loss(graph, options.loss, t.output);
    // Seed: d(loss/accumulate)/d(loss), so accumulated micro-batch gradients average.
    ir::Node seed;
    seed.name = "__tunnx_loss_seed";
    seed.op_type = "OnesLike";
    seed.domain = ops::kGradDomain;
    seed.inputs = {loss};
    seed.outputs = {"__tunnx_loss_seed_ones"};
    graph.nodes.push_back(seed);
    std::string seed_value = seed.outputs[0];
    if (options.accumulate > 1) {
      ir::Node scale;
      scale.name = "__tunnx_loss_seed_scale";
      scale.op_type = "Scale";
      scale.domain = ops::kGradDomain;
      scale.inputs = {seed_value};
      scale.outputs = {"__tunnx_loss_seed_scaled"};
      scale.attributes = {ops::attr("alpha", static_cast<float>(1.0 / options.accumulate))};
      graph.nodes.push_back(scale);
      seed_value = scale.outputs[0];
    }
    train::GradientRequest request;
    for (StoredTensor* p : t.params) request.sources.push_back(init_of_key.at(p->name));
    request.outputs = {loss};
    request.seeds = {seed_value};
    grads = train::differentiate(graph, opsets, t.model->store, request).gradients;
    graph.outputs.clear();
    add_output(graph, loss);
    for (const auto& [key, value] : running) add_output(graph, value);
    for (const auto& gname : grads)
      if (!gname.empty()) add_output(graph, gname);
    if (options.loss.kind == LossKind::kCrossEntropy) add_output(graph, t.output);
    train::remove_unused_nodes(graph);
  };
  t.train = prepare_graph(*t.model, prepare);
  const ir::Graph& tg = *t.train.graph;
  for (const auto& in : tg.inputs) t.train_inputs.push_back(in.name);
  auto output_index = [&tg](const std::string& name) {
    for (size_t i = 0; i < tg.outputs.size(); ++i)
      if (tg.outputs[i].name == name) return i;
    return SIZE_MAX;
  };
  for (const auto& gname : grads) t.grad_outputs.push_back(gname.empty() ? SIZE_MAX : output_index(gname));
  for (const auto& [key, value] : running) t.running_updates.emplace_back(&t.model->store.at(key), output_index(value));
  if (options.loss.kind == LossKind::kCrossEntropy) t.train_prediction = output_index(t.output);

  // The eval graph: the loss and the prediction, nothing else.
  PrepareOptions eval_prepare;
  eval_prepare.optimization_level = options.optimization_level;
  eval_prepare.trained = trained;
  eval_prepare.rewrite = [&](ir::Graph& graph, const std::map<std::string, int64_t>&) {
    const std::string loss = append_loss(graph, options.loss, t.output);
    graph.outputs.clear();
    add_output(graph, loss);
    t.eval_prediction = add_output(graph, t.output);
    train::remove_unused_nodes(graph);
  };
  t.eval = prepare_graph(*t.model, eval_prepare);
  for (const auto& in : t.eval.graph->inputs) t.eval_inputs.push_back(in.name);
}

Trainer::~Trainer() = default;
Trainer::Trainer(Trainer&&) noexcept = default;
Trainer& Trainer::operator=(Trainer&&) noexcept = default;

double Trainer::backward(const NamedValues& batch) { return impl_->backward(batch, nullptr); }

double Trainer::Impl::backward(const NamedValues& batch, StepResult* accuracy) {
  Impl& t = *this;
  t.check_batch(t.train_inputs, batch);
  std::vector<Value> results;
  int64_t bytes = 0;
  {
    RunThreads threads(t.options.threads);
    std::shared_lock<std::shared_mutex> reading(*t.model->parameters_mutex);
    results = t.train.plan->run(t.feeds(t.train_inputs, batch, true), nullptr, bytes);
  }
  ++t.seed_counter;
  const double loss = scalar_of(results[0].tensor());
  {
    // PyTorch updates running statistics on every train-mode forward.
    std::unique_lock<std::shared_mutex> writing(*t.model->parameters_mutex);
    for (auto& [buffer, index] : t.running_updates) {
      const Tensor& v = results[index].tensor();
      if (v.dtype() != buffer->value.dtype() || v.numel() != buffer->value.numel())
        throw Error(ErrorCode::kInternal, "running statistic changed shape", {.tensor = buffer->name});
      std::memcpy(buffer->value.mutable_data(), v.data(), v.nbytes());
    }
  }
  // A gradient the plan made for this run alone is kept, not copied; one that shares storage with
  // another output or a stored tensor (a Reshape or Identity of it) is copied.
  auto is_private = [&](size_t index) {
    const Tensor& g = results[index].tensor();
    if (g.is_view()) return false;
    for (size_t j = 0; j < results.size(); ++j)
      if (j != index && results[j].is_tensor() && g.shares_storage_with(results[j].tensor())) return false;
    for (const auto& entry : t.model->store.entries())
      if (g.shares_storage_with(entry->value)) return false;
    return true;
  };
  for (size_t i = 0; i < t.params.size(); ++i)
    if (t.grad_outputs[i] != SIZE_MAX)
      accumulate(t.params[i]->grad, results[t.grad_outputs[i]].tensor(), t.params[i]->name, is_private(t.grad_outputs[i]));
  if (accuracy && t.train_prediction != SIZE_MAX)
    count_correct(results[t.train_prediction].tensor(), batch.at(t.options.loss.target).tensor(),
                  t.options.loss.ignore_index, accuracy->correct, accuracy->counted);
  ++t.micro_steps;
  return loss;
}

void Trainer::optimizer_step() {
  Impl& t = *impl_;
  if (t.options.clip_grad_norm > 0) train::clip_grad_norm(t.params, t.options.clip_grad_norm);
  const double lr = this->lr();
  {
    RunThreads threads(t.options.threads);
    std::unique_lock<std::shared_mutex> writing(*t.model->parameters_mutex);
    train::optimizer_update(t.options.optimizer, lr, t.steps + 1, t.params);
  }
  ++t.steps;
  zero_grad();
}

// Errors of a step or an evaluation (a batch of the wrong shape or dtype, a kernel failing) name the
// model file, as loading, planning and Session::run do: "<model file>: tensor 'x': ...".
template <typename Fn>
auto naming_model_file(const ModelImpl& model, Fn&& fn) {
  try {
    return fn();
  } catch (const Error& e) {
    throw e.with_context({.file = model.path.string()});
  }
}

StepResult Trainer::step(const NamedValues& batch) {
  if (!training_) throw invalid("step() needs train mode (call train() after eval())");
  return naming_model_file(*impl_->model, [&] {
    StepResult r;
    r.loss = impl_->backward(batch, &r);
    if (impl_->micro_steps >= impl_->options.accumulate) {
      optimizer_step();
      r.updated = true;
    }
    return r;
  });
}

void Trainer::zero_grad() {
  // set_to_none, as torch's default: a parameter without a path keeps no gradient.
  for (StoredTensor* p : impl_->params) p->grad = Tensor();
  impl_->micro_steps = 0;
}

EvalResult Trainer::evaluate(const NamedValues& batch) const {
  const Impl& t = *impl_;
  return naming_model_file(*t.model, [&] {
    t.check_batch(t.eval_inputs, batch);
    std::vector<Value> results;
    int64_t bytes = 0;
    {
      RunThreads threads(t.options.threads);
      std::shared_lock<std::shared_mutex> reading(*t.model->parameters_mutex);
      results = t.eval.plan->run(const_cast<Impl&>(t).feeds(t.eval_inputs, batch, false), nullptr, bytes);
    }
    EvalResult r;
    r.loss = scalar_of(results[0].tensor());
    if (t.options.loss.kind == LossKind::kCrossEntropy)
      count_correct(results[t.eval_prediction].tensor(), batch.at(t.options.loss.target).tensor(),
                    t.options.loss.ignore_index, r.correct, r.counted);
    return r;
  });
}

Tensor Trainer::grad(const std::string& name) const {
  for (StoredTensor* p : impl_->params)
    if (p->name == name) return p->grad.defined() ? p->grad : Tensor(p->value.dtype(), p->value.dims());
  throw Error(ErrorCode::kNotFound, "is not a Parameter this trainer updates (frozen, a buffer, or unknown)",
              {.tensor = name});
}

std::vector<std::string> Trainer::trainable() const {
  std::vector<std::string> names;
  for (StoredTensor* p : impl_->params) names.push_back(p->name);
  return names;
}

double Trainer::lr() const {
  return train::scheduled_lr(impl_->options.schedule, impl_->options.optimizer.lr, impl_->steps);
}

int64_t Trainer::steps() const { return impl_->steps; }
const TrainerOptions& Trainer::options() const { return impl_->options; }

StateDict Trainer::optimizer_state() const {
  StateDict out;
  for (StoredTensor* p : impl_->params)
    for (const auto& [key, tensor] : p->optimizer_state) out.emplace_back(p->name + "/" + key, tensor);
  return out;
}

std::vector<SessionStats::NodeKernel> Trainer::profile() const {
  if (!impl_->options.profile) return {};
  return kernel_stats(*impl_->train.plan);
}

Trainer::Counters Trainer::counters() const { return {impl_->steps, impl_->seed_counter}; }

void Trainer::load_optimizer_state(const StateDict& state, const Counters& counters) {
  std::unordered_map<std::string, StoredTensor*> by_name;
  for (StoredTensor* p : impl_->params) by_name[p->name] = p;
  for (const auto& [name, tensor] : state) {
    const size_t slash = name.rfind('/');
    auto it = slash == std::string::npos ? by_name.end() : by_name.find(name.substr(0, slash));
    if (it == by_name.end()) throw Error(ErrorCode::kInvalidArgument, "names no trainable Parameter", {.tensor = name});
    if (tensor.dims() != it->second->value.dims() || tensor.dtype() != it->second->value.dtype())
      throw Error(ErrorCode::kInvalidArgument, "does not match its Parameter's shape and dtype", {.tensor = name});
  }
  for (StoredTensor* p : impl_->params) p->optimizer_state.clear();
  for (const auto& [name, tensor] : state) {
    const size_t slash = name.rfind('/');
    by_name.at(name.substr(0, slash))->optimizer_state.emplace_back(name.substr(slash + 1), tensor.clone());
  }
  impl_->steps = counters.steps;
  impl_->seed_counter = counters.forwards;
  zero_grad();
}

}  // namespace tunnx
