#include "tests/conformance/onnx_test_case.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include "importer/tensor_proto.h"
#include "onnx/onnx-data_pb.h"
#include "runtime/core/model_impl.h"
#include "runtime/cpu/kernels/common.h"

namespace tunnx_conformance {
namespace {

namespace fs = std::filesystem;
using tunnx::DataType;
using tunnx::Tensor;
using tunnx::Value;

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

Tensor tensor_of(const onnx::TensorProto& proto) { return tunnx::tensor_from_proto(proto, {}); }

Value value_of_sequence(const onnx::SequenceProto& seq) {
  std::vector<Tensor> items;
  for (const auto& t : seq.tensor_values()) items.push_back(tensor_of(t));
  DataType elem = items.empty() ? DataType::kUndefined : items.front().dtype();
  return Value::sequence(elem, std::move(items));
}

// Elementwise as double, for float comparisons.
std::vector<double> as_doubles(const Tensor& t) {
  std::vector<double> out(static_cast<size_t>(t.numel()));
  using namespace tunnx::cpu;
  auto fill = [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* p = data<T>(t);
    for (int64_t i = 0; i < t.numel(); ++i) out[static_cast<size_t>(i)] = static_cast<double>(p[i]);
  };
  switch (t.dtype()) {
    case DataType::kFloat32: fill(TypeTag<float>{}); break;
    case DataType::kFloat64: fill(TypeTag<double>{}); break;
    case DataType::kFloat16: fill(TypeTag<Float16>{}); break;
    case DataType::kBFloat16: fill(TypeTag<BFloat16>{}); break;
    default: break;
  }
  return out;
}

std::string compare_tensors(const Tensor& expected, const Tensor& actual, const Tolerance& tol) {
  if (expected.dtype() != actual.dtype())
    return std::string("dtype ") + tunnx::to_string(actual.dtype()) + ", expected " + tunnx::to_string(expected.dtype());
  if (expected.dims() != actual.dims())
    return "shape " + tunnx::dims_to_string(actual.dims()) + ", expected " + tunnx::dims_to_string(expected.dims());
  if (!tunnx::is_floating_point(expected.dtype())) {
    if (expected.equals(actual)) return "";
    if (expected.dtype() == DataType::kString) return "string values differ";
    size_t elem = tunnx::element_size(expected.dtype());
    const auto* a = static_cast<const unsigned char*>(actual.data());
    const auto* e = static_cast<const unsigned char*>(expected.data());
    for (int64_t i = 0; i < expected.numel(); ++i)
      if (std::memcmp(a + i * elem, e + i * elem, elem) != 0) return "value differs at flat index " + std::to_string(i);
    return "values differ";
  }
  std::vector<double> e = as_doubles(expected), a = as_doubles(actual);
  double max_abs = 0;
  int64_t bad = -1;
  for (size_t i = 0; i < e.size(); ++i) {
    if (std::isnan(e[i]) || std::isnan(a[i])) {
      if (std::isnan(e[i]) != std::isnan(a[i]) && bad < 0) bad = static_cast<int64_t>(i);
      continue;
    }
    if (std::isinf(e[i]) || std::isinf(a[i])) {
      if (e[i] != a[i] && bad < 0) bad = static_cast<int64_t>(i);
      continue;
    }
    double diff = std::fabs(a[i] - e[i]);
    max_abs = std::max(max_abs, diff);
    if (diff > tol.atol + tol.rtol * std::fabs(e[i]) && bad < 0) bad = static_cast<int64_t>(i);
  }
  if (bad < 0) return "";
  std::ostringstream out;
  out << "value " << a[static_cast<size_t>(bad)] << " at flat index " << bad << ", expected "
      << e[static_cast<size_t>(bad)] << " (max abs error " << max_abs << ")";
  return out.str();
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

Value read_value_pb(const fs::path& file) {
  std::string bytes = read_file(file);
  // The three message kinds share no tag layout we can trust blindly; a TensorProto with a data_type
  // or dims is a tensor, otherwise try sequence and optional.
  onnx::TensorProto tensor;
  if (tensor.ParseFromString(bytes) && tensor.data_type() != 0) return tensor_of(tensor);
  onnx::OptionalProto optional;
  if (optional.ParseFromString(bytes) && optional.elem_type() != 0) {
    if (optional.has_tensor_value()) return tensor_of(optional.tensor_value());
    if (optional.has_sequence_value()) return value_of_sequence(optional.sequence_value());
    return Value();
  }
  onnx::SequenceProto sequence;
  if (sequence.ParseFromString(bytes)) return value_of_sequence(sequence);
  throw tunnx::Error(tunnx::ErrorCode::kInvalidModel, "cannot read test data", {.file = file.string()});
}

std::string compare_values(const Value& expected, const Value& actual, const Tolerance& tol) {
  if (expected.kind() != actual.kind()) return "got " + actual.describe() + ", expected " + expected.describe();
  if (expected.is_tensor()) return compare_tensors(expected.tensor(), actual.tensor(), tol);
  if (expected.is_sequence()) {
    if (expected.items().size() != actual.items().size())
      return "sequence of " + std::to_string(actual.items().size()) + ", expected " +
             std::to_string(expected.items().size());
    for (size_t i = 0; i < expected.items().size(); ++i)
      if (std::string d = compare_tensors(expected.items()[i], actual.items()[i], tol); !d.empty())
        return "item " + std::to_string(i) + ": " + d;
  }
  return "";
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
    for (const auto& in : graph.inputs)
      if (!initializers.count(in.name)) feedable.push_back(in.name);

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
        inputs[feedable[i]] = read_value_pb(f);
      }
      tunnx::NamedValues outputs = session->run(inputs);
      for (size_t i = 0; i < graph.outputs.size(); ++i) {
        fs::path f = set / ("output_" + std::to_string(i) + ".pb");
        if (!fs::exists(f)) continue;
        Value expected = read_value_pb(f);
        std::string diff = compare_values(expected, outputs.at(graph.outputs[i].name), tol);
        if (!diff.empty()) {
          result.outcome = Outcome::kFail;
          result.detail = set.filename().string() + " output '" + graph.outputs[i].name + "': " + diff;
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
