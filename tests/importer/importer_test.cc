// Model::load keeps what the file holds: initializers of every dtype, Constant attributes, functions,
// If/Loop subgraphs, opsets (with the ONNX checker's verdict) and declared shapes.
#include <gtest/gtest.h>

#include <cstdint>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "runtime/core/model_impl.h"
#include "tests/importer/model_builder.h"

namespace tunnx_test {
namespace {

using tunnx::DataType;
using tunnx::ErrorCode;
using tunnx::Model;
using tunnx::Tensor;

// ---- Initializers of every dtype ------------------------------------------------------------------

struct InitializerCase {
  std::string label;
  TensorProto proto;
  Tensor expected;
};
void PrintTo(const InitializerCase& c, std::ostream* os) { *os << c.label; }

template <typename T>
TensorProto typed_tensor(int32_t dtype, const std::vector<T>& values) {
  TensorProto t = tensor_header("w", dtype, {static_cast<int64_t>(values.size())});
  for (const T& v : values) {
    if constexpr (std::is_same_v<T, float>) t.add_float_data(v);
    else if constexpr (std::is_same_v<T, double>) t.add_double_data(v);
    else if constexpr (std::is_same_v<T, int64_t>) t.add_int64_data(v);
    else if constexpr (std::is_same_v<T, uint64_t> || std::is_same_v<T, uint32_t>) t.add_uint64_data(v);
    else if constexpr (std::is_same_v<T, std::string>) t.add_string_data(v);
    else t.add_int32_data(static_cast<int32_t>(v));  // int8..int32, uint8, uint16, bool, 16-bit float bits
  }
  return t;
}

// The same values twice: once in the typed field ONNX defines for the dtype, once as raw_data.
template <typename T>
void add_both(std::vector<InitializerCase>& cases, const std::string& name, const std::vector<T>& values) {
  Tensor expected = Tensor::from_vector<T>({static_cast<int64_t>(values.size())}, values);
  cases.push_back({name + "_typed", typed_tensor<T>(onnx_type_of<T>(), values), expected});
  cases.push_back({name + "_raw", raw_tensor<T>("w", {static_cast<int64_t>(values.size())}, values), expected});
}

void add_bits16(std::vector<InitializerCase>& cases, const std::string& name, DataType dtype,
                const std::vector<uint16_t>& bits) {
  int32_t onnx_type = static_cast<int32_t>(dtype);
  Tensor expected = bits16_tensor(dtype, {static_cast<int64_t>(bits.size())}, bits);
  cases.push_back({name + "_typed", typed_tensor<uint16_t>(onnx_type, bits), expected});
  cases.push_back({name + "_raw", raw_tensor<uint16_t>("w", {static_cast<int64_t>(bits.size())}, bits, onnx_type),
                   expected});
}

std::vector<InitializerCase> initializer_cases() {
  std::vector<InitializerCase> cases;
  add_both<float>(cases, "float32", {1.5f, -2.25f, std::numeric_limits<float>::max(),
                                     std::numeric_limits<float>::denorm_min(), -0.0f});
  add_both<double>(cases, "float64", {1e300, -1.5, std::numeric_limits<double>::denorm_min()});
  add_bits16(cases, "float16", DataType::kFloat16, {0x3C00, 0xC000, 0x7BFF, 0x0001, 0x8000});
  add_bits16(cases, "bfloat16", DataType::kBFloat16, {0x3F80, 0xC000, 0x7F7F, 0x0001, 0x8000});
  add_both<int8_t>(cases, "int8", {-128, 127, 0, -1});
  add_both<int16_t>(cases, "int16", {-32768, 32767, 0, -1});
  add_both<int32_t>(cases, "int32", {std::numeric_limits<int32_t>::min(), std::numeric_limits<int32_t>::max(), -1});
  add_both<int64_t>(cases, "int64", {std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::max(), -1});
  add_both<uint8_t>(cases, "uint8", {0, 255, 128});
  add_both<uint16_t>(cases, "uint16", {0, 65535, 32768});
  add_both<uint32_t>(cases, "uint32", {0, 4294967295u, 2147483648u});
  add_both<uint64_t>(cases, "uint64", {0, std::numeric_limits<uint64_t>::max(), uint64_t{1} << 63});
  add_both<bool>(cases, "bool", {true, false, true});
  std::vector<std::string> strings{"", "hello", std::string("nul\0inside", 10), "h\xc3\xa9llo"};
  cases.push_back({"string_typed", typed_tensor<std::string>(onnx::TensorProto::STRING, strings),
                   Tensor::from_vector<std::string>({4}, strings)});
  return cases;
}

class InitializerDtype : public TempDirTest, public ::testing::WithParamInterface<InitializerCase> {};

TEST_P(InitializerDtype, LoadsExactValues) {
  ModelBuilder b;
  add_identity_of(b, GetParam().proto);
  Model model = Model::load(b.save(path("m.onnx")));
  Tensor w = model.parameter("w");
  EXPECT_EQ(w.dtype(), GetParam().expected.dtype());
  EXPECT_EQ(w.dims(), GetParam().expected.dims());
  EXPECT_TRUE(w.equals(GetParam().expected));
  EXPECT_EQ(model.info().onnx_checker, "passed");
}

INSTANTIATE_TEST_SUITE_P(EveryDtype, InitializerDtype, ::testing::ValuesIn(initializer_cases()),
                         [](const auto& info) { return info.param.label; });

class Importer : public TempDirTest {};

TEST_F(Importer, RawDataForAStringTensorIsRejected) {
  ModelBuilder b;
  TensorProto t = tensor_header("s", onnx::TensorProto::STRING, {1});
  t.set_raw_data("abc");
  add_identity_of(b, t);
  fs::path p = b.save(path("m.onnx"));
  tunnx::Error e = expect_error([&] { Model::load(p); });
  EXPECT_EQ(e.code(), ErrorCode::kInvalidModel);
  EXPECT_EQ(std::string(e.what()), p.string() + ": tensor 's': field 'raw_data': string tensors cannot use raw_data");
}

TEST_F(Importer, MultiDimensionalInitializerKeepsItsDims) {
  ModelBuilder b;
  add_identity_of(b, float_tensor("w", {2, 3, 1}, {1, 2, 3, 4, 5, 6}));
  Model model = Model::load(b.save(path("m.onnx")));
  EXPECT_TRUE(model.parameter("w").equals(Tensor::from_vector<float>({2, 3, 1}, {1, 2, 3, 4, 5, 6})));
}

TEST_F(Importer, ScalarInitializerHasRankZero) {
  ModelBuilder b;
  add_identity_of(b, float_tensor("w", {}, {4.5f}));
  Model model = Model::load(b.save(path("m.onnx")));
  EXPECT_EQ(model.parameter("w").rank(), 0u);
  EXPECT_EQ(model.parameter("w").data_as<float>()[0], 4.5f);
}

// ---- Initializers read from raw_data are views, not copies ---------------------------------------

// A weight large enough that its string is a mapping of its own: read after it was freed, it faults.
std::vector<float> big_weight() {
  std::vector<float> values(1 << 18);
  for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>(i % 1000) * 0.5f - 7;
  return values;
}

TEST_F(Importer, RawDataWeightsAreViewsThatOutliveTheLoad) {
  const std::vector<float> values = big_weight();
  ModelBuilder b;
  b.initializer(float_tensor("w", {512, 512}, values));
  b.initializer(int64_tensor("shape", {2}, {512, 512}));  // integers are copied: shape inference reads them
  b.node("Reshape", {"w", "shape"}, {"y"}, "reshape");
  b.output("y", TensorProto::FLOAT, Dims{512, 512});
  Tensor w;
  {
    Model model = Model::load(b.save(path("m.onnx")));
    EXPECT_EQ(model.info().onnx_checker, "passed");
    w = model.parameter("w");
    EXPECT_TRUE(w.is_view());
    EXPECT_FALSE(info_of(model, "w").external);  // viewed in memory, not mapped from a data file
    EXPECT_FALSE(model.parameter("shape").is_view());
    EXPECT_TRUE(model.parameter("shape").equals(Tensor::from_vector<int64_t>({2}, {512, 512})));
  }
  EXPECT_TRUE(w.equals(Tensor::from_vector<float>({512, 512}, values)));
}

// The file is parsed in 4 MiB chunks whose pages are let go behind the parser: weights that span
// chunk boundaries (three of 3 MiB, a small one between them at an odd offset) keep every value.
TEST_F(Importer, WeightsAcrossTheParsersChunksKeepEveryValue) {
  ModelBuilder b;
  std::vector<std::vector<float>> weights;
  for (int i = 0; i < 4; ++i) {
    const int64_t n = i == 1 ? 7 : (3 << 18);
    std::vector<float> values(static_cast<size_t>(n));
    for (int64_t k = 0; k < n; ++k) values[static_cast<size_t>(k)] = static_cast<float>((k * 7919 + i) % 100003) * 0.25f;
    b.initializer(float_tensor("w" + std::to_string(i), {n}, values));
    b.node("ReduceSum", {"w" + std::to_string(i)}, {"s" + std::to_string(i)}, "sum" + std::to_string(i));
    b.output("s" + std::to_string(i), TensorProto::FLOAT, Dims{1});
    weights.push_back(std::move(values));
  }
  const std::filesystem::path file = b.save(path("m.onnx"));
  ASSERT_GT(std::filesystem::file_size(file), size_t{9} << 20);
  Model model = Model::load(file);
  EXPECT_EQ(model.info().onnx_checker, "passed");
  for (int i = 0; i < 4; ++i) {
    const std::vector<float>& values = weights[static_cast<size_t>(i)];
    EXPECT_TRUE(model.parameter("w" + std::to_string(i))
                    .equals(Tensor::from_vector<float>({static_cast<int64_t>(values.size())}, values)))
        << "w" << i;
  }
}

// The process's resident and peak resident KiB ("VmRSS", "VmHWM" of /proc/self/status).
int64_t status_kib(const std::string& field) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind(field + ":", 0) == 0) return std::stoll(line.substr(field.size() + 1));
  return -1;
}

// At its peak a load holds the weights about once: the parse's copies, not the file's pages beside
// them (40 MiB of weights; before the chunked parse the peak rose by twice that).
TEST_F(Importer, LoadDoesNotKeepTheFileResidentBesideItsCopies) {
  std::filesystem::path file;
  {
    ModelBuilder b;
    std::vector<float> values(size_t{10} << 20);
    for (size_t k = 0; k < values.size(); ++k) values[k] = static_cast<float>(k % 977);
    b.initializer(float_tensor("w", {static_cast<int64_t>(values.size())}, values));
    b.node("ReduceSum", {"w"}, {"s"}, "sum");
    b.output("s", TensorProto::FLOAT, Dims{1});
    file = b.save(path("m.onnx"));
  }
  {  // resets VmHWM to the current RSS (Linux 4.0 on); without it the check says nothing
    std::ofstream clear("/proc/self/clear_refs");
    clear << "5";
  }
  const int64_t before = status_kib("VmRSS");
  if (before < 0 || status_kib("VmHWM") > before + 1024) GTEST_SKIP() << "VmHWM cannot be reset here";
  Model model = Model::load(file);
  const int64_t rise = status_kib("VmHWM") - before, weights = 40 << 10;
  EXPECT_GT(rise, weights * 9 / 10);  // the copies are resident
  EXPECT_LT(rise, weights * 3 / 2) << "peak rose by " << rise << " KiB for " << weights << " KiB of weights";
}

TEST_F(Importer, WritingARawDataWeightCopiesItOnceForEveryoneSharingIt) {
  const std::vector<float> values = big_weight();
  ModelBuilder b;
  add_identity_of(b, float_tensor("w", {512, 512}, values));
  Model model = Model::load(b.save(path("m.onnx")));
  Tensor w = model.parameter("w");
  const uint64_t version = w.version();
  w.mutable_data_as<float>()[1] = 42;
  EXPECT_FALSE(w.is_view());
  EXPECT_GT(w.version(), version);
  EXPECT_FALSE(model.parameter("w").is_view());
  EXPECT_EQ(model.parameter("w").data_as<float>()[1], 42);  // the model sees the write
  EXPECT_EQ(model.parameter("w").data_as<float>()[2], values[2]);
  EXPECT_EQ(model.parameter("w").data_as<float>()[values.size() - 1], values.back());
}

TEST_F(Importer, LoadFromBytesViewsOutliveTheBytes) {
  const std::vector<float> values = big_weight();
  ModelBuilder b;
  add_identity_of(b, float_tensor("w", {512, 512}, values));
  std::string bytes = read_bytes(b.save(path("m.onnx")));
  Model model = Model::load_from_bytes(bytes, path(""));
  bytes.assign(bytes.size(), '\0');
  bytes.clear();
  bytes.shrink_to_fit();
  EXPECT_TRUE(model.parameter("w").equals(Tensor::from_vector<float>({512, 512}, values)));
}

// Without the checker (nothing reads the proto after the import) the weights are views all the same;
// a few bytes are copied (they could sit inside the string object, which moves).
TEST_F(Importer, RawDataWeightsAreViewsWithoutTheCheckerAndTinyOnesAreCopies) {
  std::vector<float> values(32);
  for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>(i) - 3.5f;
  ModelBuilder b;
  b.initializer(float_tensor("w", {32}, values));
  b.initializer(float_tensor("tiny", {2, 1}, {1.5f, -2}));
  b.node("Add", {"w", "tiny"}, {"y"}, "add");
  b.output("y", TensorProto::FLOAT, Dims{2, 32});
  tunnx::LoadOptions no_checker;
  no_checker.run_onnx_checker = false;
  Model model = Model::load(b.save(path("m.onnx")), no_checker);
  EXPECT_TRUE(model.parameter("w").is_view());
  EXPECT_TRUE(model.parameter("w").equals(Tensor::from_vector<float>({32}, values)));
  EXPECT_FALSE(model.parameter("tiny").is_view());
  EXPECT_TRUE(model.parameter("tiny").equals(Tensor::from_vector<float>({2, 1}, {1.5f, -2})));
}

// ---- Constant nodes ----------------------------------------------------------------------------

class ConstantNode : public TempDirTest {
 protected:
  // Loads a model with one Constant node named "c" (output "y") after `set` gave it its attribute.
  const tunnx::ir::Attribute& load(int32_t out_type, const Dims& out_dims,
                                   const std::function<void(onnx::NodeProto&)>& set, const std::string& attr) {
    ModelBuilder b;
    set(b.node("Constant", {}, {"y"}, "c"));
    b.output("y", out_type, out_dims);
    model_ = std::make_unique<Model>(Model::load(b.save(path("m.onnx"))));
    EXPECT_EQ(model_->info().onnx_checker, "passed");
    EXPECT_TRUE(model_->state_dict().empty());  // a Constant is not an initializer
    const auto& node = tunnx::model_impl(*model_).ir.graph.nodes.at(0);
    EXPECT_EQ(node.op_type, "Constant");
    EXPECT_EQ(node.attributes.size(), 1u);
    const tunnx::ir::Attribute* a = node.attribute(attr);
    if (!a) throw std::runtime_error("attribute " + attr + " is missing");
    return *a;
  }
  std::unique_ptr<Model> model_;
};

using AType = tunnx::ir::AttributeType;

// A rank-0 float and integer tensors stay Constant nodes (a floating weight of rank 1 or more loads as
// an initializer: constant_weights_test.cc).
TEST_F(ConstantNode, ValueTensorKeepsDataAndName) {
  const auto& a = load(onnx::TensorProto::INT64, Dims{2},
                       [](auto& n) { attr_tensor(n, "value", int64_tensor("const_t", {2}, {1, 2})); }, "value");
  EXPECT_EQ(a.type, AType::kTensor);
  EXPECT_TRUE(a.t.equals(Tensor::from_vector<int64_t>({2}, {1, 2})));
  EXPECT_EQ(a.t_label.name, "const_t");
  const auto& s = load(onnx::TensorProto::FLOAT, Dims{},
                       [](auto& n) { attr_tensor(n, "value", float_tensor("scale", {}, {0.5f})); }, "value");
  EXPECT_TRUE(s.t.equals(Tensor::from_vector<float>({}, {0.5f})));
}

TEST_F(ConstantNode, ValueFloat) {
  const auto& a = load(onnx::TensorProto::FLOAT, Dims{}, [](auto& n) { attr_float(n, "value_float", 0.25f); }, "value_float");
  EXPECT_EQ(a.type, AType::kFloat);
  EXPECT_EQ(a.f, 0.25f);
}



TEST_F(ConstantNode, ValueInt) {
  const auto& a = load(onnx::TensorProto::INT64, Dims{}, [](auto& n) { attr_int(n, "value_int", -7); }, "value_int");
  EXPECT_EQ(a.type, AType::kInt);
  EXPECT_EQ(a.i, -7);
}

TEST_F(ConstantNode, ValueInts) {
  const auto& a = load(onnx::TensorProto::INT64, Dims{3}, [](auto& n) { attr_ints(n, "value_ints", {1, -2, 3}); }, "value_ints");
  EXPECT_EQ(a.type, AType::kInts);
  EXPECT_EQ(a.ints, (std::vector<int64_t>{1, -2, 3}));
}

TEST_F(ConstantNode, ValueString) {
  const auto& a =
      load(onnx::TensorProto::STRING, Dims{}, [](auto& n) { attr_string(n, "value_string", "hi"); }, "value_string");
  EXPECT_EQ(a.type, AType::kString);
  EXPECT_EQ(a.s, "hi");
}

TEST_F(ConstantNode, ValueStrings) {
  const auto& a = load(onnx::TensorProto::STRING, Dims{2},
                       [](auto& n) { attr_strings(n, "value_strings", {"a", "bc"}); }, "value_strings");
  EXPECT_EQ(a.type, AType::kStrings);
  EXPECT_EQ(a.strings, (std::vector<std::string>{"a", "bc"}));
}

TEST_F(ConstantNode, SparseValue) {
  onnx::SparseTensorProto sparse;
  *sparse.mutable_values() = float_tensor("sv", {2}, {5, 6});
  *sparse.mutable_indices() = int64_tensor("", {2}, {1, 3});
  sparse.add_dims(5);
  const auto& a = load(onnx::TensorProto::FLOAT, Dims{5}, [&](auto& n) { attr_sparse(n, "sparse_value", sparse); },
                       "sparse_value");
  EXPECT_EQ(a.type, AType::kSparseTensor);
  EXPECT_TRUE(a.sparse_tensor.values.equals(Tensor::from_vector<float>({2}, {5, 6})));
  EXPECT_TRUE(a.sparse_tensor.indices.equals(Tensor::from_vector<int64_t>({2}, {1, 3})));
  EXPECT_EQ(a.sparse_tensor.dims, (std::vector<int64_t>{5}));
  EXPECT_EQ(a.sparse_tensor.name, "sv");
}

// ---- Functions and subgraphs ----------------------------------------------------------------------

TEST_F(Importer, ModelLocalFunctionIsKept) {
  ModelBuilder b;
  b.add_opset("local", 1);
  onnx::FunctionProto& f = add_double_function(b.model());
  f.set_doc_string("x + x");
  f.add_attribute("unused");
  b.input("x", onnx::TensorProto::FLOAT, Dims{2});
  b.node("Double", {"x"}, {"y"}, "double", "local");
  b.output("y", onnx::TensorProto::FLOAT, Dims{2});
  Model model = Model::load(b.save(path("m.onnx")));

  EXPECT_EQ(model.info().functions, (std::vector<std::string>{"local:Double"}));
  EXPECT_EQ(model.info().op_histogram.at("local:Double"), 1);
  const auto& fn = tunnx::model_impl(model).ir.functions.at(0);
  EXPECT_EQ(fn.inputs, (std::vector<std::string>{"X"}));
  EXPECT_EQ(fn.outputs, (std::vector<std::string>{"Y"}));
  EXPECT_EQ(fn.attribute_names, (std::vector<std::string>{"unused"}));
  EXPECT_EQ(fn.doc_string, "x + x");
  ASSERT_EQ(fn.nodes.size(), 1u);
  EXPECT_EQ(fn.nodes[0].op_type, "Add");
  EXPECT_EQ(fn.nodes[0].inputs, (std::vector<std::string>{"X", "X"}));
  ASSERT_EQ(fn.opset_imports.size(), 1u);
  EXPECT_EQ(fn.opset_imports[0].version, 17);
}

// If(cond) with then = Add(x, w) reading the outer initializer w, else = Neg(x).
void build_if_model(ModelBuilder& b) {
  b.input("cond", onnx::TensorProto::BOOL, Dims{});
  b.input("x", onnx::TensorProto::FLOAT, Dims{2});
  b.initializer(float_tensor("w", {2}, {10, 20}));
  auto& node = b.node("If", {"cond"}, {"y"}, "if");
  GraphBuilder then_branch(attr_graph(node, "then_branch", "then"));
  then_branch.node("Add", {"x", "w"}, {"t"}, "then_add");
  then_branch.output("t", onnx::TensorProto::FLOAT, Dims{2});
  GraphBuilder else_branch(attr_graph(node, "else_branch", "else"));
  else_branch.node("Neg", {"x"}, {"e"}, "else_neg");
  else_branch.output("e", onnx::TensorProto::FLOAT, Dims{2});
  b.output("y", onnx::TensorProto::FLOAT, Dims{2});
}

TEST_F(Importer, IfBranchesKeepTheirNodes) {
  ModelBuilder b;
  build_if_model(b);
  Model model = Model::load(b.save(path("m.onnx")));
  const auto& node = tunnx::model_impl(model).ir.graph.nodes.at(0);
  ASSERT_NE(node.attribute("then_branch"), nullptr);
  ASSERT_NE(node.attribute("else_branch"), nullptr);
  const auto& then_graph = *node.attribute("then_branch")->g;
  EXPECT_EQ(then_graph.name, "then");
  ASSERT_EQ(then_graph.nodes.size(), 1u);
  EXPECT_EQ(then_graph.nodes[0].name, "then_add");
  EXPECT_EQ(then_graph.nodes[0].inputs, (std::vector<std::string>{"x", "w"}));
  EXPECT_EQ(node.attribute("else_branch")->g->nodes.at(0).op_type, "Neg");

  tunnx::ModelInfo info = model.info();
  EXPECT_EQ(info.subgraph_count, 2);
  EXPECT_EQ(info.node_count, 3);
  EXPECT_EQ(info.op_histogram, (std::map<std::string, int64_t>{{"Add", 1}, {"If", 1}, {"Neg", 1}}));
}

TEST_F(Importer, InitializerUsedOnlyInsideASubgraphIsLoaded) {
  ModelBuilder b;
  build_if_model(b);
  Model model = Model::load(b.save(path("m.onnx")));
  EXPECT_TRUE(model.parameter("w").equals(Tensor::from_vector<float>({2}, {10, 20})));
}

TEST_F(Importer, SiblingBranchesMayReuseAnInitializerName) {
  ModelBuilder b;
  b.input("cond", TensorProto::BOOL, Dims{});
  b.input("x", TensorProto::FLOAT, Dims{2});
  auto& node = b.node("If", {"cond"}, {"y"}, "if");
  GraphBuilder then_branch(attr_graph(node, "then_branch", "then"));
  then_branch.initializer(float_tensor("w", {2}, {1, 1}));
  then_branch.node("Add", {"x", "w"}, {"t"}, "then_add");
  then_branch.output("t", TensorProto::FLOAT, Dims{2});
  GraphBuilder else_branch(attr_graph(node, "else_branch", "else"));
  else_branch.initializer(float_tensor("w", {2}, {2, 2}));
  else_branch.node("Mul", {"x", "w"}, {"e"}, "else_mul");
  else_branch.output("e", TensorProto::FLOAT, Dims{2});
  b.output("y", TensorProto::FLOAT, Dims{2});
  Model model = Model::load(b.save(path("m.onnx")));

  // Both are kept; the second is stored under a key qualified by where it lives.
  std::vector<std::string> names = names_of(model.state_dict());
  ASSERT_EQ(names.size(), 2u);
  EXPECT_EQ(names[0], "w");
  EXPECT_EQ(names[1], "if/else_branch/w");
  EXPECT_TRUE(model.parameter("w").equals(Tensor::from_vector<float>({2}, {1, 1})));
  EXPECT_TRUE(model.parameter(names[1]).equals(Tensor::from_vector<float>({2}, {2, 2})));
  const auto& else_graph = *tunnx::model_impl(model).ir.graph.nodes.at(0).attribute("else_branch")->g;
  EXPECT_EQ(else_graph.initializers.at(0).name, "w");  // the graph keeps the file's name
}

TEST_F(Importer, LoopBodyKeepsItsNodesAndItsOwnInitializer) {
  ModelBuilder b;
  b.input("trip", onnx::TensorProto::INT64, Dims{});
  b.input("cond", onnx::TensorProto::BOOL, Dims{});
  b.input("v0", onnx::TensorProto::FLOAT, Dims{2});
  auto& loop = b.node("Loop", {"trip", "cond", "v0"}, {"v_final"}, "loop");
  GraphBuilder body(attr_graph(loop, "body", "body"));
  body.input("iter", onnx::TensorProto::INT64, Dims{});
  body.input("cond_in", onnx::TensorProto::BOOL, Dims{});
  body.input("v_in", onnx::TensorProto::FLOAT, Dims{2});
  body.initializer(float_tensor("step", {2}, {0.5f, 1.5f}));
  body.node("Identity", {"cond_in"}, {"cond_out"}, "keep_going");
  body.node("Add", {"v_in", "step"}, {"v_out"}, "accumulate");
  body.output("cond_out", onnx::TensorProto::BOOL, Dims{});
  body.output("v_out", onnx::TensorProto::FLOAT, Dims{2});
  b.output("v_final", onnx::TensorProto::FLOAT, Dims{2});
  Model model = Model::load(b.save(path("m.onnx")));

  EXPECT_EQ(model.info().onnx_checker, "passed");
  const auto& body_graph = *tunnx::model_impl(model).ir.graph.nodes.at(0).attribute("body")->g;
  ASSERT_EQ(body_graph.nodes.size(), 2u);
  EXPECT_EQ(body_graph.nodes[1].name, "accumulate");
  ASSERT_EQ(body_graph.initializers.size(), 1u);
  EXPECT_EQ(body_graph.initializers[0].name, "step");
  EXPECT_TRUE(model.parameter("step").equals(Tensor::from_vector<float>({2}, {0.5f, 1.5f})));
}

// ---- Checker, versions and declared shapes --------------------------------------------------------

TEST_F(Importer, OpsetNewerThanLibonnxStillLoadsWithCheckerSkipped) {
  ModelBuilder b(21);
  b.input("x", onnx::TensorProto::FLOAT, Dims{2});
  b.node("Relu", {"x"}, {"y"}, "relu");
  b.output("y", onnx::TensorProto::FLOAT, Dims{2});
  Model model = Model::load(b.save(path("m.onnx")));
  EXPECT_TRUE(model.info().onnx_checker.starts_with("skipped: opset 21 of 'ai.onnx' is newer than libonnx's"))
      << model.info().onnx_checker;
  EXPECT_EQ(model.info().opset_imports, (std::vector<std::pair<std::string, int64_t>>{{"", 21}}));
}

TEST_F(Importer, IrVersionNewerThanLibonnxStillLoadsWithCheckerSkipped) {
  ModelBuilder b(17, 10);
  b.input("x", onnx::TensorProto::FLOAT, Dims{2});
  b.node("Relu", {"x"}, {"y"}, "relu");
  b.output("y", onnx::TensorProto::FLOAT, Dims{2});
  Model model = Model::load(b.save(path("m.onnx")));
  EXPECT_TRUE(model.info().onnx_checker.starts_with("skipped: IR version 10 is newer than libonnx's"))
      << model.info().onnx_checker;
}

TEST_F(Importer, CheckerFailureIsAnInvalidModelError) {
  ModelBuilder b;
  b.input("x", onnx::TensorProto::FLOAT, Dims{2});
  b.node("NoSuchOp", {"x"}, {"y"}, "mystery");
  b.output("y", onnx::TensorProto::FLOAT, Dims{2});
  fs::path p = b.save(path("m.onnx"));
  tunnx::Error e = expect_error([&] { Model::load(p); });
  EXPECT_EQ(e.code(), ErrorCode::kInvalidModel);
  EXPECT_TRUE(contains(e.what(), p.string() + ": node 'mystery' (NoSuchOp): ONNX checker: ")) << e.what();
}

TEST_F(Importer, ShapeInferenceRecordsTypesOfIntermediateValues) {
  ModelBuilder b;
  b.input("x", TensorProto::FLOAT, Dims{"batch", 3});
  b.node("Relu", {"x"}, {"h"}, "relu");
  b.node("Neg", {"h"}, {"y"}, "neg");
  b.output("y", TensorProto::FLOAT, Dims{"batch", 3});
  Model model = Model::load(b.save(path("m.onnx")));
  const auto& inferred = tunnx::model_impl(model).ir.graph.inferred_types;
  ASSERT_TRUE(inferred.count("h"));
  EXPECT_EQ(inferred.at("h").to_string(), "tensor(float32)");
  ASSERT_TRUE(inferred.at("h").shape.has_value());
  EXPECT_EQ(inferred.at("h").shape->to_string(), "[batch,3]");
  EXPECT_TRUE(tunnx::model_impl(model).ir.graph.value_infos.empty());  // the file's value_info stays as it was
}

TEST_F(Importer, AttributeWithoutTypeTakesItFromTheFilledField) {
  ModelBuilder b(9, 3);
  b.input("x", TensorProto::FLOAT, Dims{2, 3});
  auto& node = b.node("Flatten", {"x"}, {"y"}, "flatten");
  auto* axis = node.add_attribute();  // IR v1/v2 writers left AttributeProto.type unset
  axis->set_name("axis");
  axis->set_i(1);
  b.output("y", TensorProto::FLOAT, Dims{2, 3});
  tunnx::LoadOptions no_checker;  // the checker wants the type set for IR >= 2
  no_checker.run_onnx_checker = false;
  Model model = Model::load(b.save(path("m.onnx")), no_checker);
  const tunnx::ir::Attribute* a = tunnx::model_impl(model).ir.graph.nodes.at(0).attribute("axis");
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(a->type, tunnx::ir::AttributeType::kInt);
  EXPECT_EQ(a->i, 1);
}

TEST_F(Importer, DisabledCheckerIsReportedAsDisabled) {
  ModelBuilder b;
  add_identity_of(b, float_tensor("w", {1}, {1}));
  tunnx::LoadOptions options;
  options.run_onnx_checker = false;
  EXPECT_EQ(Model::load(b.save(path("m.onnx")), options).info().onnx_checker, "disabled");
}

TEST_F(Importer, SymbolicDimsAreVisibleThroughInfo) {
  ModelBuilder b;
  b.input("x", onnx::TensorProto::FLOAT, Dims{"batch", 3, kUnknownDim, "seq"});
  b.node("Relu", {"x"}, {"y"}, "relu");
  b.output("y", onnx::TensorProto::FLOAT, Dims{"batch", 3, kUnknownDim, "seq"});
  tunnx::ModelInfo info = Model::load(b.save(path("m.onnx"))).info();
  ASSERT_EQ(info.inputs.size(), 1u);
  EXPECT_EQ(info.inputs[0].name, "x");
  EXPECT_EQ(info.inputs[0].type, "tensor(float32)");
  EXPECT_TRUE(info.inputs[0].has_shape);
  EXPECT_EQ(info.inputs[0].shape.to_string(), "[batch,3,?,seq]");
  EXPECT_TRUE(info.inputs[0].shape.dims[0].is_symbolic());
  EXPECT_EQ(info.outputs.at(0).shape.to_string(), "[batch,3,?,seq]");
}

TEST_F(Importer, InputWithoutShapeHasNoShape) {
  ModelBuilder b;
  b.input("x", onnx::TensorProto::FLOAT, kNoShape);
  b.node("Relu", {"x"}, {"y"}, "relu");
  b.output("y", onnx::TensorProto::FLOAT, kNoShape);
  tunnx::LoadOptions no_checker;  // libonnx 1.12's checker wants a shape on main-graph values
  no_checker.run_onnx_checker = false;
  tunnx::ModelInfo info = Model::load(b.save(path("m.onnx")), no_checker).info();
  EXPECT_FALSE(info.inputs.at(0).has_shape);
}

TEST_F(Importer, InputsListedAlsoAsInitializersAreNotModelInputs) {
  ModelBuilder b(9, 3);  // IR < 4 lists initializers among the graph inputs
  b.input("x", onnx::TensorProto::FLOAT, Dims{2});
  b.input("w", onnx::TensorProto::FLOAT, Dims{2});
  b.initializer(float_tensor("w", {2}, {1, 2}));
  b.node("Add", {"x", "w"}, {"y"}, "add");
  b.output("y", onnx::TensorProto::FLOAT, Dims{2});
  tunnx::ModelInfo info = Model::load(b.save(path("m.onnx"))).info();
  ASSERT_EQ(info.inputs.size(), 1u);
  EXPECT_EQ(info.inputs[0].name, "x");
}

TEST_F(Importer, LoadFromBytesHasNoPath) {
  ModelBuilder b;
  add_identity_of(b, float_tensor("w", {1}, {3}));
  Model model = Model::load_from_bytes(b.bytes(), dir());
  EXPECT_TRUE(model.path().empty());
  EXPECT_EQ(model.parameter("w").data_as<float>()[0], 3);
}

TEST_F(Importer, LoadKeepsThePathItWasGiven) {
  ModelBuilder b;
  add_identity_of(b, float_tensor("w", {1}, {3}));
  fs::path p = b.save(path("m.onnx"));
  EXPECT_EQ(Model::load(p).path(), p);
}

}  // namespace
}  // namespace tunnx_test
