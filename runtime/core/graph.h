// The graph IR: what an ONNX file holds, in plain C++ types. It stays faithful to the file (same
// nodes, names, attributes, opsets) so export can write it back; passes that rewrite or fuse work on a
// session's copy. Training adds backward nodes to a Graph of this same shape.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "tunnx/tensor.h"

namespace tunnx::ir {

// The type of a value: tensors, and the sequence/optional/map containers ONNX allows around them.
struct TypeInfo {
  enum class Kind { kUnknown, kTensor, kSparseTensor, kSequence, kOptional, kMap, kOpaque };
  Kind kind = Kind::kUnknown;
  DataType elem_type = DataType::kUndefined;  // tensors and sparse tensors
  std::optional<Shape> shape;                 // absent: rank unknown
  std::shared_ptr<TypeInfo> element;          // sequence / optional element, map value
  DataType key_type = DataType::kUndefined;   // maps
  std::string opaque_domain, opaque_name;     // opaque
  std::string denotation;

  static TypeInfo tensor(DataType dtype, std::optional<Shape> shape = std::nullopt);
  std::string to_string() const;  // "tensor(float32)", "seq(tensor(int64))", ...
};

struct ValueInfo {
  std::string name;
  TypeInfo type;
  std::string doc_string;
};

struct Graph;

struct SparseTensor {
  Tensor values;    // [NNZ]
  Tensor indices;   // int64 [NNZ] (linearized) or [NNZ, rank]
  std::vector<int64_t> dims;
  std::string name;
};

struct TensorLabel {
  std::string name;
  std::string doc_string;
};

// Numbering follows ONNX's AttributeProto.AttributeType.
enum class AttributeType : int32_t {
  kUndefined = 0, kFloat = 1, kInt = 2, kString = 3, kTensor = 4, kGraph = 5, kFloats = 6,
  kInts = 7, kStrings = 8, kTensors = 9, kGraphs = 10, kSparseTensor = 11, kSparseTensors = 12,
  kTypeProto = 13, kTypeProtos = 14,
};

struct Attribute {
  std::string name;
  AttributeType type = AttributeType::kUndefined;
  std::string ref_attr_name;  // inside functions: takes the caller's attribute of this name
  std::string doc_string;
  float f = 0;
  int64_t i = 0;
  std::string s;  // bytes, not necessarily UTF-8
  Tensor t;
  std::shared_ptr<Graph> g;
  SparseTensor sparse_tensor;
  TypeInfo type_proto;
  std::vector<float> floats;
  std::vector<int64_t> ints;
  std::vector<std::string> strings;
  std::vector<Tensor> tensors;
  std::vector<std::shared_ptr<Graph>> graphs;
  std::vector<SparseTensor> sparse_tensors;
  std::vector<TypeInfo> type_protos;
  // TensorProto name and doc_string of `t` and `tensors`, kept for export.
  TensorLabel t_label;
  std::vector<TensorLabel> tensors_labels;
};

// The attribute names that ir::Node::attribute looks up on this thread while an AttributeReads
// lives (the innermost one): the planner opens one around a kernel factory to find the attributes it
// never looked at.
class AttributeReads {
 public:
  AttributeReads();
  ~AttributeReads();
  AttributeReads(const AttributeReads&) = delete;
  AttributeReads& operator=(const AttributeReads&) = delete;
  bool saw(const std::string& name) const { return names_.count(name) != 0; }
  static void note(const std::string& name);  // into the innermost recorder of this thread, if any

 private:
  std::set<std::string> names_;
  AttributeReads* outer_;
};

struct Node {
  std::string name;
  std::string op_type;
  std::string domain;  // "" is ai.onnx
  std::vector<std::string> inputs;   // "" marks an omitted optional input
  std::vector<std::string> outputs;  // "" marks an omitted optional output
  std::vector<Attribute> attributes;
  std::string doc_string;

  const Attribute* attribute(const std::string& attr_name) const;
  // "node 'name' (OpType)" for messages; falls back to the op type when the node has no name.
  std::string describe() const;
};

// A weight the file kept in a Constant node (Paddle2ONNX and spox write every weight so): tunnx holds
// it as an initializer, so sessions, training and state_dict treat it as one, and writes it back as
// the Constant node it was.
struct ConstantNodeOrigin {
  std::string node_name, node_doc_string;
  std::string attribute;  // "value" (a tensor) or "value_floats"
  TensorLabel label;      // the value TensorProto's name and doc_string
  size_t position = 0;    // how many of the graph's remaining nodes came before it in the file
};

// An initializer: its tensor lives in the ParameterStore under `store_key`.
struct Initializer {
  std::string name;        // as in the file
  std::string store_key;   // name in the ParameterStore (== name unless a subgraph reuses it)
  std::string doc_string;
  std::optional<ConstantNodeOrigin> constant_node = std::nullopt;  // set: the file had a Constant node, not an initializer
};

struct Graph {
  std::string name;
  std::string doc_string;
  std::vector<Node> nodes;  // topologically sorted
  std::vector<ValueInfo> inputs;
  std::vector<ValueInfo> outputs;
  std::vector<ValueInfo> value_infos;  // as the file had them
  std::vector<Initializer> initializers;
  std::vector<SparseTensor> sparse_initializers;
  std::vector<std::string> quantization_annotations;  // serialized, kept only to be written back
  // Types found by ONNX shape inference at load; never exported.
  std::map<std::string, TypeInfo> inferred_types;

  // Calls fn(graph, depth) for this graph and every subgraph below it, parents first.
  template <typename Fn> void visit(Fn&& fn, int depth = 0) {
    fn(*this, depth);
    for (auto& node : nodes)
      for (auto& attr : node.attributes) {
        if (attr.g) attr.g->visit(fn, depth + 1);
        for (auto& sub : attr.graphs) sub->visit(fn, depth + 1);
      }
  }
  template <typename Fn> void visit(Fn&& fn, int depth = 0) const {
    fn(*this, depth);
    for (const auto& node : nodes)
      for (const auto& attr : node.attributes) {
        if (attr.g) static_cast<const Graph&>(*attr.g).visit(fn, depth + 1);
        for (const auto& sub : attr.graphs) static_cast<const Graph&>(*sub).visit(fn, depth + 1);
      }
  }
};

struct OpsetImport {
  std::string domain;  // "" or "ai.onnx" is the default domain
  int64_t version = 0;
};

struct Function {
  std::string name;
  std::string domain;
  std::vector<std::string> inputs, outputs;
  std::vector<std::string> attribute_names;
  std::vector<Node> nodes;
  std::vector<OpsetImport> opset_imports;
  std::string doc_string;
};

struct ModelIR {
  int64_t ir_version = 0;
  std::vector<OpsetImport> opset_imports;
  std::string producer_name, producer_version, domain, doc_string;
  int64_t model_version = 0;
  std::vector<std::pair<std::string, std::string>> metadata_props;
  Graph graph;
  std::vector<Function> functions;
  std::vector<std::string> training_info;  // serialized TrainingInfoProto, kept to be written back

  // The opset version the model imports for `domain` ("" and "ai.onnx" are the same); 0 if none.
  int64_t opset_version(const std::string& domain) const;
};

}  // namespace tunnx::ir
