#include "tests/conformance/onnx_test_case.h"

#include <algorithm>
#include <cstring>
#include <set>

#include "runtime/core/model_impl.h"

namespace tunnx_conformance {

namespace fs = std::filesystem;

namespace {

tunnx::ValueKind kind_of(const tunnx::ir::TypeInfo& type) {
  using Kind = tunnx::ir::TypeInfo::Kind;
  switch (type.kind) {
    case Kind::kTensor: return tunnx::ValueKind::kTensor;
    case Kind::kSequence: return tunnx::ValueKind::kSequence;
    case Kind::kOptional: return tunnx::ValueKind::kOptional;
    default: return tunnx::ValueKind::kAny;
  }
}

// ONNX 1.12's test data stores bfloat16 tensors as uint16 (the same bits); read them as declared.
tunnx::Value as_declared(tunnx::Value value, const tunnx::ir::TypeInfo& type) {
  if (!value.is_tensor() || type.kind != tunnx::ir::TypeInfo::Kind::kTensor) return value;
  const tunnx::Tensor& t = value.tensor();
  if (type.elem_type != tunnx::DataType::kBFloat16 || t.dtype() != tunnx::DataType::kUInt16) return value;
  tunnx::Tensor bits(tunnx::DataType::kBFloat16, t.dims());
  if (t.nbytes()) std::memcpy(bits.mutable_data(), t.data(), t.nbytes());
  return bits;
}

}  // namespace

const char* to_string(Outcome outcome) {
  switch (outcome) {
    case Outcome::kPass: return "pass";
    case Outcome::kFail: return "fail";
    case Outcome::kUnsupported: return "unsupported";
    case Outcome::kError: return "error";
  }
  return "?";
}

CaseResult run_case(const fs::path& case_dir, const std::string& name, const Tolerance& tol) {
  CaseResult result;
  result.name = name;
  try {
    tunnx::Model model = tunnx::Model::load(case_dir / "model.onnx");
    std::set<std::string> ops;
    for (const auto& [op, count] : model.info().op_histogram) ops.insert(op);
    result.op_types.assign(ops.begin(), ops.end());
    std::unique_ptr<tunnx::Session> session;
    try {
      session = std::make_unique<tunnx::Session>(model);
    } catch (const tunnx::Error& e) {
      result.outcome = e.code() == tunnx::ErrorCode::kUnsupported ? Outcome::kUnsupported : Outcome::kError;
      result.detail = e.what();
      return result;
    }
    const auto& graph = model.impl().ir.graph;
    std::set<std::string> initializers;
    for (const auto& init : graph.initializers) initializers.insert(init.name);
    std::vector<std::string> feedable;
    std::vector<tunnx::ValueKind> feedable_kinds;
    std::vector<const tunnx::ir::TypeInfo*> feedable_types;
    for (const auto& in : graph.inputs)
      if (!initializers.count(in.name)) {
        feedable.push_back(in.name);
        feedable_kinds.push_back(kind_of(in.type));
        feedable_types.push_back(&in.type);
      }

    std::vector<fs::path> sets;
    for (const auto& entry : fs::directory_iterator(case_dir))
      if (entry.is_directory() && entry.path().filename().string().rfind("test_data_set_", 0) == 0)
        sets.push_back(entry.path());
    std::sort(sets.begin(), sets.end());
    if (sets.empty()) throw tunnx::Error(tunnx::ErrorCode::kNotFound, "no test_data_set_* folder");

    for (const auto& set : sets) {
      tunnx::NamedValues inputs;
      for (size_t i = 0;; ++i) {
        fs::path f = set / ("input_" + std::to_string(i) + ".pb");
        if (!fs::exists(f)) break;
        if (i >= feedable.size()) throw tunnx::Error(tunnx::ErrorCode::kInvalidModel, "more input files than inputs");
        inputs[feedable[i]] = as_declared(tunnx::load_value(f, feedable_kinds[i]), *feedable_types[i]);
      }
      tunnx::NamedValues outputs = session->run(inputs);
      for (size_t i = 0; i < graph.outputs.size(); ++i) {
        fs::path f = set / ("output_" + std::to_string(i) + ".pb");
        if (!fs::exists(f)) continue;
        tunnx::Comparison c = tunnx::compare(as_declared(tunnx::load_value(f, kind_of(graph.outputs[i].type)), graph.outputs[i].type), outputs.at(graph.outputs[i].name), tol.rtol, tol.atol);
        if (!c.ok) {
          result.outcome = Outcome::kFail;
          result.detail = set.filename().string() + " output '" + graph.outputs[i].name + "': " + c.detail;
          return result;
        }
      }
    }
    result.outcome = Outcome::kPass;
  } catch (const tunnx::Error& e) {
    result.outcome = e.code() == tunnx::ErrorCode::kUnsupported ? Outcome::kUnsupported : Outcome::kError;
    result.detail = e.what();
  } catch (const std::exception& e) {
    result.outcome = Outcome::kError;
    result.detail = e.what();
  }
  for (char& c : result.detail)
    if (c == '\n') c = ' ';
  return result;
}

}  // namespace tunnx_conformance
