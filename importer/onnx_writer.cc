#include "importer/onnx_writer.h"

#include <algorithm>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "importer/tensor_proto.h"

namespace tunnx {
namespace {

using AType = ir::AttributeType;

// External data offsets are aligned so the reader can map tensors without copying.
constexpr size_t kExternalAlignment = 64;

class Writer {
 public:
  Writer(const ParameterStore& store, ExternalDataPlan& external) : store_(store), external_(external) {}

  void graph(const ir::Graph& g, onnx::GraphProto* proto) {
    proto->set_name(g.name);
    if (!g.doc_string.empty()) proto->set_doc_string(g.doc_string);
    // Weights the file held in Constant nodes go back as Constant nodes where they were, but never
    // after their first reader (graph edits may have moved nodes since).
    std::vector<std::pair<size_t, const ir::Initializer*>> constant_nodes;
    std::unordered_map<std::string, size_t> readers;
    for (const auto& init : g.initializers) {
      if (!init.constant_node) continue;
      if (constant_nodes.empty()) readers = first_readers(g);
      auto first = readers.find(init.name);
      constant_nodes.emplace_back(std::min(init.constant_node->position, first == readers.end() ? g.nodes.size() : first->second), &init);
    }
    std::stable_sort(constant_nodes.begin(), constant_nodes.end(),
                     [](const auto& a, const auto& b) { return a.first < b.first; });
    auto next_constant = constant_nodes.begin();
    for (size_t i = 0; i <= g.nodes.size(); ++i) {
      for (; next_constant != constant_nodes.end() && next_constant->first <= i; ++next_constant)
        constant_node(*next_constant->second, proto->add_node());
      if (i < g.nodes.size()) node(g.nodes[i], proto->add_node());
    }
    for (const auto& init : g.initializers) {
      if (init.constant_node) continue;
      onnx::TensorProto* t = proto->add_initializer();
      initializer(store_.at(init.store_key).value, t);
      t->set_name(init.name);
      if (!init.doc_string.empty()) t->set_doc_string(init.doc_string);
    }
    for (const auto& s : g.sparse_initializers) sparse(s, proto->add_sparse_initializer());
    for (const auto& v : g.inputs) value_info(v, proto->add_input());
    for (const auto& v : g.outputs) value_info(v, proto->add_output());
    for (const auto& v : g.value_infos) value_info(v, proto->add_value_info());
    for (const auto& q : g.quantization_annotations) proto->add_quantization_annotation()->ParseFromString(q);
  }

  void node(const ir::Node& n, onnx::NodeProto* proto) {
    for (const auto& in : n.inputs) proto->add_input(in);
    for (const auto& out : n.outputs) proto->add_output(out);
    if (!n.name.empty()) proto->set_name(n.name);
    proto->set_op_type(n.op_type);
    if (!n.domain.empty()) proto->set_domain(n.domain);
    if (!n.doc_string.empty()) proto->set_doc_string(n.doc_string);
    for (const auto& a : n.attributes) attribute(a, proto->add_attribute());
  }

  // The Constant node a weight came from, holding the weight's current value.
  void constant_node(const ir::Initializer& init, onnx::NodeProto* proto) {
    const ir::ConstantNodeOrigin& origin = *init.constant_node;
    const Tensor& value = store_.at(init.store_key).value;
    proto->add_output(init.name);
    if (!origin.node_name.empty()) proto->set_name(origin.node_name);
    proto->set_op_type("Constant");
    if (!origin.node_doc_string.empty()) proto->set_doc_string(origin.node_doc_string);
    onnx::AttributeProto* a = proto->add_attribute();
    a->set_name(origin.attribute);
    if (origin.attribute == "value_floats" && value.dtype() == DataType::kFloat32) {
      a->set_type(onnx::AttributeProto::FLOATS);
      for (int64_t i = 0; i < value.numel(); ++i) a->add_floats(value.data_as<float>()[i]);
      return;
    }
    a->set_name("value");
    a->set_type(onnx::AttributeProto::TENSOR);
    tensor_to_proto(value, a->mutable_t());
    label(origin.label, a->mutable_t());
  }

  // For each name a node of `g` reads (itself or in one of its subgraphs), the index of the first such node.
  static std::unordered_map<std::string, size_t> first_readers(const ir::Graph& g) {
    std::unordered_map<std::string, size_t> first;
    for (size_t i = 0; i < g.nodes.size(); ++i) {
      auto note = [&](const std::string& name) { first.emplace(name, i); };
      for (const auto& in : g.nodes[i].inputs) note(in);
      for (const auto& attr : g.nodes[i].attributes) {
        auto walk = [&](const ir::Graph& sub, int) {
          for (const auto& n : sub.nodes)
            for (const auto& in : n.inputs) note(in);
          for (const auto& out : sub.outputs) note(out.name);
        };
        if (attr.g) static_cast<const ir::Graph&>(*attr.g).visit(walk);
        for (const auto& sub : attr.graphs) static_cast<const ir::Graph&>(*sub).visit(walk);
      }
    }
    return first;
  }

  void function(const ir::Function& f, onnx::FunctionProto* proto) {
    proto->set_name(f.name);
    proto->set_domain(f.domain);
    if (!f.doc_string.empty()) proto->set_doc_string(f.doc_string);
    for (const auto& in : f.inputs) proto->add_input(in);
    for (const auto& out : f.outputs) proto->add_output(out);
    for (const auto& a : f.attribute_names) proto->add_attribute(a);
    for (const auto& n : f.nodes) node(n, proto->add_node());
    for (const auto& o : f.opset_imports) {
      auto* op = proto->add_opset_import();
      op->set_domain(o.domain);
      op->set_version(o.version);
    }
  }

 private:
  void attribute(const ir::Attribute& a, onnx::AttributeProto* proto) {
    proto->set_name(a.name);
    if (!a.ref_attr_name.empty()) proto->set_ref_attr_name(a.ref_attr_name);
    if (!a.doc_string.empty()) proto->set_doc_string(a.doc_string);
    proto->set_type(static_cast<onnx::AttributeProto::AttributeType>(a.type));
    switch (a.type) {
      case AType::kFloat: proto->set_f(a.f); break;
      case AType::kInt: proto->set_i(a.i); break;
      case AType::kString: proto->set_s(a.s); break;
      case AType::kTensor:
        tensor_to_proto(a.t, proto->mutable_t());
        label(a.t_label, proto->mutable_t());
        break;
      case AType::kGraph: graph(*a.g, proto->mutable_g()); break;
      case AType::kSparseTensor: sparse(a.sparse_tensor, proto->mutable_sparse_tensor()); break;
      case AType::kTypeProto: type_to_proto(a.type_proto, proto->mutable_tp()); break;
      case AType::kFloats: for (float f : a.floats) proto->add_floats(f); break;
      case AType::kInts: for (int64_t i : a.ints) proto->add_ints(i); break;
      case AType::kStrings: for (const auto& s : a.strings) proto->add_strings(s); break;
      case AType::kTensors:
        for (size_t i = 0; i < a.tensors.size(); ++i) {
          auto* t = proto->add_tensors();
          tensor_to_proto(a.tensors[i], t);
          if (i < a.tensors_labels.size()) label(a.tensors_labels[i], t);
        }
        break;
      case AType::kGraphs: for (const auto& g : a.graphs) graph(*g, proto->add_graphs()); break;
      case AType::kSparseTensors: for (const auto& s : a.sparse_tensors) sparse(s, proto->add_sparse_tensors()); break;
      case AType::kTypeProtos: for (const auto& t : a.type_protos) type_to_proto(t, proto->add_type_protos()); break;
      case AType::kUndefined: break;
    }
  }

  static void label(const ir::TensorLabel& l, onnx::TensorProto* proto) {
    if (!l.name.empty()) proto->set_name(l.name);
    if (!l.doc_string.empty()) proto->set_doc_string(l.doc_string);
  }

  void initializer(const Tensor& value, onnx::TensorProto* proto) {
    if (!external_.enabled || value.dtype() == DataType::kString || value.nbytes() < external_.threshold_bytes) {
      tensor_to_proto(value, proto);
      return;
    }
    proto->set_data_type(static_cast<int32_t>(value.dtype()));
    for (int64_t d : value.dims()) proto->add_dims(d);
    std::string& data = *external_.data;
    data.resize((data.size() + kExternalAlignment - 1) / kExternalAlignment * kExternalAlignment, '\0');
    size_t offset = data.size();
    data.append(static_cast<const char*>(value.data()), value.nbytes());
    proto->set_data_location(onnx::TensorProto::EXTERNAL);
    auto add = [proto](const std::string& key, const std::string& v) {
      auto* kv = proto->add_external_data();
      kv->set_key(key);
      kv->set_value(v);
    };
    add("location", external_.location);
    add("offset", std::to_string(offset));
    add("length", std::to_string(value.nbytes()));
  }

  void sparse(const ir::SparseTensor& s, onnx::SparseTensorProto* proto) {
    tensor_to_proto(s.values, proto->mutable_values());
    if (!s.name.empty()) proto->mutable_values()->set_name(s.name);
    tensor_to_proto(s.indices, proto->mutable_indices());
    for (int64_t d : s.dims) proto->add_dims(d);
  }

  static void value_info(const ir::ValueInfo& v, onnx::ValueInfoProto* proto) {
    proto->set_name(v.name);
    if (v.type.kind != ir::TypeInfo::Kind::kUnknown || !v.type.denotation.empty())
      type_to_proto(v.type, proto->mutable_type());
    if (!v.doc_string.empty()) proto->set_doc_string(v.doc_string);
  }

  const ParameterStore& store_;
  ExternalDataPlan& external_;
};

}  // namespace

onnx::ModelProto write_model(const ir::ModelIR& m, const ParameterStore& store, ExternalDataPlan& external) {
  onnx::ModelProto proto;
  proto.set_ir_version(m.ir_version);
  for (const auto& o : m.opset_imports) {
    auto* op = proto.add_opset_import();
    op->set_domain(o.domain);
    op->set_version(o.version);
  }
  if (!m.producer_name.empty()) proto.set_producer_name(m.producer_name);
  if (!m.producer_version.empty()) proto.set_producer_version(m.producer_version);
  if (!m.domain.empty()) proto.set_domain(m.domain);
  if (m.model_version) proto.set_model_version(m.model_version);
  if (!m.doc_string.empty()) proto.set_doc_string(m.doc_string);
  // Which initializers were registered after load (Model::register_parameter / register_buffer), so
  // a reader can tell them from the exporter's; replaces what an earlier export recorded.
  std::string registered;
  m.graph.visit([&](const ir::Graph& g, int) {
    for (const auto& init : g.initializers)
      if (store.at(init.store_key).origin == TensorOrigin::kRegistered)
        registered += (registered.empty() ? "" : ",") + init.name;
  });
  for (const auto& [k, v] : m.metadata_props) {
    if (k == kRegisteredInitializersKey) continue;
    auto* kv = proto.add_metadata_props();
    kv->set_key(k);
    kv->set_value(v);
  }
  if (!registered.empty()) {
    auto* kv = proto.add_metadata_props();
    kv->set_key(kRegisteredInitializersKey);
    kv->set_value(registered);
  }
  Writer writer(store, external);
  writer.graph(m.graph, proto.mutable_graph());
  for (const auto& f : m.functions) writer.function(f, proto.add_functions());
  for (const auto& t : m.training_info) proto.add_training_info()->ParseFromString(t);
  return proto;
}

size_t initializer_bytes(const ParameterStore& store) {
  size_t total = 0;
  for (const auto& e : store.entries()) total += e->value.dtype() == DataType::kString ? 0 : e->value.nbytes();
  return total;
}

}  // namespace tunnx
