#include "importer/onnx_validate.h"

#include <algorithm>
#include <map>
#include <mutex>
#include <regex>
#include <unordered_map>

#include "importer/tensor_proto.h"
#include "onnx/checker.h"
#include "onnx/defs/schema.h"
#include "onnx/shape_inference/implementation.h"

namespace tunnx {
namespace {

// A data type of `graph` (initializers, declared values, Constant tensors, subgraphs) that libonnx's
// TensorProto does not name (float8, int4, ... in Debian's 1.12), or 0.
int32_t newer_data_type(const onnx::GraphProto& graph) {
  auto newer = [](int32_t t) { return onnx::TensorProto_DataType_IsValid(t) ? 0 : t; };
  for (const auto& t : graph.initializer())
    if (int32_t n = newer(t.data_type())) return n;
  for (const auto* values : {&graph.input(), &graph.output(), &graph.value_info()})
    for (const auto& v : *values)
      if (v.type().has_tensor_type())
        if (int32_t n = newer(v.type().tensor_type().elem_type())) return n;
  for (const auto& node : graph.node())
    for (const auto& a : node.attribute()) {
      if (a.has_t())
        if (int32_t n = newer(a.t().data_type())) return n;
      if (a.has_i() && a.type() == onnx::AttributeProto::INT && (a.name() == "to" || a.name() == "output_dtype"))
        if (int32_t n = newer(static_cast<int32_t>(a.i()))) return n;
      if (a.has_g())
        if (int32_t n = newer_data_type(a.g())) return n;
      for (const auto& g : a.graphs())
        if (int32_t n = newer_data_type(g)) return n;
    }
  return 0;
}

// Why ONNX's library cannot judge this model, or "" when it can.
std::string why_library_cannot_check(const onnx::ModelProto& model) {
  if (model.ir_version() > onnx::IR_VERSION)
    return "skipped: IR version " + std::to_string(model.ir_version()) + " is newer than libonnx's " +
           std::to_string(onnx::IR_VERSION);
  const auto& known = onnx::OpSchemaRegistry::DomainToVersionRange::Instance().Map();
  for (const auto& o : model.opset_import()) {
    std::string domain = o.domain() == "ai.onnx" ? "" : o.domain();
    auto it = known.find(domain);
    if (it != known.end() && o.version() > it->second.second)
      return "skipped: opset " + std::to_string(o.version()) + " of '" +
             (domain.empty() ? std::string("ai.onnx") : domain) + "' is newer than libonnx's " +
             std::to_string(it->second.second);
  }
  // ONNX Runtime's quantizer writes int4 weights at opset 17 (com.microsoft's DequantizeLinear).
  if (int32_t t = newer_data_type(model.graph()))
    return "skipped: data type " + std::to_string(t) + " is newer than libonnx's";
  return "";
}

// ONNX Runtime's contrib LayerNormalization: ai.onnx version 1, as ORT registers it, so files its
// transformer tools wrote for opsets 1-16 check (ONNX's own op starts at 17, with the same inputs,
// outputs and attributes). Registered once, into the process's ONNX schema registry.
void register_onnx_runtime_schemas() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (onnx::OpSchemaRegistry::Schema("LayerNormalization", 16, "")) return;  // a libonnx that knows it
    onnx::OpSchema schema;
    schema.SetName("LayerNormalization")
        .SetDomain("")
        .SinceVersion(1)
        .SetDoc("ONNX Runtime's contrib LayerNormalization (ONNX's own from opset 17)")
        .Attr("axis", "first normalized dimension", onnx::AttributeProto::INT, int64_t{-1})
        .Attr("epsilon", "added to the variance", onnx::AttributeProto::FLOAT, 1e-5f)
        .Attr("stash_type", "type of Mean and InvStdDev", onnx::AttributeProto::INT, int64_t{1})
        .Input(0, "X", "input", "T")
        .Input(1, "Scale", "scale", "T")
        .Input(2, "B", "bias", "T", onnx::OpSchema::Optional)
        .Output(0, "Y", "output", "T")
        .Output(1, "Mean", "saved mean", "U", onnx::OpSchema::Optional)
        .Output(2, "InvStdDev", "saved inverse standard deviation", "U", onnx::OpSchema::Optional)
        .TypeConstraint("T", {"tensor(float16)", "tensor(float)", "tensor(double)", "tensor(bfloat16)"}, "input types")
        .TypeConstraint("U", {"tensor(float)", "tensor(bfloat16)", "tensor(float16)", "tensor(double)"}, "statistics types")
        .TypeAndShapeInferenceFunction([](onnx::InferenceContext& ctx) { onnx::propagateShapeAndTypeFromFirstInput(ctx); });
    onnx::RegisterSchema(std::move(schema));
  });
}

}  // namespace

void prepare_onnx_schemas() { register_onnx_runtime_schemas(); }

namespace {

std::unordered_map<std::string, int> opset_map(const onnx::ModelProto& model) {
  std::unordered_map<std::string, int> map;
  for (const auto& o : model.opset_import())
    map[o.domain() == "ai.onnx" ? "" : o.domain()] = static_cast<int>(o.version());
  return map;
}

}  // namespace

std::string run_onnx_checker(const onnx::ModelProto& model, const std::filesystem::path& model_dir) {
  register_onnx_runtime_schemas();
  if (std::string why = why_library_cannot_check(model); !why.empty()) return why;
  // check_model(ModelProto) cannot be told the model's folder, so external data could not be found;
  // this is its body with the folder set.
  onnx::checker::CheckerContext ctx;
  ctx.set_ir_version(static_cast<int>(model.ir_version()));
  ctx.set_opset_imports(opset_map(model));
  ctx.set_schema_registry(onnx::OpSchemaRegistry::Instance());
  ctx.set_model_dir(model_dir.empty() ? "." : model_dir.string());
  ctx.set_is_main_graph(true);
  onnx::checker::LexicalScopeContext lex;
  try {
    if (model.ir_version() >= 3 && model.opset_import_size() == 0)
      throw onnx::checker::ValidationError("model with IR version >= 3 must specify opset_import");
    onnx::checker::check_graph(model.graph(), ctx, lex);
    if (model.ir_version() >= 8) onnx::checker::check_model_local_functions(model, ctx, lex);
  } catch (const onnx::checker::ValidationError& e) {
    // The checker's first line says what is wrong; a later "==> Context: ... Name: n OpType: Op"
    // line says where. Keep both, as one line.
    std::string message = e.what();
    ErrorContext where;
    static const std::regex node_context(R"([Nn]ame: (\S*) OpType: (\S+))");
    std::smatch match;
    if (std::regex_search(message, match, node_context)) {
      where.node = match[1].str().empty() ? "<unnamed>" : match[1].str();
      where.op_type = match[2].str();
    }
    // Join the lines; the context block after the message only repeats what `where` holds.
    if (auto context = message.find("==> Context:"); context != std::string::npos) message.resize(context);
    for (char& c : message)
      if (c == '\n') c = ' ';
    while (!message.empty() && message.back() == ' ') message.pop_back();
    throw Error(ErrorCode::kInvalidModel, "ONNX checker: " + message, where);
  }
  return "passed";
}

namespace {

onnx::ShapeInferenceOptions inference_options() {
  onnx::ShapeInferenceOptions options;
  options.check_type = false;
  options.error_mode = 0;
  // Shapes computed in the graph (Shape -> Gather -> Concat -> Reshape, as exporters write
  // attention's head split) are followed, so the values after them keep their ranks and dims.
  options.enable_data_propagation = true;
  return options;
}

}  // namespace

// ONNX's inference gives a Resize's (Upsample's) output a fresh symbol (unk__N) on an axis it scales
// by exactly 1 from a named size, where the size is the input's own: YOLOv8n's batch after its two
// upsamplings. Each such symbol is renamed to the input's everywhere, so a session that knows the
// batch (SessionOptions::expected_dims) knows the dims after them too and prepares their kernels
// when it is made (in YOLOv8n, 37 of its 64 convolutions were otherwise built in the first run).
void unify_unit_scaled_dims(const onnx::GraphProto& proto, ir::Graph& graph) {
  std::map<std::string, std::vector<float>> scales;  // small float initializers inference kept
  for (const auto& init : proto.initializer()) {
    if (init.data_type() != onnx::TensorProto::FLOAT || init.dims_size() != 1 || init.has_data_location() ||
        (init.raw_data().empty() && init.float_data_size() == 0))
      continue;  // not a vector of floats, or one whose bytes inference dropped
    try {
      const Tensor t = tensor_from_proto(init, TensorReadOptions{});
      if (t.numel() > 0) scales[init.name()] = std::vector<float>(t.data_as<float>(), t.data_as<float>() + t.numel());
    } catch (const Error&) {
      // A malformed one: not a scale to read (the importer reports it).
    }
  }
  auto type_of = [&](const std::string& name) -> const ir::TypeInfo* {
    if (auto it = graph.inferred_types.find(name); it != graph.inferred_types.end()) return &it->second;
    for (const auto& v : graph.inputs)
      if (v.name == name) return &v.type;
    return nullptr;
  };
  std::map<std::string, std::string> renamed;  // unk__N -> the input's symbol
  for (const auto& node : proto.node()) {
    const bool resize = node.op_type() == "Resize" && node.input_size() >= 3;
    const bool upsample = node.op_type() == "Upsample" && node.input_size() >= 2;
    if ((!resize && !upsample) || node.output_size() < 1 || !node.domain().empty()) continue;
    // tf_crop_and_resize scales the region of interest, not the input: its sizes are not the input's.
    const bool crops = std::any_of(node.attribute().begin(), node.attribute().end(), [](const onnx::AttributeProto& a) {
      return a.name() == "coordinate_transformation_mode" && a.s() == "tf_crop_and_resize";
    });
    if (crops) continue;
    auto factors = scales.find(node.input(resize ? 2 : 1));
    const ir::TypeInfo* in = type_of(node.input(0));
    auto out = graph.inferred_types.find(node.output(0));
    if (factors == scales.end() || !in || !in->shape || out == graph.inferred_types.end() || !out->second.shape) continue;
    const std::vector<Dim>& from = in->shape->dims;
    const std::vector<Dim>& to = out->second.shape->dims;
    if (from.size() != to.size() || factors->second.size() != from.size()) continue;
    for (size_t axis = 0; axis < from.size(); ++axis) {
      std::string source = from[axis].symbol;
      if (auto earlier = renamed.find(source); earlier != renamed.end()) source = earlier->second;
      if (factors->second[axis] == 1.0f && from[axis].is_named() && to[axis].is_named() &&
          to[axis].symbol.rfind("unk__", 0) == 0 && to[axis].symbol != source)
        renamed[to[axis].symbol] = source;
    }
  }
  if (renamed.empty()) return;
  for (auto& [name, type] : graph.inferred_types) {
    if (!type.shape) continue;
    for (Dim& d : type.shape->dims)
      if (auto it = renamed.find(d.symbol); d.is_symbolic() && it != renamed.end()) d.symbol = it->second;
  }
}

bool infer_value_types(onnx::ModelProto& model, ir::Graph& graph) {
  if (!why_library_cannot_check(model).empty()) return false;
  for (auto& init : *model.mutable_graph()->mutable_initializer()) {
    if (init.data_type() == onnx::TensorProto::INT64 || init.data_type() == onnx::TensorProto::INT32) continue;
    // A few values stay, inline ones (not external data): a Resize's scales, which inference needs
    // for the dims after it (YOLOv8n's upsampling).
    if (!init.has_data_location() && init.raw_data().size() <= 64 && init.float_data_size() <= 16 &&
        init.double_data_size() <= 8 && init.int32_data_size() <= 16)
      continue;
    init.clear_raw_data();
    init.clear_float_data();
    init.clear_double_data();
    init.clear_int32_data();
    init.clear_external_data();
    init.clear_data_location();
  }
  try {
    onnx::shape_inference::InferShapes(model, onnx::OpSchemaRegistry::Instance(), inference_options());
  } catch (const std::exception&) {
    return false;  // partial knowledge is fine: the runtime infers shapes itself when it plans
  }
  for (const auto& v : model.graph().value_info()) graph.inferred_types[v.name()] = type_from_proto(v.type());
  for (const auto& v : model.graph().output()) graph.inferred_types[v.name()] = type_from_proto(v.type());
  unify_unit_scaled_dims(model.graph(), graph);
  return true;
}

std::map<std::string, std::vector<int64_t>> infer_fixed_dims(const onnx::ModelProto& model,
                                                            const std::map<std::string, std::vector<int64_t>>& input_dims) {
  std::map<std::string, std::vector<int64_t>> fixed;
  onnx::ModelProto copy = model;  // the graph without the weights' data: small
  onnx::GraphProto& graph = *copy.mutable_graph();
  for (auto& input : *graph.mutable_input()) {
    auto given = input_dims.find(input.name());
    if (given == input_dims.end() || !input.type().has_tensor_type() || !input.type().tensor_type().has_shape() ||
        input.type().tensor_type().shape().dim_size() != static_cast<int>(given->second.size()))
      continue;
    auto* shape = input.mutable_type()->mutable_tensor_type()->mutable_shape();
    for (int d = 0; d < shape->dim_size(); ++d) shape->mutable_dim(d)->set_dim_value(given->second[static_cast<size_t>(d)]);
  }
  try {
    onnx::shape_inference::InferShapes(copy, onnx::OpSchemaRegistry::Instance(), inference_options());
  } catch (const std::exception&) {
    return {};
  }
  auto take = [&](const onnx::ValueInfoProto& v) {
    if (!v.type().has_tensor_type() || !v.type().tensor_type().has_shape()) return;
    std::vector<int64_t> dims;
    for (const auto& d : v.type().tensor_type().shape().dim()) {
      if (!d.has_dim_value() || d.dim_value() < 0) return;
      dims.push_back(d.dim_value());
    }
    fixed[v.name()] = std::move(dims);
  };
  for (const auto& v : graph.input()) take(v);
  for (const auto& v : graph.value_info()) take(v);
  for (const auto& v : graph.output()) take(v);
  return fixed;
}

}  // namespace tunnx
