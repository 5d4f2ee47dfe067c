// Test helpers: build onnx::ModelProto objects in code, write them to a per-test temporary folder,
// and catch tunnx::Error so tests can assert its code and message.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "onnx/onnx_pb.h"
#include "tunnx/tunnx.h"

namespace tunnx_test {

namespace fs = std::filesystem;
using onnx::TensorProto;

// ---------------------------------------------------------------------------------------------
// Files

inline std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

inline void write_bytes(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

inline void write_model(const onnx::ModelProto& model, const fs::path& path) {
  std::string bytes;
  if (!model.SerializeToString(&bytes)) throw std::runtime_error("cannot serialize a test model");
  write_bytes(path, bytes);
}

inline onnx::ModelProto read_model_proto(const fs::path& path) {
  onnx::ModelProto model;
  if (!model.ParseFromString(read_bytes(path))) throw std::runtime_error("cannot parse " + path.string());
  return model;
}

// Names of the entries of `dir`, sorted.
inline std::vector<std::string> list_dir(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

// A fresh folder under ::testing::TempDir() for each test, removed afterwards.
class TempDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    static std::atomic<int> counter{0};
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = std::string("tunnx_") + info->test_suite_name() + "_" + info->name() + "_" +
                       std::to_string(::getpid()) + "_" + std::to_string(counter++);
    std::replace(name.begin(), name.end(), '/', '_');
    dir_ = fs::path(::testing::TempDir()) / name;
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }

  const fs::path& dir() const { return dir_; }
  fs::path path(const std::string& name) const { return dir_ / name; }

 private:
  fs::path dir_;
};

// ---------------------------------------------------------------------------------------------
// Errors

// Runs `fn`, which must throw tunnx::Error, and returns that error. Records a test failure (and
// returns an kInternal error with an empty message) when it throws nothing or something else.
template <typename Fn>
tunnx::Error expect_error(Fn&& fn) {
  try {
    fn();
  } catch (const tunnx::Error& e) {
    return e;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected tunnx::Error, got another exception: " << e.what();
    return tunnx::Error(tunnx::ErrorCode::kInternal, "");
  }
  ADD_FAILURE() << "expected tunnx::Error, nothing was thrown";
  return tunnx::Error(tunnx::ErrorCode::kInternal, "");
}

inline ::testing::AssertionResult contains(const std::string& text, const std::string& part) {
  if (text.find(part) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "'" << text << "' does not contain '" << part << "'";
}

// ---------------------------------------------------------------------------------------------
// Tensors

template <typename T>
constexpr int32_t onnx_type_of() {
  return static_cast<int32_t>(tunnx::data_type_of<T>());
}

// Little-endian bytes of `values`, as TensorProto.raw_data stores them (bool: one byte each).
template <typename T>
std::string raw_bytes(const std::vector<T>& values) {
  std::string bytes;
  if constexpr (std::is_same_v<T, bool>) {
    for (bool b : values) bytes.push_back(b ? 1 : 0);
  } else {
    bytes.resize(values.size() * sizeof(T));
    if (!values.empty()) std::memcpy(bytes.data(), values.data(), bytes.size());
  }
  return bytes;
}

inline TensorProto tensor_header(const std::string& name, int32_t dtype, const std::vector<int64_t>& dims) {
  TensorProto t;
  t.set_name(name);
  t.set_data_type(dtype);
  for (int64_t d : dims) t.add_dims(d);
  return t;
}

// A tensor whose data is in raw_data. `dtype` defaults to T's (pass it for float16/bfloat16 bits).
template <typename T>
TensorProto raw_tensor(const std::string& name, const std::vector<int64_t>& dims, const std::vector<T>& values,
                       int32_t dtype = onnx_type_of<T>()) {
  TensorProto t = tensor_header(name, dtype, dims);
  t.set_raw_data(raw_bytes(values));
  return t;
}

inline TensorProto float_tensor(const std::string& name, const std::vector<int64_t>& dims,
                                const std::vector<float>& values) {
  return raw_tensor<float>(name, dims, values);
}

inline TensorProto int64_tensor(const std::string& name, const std::vector<int64_t>& dims,
                                const std::vector<int64_t>& values) {
  return raw_tensor<int64_t>(name, dims, values);
}

// A tensor whose bytes live in `location`; `length` is left out when not given.
inline TensorProto external_tensor(const std::string& name, int32_t dtype, const std::vector<int64_t>& dims,
                                   const std::string& location, const std::string& offset,
                                   std::optional<std::string> length = std::nullopt) {
  TensorProto t = tensor_header(name, dtype, dims);
  t.set_data_location(TensorProto::EXTERNAL);
  auto add = [&t](const std::string& key, const std::string& value) {
    auto* kv = t.add_external_data();
    kv->set_key(key);
    kv->set_value(value);
  };
  add("location", location);
  add("offset", offset);
  if (length) add("length", *length);
  return t;
}

// A tunnx tensor of 16-bit floats given as bit patterns.
inline tunnx::Tensor bits16_tensor(tunnx::DataType dtype, const std::vector<int64_t>& dims,
                                   const std::vector<uint16_t>& bits) {
  tunnx::Tensor t(dtype, dims);
  std::memcpy(t.mutable_data(), bits.data(), bits.size() * sizeof(uint16_t));
  return t;
}

template <typename T>
std::vector<T> values_of(const tunnx::Tensor& t) {
  const T* p = t.data_as<T>();
  return std::vector<T>(p, p + t.numel());
}

// ---------------------------------------------------------------------------------------------
// Graphs and models

// One dim of a declared shape: a number, a symbol such as "batch", or kUnknownDim (neither).
struct DimSpec {
  DimSpec(int64_t v) : value(v) {}  // NOLINT: implicit on purpose, {1, "batch"} reads well
  DimSpec(int v) : value(v) {}      // NOLINT
  DimSpec(const char* s) : symbol(s) {}  // NOLINT
  int64_t value = -1;
  std::string symbol;
};
inline const DimSpec kUnknownDim{-1};
using Dims = std::vector<DimSpec>;
// For a value declared without any shape. ONNX's checker wants main-graph inputs and outputs to have
// one, so only subgraphs and negative tests use this.
inline const std::optional<Dims> kNoShape = std::nullopt;

// `dims` == kNoShape: the value has no shape at all (rank unknown).
inline onnx::ValueInfoProto value_info(const std::string& name, int32_t elem_type,
                                       const std::optional<Dims>& dims) {
  onnx::ValueInfoProto v;
  v.set_name(name);
  auto* tensor_type = v.mutable_type()->mutable_tensor_type();
  tensor_type->set_elem_type(elem_type);
  if (dims) {
    auto* shape = tensor_type->mutable_shape();
    for (const auto& d : *dims) {
      auto* dim = shape->add_dim();
      if (!d.symbol.empty()) dim->set_dim_param(d.symbol);
      else if (d.value >= 0) dim->set_dim_value(d.value);
    }
  }
  return v;
}

// Builds a GraphProto in place (the main graph or an If/Loop body).
class GraphBuilder {
 public:
  explicit GraphBuilder(onnx::GraphProto& graph) : graph_(graph) {}

  onnx::NodeProto& node(const std::string& op_type, const std::vector<std::string>& inputs,
                        const std::vector<std::string>& outputs, const std::string& name = "",
                        const std::string& domain = "") {
    onnx::NodeProto* n = graph_.add_node();
    n->set_op_type(op_type);
    if (!name.empty()) n->set_name(name);
    if (!domain.empty()) n->set_domain(domain);
    for (const auto& in : inputs) n->add_input(in);
    for (const auto& out : outputs) n->add_output(out);
    return *n;
  }

  TensorProto& initializer(const TensorProto& t) { return *graph_.add_initializer() = t; }

  onnx::ValueInfoProto& input(const std::string& name, int32_t elem_type,
                              const std::optional<Dims>& dims) {
    return *graph_.add_input() = value_info(name, elem_type, dims);
  }
  onnx::ValueInfoProto& output(const std::string& name, int32_t elem_type,
                               const std::optional<Dims>& dims) {
    return *graph_.add_output() = value_info(name, elem_type, dims);
  }

  onnx::GraphProto& proto() { return graph_; }

 private:
  onnx::GraphProto& graph_;
};

// Holds the ModelProto so it is constructed before the GraphBuilder base that points into it.
struct ModelProtoHolder {
  onnx::ModelProto model_;
};

class ModelBuilder : private ModelProtoHolder, public GraphBuilder {
 public:
  explicit ModelBuilder(int64_t opset = 17, int64_t ir_version = 8)
      : ModelProtoHolder(), GraphBuilder(*model_.mutable_graph()) {
    model_.set_ir_version(ir_version);
    model_.set_producer_name("tunnx-tests");
    model_.mutable_graph()->set_name("g");
    add_opset("", opset);
  }
  ModelBuilder(const ModelBuilder&) = delete;
  ModelBuilder& operator=(const ModelBuilder&) = delete;

  void add_opset(const std::string& domain, int64_t version) {
    auto* o = model_.add_opset_import();
    o->set_domain(domain);
    o->set_version(version);
  }

  onnx::ModelProto& model() { return model_; }
  std::string bytes() const { return model_.SerializeAsString(); }
  fs::path save(const fs::path& path) const {
    write_model(model_, path);
    return path;
  }
};

// A graph that reads initializer `t` through an Identity node "identity" into output "y".
inline void add_identity_of(GraphBuilder& b, const TensorProto& t) {
  b.initializer(t);
  b.node("Identity", {t.name()}, {"y"}, "identity");
  b.output("y", t.data_type(), Dims(t.dims().begin(), t.dims().end()));
}

// ---------------------------------------------------------------------------------------------
// Loaded models

// Adds the model-local function local:Double(X) -> Y = Add(X, X), importing ai.onnx 17.
inline onnx::FunctionProto& add_double_function(onnx::ModelProto& m) {
  onnx::FunctionProto& f = *m.add_functions();
  f.set_name("Double");
  f.set_domain("local");
  f.add_input("X");
  f.add_output("Y");
  auto* add = f.add_node();
  add->set_op_type("Add");
  add->add_input("X");
  add->add_input("X");
  add->add_output("Y");
  auto* opset = f.add_opset_import();
  opset->set_domain("");
  opset->set_version(17);
  return f;
}

inline tunnx::TensorInfo info_of(const tunnx::Model& model, const std::string& name) {
  for (const auto& t : model.tensors())
    if (t.name == name) return t;
  throw std::runtime_error("the model has no tensor " + name);
}

inline ::testing::AssertionResult is_parameter(const tunnx::Model& model, const std::string& name) {
  tunnx::TensorInfo t = info_of(model, name);
  if (t.role == tunnx::TensorRole::kParameter && t.requires_grad) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << name << " is a " << to_string(t.role) << " (" << t.reason << ")";
}

inline ::testing::AssertionResult is_buffer(const tunnx::Model& model, const std::string& name) {
  tunnx::TensorInfo t = info_of(model, name);
  if (t.role == tunnx::TensorRole::kBuffer && !t.requires_grad) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << name << " is a " << to_string(t.role) << " (" << t.reason << ")";
}

inline std::vector<std::string> names_of(const tunnx::StateDict& dict) {
  std::vector<std::string> names;
  for (const auto& [name, tensor] : dict) names.push_back(name);
  return names;
}

// ---------------------------------------------------------------------------------------------
// Attributes (one function per type: overloads on int/float would be ambiguous)

inline onnx::AttributeProto& add_attribute(onnx::NodeProto& node, const std::string& name,
                                           onnx::AttributeProto::AttributeType type) {
  onnx::AttributeProto* a = node.add_attribute();
  a->set_name(name);
  a->set_type(type);
  return *a;
}
inline void attr_int(onnx::NodeProto& n, const std::string& name, int64_t v) {
  add_attribute(n, name, onnx::AttributeProto::INT).set_i(v);
}
inline void attr_float(onnx::NodeProto& n, const std::string& name, float v) {
  add_attribute(n, name, onnx::AttributeProto::FLOAT).set_f(v);
}
inline void attr_string(onnx::NodeProto& n, const std::string& name, const std::string& v) {
  add_attribute(n, name, onnx::AttributeProto::STRING).set_s(v);
}
inline void attr_ints(onnx::NodeProto& n, const std::string& name, const std::vector<int64_t>& v) {
  auto& a = add_attribute(n, name, onnx::AttributeProto::INTS);
  for (int64_t x : v) a.add_ints(x);
}
inline void attr_floats(onnx::NodeProto& n, const std::string& name, const std::vector<float>& v) {
  auto& a = add_attribute(n, name, onnx::AttributeProto::FLOATS);
  for (float x : v) a.add_floats(x);
}
inline void attr_strings(onnx::NodeProto& n, const std::string& name, const std::vector<std::string>& v) {
  auto& a = add_attribute(n, name, onnx::AttributeProto::STRINGS);
  for (const auto& x : v) a.add_strings(x);
}
inline void attr_tensor(onnx::NodeProto& n, const std::string& name, const TensorProto& t) {
  *add_attribute(n, name, onnx::AttributeProto::TENSOR).mutable_t() = t;
}
inline onnx::GraphProto& attr_graph(onnx::NodeProto& n, const std::string& name, const std::string& graph_name) {
  onnx::GraphProto& g = *add_attribute(n, name, onnx::AttributeProto::GRAPH).mutable_g();
  g.set_name(graph_name);
  return g;
}
// Graph attribute `name` of `n` (an If branch) that returns Identity(input) as the float `output`.
inline void attr_identity_graph(onnx::NodeProto& n, const std::string& name, const std::string& graph_name,
                                const std::string& input, const std::string& output, const Dims& dims) {
  onnx::GraphProto& g = attr_graph(n, name, graph_name);
  auto* id = g.add_node();
  id->set_op_type("Identity");
  id->add_input(input);
  id->add_output(output);
  *g.add_output() = value_info(output, TensorProto::FLOAT, dims);
}
inline void attr_sparse(onnx::NodeProto& n, const std::string& name, const onnx::SparseTensorProto& s) {
  *add_attribute(n, name, onnx::AttributeProto::SPARSE_TENSOR).mutable_sparse_tensor() = s;
}

// ---------------------------------------------------------------------------------------------
// Random data and near-equality, for tests that compare an optimized session with level 0

inline std::vector<float> uniform(size_t n, std::mt19937& rng, float lo = -1.0f, float hi = 1.0f) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

// A float32 tensor of `dims` uniform in [-1, 1).
inline tunnx::Tensor uniform_tensor(const std::vector<int64_t>& dims, std::mt19937& rng) {
  tunnx::Tensor t(tunnx::DataType::kFloat32, dims);
  const std::vector<float> v = uniform(static_cast<size_t>(t.numel()), rng);
  std::copy(v.begin(), v.end(), t.mutable_data_as<float>());
  return t;
}

// Same dims, and every element within rtol of the larger magnitude plus atol; stops at the first
// element that is not (naming it and `what`).
inline void expect_near(const tunnx::Tensor& got, const tunnx::Tensor& want, const std::string& what, float rtol,
                        float atol) {
  ASSERT_EQ(got.dims(), want.dims()) << what;
  for (int64_t i = 0; i < got.numel(); ++i) {
    const float g = got.data_as<float>()[i], w = want.data_as<float>()[i];
    ASSERT_LE(std::fabs(g - w), rtol * std::fmax(std::fabs(g), std::fabs(w)) + atol) << what << " element " << i;
  }
}

}  // namespace tunnx_test
