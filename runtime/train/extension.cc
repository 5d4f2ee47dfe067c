// Graph edits that wire registered parameters into a loaded model (tunnx/extend.h): new heads, LoRA
// adapters, trainable inputs, and replacing the outputs. Each edit checks everything first and then
// changes the model, so a refused edit leaves it as it was.
#include "tunnx/extend.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <mutex>
#include <shared_mutex>
#include <optional>
#include <set>
#include <sstream>
#include <unordered_map>
#include <unordered_set>

#include "runtime/core/glob.h"
#include "runtime/core/model_impl.h"
#include "runtime/core/ops/gradient.h"
#include "runtime/core/passes/inline_functions.h"
#include "runtime/train/graph_edit_util.h"
#include "tunnx/io.h"

namespace tunnx {
namespace {

using edit::make_node;
using edit::Uniform;

Error invalid(const std::string& message, ErrorContext context = {}) {
  return Error(ErrorCode::kInvalidArgument, message, std::move(context));
}

// A tensor of `dtype` (float32 or float64) filled from U(-bound, bound), or zeros when bound is 0.
Tensor uniform_tensor(DataType dtype, std::vector<int64_t> dims, double bound, Uniform& rng) {
  Tensor t(dtype, std::move(dims));
  for (int64_t i = 0; i < t.numel(); ++i) {
    const double v = bound == 0 ? 0.0 : rng.next(-bound, bound);
    if (dtype == DataType::kFloat32) t.mutable_data_as<float>()[i] = static_cast<float>(v);
    else t.mutable_data_as<double>()[i] = v;
  }
  return t;
}

std::string describe_dtype(DataType d) { return to_string(d); }

// The declared or inferred type of a value of the main graph; nothing when the graph states none.
std::optional<ir::TypeInfo> value_type(const ModelImpl& m, const std::string& name) {
  const ir::Graph& g = m.ir.graph;
  for (const auto& init : g.initializers)
    if (init.name == name) {
      const Tensor& t = m.store.at(init.store_key).value;
      return ir::TypeInfo::tensor(t.dtype(), Shape::of(t.dims()));
    }
  for (const auto* list : {&g.inputs, &g.outputs, &g.value_infos})
    for (const auto& v : *list)
      if (v.name == name && v.type.kind == ir::TypeInfo::Kind::kTensor) return v.type;
  auto it = g.inferred_types.find(name);
  if (it != g.inferred_types.end() && it->second.kind == ir::TypeInfo::Kind::kTensor) return it->second;
  return std::nullopt;
}

// Whether `name` is a value of the main graph: an input, an initializer or a node's output.
bool is_graph_value(const ir::Graph& g, const std::string& name) {
  for (const auto& v : g.inputs)
    if (v.name == name) return true;
  for (const auto& init : g.initializers)
    if (init.name == name) return true;
  for (const auto& n : g.nodes)
    for (const auto& o : n.outputs)
      if (o == name) return true;
  return false;
}

// A value name for a node the edit adds; refused when the graph has it already.
std::string fresh_value(const ModelImpl& m, const std::string& name, const std::string& edit) {
  if (is_graph_value(m.ir.graph, name) || m.store.find(name))
    throw invalid(edit + ": the graph already has a value named '" + name + "'");
  return name;
}

// Wires a registered tensor into the main graph as an initializer.
void add_initializer(ModelImpl& m, const std::string& name) { m.ir.graph.initializers.push_back({name, name, ""}); }

// ---- Heads ------------------------------------------------------------------------------------------

void check_head(const ModelImpl& m, const HeadOptions& o, DataType& dtype, Shape& shape) {
  const std::string edit = "new head '" + o.name + "'";
  if (o.name.empty()) throw invalid("a new head needs a name");
  if (o.out_features <= 0)
    throw invalid(edit + ": the number of outputs must be positive, got " + std::to_string(o.out_features));
  if (!is_graph_value(m.ir.graph, o.value)) throw Error(ErrorCode::kNotFound, edit + ": the graph has no value '" + o.value + "'");
  std::optional<ir::TypeInfo> type = value_type(m, o.value);
  if (!type || !type->shape || type->shape->rank() == 0)
    throw invalid(edit + ": the shape of '" + o.value + "' is not known, so its last dim cannot be read");
  if (type->elem_type != DataType::kFloat32 && type->elem_type != DataType::kFloat64)
    throw invalid(edit + ": '" + o.value + "' is " + describe_dtype(type->elem_type) + "; a head reads float32 or float64");
  const Dim& last = type->shape->dims.back();
  if (!last.is_fixed())
    throw invalid(edit + ": the last dim of '" + o.value + "' is " + last.to_string() + ", not a fixed size");
  if (is_graph_value(m.ir.graph, o.name) || m.store.find(o.name))
    throw invalid(edit + ": the graph already has a value named '" + o.name + "'");
  for (const auto& out : m.ir.graph.outputs)
    if (out.name == o.name) throw invalid(edit + ": the graph already has an output named '" + o.name + "'");
  dtype = type->elem_type;
  shape = *type->shape;
}

}  // namespace

void add_head(Model& model, const HeadOptions& o) {
  ModelImpl& m = model_impl(model);
  DataType dtype = DataType::kUndefined;
  Shape shape;
  check_head(m, o, dtype, shape);
  const int64_t in = shape.dims.back().value;
  const std::string weight = o.name + ".weight", bias = o.name + ".bias";
  const std::string edit = "new head '" + o.name + "'";
  for (const std::string& n : {weight, bias}) fresh_value(m, n, edit);
  const bool rank2 = shape.rank() == 2;
  std::string transposed, product;
  if (!rank2) {
    transposed = fresh_value(m, o.name + "/weight_transposed", edit);
    product = fresh_value(m, o.name + "/matmul", edit);
  }

  // nn.Linear's reset_parameters: kaiming_uniform(a=sqrt(5)) gives the weight bound 1/sqrt(in), and
  // the bias the same bound.
  Uniform rng(o.seed);
  const double bound = 1.0 / std::sqrt(static_cast<double>(in));
  model.register_parameter(weight, uniform_tensor(dtype, {o.out_features, in}, bound, rng));
  model.register_parameter(bias, uniform_tensor(dtype, {o.out_features}, bound, rng));
  add_initializer(m, weight);
  add_initializer(m, bias);
  ir::Graph& g = m.ir.graph;
  if (rank2) {
    g.nodes.push_back(make_node(o.name + "/Gemm", "Gemm", {o.value, weight, bias}, o.name, {ops::attr("transB", int64_t{1})}));
  } else {
    g.nodes.push_back(make_node(o.name + "/Transpose", "Transpose", {weight}, transposed, {ops::attr("perm", std::vector<int64_t>{1, 0})}));
    g.nodes.push_back(make_node(o.name + "/MatMul", "MatMul", {o.value, transposed}, product));
    g.nodes.push_back(make_node(o.name + "/Add", "Add", {product, bias}, o.name));
  }
  Shape out_shape = shape;
  out_shape.dims.back() = Dim::fixed(o.out_features);
  g.outputs.push_back({o.name, ir::TypeInfo::tensor(dtype, out_shape), "new head on '" + o.value + "'"});
  m.edits.push_back("head value=" + o.value + " n=" + std::to_string(o.out_features) + " name=" + o.name +
                    " seed=" + std::to_string(o.seed));
}

// ---- Replacing the outputs ----------------------------------------------------------------------------

void replace_outputs(Model& model, const std::vector<std::string>& outputs) {
  ModelImpl& m = model_impl(model);
  ir::Graph& g = m.ir.graph;
  if (outputs.empty()) throw invalid("replacing the outputs needs at least one output");
  std::vector<ir::ValueInfo> kept;
  for (const std::string& name : outputs) {
    auto it = std::find_if(g.outputs.begin(), g.outputs.end(), [&](const ir::ValueInfo& v) { return v.name == name; });
    if (it == g.outputs.end()) throw Error(ErrorCode::kNotFound, "replacing the outputs: '" + name + "' is not a graph output");
    kept.push_back(*it);
  }
  // Walk back from the kept outputs; a node is live when one of its outputs is needed. Subgraphs may
  // read outer values, so their reads count too.
  std::unordered_set<std::string> needed(outputs.begin(), outputs.end());
  std::vector<bool> live(g.nodes.size(), false);
  for (size_t i = g.nodes.size(); i-- > 0;) {
    const ir::Node& n = g.nodes[i];
    bool is_live = false;
    for (const auto& o : n.outputs) is_live = is_live || (!o.empty() && needed.count(o));
    if (!is_live) continue;
    live[i] = true;
    for (const auto& in : n.inputs) needed.insert(in);
    for (const auto& attr : n.attributes) {
      std::vector<const ir::Graph*> subs;
      if (attr.g) subs.push_back(attr.g.get());
      for (const auto& s : attr.graphs) subs.push_back(s.get());
      for (const ir::Graph* sub : subs)
        sub->visit([&](const ir::Graph& sg, int) {
          for (const auto& sn : sg.nodes)
            for (const auto& in : sn.inputs) needed.insert(in);
          for (const auto& so : sg.outputs) needed.insert(so.name);
        });
    }
  }
  std::vector<ir::Node> nodes;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    if (live[i]) nodes.push_back(std::move(g.nodes[i]));
  g.nodes = std::move(nodes);
  g.outputs = std::move(kept);
  // Initializers no live node reads leave the graph and the model's tensors.
  std::vector<ir::Initializer> initializers;
  std::unique_lock<std::shared_mutex> lock(*m.parameters_mutex);
  for (auto& init : g.initializers) {
    if (needed.count(init.name)) initializers.push_back(std::move(init));
    else m.store.remove(init.store_key);
  }
  g.initializers = std::move(initializers);
  std::string line = "replace_outputs";
  for (const auto& o : outputs) line += " " + o;
  m.edits.push_back(line);
}

// ---- Trainable inputs ---------------------------------------------------------------------------------

void bind_input(Model& model, const std::string& input, Tensor value) {
  ModelImpl& m = model_impl(model);
  ir::Graph& g = m.ir.graph;
  const std::string edit = "binding input '" + input + "'";
  auto it = std::find_if(g.inputs.begin(), g.inputs.end(), [&](const ir::ValueInfo& v) { return v.name == input; });
  bool is_initializer = false;
  for (const auto& init : g.initializers) is_initializer = is_initializer || init.name == input;
  if (it == g.inputs.end() || is_initializer)
    throw Error(ErrorCode::kNotFound, edit + ": the model has no graph input of that name");
  if (!value.defined()) throw invalid(edit + ": the tensor is undefined");
  const ir::TypeInfo& type = it->type;
  if (type.kind != ir::TypeInfo::Kind::kTensor) throw invalid(edit + ": the input is not a tensor");
  if (!is_floating_point(type.elem_type))
    throw invalid(edit + ": the input is " + describe_dtype(type.elem_type) + "; only a floating-point input can be trained");
  if (value.dtype() != type.elem_type)
    throw invalid(edit + ": the input is " + describe_dtype(type.elem_type) + " but the value is " + describe_dtype(value.dtype()));
  if (type.shape) {
    bool fits = type.shape->rank() == value.rank();
    for (size_t i = 0; fits && i < value.rank(); ++i)
      fits = !type.shape->dims[i].is_fixed() || type.shape->dims[i].value == value.dims()[i];
    if (!fits)
      throw invalid(edit + ": the input is declared " + type.shape->to_string() + " but the value is " +
                    dims_to_string(value.dims()));
  }
  if (m.store.find(input)) throw invalid(edit + ": a parameter or buffer of that name exists already");
  // The input leaves the graph's inputs first, so registering its name is not refused as a graph value.
  const ir::ValueInfo removed = *it;
  g.inputs.erase(it);
  try {
    model.register_parameter(input, std::move(value));
  } catch (...) {
    g.inputs.push_back(removed);
    throw;
  }
  add_initializer(m, input);
  m.edits.push_back("bind_input " + input);
}

std::vector<std::string> graph_edits(const Model& model) { return model_impl(model).edits; }

}  // namespace tunnx
