// ai.onnx.ml: LabelEncoder, TreeEnsemble, ArrayFeatureExtractor and Binarizer on hand-computed cases.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "runtime/core/ops/gradient.h"
#include "tests/ops/node_runner.h"

namespace tunnx_test {
namespace {

using namespace tunnx;
using ops::attr;

constexpr const char* kMl = "ai.onnx.ml";

template <typename T> std::vector<T> elements(const Value& v) {
  const Tensor& t = v.tensor();
  return std::vector<T>(t.data_as<T>(), t.data_as<T>() + t.numel());
}

Value run_ml(const std::string& op, int64_t opset, std::vector<Tensor> inputs, std::vector<ir::Attribute> attributes) {
  return run_one_node({.domain = kMl, .opset = opset, .op_type = op, .inputs = std::move(inputs),
                       .attributes = std::move(attributes)})[0];
}

// ---- LabelEncoder ---------------------------------------------------------------------------------

TEST(LabelEncoder, StringsToIntsWithDefault) {
  Value y = run_ml("LabelEncoder", 2, {Tensor::from_vector<std::string>({2, 2}, {"b", "z", "a", "b"})},
                   {strings_attr("keys_strings", {"a", "b"}), attr("values_int64s", std::vector<int64_t>{5, 6}),
                    attr("default_int64", int64_t{-7})});
  EXPECT_EQ(y.tensor().dims(), (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(elements<int64_t>(y), (std::vector<int64_t>{6, -7, 5, 6}));
}

TEST(LabelEncoder, FloatKeysMatchNaNAndUseDefaultString) {
  Value y = run_ml("LabelEncoder", 2, {Tensor::from_vector<float>({3}, {NAN, 1.5f, 2.0f})},
                   {attr("keys_floats", std::vector<float>{1.5f, NAN}), strings_attr("values_strings", {"one", "nan"})});
  EXPECT_EQ(elements<std::string>(y), (std::vector<std::string>{"nan", "one", "_Unused"}));
}

TEST(LabelEncoder, TensorValuesKeepTheirDtype) {
  // Opset 4: values and default as int16 tensors; a repeated key maps to its last value.
  Value y = run_ml("LabelEncoder", 4, {Tensor::from_vector<int64_t>({3}, {3, 4, 9})},
                   {attr("keys_int64s", std::vector<int64_t>{3, 4, 3}),
                    tensor_attr("values_tensor", Tensor::from_vector<int16_t>({3}, {10, 20, 30})),
                    tensor_attr("default_tensor", Tensor::from_vector<int16_t>({1}, {-1}))});
  EXPECT_EQ(y.tensor().dtype(), DataType::kInt16);
  EXPECT_EQ(elements<int16_t>(y), (std::vector<int16_t>{30, 20, -1}));
}

TEST(LabelEncoder, RejectsMismatchedKeysAndValues) {
  std::string why = error_of([] {
    run_ml("LabelEncoder", 2, {Tensor::from_vector<int64_t>({1}, {1})},
           {attr("keys_int64s", std::vector<int64_t>{1, 2}), attr("values_int64s", std::vector<int64_t>{1})});
  });
  EXPECT_NE(why.find("node 'node' (LabelEncoder)"), std::string::npos) << why;
  EXPECT_NE(why.find("keys and values must have the same length, got 2 and 1"), std::string::npos) << why;
  why = error_of([] {
    run_ml("LabelEncoder", 4, {Tensor::from_vector<int32_t>({1}, {1})},
           {attr("keys_int64s", std::vector<int64_t>{1}), attr("values_int64s", std::vector<int64_t>{1})});
  });
  EXPECT_NE(why.find("X is int32 but the keys are int64"), std::string::npos) << why;
}

// ---- TreeEnsemble ---------------------------------------------------------------------------------
// Tree A (root 0): node 0 x0 <= 0.5 ? leaf 0 : node 1; node 1 x1 < 2 ? leaf 1 : leaf 2.
// Tree B (root 2): node 2 x1 in {1, 5} ? leaf 3 : leaf 4.
// Leaves: weights 1, 2, 3, 10, 20 on targets 0, 1, 1, 0, 0.

std::vector<ir::Attribute> forest(std::vector<int64_t> roots, int64_t aggregate, int64_t post,
                                  std::vector<int64_t> missing_true = {}) {
  std::vector<ir::Attribute> a = {
      attr("nodes_featureids", std::vector<int64_t>{0, 1, 1}),
      tensor_attr("nodes_modes", Tensor::from_vector<uint8_t>({3}, {0, 1, 6})),
      tensor_attr("nodes_splits", Tensor::from_vector<float>({3}, {0.5f, 2.0f, NAN})),
      attr("nodes_truenodeids", std::vector<int64_t>{0, 1, 3}),
      attr("nodes_trueleafs", std::vector<int64_t>{1, 1, 1}),
      attr("nodes_falsenodeids", std::vector<int64_t>{1, 2, 4}),
      attr("nodes_falseleafs", std::vector<int64_t>{0, 1, 1}),
      tensor_attr("membership_values", Tensor::from_vector<float>({3}, {5.0f, 1.0f, NAN})),
      tensor_attr("leaf_weights", Tensor::from_vector<double>({5}, {1, 2, 3, 10, 20})),
      attr("leaf_targetids", std::vector<int64_t>{0, 1, 1, 0, 0}),
      attr("n_targets", int64_t{2}),
      attr("tree_roots", roots),
      attr("aggregate_function", aggregate),
      attr("post_transform", post)};
  if (!missing_true.empty()) a.push_back(attr("nodes_missing_value_tracks_true", missing_true));
  return a;
}

Tensor forest_x() { return Tensor::from_vector<float>({4, 2}, {0, 0, 1, 1, 1, 5, NAN, 0}); }

TEST(TreeEnsemble, OneTreeWithMissingValues) {
  Value y = run_ml("TreeEnsemble", 5, {forest_x()}, forest({0}, 1, 0));
  EXPECT_EQ(y.tensor().dims(), (std::vector<int64_t>{4, 2}));
  EXPECT_EQ(elements<float>(y), (std::vector<float>{1, 0, 0, 2, 0, 3, 0, 2}));
  // A NaN x0 takes node 0's true branch once its missing values track true.
  y = run_ml("TreeEnsemble", 5, {forest_x()}, forest({0}, 1, 0, {1, 0, 0}));
  EXPECT_EQ(elements<float>(y), (std::vector<float>{1, 0, 0, 2, 0, 3, 1, 0}));
}

TEST(TreeEnsemble, SumAverageAndSetMembership) {
  Value sum = run_ml("TreeEnsemble", 5, {forest_x()}, forest({0, 2}, 1, 0));
  EXPECT_EQ(elements<float>(sum), (std::vector<float>{21, 0, 10, 2, 10, 3, 20, 2}));
  Value average = run_ml("TreeEnsemble", 5, {forest_x()}, forest({0, 2}, 0, 0));
  EXPECT_EQ(elements<float>(average), (std::vector<float>{10.5f, 0, 5, 1, 5, 1.5f, 10, 1}));
}

TEST(TreeEnsemble, LogisticPostTransform) {
  Value y = run_ml("TreeEnsemble", 5, {Tensor::from_vector<double>({1, 2}, {0, 0})}, forest({0}, 1, 2));
  std::vector<double> v = elements<double>(y);
  EXPECT_NEAR(v[0], 1 / (1 + std::exp(-1.0)), 1e-12);
  EXPECT_NEAR(v[1], 0.5, 1e-12);
}

TEST(TreeEnsemble, RejectsCyclesAndMissingFeatures) {
  std::vector<ir::Attribute> cyclic = forest({0}, 1, 0);
  cyclic[5] = attr("nodes_falsenodeids", std::vector<int64_t>{1, 0, 4});  // node 1 false -> node 0
  cyclic[6] = attr("nodes_falseleafs", std::vector<int64_t>{0, 0, 1});
  std::string why = error_of([&] { run_ml("TreeEnsemble", 5, {forest_x()}, cyclic); });
  EXPECT_NE(why.find("node 'node' (TreeEnsemble)"), std::string::npos) << why;
  EXPECT_NE(why.find("the tree at root 0 has a cycle through node 0"), std::string::npos) << why;
  why = error_of([] { run_ml("TreeEnsemble", 5, {Tensor::from_vector<float>({1, 1}, {0})}, forest({0}, 1, 0)); });
  EXPECT_NE(why.find("a node tests feature 1 but X"), std::string::npos) << why;
}

// ---- ArrayFeatureExtractor, Binarizer ------------------------------------------------------------------

TEST(ArrayFeatureExtractor, GathersFromTheLastAxis) {
  Value z = run_ml("ArrayFeatureExtractor", 1,
                   {Tensor::from_vector<int32_t>({2, 3}, {1, 2, 3, 4, 5, 6}), Tensor::from_vector<int64_t>({2}, {2, 0})}, {});
  EXPECT_EQ(z.tensor().dims(), (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(elements<int32_t>(z), (std::vector<int32_t>{3, 1, 6, 4}));
  // A 1-D X gives one row.
  z = run_ml("ArrayFeatureExtractor", 1,
             {Tensor::from_vector<std::string>({3}, {"a", "b", "c"}), Tensor::from_vector<int64_t>({1, 1}, {1})}, {});
  EXPECT_EQ(z.tensor().dims(), (std::vector<int64_t>{1, 1}));
  EXPECT_EQ(elements<std::string>(z), (std::vector<std::string>{"b"}));
}

TEST(ArrayFeatureExtractor, RejectsIndicesOutOfRange) {
  std::string why = error_of([] {
    run_ml("ArrayFeatureExtractor", 1,
           {Tensor::from_vector<float>({2, 3}, {1, 2, 3, 4, 5, 6}), Tensor::from_vector<int64_t>({1}, {3})}, {});
  });
  EXPECT_NE(why.find("node 'node' (ArrayFeatureExtractor)"), std::string::npos) << why;
  EXPECT_NE(why.find("Y holds index 3, outside [0, 3)"), std::string::npos) << why;
}

TEST(Binarizer, ThresholdIsExclusive) {
  Value y = run_ml("Binarizer", 1, {Tensor::from_vector<float>({4}, {-1.0f, 0.5f, 0.51f, NAN})},
                   {attr("threshold", 0.5f)});
  EXPECT_EQ(elements<float>(y), (std::vector<float>{0, 0, 1, 0}));
  y = run_ml("Binarizer", 1, {Tensor::from_vector<int64_t>({2}, {1, 2})}, {attr("threshold", 1.0f)});
  EXPECT_EQ(elements<int64_t>(y), (std::vector<int64_t>{0, 1}));
}

TEST(Binarizer, RejectsStrings) {
  std::string why = error_of(
      [] { run_ml("Binarizer", 1, {Tensor::from_vector<std::string>({1}, {"a"})}, {attr("threshold", 0.0f)}); });
  EXPECT_NE(why.find("Binarizer"), std::string::npos) << why;
  EXPECT_NE(why.find("string"), std::string::npos) << why;
}

}  // namespace
}  // namespace tunnx_test
