// Model::save: what was loaded is written back faithfully, with the parameters' current values,
// optionally with external data, and always atomically.
#include <google/protobuf/util/message_differencer.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "onnx/checker.h"
#include "tests/importer/model_builder.h"

namespace tunnx_test {
namespace {

using tunnx::DataType;
using tunnx::ErrorCode;
using tunnx::ExternalDataMode;
using tunnx::Model;
using tunnx::SaveOptions;
using tunnx::Tensor;

constexpr int32_t kFloat = TensorProto::FLOAT;
const std::string kDigits = std::string(TUNNX_SOURCE_DIR) + "/examples/digits_cnn.onnx";

// A model that uses most of what ModelProto can hold, nodes already sorted and tensors in raw_data
// (string tensors in string_data), which is how the writer stores them: saved, it must come back
// identical field for field.
onnx::ModelProto rich_model() {
  ModelBuilder b;
  onnx::ModelProto& m = b.model();
  b.add_opset("local", 1);
  m.set_producer_version("0.9");
  m.set_domain("org.tunnx.tests");
  m.set_model_version(7);
  m.set_doc_string("a model for round trips");
  for (auto [k, v] : {std::pair{"author", "tests"}, std::pair{"license", "MIT"}}) {
    auto* kv = m.add_metadata_props();
    kv->set_key(k);
    kv->set_value(v);
  }
  m.mutable_graph()->set_doc_string("main graph");

  b.input("x", kFloat, Dims{"batch", 3}).set_doc_string("features");
  b.input("cond", TensorProto::BOOL, Dims{});
  b.initializer(float_tensor("fc.weight", {2, 3}, {1, 2, 3, 4, 5, 6})).set_doc_string("weights");
  b.initializer(float_tensor("fc.bias", {2}, {0.5f, -0.5f}));
  b.initializer(int64_tensor("shape", {2}, {-1, 2}));
  b.initializer(raw_tensor<uint16_t>("half", {2}, {0x3C00, 0x4000}, TensorProto::FLOAT16));
  TensorProto labels = tensor_header("labels", TensorProto::STRING, {2});
  labels.add_string_data("cat");
  labels.add_string_data("dog");
  b.initializer(labels);

  auto& gemm = b.node("Gemm", {"x", "fc.weight", "fc.bias"}, {"h"}, "fc");
  attr_float(gemm, "alpha", 1.0f);
  attr_int(gemm, "transB", 1);
  gemm.set_doc_string("the only layer");
  b.node("Reshape", {"h", "shape"}, {"r"}, "reshape");
  attr_tensor(b.node("Constant", {}, {"k"}, "const"), "value", float_tensor("k_value", {1}, {3}));
  b.node("Double", {"r"}, {"d"}, "double", "local");
  auto& if_node = b.node("If", {"cond"}, {"y"}, "if");
  GraphBuilder then_branch(attr_graph(if_node, "then_branch", "then"));
  then_branch.initializer(float_tensor("then_bias", {2}, {1, 1}));
  then_branch.node("Add", {"d", "then_bias"}, {"t"}, "then_add");
  then_branch.output("t", kFloat, Dims{"batch", 2});
  GraphBuilder else_branch(attr_graph(if_node, "else_branch", "else"));
  else_branch.node("Mul", {"d", "k"}, {"e"}, "else_mul");
  else_branch.output("e", kFloat, Dims{"batch", 2});
  b.output("y", kFloat, Dims{"batch", 2});
  b.output("labels_out", TensorProto::STRING, Dims{2});
  b.node("Identity", {"labels"}, {"labels_out"}, "labels_id");
  *m.mutable_graph()->add_value_info() = value_info("h", kFloat, Dims{"batch", 2});
  m.mutable_graph()->mutable_value_info(0)->set_doc_string("hidden");

  add_double_function(m);
  return m;
}

::testing::AssertionResult same_proto(const google::protobuf::Message& a, const google::protobuf::Message& b) {
  google::protobuf::util::MessageDifferencer differ;
  std::string report;
  differ.ReportDifferencesToString(&report);
  if (differ.Compare(a, b)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << report;
}

::testing::AssertionResult same_tensors(const Model& a, const Model& b) {
  tunnx::StateDict x = a.state_dict(), y = b.state_dict();
  if (x.size() != y.size()) return ::testing::AssertionFailure() << x.size() << " vs " << y.size() << " tensors";
  for (size_t i = 0; i < x.size(); ++i) {
    if (x[i].first != y[i].first) return ::testing::AssertionFailure() << x[i].first << " vs " << y[i].first;
    if (!x[i].second.equals(y[i].second)) return ::testing::AssertionFailure() << x[i].first << " differs";
  }
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult passes_onnx_checker(const fs::path& path) {
  try {
    onnx::checker::check_model(path.string());
  } catch (const std::exception& e) {
    return ::testing::AssertionFailure() << e.what();
  }
  return ::testing::AssertionSuccess();
}

class Export : public TempDirTest {};

// ---- Faithful round trips ---------------------------------------------------------------------------

TEST_F(Export, RoundTripWritesTheSameModelProto) {
  onnx::ModelProto original = rich_model();
  write_model(original, path("in.onnx"));
  Model model = Model::load(path("in.onnx"));
  ASSERT_EQ(model.info().onnx_checker, "passed");
  model.save(path("out.onnx"));
  EXPECT_TRUE(same_proto(original, read_model_proto(path("out.onnx"))));
}

TEST_F(Export, RoundTripKeepsTensorsNamesOpsetsMetadataAndDocStrings) {
  write_model(rich_model(), path("in.onnx"));
  Model before = Model::load(path("in.onnx"));
  before.save(path("out.onnx"));
  Model after = Model::load(path("out.onnx"));

  EXPECT_TRUE(same_tensors(before, after));
  tunnx::ModelInfo a = before.info(), b = after.info();
  EXPECT_EQ(b.opset_imports, (std::vector<std::pair<std::string, int64_t>>{{"", 17}, {"local", 1}}));
  EXPECT_EQ(b.metadata, a.metadata);
  EXPECT_EQ(b.doc_string, "a model for round trips");
  EXPECT_EQ(b.producer_version, "0.9");
  EXPECT_EQ(b.model_version, 7);
  EXPECT_EQ(b.functions, (std::vector<std::string>{"local:Double"}));
  EXPECT_EQ(b.op_histogram, a.op_histogram);
  EXPECT_EQ(b.inputs.at(0).shape.to_string(), "[batch,3]");

  onnx::ModelProto saved = read_model_proto(path("out.onnx"));
  EXPECT_EQ(saved.graph().doc_string(), "main graph");
  EXPECT_EQ(saved.graph().initializer(0).doc_string(), "weights");
  EXPECT_EQ(saved.graph().node(0).doc_string(), "the only layer");
  EXPECT_EQ(saved.graph().input(0).doc_string(), "features");
  ASSERT_EQ(saved.graph().value_info_size(), 1);
  EXPECT_EQ(saved.graph().value_info(0).name(), "h");
  EXPECT_EQ(saved.graph().value_info(0).doc_string(), "hidden");
}

TEST_F(Export, DimensionDenotationIsKept) {
  ModelBuilder b;
  auto& x = b.input("x", kFloat, Dims{"batch", 3});
  x.mutable_type()->mutable_tensor_type()->mutable_shape()->mutable_dim(0)->set_denotation("DATA_BATCH");
  b.node("Relu", {"x"}, {"y"}, "relu");
  b.output("y", kFloat, Dims{"batch", 3});
  b.save(path("in.onnx"));
  Model::load(path("in.onnx")).save(path("out.onnx"));
  EXPECT_TRUE(same_proto(b.model(), read_model_proto(path("out.onnx"))));
}

TEST_F(Export, DocStringOfATensorInsideAnAttributeIsKept) {
  ModelBuilder b;
  TensorProto value = float_tensor("k", {1}, {3});
  value.set_doc_string("the constant three");
  attr_tensor(b.node("Constant", {}, {"y"}, "const"), "value", value);
  b.output("y", kFloat, Dims{1});
  b.save(path("in.onnx"));
  Model::load(path("in.onnx")).save(path("out.onnx"));
  EXPECT_TRUE(same_proto(b.model(), read_model_proto(path("out.onnx"))));
}

TEST_F(Export, SavedFilePassesTheOnnxChecker) {
  write_model(rich_model(), path("in.onnx"));
  Model::load(path("in.onnx")).save(path("out.onnx"));
  EXPECT_TRUE(passes_onnx_checker(path("out.onnx")));
}

TEST_F(Export, ChangedParameterIsSaved) {
  Model model = Model::load(kDigits);
  model.parameter("fc2.bias").mutable_data_as<float>()[3] = 42;
  model.save(path("out.onnx"));
  Model reloaded = Model::load(path("out.onnx"));
  EXPECT_EQ(reloaded.parameter("fc2.bias").data_as<float>()[3], 42);
  EXPECT_TRUE(same_tensors(model, reloaded));
  EXPECT_FALSE(reloaded.parameter("fc2.bias").equals(Model::load(kDigits).parameter("fc2.bias")));
}

TEST_F(Export, RolesAreRecomputedTheSameAfterARoundTrip) {
  Model model = Model::load(kDigits);
  model.save(path("out.onnx"));
  Model reloaded = Model::load(path("out.onnx"));
  auto a = model.tensors(), b = reloaded.tensors();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].role, b[i].role) << a[i].name;
    EXPECT_EQ(a[i].reason, b[i].reason) << a[i].name;
  }
}

// ---- External data -----------------------------------------------------------------------------------

TEST_F(Export, ExternalAlwaysWritesTheDataFileAndReloadsViews) {
  Model model = Model::load(kDigits);
  SaveOptions options;
  options.external_data = ExternalDataMode::kAlways;
  model.save(path("m.onnx"), options);
  EXPECT_EQ(list_dir(dir()), (std::vector<std::string>{"m.onnx", "m.onnx.data"}));

  Model reloaded = Model::load(path("m.onnx"));
  EXPECT_TRUE(same_tensors(model, reloaded));
  EXPECT_TRUE(reloaded.parameter("fc1.weight").is_view());  // 131,072 bytes: external
  EXPECT_TRUE(reloaded.parameter("fc2.weight").is_view());  // 2,560 bytes: external
  EXPECT_FALSE(info_of(reloaded, "fc1.bias").external);     // 256 bytes: under the 1 KiB threshold
  EXPECT_TRUE(passes_onnx_checker(path("m.onnx")));

  onnx::ModelProto saved = read_model_proto(path("m.onnx"));
  for (const auto& t : saved.graph().initializer())
    if (t.data_location() == TensorProto::EXTERNAL) {
      EXPECT_EQ(t.external_data(0).key(), "location");
      EXPECT_EQ(t.external_data(0).value(), "m.onnx.data");
      EXPECT_EQ(std::stoull(t.external_data(1).value()) % 64, 0u) << t.name() << " offset is not aligned";
    }
}

TEST_F(Export, ZeroThresholdPutsEveryTensorInTheDataFile) {
  Model model = Model::load(kDigits);
  SaveOptions options;
  options.external_data = ExternalDataMode::kAlways;
  options.external_threshold_bytes = 0;
  options.external_data_file = "weights.bin";
  model.save(path("m.onnx"), options);
  EXPECT_EQ(list_dir(dir()), (std::vector<std::string>{"m.onnx", "weights.bin"}));
  Model reloaded = Model::load(path("m.onnx"));
  EXPECT_TRUE(same_tensors(model, reloaded));
  for (const auto& t : reloaded.tensors()) EXPECT_TRUE(t.external) << t.name;
}

TEST_F(Export, DataFileOutsideTheModelFolderIsRefused) {
  Model model = Model::load(kDigits);
  SaveOptions options;
  options.external_data = ExternalDataMode::kAlways;
  for (const std::string bad : {"../w.bin", "sub/w.bin", "/tmp/w.bin"}) {
    options.external_data_file = bad;
    tunnx::Error e = expect_error([&] { model.save(path("m.onnx"), options); });
    EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
    EXPECT_EQ(std::string(e.what()), path("m.onnx").string() + ": external data file '" + bad +
                                         "' must be a plain file name in the model's folder");
  }
  EXPECT_TRUE(list_dir(dir()).empty());
}

TEST_F(Export, ChangedViewParameterIsSavedAndTheOldDataFileIsUntouched) {
  SaveOptions options;
  options.external_data = ExternalDataMode::kAlways;
  Model::load(kDigits).save(path("m.onnx"), options);
  const std::string data_before = read_bytes(path("m.onnx.data"));

  Model model = Model::load(path("m.onnx"));
  model.parameter("fc1.weight").mutable_data_as<float>()[0] = 9;
  EXPECT_EQ(read_bytes(path("m.onnx.data")), data_before);
  fs::create_directories(path("copy"));
  model.save(path("copy") / "m.onnx");
  EXPECT_EQ(Model::load(path("copy") / "m.onnx").parameter("fc1.weight").data_as<float>()[0], 9);
}

TEST_F(Export, ResavingOverItsOwnDataFileKeepsEveryValue) {
  SaveOptions options;
  options.external_data = ExternalDataMode::kAlways;
  Model original = Model::load(kDigits);
  original.save(path("m.onnx"), options);

  Model model = Model::load(path("m.onnx"));  // fc1.weight maps m.onnx.data
  model.parameter("fc2.weight").mutable_data_as<float>()[1] = 5;
  model.save(path("m.onnx"), options);  // replaces the file it maps

  EXPECT_TRUE(model.parameter("fc1.weight").equals(original.parameter("fc1.weight")));
  Model reloaded = Model::load(path("m.onnx"));
  EXPECT_TRUE(same_tensors(model, reloaded));
  EXPECT_EQ(reloaded.parameter("fc2.weight").data_as<float>()[1], 5);
  EXPECT_EQ(list_dir(dir()), (std::vector<std::string>{"m.onnx", "m.onnx.data"}));
}

// ---- Atomic writes ---------------------------------------------------------------------------------

TEST_F(Export, SavingIntoAMissingFolderThrowsAndLeavesNothing) {
  Model model = Model::load(kDigits);
  fs::path target = path("missing") / "m.onnx";
  tunnx::Error e = expect_error([&] { model.save(target); });
  EXPECT_EQ(e.code(), ErrorCode::kIo);
  EXPECT_EQ(std::string(e.what()), target.string() + ": cannot create a file in this folder: No such file or directory");
  EXPECT_FALSE(fs::exists(path("missing")));
  EXPECT_TRUE(list_dir(dir()).empty());
}

TEST_F(Export, SavingIntoAMissingFolderWithExternalDataLeavesNothing) {
  Model model = Model::load(kDigits);
  SaveOptions options;
  options.external_data = ExternalDataMode::kAlways;
  EXPECT_THROW(model.save(path("missing") / "m.onnx", options), tunnx::Error);
  EXPECT_TRUE(list_dir(dir()).empty());
}

TEST_F(Export, SavingOverAFolderThrowsAndLeavesNoTempFile) {
  Model model = Model::load(kDigits);
  fs::create_directories(path("m.onnx"));
  tunnx::Error e = expect_error([&] { model.save(path("m.onnx")); });
  EXPECT_EQ(e.code(), ErrorCode::kIo);
  EXPECT_TRUE(contains(e.what(), "m.onnx: is a directory; cannot write a file there"));
  EXPECT_EQ(list_dir(dir()), (std::vector<std::string>{"m.onnx"}));
}

TEST_F(Export, FailedSaveWithExternalDataLeavesNoDataFile) {
  Model model = Model::load(kDigits);
  fs::create_directories(path("m.onnx"));  // the model file cannot be put in place
  SaveOptions options;
  options.external_data = ExternalDataMode::kAlways;
  EXPECT_THROW(model.save(path("m.onnx"), options), tunnx::Error);
  EXPECT_EQ(list_dir(dir()), (std::vector<std::string>{"m.onnx"}));
}

TEST_F(Export, SavingOverAnExistingFileReplacesItWithoutLeftovers) {
  Model model = Model::load(kDigits);
  model.save(path("m.onnx"));
  const std::string first = read_bytes(path("m.onnx"));
  fs::create_hard_link(path("m.onnx"), path("old_link"));  // still names the first file afterwards

  model.parameter("fc2.bias").mutable_data_as<float>()[0] = -1;
  model.save(path("m.onnx"));

  EXPECT_EQ(list_dir(dir()), (std::vector<std::string>{"m.onnx", "old_link"}));
  // Replaced by rename, not rewritten in place: the old file is intact under its other name.
  EXPECT_EQ(read_bytes(path("old_link")), first);
  EXPECT_EQ(Model::load(path("m.onnx")).parameter("fc2.bias").data_as<float>()[0], -1);
}

// ---- Every small model in the ONNX test data -----------------------------------------------------------

class RoundTripTestData : public TempDirTest, public ::testing::WithParamInterface<std::string> {};

TEST_P(RoundTripTestData, EveryModelRoundTripsWithIdenticalTensors) {
  int models = 0;
  for (const auto& entry : fs::directory_iterator(std::string(TUNNX_TESTDATA_DIR) + "/" + GetParam())) {
    fs::path file = entry.path() / "model.onnx";
    if (!fs::exists(file)) continue;
    SCOPED_TRACE(file.string());
    ++models;
    Model model = Model::load(file);
    fs::path out = path(entry.path().filename().string() + ".onnx");
    model.save(out);
    EXPECT_TRUE(passes_onnx_checker(out));
    Model reloaded = Model::load(out);
    EXPECT_TRUE(same_tensors(model, reloaded));

    onnx::ModelProto a = read_model_proto(file), b = read_model_proto(out);
    ASSERT_EQ(a.graph().node_size(), b.graph().node_size());
    for (int i = 0; i < a.graph().node_size(); ++i) {
      EXPECT_EQ(a.graph().node(i).name(), b.graph().node(i).name());
      EXPECT_EQ(a.graph().node(i).op_type(), b.graph().node(i).op_type());
      EXPECT_EQ(a.graph().node(i).input_size(), b.graph().node(i).input_size());
    }
    ASSERT_EQ(a.graph().initializer_size(), b.graph().initializer_size());
    for (int i = 0; i < a.graph().initializer_size(); ++i)
      EXPECT_EQ(a.graph().initializer(i).name(), b.graph().initializer(i).name());
    EXPECT_TRUE(same_proto(a.graph().input(0), b.graph().input(0)));
    EXPECT_EQ(a.opset_import_size(), b.opset_import_size());
  }
  EXPECT_GT(models, 10);
}

INSTANTIATE_TEST_SUITE_P(Folders, RoundTripTestData, ::testing::Values("simple", "pytorch-converted"),
                         [](const auto& info) {
                           std::string name = info.param;
                           std::replace(name.begin(), name.end(), '-', '_');
                           return name;
                         });

}  // namespace
}  // namespace tunnx_test
