// Model::load rejects what is not a valid graph (cycles, undefined or doubly defined names), sizes over
// the limits before allocating anything, and files that are not models; and sorts what is only out
// of order.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "runtime/core/model_impl.h"
#include "tests/importer/model_builder.h"

namespace tunnx_test {
namespace {

using tunnx::ErrorCode;
using tunnx::Model;

class LoadChecks : public TempDirTest {};

// ---- Graph order and structural errors ----------------------------------------------------------

std::vector<std::string> node_names(const Model& model) {
  std::vector<std::string> names;
  for (const auto& n : tunnx::model_impl(model).ir.graph.nodes) names.push_back(n.name);
  return names;
}

TEST_F(LoadChecks, NodesOutOfOrderComeBackTopologicallySorted) {
  ModelBuilder b;
  b.input("x", onnx::TensorProto::FLOAT, Dims{2});
  b.node("Relu", {"b"}, {"c"}, "C");
  b.node("Relu", {"a"}, {"b"}, "B");
  b.node("Relu", {"x"}, {"a"}, "A");
  b.output("c", onnx::TensorProto::FLOAT, Dims{2});
  tunnx::LoadOptions no_checker;
  no_checker.run_onnx_checker = false;  // ONNX's checker rejects unsorted files (see below)
  Model model = Model::load(b.save(path("m.onnx")), no_checker);
  EXPECT_EQ(node_names(model), (std::vector<std::string>{"A", "B", "C"}));
}

TEST_F(LoadChecks, SortKeepsTheFileOrderAmongIndependentNodes) {
  ModelBuilder b;
  b.input("x", onnx::TensorProto::FLOAT, Dims{2});
  b.node("Add", {"p", "q"}, {"r"}, "R");
  b.node("Relu", {"x"}, {"q"}, "Q");
  b.node("Neg", {"x"}, {"p"}, "P");
  b.output("r", onnx::TensorProto::FLOAT, Dims{2});
  tunnx::LoadOptions no_checker;
  no_checker.run_onnx_checker = false;
  Model model = Model::load(b.save(path("m.onnx")), no_checker);
  EXPECT_EQ(node_names(model), (std::vector<std::string>{"Q", "P", "R"}));
}

TEST_F(LoadChecks, NodesOutOfOrderLoadSortedWithTheCheckerOn) {
  // ONNX wants sorted nodes; tunnx sorts them and shows the checker the sorted graph.
  ModelBuilder b;
  b.input("x", onnx::TensorProto::FLOAT, Dims{2});
  b.node("Relu", {"a"}, {"b"}, "B");
  b.node("Relu", {"x"}, {"a"}, "A");
  b.output("b", onnx::TensorProto::FLOAT, Dims{2});
  Model model = Model::load(b.save(path("m.onnx")));
  EXPECT_EQ(node_names(model), (std::vector<std::string>{"A", "B"}));
  EXPECT_EQ(model.info().onnx_checker, "passed");
}

TEST_F(LoadChecks, CheckerErrorNamesTheNode) {
  ModelBuilder b;
  b.input("x", onnx::TensorProto::FLOAT, Dims{2});
  onnx::NodeProto& add = b.node("Add", {"x", "x"}, {"y"}, "add");
  onnx::AttributeProto* bogus = add.add_attribute();
  bogus->set_name("bogus");
  bogus->set_type(onnx::AttributeProto::INT);
  bogus->set_i(1);
  b.output("y", onnx::TensorProto::FLOAT, Dims{2});
  fs::path p = b.save(path("m.onnx"));
  tunnx::Error e = expect_error([&] { Model::load(p); });
  EXPECT_EQ(e.code(), ErrorCode::kInvalidModel);
  EXPECT_EQ(e.context().node, "add");
  EXPECT_EQ(e.context().op_type, "Add");
  EXPECT_TRUE(contains(e.what(), p.string() + ": node 'add' (Add): ONNX checker: Unrecognized attribute: bogus"))
      << e.what();
}

TEST_F(LoadChecks, CycleIsAnErrorNamingTheNodeAndTheInput) {
  ModelBuilder b;
  b.node("Relu", {"b"}, {"a"}, "A");
  b.node("Relu", {"a"}, {"b"}, "B");
  b.output("a", onnx::TensorProto::FLOAT, Dims{2});
  fs::path p = b.save(path("m.onnx"));
  tunnx::Error e = expect_error([&] { Model::load(p); });
  EXPECT_EQ(e.code(), ErrorCode::kInvalidModel);
  EXPECT_EQ(std::string(e.what()), p.string() + ": node 'A' (Relu): graph has a cycle through input 'b'");
}

TEST_F(LoadChecks, NodeReadingItsOwnOutputIsACycle) {
  ModelBuilder b;
  b.node("Relu", {"a"}, {"a"}, "self");
  b.output("a", onnx::TensorProto::FLOAT, Dims{2});
  fs::path p = b.save(path("m.onnx"));
  tunnx::Error e = expect_error([&] { Model::load(p); });
  EXPECT_EQ(std::string(e.what()), p.string() + ": node 'self' (Relu): node consumes its own output (a cycle)");
}

TEST_F(LoadChecks, UndefinedInputNamesTheNodeAndTheValue) {
  ModelBuilder b;
  b.node("Relu", {"missing"}, {"y"}, "relu");
  b.output("y", onnx::TensorProto::FLOAT, Dims{2});
  fs::path p = b.save(path("m.onnx"));
  tunnx::Error e = expect_error([&] { Model::load(p); });
  EXPECT_EQ(e.code(), ErrorCode::kInvalidModel);
  EXPECT_EQ(std::string(e.what()),
            p.string() + ": node 'relu' (Relu): input 'missing' is not produced by any node, graph input or initializer");
}

TEST_F(LoadChecks, UndefinedNameInsideASubgraphNamesTheInnerNode) {
  ModelBuilder b;
  b.input("cond", TensorProto::BOOL, Dims{});
  b.input("x", TensorProto::FLOAT, Dims{2});
  auto& node = b.node("If", {"cond"}, {"y"}, "if");
  GraphBuilder then_branch(attr_graph(node, "then_branch", "then"));
  then_branch.node("Add", {"x", "nope"}, {"t"}, "then_add");
  then_branch.output("t", TensorProto::FLOAT, Dims{2});
  GraphBuilder else_branch(attr_graph(node, "else_branch", "else"));
  else_branch.node("Neg", {"x"}, {"e"}, "else_neg");
  else_branch.output("e", TensorProto::FLOAT, Dims{2});
  b.output("y", TensorProto::FLOAT, Dims{2});
  fs::path p = b.save(path("m.onnx"));
  tunnx::Error e = expect_error([&] { Model::load(p); });
  EXPECT_EQ(std::string(e.what()), p.string() + ": node 'if' (If): a subgraph reads 'nope', which is not produced by "
                                                "any node, graph input or initializer");
}

TEST_F(LoadChecks, DuplicateOutputNameNamesBothNodes) {
  ModelBuilder b;
  b.input("x", onnx::TensorProto::FLOAT, Dims{2});
  b.node("Relu", {"x"}, {"y"}, "first");
  b.node("Neg", {"x"}, {"y"}, "second");
  b.output("y", onnx::TensorProto::FLOAT, Dims{2});
  fs::path p = b.save(path("m.onnx"));
  tunnx::Error e = expect_error([&] { Model::load(p); });
  EXPECT_EQ(e.code(), ErrorCode::kInvalidModel);
  EXPECT_EQ(std::string(e.what()), p.string() + ": node 'second' (Neg): output 'y' is already produced by node 'first' (Relu)");
}

TEST_F(LoadChecks, DuplicateInitializerNamesTheTensor) {
  ModelBuilder b;
  add_identity_of(b, float_tensor("w", {1}, {1}));
  b.initializer(float_tensor("w", {1}, {2}));
  fs::path p = b.save(path("m.onnx"));
  tunnx::Error e = expect_error([&] { Model::load(p); });
  EXPECT_EQ(e.code(), ErrorCode::kInvalidModel);
  EXPECT_EQ(std::string(e.what()), p.string() + ": tensor 'w': initializer is defined twice in graph 'g'");
}

TEST_F(LoadChecks, NodeOutputNamedLikeAnInitializerIsRejected) {
  ModelBuilder b;
  b.input("x", TensorProto::FLOAT, Dims{1});
  b.initializer(float_tensor("w", {1}, {1}));
  b.node("Relu", {"x"}, {"w"}, "relu");
  b.output("w", TensorProto::FLOAT, Dims{1});
  fs::path p = b.save(path("m.onnx"));
  EXPECT_EQ(std::string(expect_error([&] { Model::load(p); }).what()),
            p.string() + ": node 'relu' (Relu): output 'w' has the name of a graph input or initializer");
}

TEST_F(LoadChecks, UnnamedNodeIsCalledUnnamed) {
  ModelBuilder b;
  b.node("Relu", {"missing"}, {"y"});
  b.output("y", TensorProto::FLOAT, Dims{2});
  fs::path p = b.save(path("m.onnx"));
  EXPECT_EQ(std::string(expect_error([&] { Model::load(p); }).what()),
            p.string() + ": node '<unnamed>' (Relu): input 'missing' is not produced by any node, graph input or "
                         "initializer");
}

TEST_F(LoadChecks, EmptyOpTypeIsRejected) {
  ModelBuilder b;
  b.input("x", TensorProto::FLOAT, Dims{2});
  b.node("", {"x"}, {"y"}, "blank");
  b.output("y", TensorProto::FLOAT, Dims{2});
  fs::path p = b.save(path("m.onnx"));
  EXPECT_EQ(std::string(expect_error([&] { Model::load(p); }).what()), p.string() + ": node 'blank': op_type is empty");
}

TEST_F(LoadChecks, GraphOutputThatNothingProducesNamesTheTensor) {
  ModelBuilder b;
  b.output("ghost", onnx::TensorProto::FLOAT, Dims{2});
  fs::path p = b.save(path("m.onnx"));
  tunnx::Error e = expect_error([&] { Model::load(p); });
  EXPECT_EQ(std::string(e.what()),
            p.string() + ": tensor 'ghost': graph output 'ghost' is not produced by any node, graph input or initializer");
}

// ---- Limits: checked before allocating ------------------------------------------------------------

TEST_F(LoadChecks, HugeDeclaredInitializerWithoutDataIsRejectedBeforeAllocating) {
  ModelBuilder b;
  add_identity_of(b, tensor_header("huge", onnx::TensorProto::FLOAT, {1000000000000000000}));
  fs::path p = b.save(path("m.onnx"));
  tunnx::Error e = expect_error([&] { Model::load(p); });  // 4 EB: would be bad_alloc if allocated
  EXPECT_EQ(e.code(), ErrorCode::kLimitExceeded);
  EXPECT_EQ(std::string(e.what()), p.string() + ": tensor 'huge': field 'dims': declares 1000000000000000000 "
                                                "elements of float32, over the limit of 17179869184 bytes per tensor");
}

TEST_F(LoadChecks, HugeDeclaredInitializerUnderARaisedCapStillFailsBeforeAllocating) {
  ModelBuilder b;
  add_identity_of(b, tensor_header("huge", onnx::TensorProto::FLOAT, {1000000000000000000}));
  fs::path p = b.save(path("m.onnx"));
  tunnx::LoadOptions options;
  options.max_tensor_bytes = std::numeric_limits<uint64_t>::max();
  tunnx::Error e = expect_error([&] { Model::load(p, options); });
  EXPECT_EQ(e.code(), ErrorCode::kInvalidModel);
  EXPECT_EQ(std::string(e.what()), p.string() + ": tensor 'huge': field 'float_data': declares 1000000000000000000 "
                                                "values for shape [1000000000000000000] but holds 0");
}

TEST_F(LoadChecks, DimsWhoseProductOverflowsAreRejected) {
  ModelBuilder b;
  add_identity_of(b, tensor_header("w", onnx::TensorProto::FLOAT, {int64_t{1} << 40, int64_t{1} << 40}));
  fs::path p = b.save(path("m.onnx"));
  tunnx::Error e = expect_error([&] { Model::load(p); });
  EXPECT_EQ(e.code(), ErrorCode::kLimitExceeded);
  EXPECT_EQ(std::string(e.what()), p.string() + ": tensor 'w': field 'dims': element count overflows int64 "
                                                "(shapes [1099511627776,1099511627776])");
}

TEST_F(LoadChecks, NegativeDimIsRejectedNamingTheTensor) {
  ModelBuilder b;
  add_identity_of(b, tensor_header("w", onnx::TensorProto::FLOAT, {2, -1}));
  fs::path p = b.save(path("m.onnx"));
  tunnx::Error e = expect_error([&] { Model::load(p); });
  EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(e.context().tensor, "w");
  EXPECT_EQ(e.message(), "negative dimension -1");
}

TEST_F(LoadChecks, RawDataShorterThanTheShapeNamesTheTensor) {
  ModelBuilder b;
  TensorProto t = tensor_header("w", onnx::TensorProto::FLOAT, {4});
  t.set_raw_data(raw_bytes<float>({1, 2}));
  add_identity_of(b, t);
  fs::path p = b.save(path("m.onnx"));
  tunnx::Error e = expect_error([&] { Model::load(p); });
  EXPECT_EQ(e.code(), ErrorCode::kInvalidModel);
  EXPECT_EQ(std::string(e.what()),
            p.string() + ": tensor 'w': field 'raw_data': raw_data has 8 bytes but shape [4] of float32 needs 16");
}

TEST_F(LoadChecks, TypedFieldShorterThanTheShapeNamesTheTensor) {
  ModelBuilder b;
  TensorProto t = tensor_header("w", onnx::TensorProto::INT64, {2, 2});
  t.add_int64_data(1);
  t.add_int64_data(2);
  t.add_int64_data(3);
  add_identity_of(b, t);
  fs::path p = b.save(path("m.onnx"));
  tunnx::Error e = expect_error([&] { Model::load(p); });
  EXPECT_EQ(std::string(e.what()),
            p.string() + ": tensor 'w': field 'int64_data': declares 4 values for shape [2,2] but holds 3");
}

TEST_F(LoadChecks, MaxTensorBytesIsHonoured) {
  ModelBuilder b;
  add_identity_of(b, float_tensor("w", {4}, {1, 2, 3, 4}));  // 16 bytes
  fs::path p = b.save(path("m.onnx"));
  tunnx::LoadOptions options;
  options.max_tensor_bytes = 16;
  EXPECT_NO_THROW(Model::load(p, options));
  options.max_tensor_bytes = 15;
  tunnx::Error e = expect_error([&] { Model::load(p, options); });
  EXPECT_EQ(e.code(), ErrorCode::kLimitExceeded);
  EXPECT_EQ(std::string(e.what()), p.string() + ": tensor 'w': field 'dims': declares 4 elements of float32, over "
                                                "the limit of 15 bytes per tensor");
}

TEST_F(LoadChecks, MaxTensorBytesAppliesToConstantAttributes) {
  ModelBuilder b;
  attr_tensor(b.node("Constant", {}, {"y"}, "c"), "value", float_tensor("", {4}, {1, 2, 3, 4}));
  b.output("y", onnx::TensorProto::FLOAT, Dims{4});
  fs::path p = b.save(path("m.onnx"));
  tunnx::LoadOptions options;
  options.max_tensor_bytes = 8;
  tunnx::Error e = expect_error([&] { Model::load(p, options); });
  EXPECT_EQ(e.code(), ErrorCode::kLimitExceeded);
  EXPECT_EQ(e.context().node, "c");
  EXPECT_EQ(e.context().field, "dims");  // the tensor's own field wins over "attribute value"
}

// ---- Files that are not models --------------------------------------------------------------------

TEST_F(LoadChecks, MissingFileIsNotFound) {
  tunnx::Error e = expect_error([&] { Model::load(path("nope.onnx")); });
  EXPECT_EQ(e.code(), ErrorCode::kNotFound);
  EXPECT_EQ(std::string(e.what()), path("nope.onnx").string() + ": no such file");
}

TEST_F(LoadChecks, DirectoryIsRejected) {
  tunnx::Error e = expect_error([&] { Model::load(dir()); });
  EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(std::string(e.what()), dir().string() + ": is a directory, not a model file");
}

TEST_F(LoadChecks, FifoIsRejectedWithoutBlocking) {
  ASSERT_EQ(::mkfifo(path("pipe.onnx").c_str(), 0600), 0);
  tunnx::Error e = expect_error([&] { Model::load(path("pipe.onnx")); });
  EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  EXPECT_EQ(std::string(e.what()), path("pipe.onnx").string() + ": is not a regular file");
}

TEST_F(LoadChecks, EmptyFileIsRejected) {
  write_bytes(path("empty.onnx"), "");
  tunnx::Error e = expect_error([&] { Model::load(path("empty.onnx")); });
  EXPECT_EQ(e.code(), ErrorCode::kInvalidModel);
  EXPECT_EQ(std::string(e.what()), path("empty.onnx").string() + ": file is empty");
}

TEST_F(LoadChecks, GarbageIsRejected) {
  write_bytes(path("junk.onnx"), std::string("\xff\xff\xff\xff garbage", 12));
  tunnx::Error e = expect_error([&] { Model::load(path("junk.onnx")); });
  EXPECT_EQ(e.code(), ErrorCode::kInvalidModel);
  EXPECT_TRUE(contains(e.what(), "not an ONNX model: protobuf parsing failed"));
}

TEST_F(LoadChecks, ModelWithoutGraphIsRejected) {
  onnx::ModelProto m;
  m.set_ir_version(8);
  write_model(m, path("m.onnx"));
  tunnx::Error e = expect_error([&] { Model::load(path("m.onnx")); });
  EXPECT_EQ(std::string(e.what()), path("m.onnx").string() + ": field 'graph': not an ONNX model: it has no graph");
}

}  // namespace
}  // namespace tunnx_test
