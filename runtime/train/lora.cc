// LoRA adapters on a loaded model (tunnx/extend.h): each adapted product Y = W x becomes
// Y = W x + (alpha / rank) B (A x), with A [rank, in] and B [out, rank] registered Parameters, as
// PEFT's LoraLayer computes it. The model remembers where it put them, so an export can fold them back
// into W (the original graph and names) and the adapters can be saved and loaded on their own.
#include <algorithm>
#include <cmath>
#include <map>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <sstream>
#include <unordered_set>

#include "runtime/core/glob.h"
#include "runtime/core/model_impl.h"
#include "runtime/core/ops/gradient.h"
#include "runtime/core/passes/graph_facts.h"
#include "runtime/core/passes/inline_functions.h"
#include "runtime/train/graph_edit_util.h"
#include "tunnx/extend.h"
#include "tunnx/io.h"

namespace tunnx {
namespace {

using edit::make_node;
using edit::Uniform;

Error invalid(const std::string& message) { return Error(ErrorCode::kInvalidArgument, message); }

using ir::is_onnx;
using ops::node_float;
using ops::node_int;

// One product an adapter feeds: node `product` reads x and W (directly or through a Transpose).
struct Site {
  size_t node = 0;
  std::string x;
};

// How W is read, and by which products. `out_in`: W is [out, in] (Gemm transB=1, or MatMul through
// Transpose(W), as torch exports nn.Linear); otherwise [in, out]. `gemm_alpha`: Gemm scales the
// product, so a merged update is divided by it.
struct Use {
  bool out_in = false;
  double gemm_alpha = 1;
  std::vector<Site> sites;
};

// Where an adapter sits after the rewrite, for folding it back on export.
struct Wiring {
  std::string weight, a, b, scaling;
  bool out_in = false;
  double scale = 1;  // alpha / rank / gemm_alpha
  std::vector<std::string> added_nodes;
  std::vector<std::pair<std::string, std::string>> renamed;  // product output: original -> base
};

bool is_plain_transpose(const ir::Node& n) {
  if (!is_onnx(n) || n.op_type != "Transpose" || n.inputs.size() != 1 || n.outputs.size() != 1) return false;
  const ir::Attribute* perm = n.attribute("perm");
  return !perm || perm->ints == std::vector<int64_t>{1, 0};
}

// The products that read `weight` as their weight operand; throws when they disagree on how.
std::optional<Use> find_use(const ir::Graph& g, const std::string& weight) {
  Use use;
  bool first = true;
  auto add = [&](size_t node, const std::string& x, bool out_in, double alpha) {
    if (!first && (out_in != use.out_in || alpha != use.gemm_alpha))
      throw invalid("LoRA: '" + weight + "' is read by products that disagree on its layout or scale (" +
                    g.nodes[node].describe() + ")");
    first = false;
    use.out_in = out_in;
    use.gemm_alpha = alpha;
    use.sites.push_back({node, x});
  };
  std::unordered_set<std::string> transposed;  // Transpose(W) outputs
  for (const auto& n : g.nodes)
    if (is_plain_transpose(n) && n.inputs[0] == weight) transposed.insert(n.outputs[0]);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const ir::Node& n = g.nodes[i];
    if (!is_onnx(n) || n.inputs.size() < 2 || n.outputs.size() != 1) continue;
    if (n.op_type == "MatMul" && n.inputs[1] == weight) add(i, n.inputs[0], false, 1);
    if (n.op_type == "MatMul" && transposed.count(n.inputs[1])) add(i, n.inputs[0], true, 1);
    if (n.op_type == "Gemm" && n.inputs[1] == weight) {
      if (node_int(n, "transA", 0) != 0)
        throw invalid("LoRA: " + n.describe() + " reads its input transposed (transA=1), which LoRA does not adapt");
      add(i, n.inputs[0], node_int(n, "transB", 0) != 0, node_float(n, "alpha", 1.0f));
    }
  }
  if (use.sites.empty()) return std::nullopt;
  return use;
}

double element(const Tensor& t, int64_t i) {
  return t.dtype() == DataType::kFloat32 ? t.data_as<float>()[i] : t.data_as<double>()[i];
}
void set_element(Tensor& t, int64_t i, double v) {
  if (t.dtype() == DataType::kFloat32) t.mutable_data_as<float>()[i] = static_cast<float>(v);
  else t.mutable_data_as<double>()[i] = v;
}

// A copy of `m` with `wirings` folded back: their nodes gone, the products' outputs renamed back,
// A, B and the scaling out of the graph and the store, and W replaced by W + scale * (B A) (or its
// transpose, for an [in, out] W) in the copy only.
std::unique_ptr<ModelImpl> fold_adapters(const ModelImpl& m, const std::vector<Wiring>& wirings) {
  auto out = std::make_unique<ModelImpl>();
  out->ir = m.ir;
  out->ir.graph = ir::deep_copy(m.ir.graph);
  out->path = m.path;
  out->onnx_checker = m.onnx_checker;
  std::unordered_set<std::string> dropped_nodes, dropped_tensors;
  std::map<std::string, std::string> rename;  // base -> original
  std::map<std::string, const Wiring*> by_weight;
  for (const Wiring& w : wirings) {
    dropped_nodes.insert(w.added_nodes.begin(), w.added_nodes.end());
    dropped_tensors.insert({w.a, w.b, w.scaling});
    for (const auto& [original, base] : w.renamed) rename[base] = original;
    by_weight[w.weight] = &w;
  }
  ir::Graph& g = out->ir.graph;
  std::vector<ir::Node> nodes;
  for (auto& n : g.nodes) {
    if (dropped_nodes.count(n.name)) continue;
    for (auto& o : n.outputs)
      if (auto it = rename.find(o); it != rename.end()) o = it->second;
    nodes.push_back(std::move(n));
  }
  g.nodes = std::move(nodes);
  std::erase_if(g.initializers, [&](const ir::Initializer& i) { return dropped_tensors.count(i.name) > 0; });
  for (const auto& e : m.store.entries()) {
    if (dropped_tensors.count(e->name)) continue;
    StoredTensor copy;
    copy.name = e->name;
    copy.role = e->role;
    copy.requires_grad = e->requires_grad;
    copy.reason = e->reason;
    copy.origin = e->origin;
    copy.persistent = e->persistent;
    copy.value = e->value;
    if (auto it = by_weight.find(e->name); it != by_weight.end()) {
      const Wiring& w = *it->second;
      const Tensor& a = m.store.at(w.a).value;  // [r, in]
      const Tensor& b = m.store.at(w.b).value;  // [out, r]
      const int64_t r = a.dims()[0], in = a.dims()[1], outs = b.dims()[0];
      Tensor merged = e->value.clone();
      for (int64_t o = 0; o < outs; ++o)
        for (int64_t i = 0; i < in; ++i) {
          double delta = 0;
          for (int64_t k = 0; k < r; ++k) delta += element(b, o * r + k) * element(a, k * in + i);
          const int64_t at = w.out_in ? o * in + i : i * outs + o;
          set_element(merged, at, element(merged, at) + w.scale * delta);
        }
      copy.value = std::move(merged);
    }
    out->store.add(std::move(copy));
  }
  return out;
}

std::string lora_metadata(const std::vector<LoraOptions>& calls, auto field) {
  std::string s;
  for (const auto& c : calls) s += (s.empty() ? "" : ",") + field(c);
  return s;
}

std::string number(double v) {
  std::ostringstream out;
  out.precision(17);
  out << v;
  return out.str();
}

}  // namespace

std::vector<LoraAdapter> add_lora(Model& model, const LoraOptions& o) {
  ModelImpl& m = model_impl(model);
  ir::Graph& g = m.ir.graph;
  if (o.glob.empty()) throw invalid("LoRA needs a glob naming the weights to adapt");
  if (o.rank <= 0) throw invalid("LoRA rank must be positive, got " + std::to_string(o.rank));
  if (!(o.alpha > 0) || !std::isfinite(o.alpha)) throw invalid("LoRA alpha must be a positive number, got " + number(o.alpha));

  // Check everything before changing anything.
  struct Plan {
    std::string weight;
    Use use;
    int64_t in = 0, out = 0;
    DataType dtype = DataType::kUndefined;
  };
  std::vector<Plan> plans;
  std::unordered_set<std::string> in_graph;
  for (const auto& init : g.initializers) in_graph.insert(init.name);
  for (const auto& e : m.store.entries()) {
    if (!glob_match(o.glob, e->name) || e->role != TensorRole::kParameter) continue;
    std::optional<Use> use = in_graph.count(e->name) ? find_use(g, e->name) : std::nullopt;
    if (!use) throw invalid("LoRA: '" + e->name + "' matches '" + o.glob + "' but no MatMul or Gemm reads it as its weight");
    if (e->value.rank() != 2) throw invalid("LoRA: '" + e->name + "' is " + dims_to_string(e->value.dims()) + ", not a 2-D weight");
    if (e->value.dtype() != DataType::kFloat32 && e->value.dtype() != DataType::kFloat64)
      throw invalid("LoRA: '" + e->name + "' is " + std::string(to_string(e->value.dtype())) + "; adapters are float32 or float64");
    for (const std::string suffix : {".lora_A", ".lora_B", ".lora_scaling"})
      if (m.store.find(e->name + suffix)) throw invalid("LoRA: '" + e->name + "' has adapters already");
    Plan p;
    p.weight = e->name;
    p.use = *use;
    const auto& d = e->value.dims();
    p.out = use->out_in ? d[0] : d[1];
    p.in = use->out_in ? d[1] : d[0];
    p.dtype = e->value.dtype();
    plans.push_back(std::move(p));
  }
  if (plans.empty()) throw Error(ErrorCode::kNotFound, "LoRA: no parameter matches '" + o.glob + "'");

  Uniform rng(o.seed);
  std::vector<LoraAdapter> added;
  std::vector<Wiring> wirings;
  // Rewrites go from the last product backwards so earlier node indices stay valid.
  std::vector<std::pair<size_t, std::vector<ir::Node>>> inserts;
  for (const Plan& p : plans) {
    LoraAdapter ad{p.weight, p.weight + ".lora_A", p.weight + ".lora_B", p.in, p.out, o.rank, o.alpha};
    Wiring w;
    w.weight = p.weight;
    w.a = ad.lora_a;
    w.b = ad.lora_b;
    w.scaling = p.weight + ".lora_scaling";
    w.out_in = p.use.out_in;
    const double scaling = o.alpha / static_cast<double>(o.rank);
    w.scale = scaling / p.use.gemm_alpha;
    // PEFT: A from kaiming_uniform(a=sqrt(5)), i.e. U(-1/sqrt(in), 1/sqrt(in)); B zeros.
    const double bound = 1.0 / std::sqrt(static_cast<double>(p.in));
    Tensor a(p.dtype, {o.rank, p.in}), b(p.dtype, {p.out, o.rank}), s(p.dtype, {});
    for (int64_t i = 0; i < a.numel(); ++i) set_element(a, i, rng.next(-bound, bound));
    set_element(s, 0, scaling);
    model.register_parameter(w.a, std::move(a));
    model.register_parameter(w.b, std::move(b));
    model.register_buffer(w.scaling, std::move(s), /*persistent=*/false);
    for (const std::string& t : {w.a, w.b, w.scaling}) g.initializers.push_back({t, t, ""});
    const std::string a_t = w.a + "/transposed", b_t = w.b + "/transposed";
    for (size_t k = 0; k < p.use.sites.size(); ++k) {
      const Site& site = p.use.sites[k];
      ir::Node& product = g.nodes[site.node];
      const std::string original = product.outputs[0];
      const std::string tag = p.weight + ".lora/" + std::to_string(k);
      const std::string base = tag + "/base", h = tag + "/down", d = tag + "/up", scaled = tag + "/scaled";
      product.outputs[0] = base;
      w.renamed.emplace_back(original, base);
      std::vector<ir::Node> nodes;
      if (k == 0) {
        nodes.push_back(make_node(a_t, "Transpose", {w.a}, a_t, {ops::attr("perm", std::vector<int64_t>{1, 0})}));
        nodes.push_back(make_node(b_t, "Transpose", {w.b}, b_t, {ops::attr("perm", std::vector<int64_t>{1, 0})}));
      }
      nodes.push_back(make_node(h, "MatMul", {site.x, a_t}, h));
      nodes.push_back(make_node(d, "MatMul", {h, b_t}, d));
      nodes.push_back(make_node(scaled, "Mul", {d, w.scaling}, scaled));
      nodes.push_back(make_node(tag + "/add", "Add", {base, scaled}, original));
      for (const auto& n : nodes) w.added_nodes.push_back(n.name);
      inserts.emplace_back(site.node, std::move(nodes));
    }
    added.push_back(ad);
    wirings.push_back(std::move(w));
  }
  std::sort(inserts.begin(), inserts.end(), [](const auto& x, const auto& y) { return x.first > y.first; });
  for (auto& [at, nodes] : inserts)
    g.nodes.insert(g.nodes.begin() + static_cast<std::ptrdiff_t>(at) + 1, std::make_move_iterator(nodes.begin()),
                   std::make_move_iterator(nodes.end()));

  // PEFT freezes the base model: every imported Parameter; registered ones keep their setting.
  for (const auto& e : m.store.entries())
    if (e->origin == TensorOrigin::kImported && e->role == TensorRole::kParameter) e->requires_grad = false;

  auto previous = m.merged_for_export;
  m.merged_for_export = [previous, wirings](const ModelImpl& impl) {
    std::unique_ptr<ModelImpl> earlier = previous ? previous(impl) : nullptr;
    return fold_adapters(earlier ? *earlier : impl, wirings);
  };
  m.lora.insert(m.lora.end(), added.begin(), added.end());
  m.lora_calls.push_back(o);
  m.edits.push_back("lora glob=" + o.glob + " rank=" + std::to_string(o.rank) + " alpha=" + number(o.alpha) +
                    " seed=" + std::to_string(o.seed));
  return added;
}

std::vector<LoraAdapter> lora_adapters(const Model& model) { return model_impl(model).lora; }

void save_adapters(const Model& model, const std::filesystem::path& path) {
  const ModelImpl& m = model_impl(model);
  if (m.lora.empty()) throw invalid("the model has no LoRA adapters to save");
  StateDict tensors;
  for (const LoraAdapter& a : m.lora) {
    tensors.emplace_back(a.lora_a, m.store.at(a.lora_a).value);
    tensors.emplace_back(a.lora_b, m.store.at(a.lora_b).value);
  }
  save_safetensors(path, tensors,
                   {{"format", "pt"},
                    {"lora_glob", lora_metadata(m.lora_calls, [](const LoraOptions& c) { return c.glob; })},
                    {"lora_rank", lora_metadata(m.lora_calls, [](const LoraOptions& c) { return std::to_string(c.rank); })},
                    {"lora_alpha", lora_metadata(m.lora_calls, [](const LoraOptions& c) { return number(c.alpha); })}});
}

void load_adapters(Model& model, const std::filesystem::path& path) {
  ModelImpl& m = model_impl(model);
  SafetensorsFile file = load_safetensors(path);
  auto fail = [&](const std::string& why) { return Error(ErrorCode::kInvalidArgument, why, {.file = path.string()}); };
  if (m.lora.empty()) throw fail("the model has no LoRA adapters to load these into (add the same --lora first)");
  std::map<std::string, std::string> meta(file.metadata.begin(), file.metadata.end());
  const std::vector<std::pair<std::string, std::string>> expected = {
      {"lora_glob", lora_metadata(m.lora_calls, [](const LoraOptions& c) { return c.glob; })},
      {"lora_rank", lora_metadata(m.lora_calls, [](const LoraOptions& c) { return std::to_string(c.rank); })},
      {"lora_alpha", lora_metadata(m.lora_calls, [](const LoraOptions& c) { return number(c.alpha); })}};
  for (const auto& [key, want] : expected) {
    auto it = meta.find(key);
    if (it == meta.end()) throw fail("not a tunnx adapters file: its metadata has no " + key);
    if (it->second != want) throw fail("the adapters were made with " + key + " " + it->second + ", this model's LoRA has " + want);
  }
  std::map<std::string, const Tensor*> given;
  for (const auto& [name, t] : file.tensors) given[name] = &t;
  StateDict state;
  for (const LoraAdapter& a : m.lora)
    for (const std::string& name : {a.lora_a, a.lora_b}) {
      auto it = given.find(name);
      if (it == given.end()) throw fail("the adapters have no tensor '" + name + "'");
      state.emplace_back(name, *it->second);
      given.erase(it);
    }
  if (!given.empty()) throw fail("tensor '" + given.begin()->first + "' is not an adapter of this model");
  try {
    model.load_state_dict(state, /*strict=*/false);  // checks shapes and dtypes, naming the tensor
  } catch (const Error& e) {
    throw e.with_context({.file = path.string()});
  }
}

}  // namespace tunnx
