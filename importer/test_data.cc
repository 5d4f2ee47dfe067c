// ONNX test_data_set_N folders read for a model (include/tunnx/io.h): the one reading that the
// conformance runner and `tunnx run --test-data` share, so a case passes in both or in neither.
#include <cstring>
#include <set>

#include "runtime/core/model_impl.h"
#include "tunnx/io.h"

namespace tunnx {
namespace {

namespace fs = std::filesystem;

ValueKind kind_of(const ir::TypeInfo& type) {
  switch (type.kind) {
    case ir::TypeInfo::Kind::kTensor: return ValueKind::kTensor;
    case ir::TypeInfo::Kind::kSequence: return ValueKind::kSequence;
    case ir::TypeInfo::Kind::kOptional: return ValueKind::kOptional;
    default: return ValueKind::kAny;
  }
}

// ONNX 1.12's test data stores bfloat16 tensors as uint16 (the same bits); read them as declared.
Value load_declared(const fs::path& file, const ir::TypeInfo& type) {
  Value value = load_value(file, kind_of(type));
  if (!value.is_tensor() || type.kind != ir::TypeInfo::Kind::kTensor) return value;
  const Tensor& t = value.tensor();
  if (type.elem_type != DataType::kBFloat16 || t.dtype() != DataType::kUInt16) return value;
  Tensor bits(DataType::kBFloat16, t.dims());
  if (t.nbytes()) std::memcpy(bits.mutable_data(), t.data(), t.nbytes());
  return bits;
}

}  // namespace

TestDataSet load_test_data_set(const Model& model, const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw Error(ErrorCode::kNotFound, "no such test data folder", {.file = dir.string()});
  const ir::Graph& graph = model_impl(model).ir.graph;
  std::set<std::string> initializers;
  for (const auto& init : graph.initializers) initializers.insert(init.name);
  std::vector<const ir::ValueInfo*> feedable;
  for (const auto& in : graph.inputs)
    if (!initializers.count(in.name)) feedable.push_back(&in);

  TestDataSet set;
  for (size_t i = 0;; ++i) {
    fs::path file = dir / ("input_" + std::to_string(i) + ".pb");
    if (!fs::exists(file)) break;
    if (i >= feedable.size())
      throw Error(ErrorCode::kInvalidArgument,
                  "more input files than model inputs (" + std::to_string(feedable.size()) + ")", {.file = file.string()});
    set.inputs[feedable[i]->name] = load_declared(file, feedable[i]->type);
  }
  for (size_t i = 0; i < graph.outputs.size(); ++i) {
    fs::path file = dir / ("output_" + std::to_string(i) + ".pb");
    if (fs::exists(file)) set.expected.emplace_back(graph.outputs[i].name, load_declared(file, graph.outputs[i].type));
  }
  return set;
}

}  // namespace tunnx
