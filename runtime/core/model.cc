// The parts of tunnx::Model that work on the loaded IR and its ParameterStore. Loading and saving
// (which need protobuf) live in importer/model_io.cc.
#include <cstring>
#include <set>
#include <mutex>
#include <shared_mutex>
#include <unordered_set>

#include "runtime/core/glob.h"
#include "runtime/core/model_impl.h"

namespace tunnx {
namespace {

ValueSummary summarize(const ir::ValueInfo& v) {
  ValueSummary s;
  s.name = v.name;
  s.type = v.type.to_string();
  if (v.type.kind == ir::TypeInfo::Kind::kTensor && v.type.shape) {
    s.shape = *v.type.shape;
    s.has_shape = true;
  }
  return s;
}

void check_same_layout(const StoredTensor& mine, const Tensor& given) {
  if (given.dtype() != mine.value.dtype())
    throw Error(ErrorCode::kInvalidArgument,
                std::string("dtype mismatch: model has ") + to_string(mine.value.dtype()) +
                    ", state dict has " + to_string(given.dtype()),
                {.tensor = mine.name});
  if (given.dims() != mine.value.dims())
    throw Error(ErrorCode::kInvalidArgument, "shape mismatch",
                {.tensor = mine.name,
                 .shapes = "model " + dims_to_string(mine.value.dims()) + ", state dict " +
                           dims_to_string(given.dims())});
}

// What `name` already is in the graph (main graph and subgraphs): "input", "output", "node output"
// or "initializer"; empty when it is none of them.
std::string graph_use_of(const ir::Graph& graph, const std::string& name) {
  std::string use;
  graph.visit([&](const ir::Graph& g, int) {
    if (!use.empty()) return;
    for (const auto& v : g.inputs)
      if (v.name == name) use = "input";
    for (const auto& v : g.outputs)
      if (use.empty() && v.name == name) use = "output";
    for (const auto& init : g.initializers)
      if (use.empty() && init.name == name) use = "initializer";
    for (const auto& n : g.nodes)
      for (const auto& o : n.outputs)
        if (use.empty() && o == name) use = "node output";
  });
  return use;
}

// Store keys of the initializers some graph (main or sub) lists.
std::unordered_set<std::string> wired_store_keys(const ir::Graph& graph) {
  std::unordered_set<std::string> keys;
  graph.visit([&](const ir::Graph& g, int) {
    for (const auto& init : g.initializers) keys.insert(init.store_key);
  });
  return keys;
}

void register_entry(ModelImpl& m, const std::string& what, const std::string& name, Tensor value, TensorRole role,
                    bool requires_grad, bool persistent) {
  const std::string refusal = "cannot register " + what;
  if (name.empty()) throw Error(ErrorCode::kInvalidArgument, refusal + " with an empty name");
  if (!value.defined()) throw Error(ErrorCode::kInvalidArgument, refusal + ": the tensor is undefined", {.tensor = name});
  if (const StoredTensor* existing = m.store.find(name))
    throw Error(ErrorCode::kInvalidArgument,
                refusal + ": the name is already taken by a " + to_string(existing->role), {.tensor = name});
  if (std::string use = graph_use_of(m.ir.graph, name); !use.empty())
    throw Error(ErrorCode::kInvalidArgument, refusal + ": the name is already a graph " + use, {.tensor = name});
  if (requires_grad && !is_floating_point(value.dtype()))
    throw Error(ErrorCode::kInvalidArgument,
                refusal + " that requires grad: " + to_string(value.dtype()) +
                    " is not a floating-point type (pass requires_grad = false, or register a buffer)",
                {.tensor = name});
  StoredTensor entry;
  entry.name = name;
  entry.value = std::move(value);
  entry.role = role;
  entry.requires_grad = requires_grad;
  entry.persistent = persistent;
  entry.origin = TensorOrigin::kRegistered;
  entry.reason = "registered after load";
  // Exclusive: no run reads the store while it grows.
  std::unique_lock<std::shared_mutex> lock(*m.parameters_mutex);
  m.store.add(std::move(entry));
}

}  // namespace

const char* to_string(TensorRole role) { return role == TensorRole::kParameter ? "parameter" : "buffer"; }
const char* to_string(TensorOrigin origin) {
  switch (origin) {
    case TensorOrigin::kImported: return "imported";
    case TensorOrigin::kConstantNode: return "constant node";
    case TensorOrigin::kRegistered: return "registered";
  }
  return "?";
}

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model::Model(Model&&) noexcept = default;
Model& Model::operator=(Model&&) noexcept = default;
Model::~Model() = default;

const std::filesystem::path& Model::path() const { return impl_->path; }

ModelInfo Model::info() const {
  const ir::ModelIR& m = impl_->ir;
  ModelInfo info;
  info.ir_version = m.ir_version;
  for (const auto& o : m.opset_imports) info.opset_imports.emplace_back(o.domain, o.version);
  info.producer_name = m.producer_name;
  info.producer_version = m.producer_version;
  info.domain = m.domain;
  info.doc_string = m.doc_string;
  info.model_version = m.model_version;
  info.metadata = m.metadata_props;

  std::unordered_set<std::string> initializer_names;
  for (const auto& init : m.graph.initializers) initializer_names.insert(init.name);
  for (const auto& in : m.graph.inputs)
    if (!initializer_names.count(in.name)) info.inputs.push_back(summarize(in));
  for (const auto& out : m.graph.outputs) info.outputs.push_back(summarize(out));

  m.graph.visit([&info](const ir::Graph& g, int depth) {
    if (depth > 0) ++info.subgraph_count;
    for (const auto& node : g.nodes) {
      bool default_domain = node.domain.empty() || node.domain == "ai.onnx";
      ++info.op_histogram[default_domain ? node.op_type : node.domain + ":" + node.op_type];
      ++info.node_count;
    }
    for (const auto& init : g.initializers)  // weights held as initializers but nodes in the file
      if (init.constant_node) {
        ++info.op_histogram["Constant"];
        ++info.node_count;
      }
  });
  for (const auto& f : m.functions) info.functions.push_back(f.domain + ":" + f.name);
  info.onnx_checker = impl_->onnx_checker;
  return info;
}

StateDict Model::named_parameters() const {
  StateDict out;
  for (const auto& e : impl_->store.entries())
    if (e->role == TensorRole::kParameter) out.emplace_back(e->name, e->value);
  return out;
}

StateDict Model::named_buffers() const {
  StateDict out;
  for (const auto& e : impl_->store.entries())
    if (e->role == TensorRole::kBuffer) out.emplace_back(e->name, e->value);
  return out;
}

void Model::register_parameter(const std::string& name, Tensor value, bool requires_grad) {
  register_entry(*impl_, "a parameter", name, std::move(value), TensorRole::kParameter, requires_grad, true);
}

void Model::register_buffer(const std::string& name, Tensor value, bool persistent) {
  register_entry(*impl_, "a buffer", name, std::move(value), TensorRole::kBuffer, false, persistent);
}

std::vector<TensorInfo> Model::tensors() const {
  std::vector<TensorInfo> out;
  const std::unordered_set<std::string> wired = wired_store_keys(impl_->ir.graph);
  for (const auto& e : impl_->store.entries()) {
    TensorInfo t;
    t.name = e->name;
    t.dtype = e->value.dtype();
    t.dims = e->value.dims();
    t.numel = e->value.numel();
    t.role = e->role;
    t.requires_grad = e->requires_grad;
    t.nbytes = e->value.dtype() == DataType::kString ? 0 : e->value.nbytes();
    t.external = e->external_data && e->value.is_view();
    t.reason = e->reason;
    t.origin = e->origin;
    t.persistent = e->persistent;
    t.in_graph = wired.count(e->name) > 0;
    out.push_back(std::move(t));
  }
  return out;
}

Tensor Model::parameter(const std::string& name) const { return impl_->store.at(name).value; }

bool Model::requires_grad(const std::string& name) const { return impl_->store.at(name).requires_grad; }

size_t Model::requires_grad(std::string_view glob, bool value) {
  size_t parameters = 0, buffers = 0;
  for (const auto& e : impl_->store.entries()) {
    if (!glob_match(glob, e->name)) continue;
    if (e->role == TensorRole::kBuffer) {
      ++buffers;
      continue;
    }
    e->requires_grad = value;
    ++parameters;
  }
  if (parameters == 0 && buffers == 0)
    throw Error(ErrorCode::kNotFound, "no parameter matches '" + std::string(glob) + "'");
  if (parameters == 0 && value)
    throw Error(ErrorCode::kInvalidArgument,
                "'" + std::string(glob) + "' matches only buffers, which are never trained");
  return parameters;
}

StateDict Model::state_dict() const {
  StateDict out;
  for (const auto& e : impl_->store.entries())
    if (e->persistent) out.emplace_back(e->name, e->value);
  return out;
}

LoadStateDictResult Model::load_state_dict(const StateDict& state, bool strict) {
  LoadStateDictResult result;
  std::set<std::string> given;
  // Validate everything first so a failed load changes nothing.
  for (const auto& [name, tensor] : state) {
    if (!given.insert(name).second)
      throw Error(ErrorCode::kInvalidArgument, "state dict names this tensor twice", {.tensor = name});
    const StoredTensor* mine = impl_->store.find(name);
    if (!mine) {
      result.unexpected_keys.push_back(name);
      continue;
    }
    check_same_layout(*mine, tensor);
  }
  for (const auto& e : impl_->store.entries())
    if (e->persistent && !given.count(e->name)) result.missing_keys.push_back(e->name);

  if (strict && (!result.missing_keys.empty() || !result.unexpected_keys.empty())) {
    auto join = [](const std::vector<std::string>& names) {
      std::string out;
      for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
      return out.empty() ? std::string("none") : out;
    };
    throw Error(ErrorCode::kInvalidArgument, "load_state_dict(strict): missing keys: " +
                                                 join(result.missing_keys) +
                                                 "; unexpected keys: " + join(result.unexpected_keys));
  }
  for (const auto& [name, tensor] : state) {
    StoredTensor* mine = impl_->store.find(name);
    if (!mine || mine->value.shares_storage_with(tensor)) continue;  // loading our own state
    // Copy values in, as torch does: tensors handed out earlier keep seeing the model's values.
    if (tensor.dtype() == DataType::kString) {
      auto* dst = mine->value.mutable_data_as<std::string>();
      const auto* src = tensor.data_as<std::string>();
      for (int64_t i = 0; i < tensor.numel(); ++i) dst[i] = src[i];
    } else if (tensor.nbytes()) {
      std::memcpy(mine->value.mutable_data(), tensor.data(), tensor.nbytes());
    }
  }
  return result;
}

}  // namespace tunnx
