// The Model API over parameters and buffers, on examples/digits_cnn.onnx: order, shared storage,
// requires_grad by glob, state_dict and load_state_dict.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "tests/importer/model_builder.h"

namespace tunnx_test {
namespace {

using tunnx::DataType;
using tunnx::ErrorCode;
using tunnx::Model;
using tunnx::Tensor;
using tunnx::TensorRole;

class DigitsCnn : public ::testing::Test {
 protected:
  Model model = Model::load(std::string(TUNNX_SOURCE_DIR) + "/examples/digits_cnn.onnx");

  static tunnx::StateDict cloned(const tunnx::StateDict& dict) {
    tunnx::StateDict out;
    for (const auto& [name, t] : dict) out.emplace_back(name, t.clone());
    return out;
  }
  static Tensor filled(const Tensor& like, float value) {
    Tensor t(like.dtype(), like.dims());
    float* p = t.mutable_data_as<float>();
    for (int64_t i = 0; i < t.numel(); ++i) p[i] = value;
    return t;
  }
  // A snapshot to compare against after a failed load_state_dict.
  tunnx::StateDict snapshot() const { return cloned(model.state_dict()); }
  ::testing::AssertionResult unchanged_since(const tunnx::StateDict& before) const {
    tunnx::StateDict now = model.state_dict();
    for (size_t i = 0; i < now.size(); ++i)
      if (!now[i].second.equals(before[i].second))
        return ::testing::AssertionFailure() << now[i].first << " changed";
    return ::testing::AssertionSuccess();
  }
};

const std::vector<std::string> kDigitsParameters{"conv1.weight", "conv1.bias", "bn1.weight", "bn1.bias",
                                                 "fc1.weight",   "fc1.bias",   "fc2.weight", "fc2.bias"};
const std::vector<std::string> kDigitsBuffers{"bn1.running_mean", "bn1.running_var", "onnx::Reshape_17"};

TEST_F(DigitsCnn, ParametersInFileOrder) {
  EXPECT_EQ(names_of(model.named_parameters()), kDigitsParameters);
  for (const auto& name : kDigitsParameters) EXPECT_TRUE(is_parameter(model, name));
}

TEST_F(DigitsCnn, BuffersInFileOrder) {
  EXPECT_EQ(names_of(model.named_buffers()), kDigitsBuffers);
  for (const auto& name : kDigitsBuffers) EXPECT_TRUE(is_buffer(model, name));
}

TEST_F(DigitsCnn, TrainableElementCount) {
  int64_t elements = 0;
  for (const auto& [name, t] : model.named_parameters()) elements += t.numel();
  EXPECT_EQ(elements, 33578);
}

TEST_F(DigitsCnn, StateDictHasAllElevenInFileOrder) {
  EXPECT_EQ(names_of(model.state_dict()),
            (std::vector<std::string>{"conv1.weight", "conv1.bias", "bn1.weight", "bn1.bias", "bn1.running_mean",
                                      "bn1.running_var", "onnx::Reshape_17", "fc1.weight", "fc1.bias", "fc2.weight",
                                      "fc2.bias"}));
}

TEST_F(DigitsCnn, ParameterSharesStorageWithTheModel) {
  Tensor bias = model.parameter("fc2.bias");
  EXPECT_TRUE(bias.shares_storage_with(model.named_parameters().back().second));
  bias.mutable_data_as<float>()[0] = 123;
  EXPECT_EQ(model.state_dict().back().second.data_as<float>()[0], 123);
}

TEST_F(DigitsCnn, ParameterReturnsBuffersToo) {
  EXPECT_EQ(model.parameter("onnx::Reshape_17").dtype(), DataType::kInt64);
}

TEST_F(DigitsCnn, UnknownNameThrowsNotFound) {
  tunnx::Error e = expect_error([&] { model.parameter("fc3.weight"); });
  EXPECT_EQ(e.code(), ErrorCode::kNotFound);
  EXPECT_STREQ(e.what(), "tensor 'fc3.weight': no parameter or buffer of this name");
  EXPECT_EQ(expect_error([&] { model.requires_grad(std::string("fc3.weight")); }).code(), ErrorCode::kNotFound);
}

TEST_F(DigitsCnn, RequiresGradGlobFreezesTheFullyConnectedLayers) {
  EXPECT_EQ(model.requires_grad("fc*", false), 4u);
  for (const char* name : {"fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"})
    EXPECT_FALSE(model.requires_grad(std::string(name))) << name;
  EXPECT_TRUE(model.requires_grad(std::string("conv1.weight")));
  EXPECT_FALSE(info_of(model, "fc1.weight").requires_grad);
  EXPECT_EQ(info_of(model, "fc1.weight").role, TensorRole::kParameter);  // frozen, still a Parameter
  EXPECT_EQ(model.requires_grad("fc*", true), 4u);
  EXPECT_TRUE(model.requires_grad(std::string("fc2.bias")));
}

TEST_F(DigitsCnn, StarGlobCountsParametersOnly) {
  EXPECT_EQ(model.requires_grad("*", false), 8u);
  EXPECT_EQ(model.requires_grad("*", true), 8u);
  for (const auto& name : kDigitsBuffers) EXPECT_TRUE(is_buffer(model, name));
}

TEST_F(DigitsCnn, GlobMatchingNothingThrowsNotFound) {
  tunnx::Error e = expect_error([&] { model.requires_grad("decoder.*", false); });
  EXPECT_EQ(e.code(), ErrorCode::kNotFound);
  EXPECT_STREQ(e.what(), "no parameter matches 'decoder.*'");
}

TEST_F(DigitsCnn, GlobMatchingOnlyBuffersCannotEnableGradients) {
  tunnx::Error e = expect_error([&] { model.requires_grad("bn1.running_*", true); });
  EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  EXPECT_STREQ(e.what(), "'bn1.running_*' matches only buffers, which are never trained");
  EXPECT_FALSE(model.requires_grad(std::string("bn1.running_mean")));
}

TEST_F(DigitsCnn, GlobMatchingOnlyBuffersWithFalseChangesNothing) {
  EXPECT_EQ(model.requires_grad("bn1.running_*", false), 0u);
}

// ---- load_state_dict ---------------------------------------------------------------------------

TEST_F(DigitsCnn, LoadStateDictCopiesValuesIntoTheModelsTensors) {
  Tensor held = model.parameter("fc2.bias");
  tunnx::StateDict state = cloned(model.state_dict());
  state.back().second = filled(held, 0.5f);
  tunnx::LoadStateDictResult result = model.load_state_dict(state);
  EXPECT_TRUE(result.missing_keys.empty());
  EXPECT_TRUE(result.unexpected_keys.empty());
  EXPECT_EQ(held.data_as<float>()[9], 0.5f);  // a handle taken before sees the new values
  EXPECT_FALSE(held.shares_storage_with(state.back().second));
  state.back().second.mutable_data_as<float>()[9] = 7;  // the model did not adopt the caller's tensor
  EXPECT_EQ(model.parameter("fc2.bias").data_as<float>()[9], 0.5f);
}

TEST_F(DigitsCnn, LoadingItsOwnStateDictChangesNothing) {
  tunnx::StateDict before = snapshot();
  model.load_state_dict(model.state_dict());
  EXPECT_TRUE(unchanged_since(before));
}

TEST_F(DigitsCnn, StrictLoadReportsMissingAndUnexpectedKeysAndChangesNothing) {
  tunnx::StateDict before = snapshot();
  tunnx::StateDict state = cloned(model.state_dict());
  state.front().second = filled(state.front().second, 9);  // would change conv1.weight
  state.pop_back();                                          // fc2.bias missing
  state.emplace_back("extra", Tensor(DataType::kFloat32, {1}));
  tunnx::Error e = expect_error([&] { model.load_state_dict(state); });
  EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  EXPECT_STREQ(e.what(), "load_state_dict(strict): missing keys: fc2.bias; unexpected keys: extra");
  EXPECT_TRUE(unchanged_since(before));
}

TEST_F(DigitsCnn, ShapeMismatchNamesTheTensorAndChangesNothing) {
  tunnx::StateDict before = snapshot();
  tunnx::StateDict state = cloned(model.state_dict());
  state.front().second = filled(state.front().second, 9);
  for (auto& [name, t] : state)
    if (name == "fc1.bias") t = Tensor(DataType::kFloat32, {63});
  tunnx::Error e = expect_error([&] { model.load_state_dict(state, /*strict=*/false); });
  EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  EXPECT_STREQ(e.what(), "tensor 'fc1.bias': shape mismatch (shapes model [64], state dict [63])");
  EXPECT_TRUE(unchanged_since(before));
}

TEST_F(DigitsCnn, DtypeMismatchNamesTheTensorAndChangesNothing) {
  tunnx::StateDict before = snapshot();
  tunnx::StateDict state = cloned(model.state_dict());
  state.front().second = filled(state.front().second, 9);
  for (auto& [name, t] : state)
    if (name == "fc1.bias") t = Tensor(DataType::kFloat64, {64});
  tunnx::Error e = expect_error([&] { model.load_state_dict(state); });
  EXPECT_EQ(e.code(), ErrorCode::kInvalidArgument);
  EXPECT_STREQ(e.what(), "tensor 'fc1.bias': dtype mismatch: model has float32, state dict has float64");
  EXPECT_TRUE(unchanged_since(before));
}

TEST_F(DigitsCnn, DuplicateKeyIsRejected) {
  tunnx::StateDict state{{"fc1.bias", model.parameter("fc1.bias").clone()},
                         {"fc1.bias", model.parameter("fc1.bias").clone()}};
  tunnx::Error e = expect_error([&] { model.load_state_dict(state, false); });
  EXPECT_STREQ(e.what(), "tensor 'fc1.bias': state dict names this tensor twice");
}

TEST_F(DigitsCnn, NonStrictLoadReturnsMissingAndUnexpectedAndAppliesTheRest) {
  Tensor new_bias = filled(model.parameter("fc1.bias"), 2);
  tunnx::StateDict state{{"extra", Tensor(DataType::kFloat32, {1})}, {"fc1.bias", new_bias}};
  tunnx::LoadStateDictResult result = model.load_state_dict(state, /*strict=*/false);
  EXPECT_EQ(result.unexpected_keys, (std::vector<std::string>{"extra"}));
  std::vector<std::string> missing = names_of(model.state_dict());
  missing.erase(std::find(missing.begin(), missing.end(), "fc1.bias"));
  EXPECT_EQ(result.missing_keys, missing);  // in file order
  EXPECT_TRUE(model.parameter("fc1.bias").equals(new_bias));
}

}  // namespace
}  // namespace tunnx_test
