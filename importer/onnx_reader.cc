#include "importer/onnx_reader.h"

#include <unordered_set>

namespace tunnx {
namespace {

using AType = ir::AttributeType;

class Reader {
 public:
  Reader(ParameterStore& store, const TensorReadOptions& options) : store_(store), options_(options) {}

  ir::Graph graph(const onnx::GraphProto& proto, const std::string& scope) {
    ir::Graph g;
    g.name = proto.name();
    g.doc_string = proto.doc_string();
    for (const auto& v : proto.input()) g.inputs.push_back(value_info(v));
    for (const auto& v : proto.output()) g.outputs.push_back(value_info(v));
    for (const auto& v : proto.value_info()) g.value_infos.push_back(value_info(v));
    std::unordered_set<std::string> names;
    for (const auto& t : proto.initializer()) {
      if (t.name().empty())
        throw Error(ErrorCode::kInvalidModel, "an initializer has no name", {.field = "initializer"});
      if (!names.insert(t.name()).second)
        throw Error(ErrorCode::kInvalidModel, "initializer is defined twice in graph '" + proto.name() + "'",
                    {.tensor = t.name()});
      // Sibling subgraphs may reuse a name; their store key is qualified by where they live.
      std::string key = (scope.empty() || !store_.find(t.name())) ? t.name() : scope + "/" + t.name();
      StoredTensor entry;
      entry.name = key;
      // The top graph's raw_data may stay where protobuf parsed it (RawDataStrings).
      entry.value = tensor_from_proto(t, options_, /*borrow=*/scope.empty());
      entry.external_data = t.data_location() == onnx::TensorProto::EXTERNAL;
      store_.add(std::move(entry));
      g.initializers.push_back({t.name(), key, t.doc_string()});
    }
    for (const auto& s : proto.sparse_initializer()) g.sparse_initializers.push_back(sparse(s));
    for (const auto& q : proto.quantization_annotation()) g.quantization_annotations.push_back(q.SerializeAsString());
    g.nodes.reserve(proto.node_size());
    for (const auto& n : proto.node()) g.nodes.push_back(node(n, scope));
    return g;
  }

  ir::Node node(const onnx::NodeProto& proto, const std::string& scope) {
    ir::Node n;
    n.name = proto.name();
    n.op_type = proto.op_type();
    n.domain = proto.domain();
    n.doc_string = proto.doc_string();
    n.inputs.assign(proto.input().begin(), proto.input().end());
    n.outputs.assign(proto.output().begin(), proto.output().end());
    std::string node_scope = (scope.empty() ? "" : scope + "/") + (n.name.empty() ? n.op_type : n.name);
    for (const auto& a : proto.attribute()) {
      try {
        n.attributes.push_back(attribute(a, node_scope));
      } catch (const Error& e) {
        if (!e.context().node.empty()) throw;
        throw e.with_context({.node = n.name.empty() ? "<unnamed>" : n.name, .op_type = n.op_type,
                              .field = "attribute " + a.name()});
      }
    }
    return n;
  }

  ir::Attribute attribute(const onnx::AttributeProto& proto, const std::string& scope) {
    ir::Attribute a;
    a.name = proto.name();
    a.ref_attr_name = proto.ref_attr_name();
    a.doc_string = proto.doc_string();
    a.type = static_cast<AType>(proto.type());
    if (a.type == AType::kUndefined) a.type = guess_type(proto);
    std::string sub_scope = scope + "/" + a.name;
    a.f = proto.f();
    a.i = proto.i();
    a.s = proto.s();
    if (proto.has_t()) {
      a.t = tensor(proto.t());
      a.t_label = {proto.t().name(), proto.t().doc_string()};
    }
    if (proto.has_g()) a.g = std::make_shared<ir::Graph>(graph(proto.g(), sub_scope));
    if (proto.has_sparse_tensor()) a.sparse_tensor = sparse(proto.sparse_tensor());
    if (proto.has_tp()) a.type_proto = type_from_proto(proto.tp());
    a.floats.assign(proto.floats().begin(), proto.floats().end());
    a.ints.assign(proto.ints().begin(), proto.ints().end());
    a.strings.assign(proto.strings().begin(), proto.strings().end());
    for (const auto& t : proto.tensors()) {
      a.tensors.push_back(tensor(t));
      a.tensors_labels.push_back({t.name(), t.doc_string()});
    }
    for (int i = 0; i < proto.graphs_size(); ++i)
      a.graphs.push_back(std::make_shared<ir::Graph>(graph(proto.graphs(i), sub_scope + "." + std::to_string(i))));
    for (const auto& s : proto.sparse_tensors()) a.sparse_tensors.push_back(sparse(s));
    for (const auto& tp : proto.type_protos()) a.type_protos.push_back(type_from_proto(tp));
    return a;
  }

  ir::Function function(const onnx::FunctionProto& proto) {
    ir::Function f;
    f.name = proto.name();
    f.domain = proto.domain();
    f.doc_string = proto.doc_string();
    f.inputs.assign(proto.input().begin(), proto.input().end());
    f.outputs.assign(proto.output().begin(), proto.output().end());
    f.attribute_names.assign(proto.attribute().begin(), proto.attribute().end());
    for (const auto& o : proto.opset_import()) f.opset_imports.push_back({o.domain(), o.version()});
    std::string scope = "function " + f.domain + ":" + f.name;
    for (const auto& n : proto.node()) f.nodes.push_back(node(n, scope));
    return f;
  }

  Tensor tensor(const onnx::TensorProto& proto) { return tensor_from_proto(proto, options_); }

 private:
  static ir::ValueInfo value_info(const onnx::ValueInfoProto& proto) {
    return {proto.name(), type_from_proto(proto.type()), proto.doc_string()};
  }

  ir::SparseTensor sparse(const onnx::SparseTensorProto& proto) {
    ir::SparseTensor s;
    s.values = tensor(proto.values());
    s.indices = tensor(proto.indices());
    s.dims.assign(proto.dims().begin(), proto.dims().end());
    s.name = proto.values().name();
    return s;
  }

  // IR v1/v2 files may leave AttributeProto.type unset; infer it from the field that is filled.
  static AType guess_type(const onnx::AttributeProto& p) {
    if (p.has_f()) return AType::kFloat;
    if (p.has_i()) return AType::kInt;
    if (p.has_s()) return AType::kString;
    if (p.has_t()) return AType::kTensor;
    if (p.has_g()) return AType::kGraph;
    if (p.has_sparse_tensor()) return AType::kSparseTensor;
    if (p.has_tp()) return AType::kTypeProto;
    if (p.floats_size()) return AType::kFloats;
    if (p.ints_size()) return AType::kInts;
    if (p.strings_size()) return AType::kStrings;
    if (p.tensors_size()) return AType::kTensors;
    if (p.graphs_size()) return AType::kGraphs;
    if (p.sparse_tensors_size()) return AType::kSparseTensors;
    if (p.type_protos_size()) return AType::kTypeProtos;
    return AType::kUndefined;
  }

  ParameterStore& store_;
  const TensorReadOptions& options_;
};

}  // namespace

ir::ModelIR read_model(const onnx::ModelProto& proto, ParameterStore& store,
                       const TensorReadOptions& tensor_options) {
  Reader reader(store, tensor_options);
  ir::ModelIR m;
  m.ir_version = proto.ir_version();
  for (const auto& o : proto.opset_import()) m.opset_imports.push_back({o.domain(), o.version()});
  m.producer_name = proto.producer_name();
  m.producer_version = proto.producer_version();
  m.domain = proto.domain();
  m.model_version = proto.model_version();
  m.doc_string = proto.doc_string();
  for (const auto& kv : proto.metadata_props()) m.metadata_props.emplace_back(kv.key(), kv.value());
  m.graph = reader.graph(proto.graph(), "");
  for (const auto& f : proto.functions()) m.functions.push_back(reader.function(f));
  for (const auto& t : proto.training_info()) m.training_info.push_back(t.SerializeAsString());
  return m;
}

}  // namespace tunnx
