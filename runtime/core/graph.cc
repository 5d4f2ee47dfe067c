#include "runtime/core/graph.h"

namespace tunnx::ir {

TypeInfo TypeInfo::tensor(DataType dtype, std::optional<Shape> shape) {
  TypeInfo t;
  t.kind = Kind::kTensor;
  t.elem_type = dtype;
  t.shape = std::move(shape);
  return t;
}

std::string TypeInfo::to_string() const {
  auto inner = [this] { return element ? element->to_string() : std::string("?"); };
  switch (kind) {
    case Kind::kTensor: return std::string("tensor(") + tunnx::to_string(elem_type) + ")";
    case Kind::kSparseTensor: return std::string("sparse_tensor(") + tunnx::to_string(elem_type) + ")";
    case Kind::kSequence: return "seq(" + inner() + ")";
    case Kind::kOptional: return "optional(" + inner() + ")";
    case Kind::kMap: return std::string("map(") + tunnx::to_string(key_type) + "," + inner() + ")";
    case Kind::kOpaque: return "opaque(" + opaque_domain + "," + opaque_name + ")";
    case Kind::kUnknown: break;
  }
  return "unknown";
}

namespace {
thread_local AttributeReads* innermost_reads = nullptr;
}  // namespace

AttributeReads::AttributeReads() : outer_(innermost_reads) { innermost_reads = this; }
AttributeReads::~AttributeReads() { innermost_reads = outer_; }

void AttributeReads::note(const std::string& name) {
  if (innermost_reads) innermost_reads->names_.insert(name);
}

const Attribute* Node::attribute(const std::string& attr_name) const {
  AttributeReads::note(attr_name);
  for (const auto& a : attributes)
    if (a.name == attr_name) return &a;
  return nullptr;
}

std::string Node::describe() const {
  return "node '" + (name.empty() ? op_type : name) + "' (" + op_type + ")";
}

int64_t ModelIR::opset_version(const std::string& wanted) const {
  auto canonical = [](const std::string& d) { return d == "ai.onnx" ? std::string() : d; };
  for (const auto& o : opset_imports)
    if (canonical(o.domain) == canonical(wanted)) return o.version;
  return 0;
}

}  // namespace tunnx::ir
