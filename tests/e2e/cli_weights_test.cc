// `tunnx run --weights W.safetensors`: tensors copied into the model by name before the run (the
// outputs change exactly as the weights say), refusals that name the tensor, and --output-dir made
// when missing.
#include <algorithm>
#include <fstream>

#include <gtest/gtest.h>

#include "tests/e2e/cli_harness.h"
#include "tunnx/io.h"

namespace tunnx::e2e {
namespace {

const fs::path kSample = fs::path(TUNNX_SOURCE_DIR) / "examples" / "digits_sample.npy";

Tensor model_tensor(const std::string& name) { return Model::load(kExampleModel).parameter(name).clone(); }

ProcessResult run_with(const std::vector<std::string>& extra) {
  std::vector<std::string> args = {"run", kExampleModel.string(), "--input", "input=" + kSample.string()};
  args.insert(args.end(), extra.begin(), extra.end());
  return run_cli(args);
}

// With fc2.weight all zeros the last Gemm adds only its bias: every row of logits is the bias, exactly.
TEST(CliWeights, ZeroWeightsLeaveTheBiasAsLogits) {
  TempFolder temp;
  const fs::path weights = temp.root() / "w.safetensors";
  const std::vector<float> bias = {0.5f, -1.f, 2.25f, 0.f, 3.f, -7.5f, 1e-3f, 42.f, -0.125f, 8.f};
  save_safetensors(weights, {{"fc2.weight", Tensor(DataType::kFloat32, {10, 64})},
                             {"fc2.bias", Tensor::from_vector<float>({10}, bias)}});
  const fs::path out = temp.root() / "a" / "b" / "c";  // made like mkdir -p
  const ProcessResult r = run_with({"--weights", weights.string(), "--output-dir", out.string()});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  const Tensor logits = load_npy(out / "logits.npy");
  ASSERT_EQ(logits.dims(), (std::vector<int64_t>{4, 10}));
  for (int64_t row = 0; row < 4; ++row)
    for (int64_t k = 0; k < 10; ++k) EXPECT_EQ(logits.data_as<float>()[row * 10 + k], bias[k]) << row << "," << k;
}

// The model's own fc2 scaled by 2 (exact in floating point) doubles the logits; without --weights
// the same run gives the model's logits.
TEST(CliWeights, ScaledOwnWeightsScaleTheLogits) {
  TempFolder temp;
  Tensor w = model_tensor("fc2.weight"), b = model_tensor("fc2.bias");
  for (Tensor* t : {&w, &b})
    for (int64_t i = 0; i < t->numel(); ++i) t->mutable_data_as<float>()[i] *= 2;
  const fs::path weights = temp.root() / "scaled.safetensors";
  save_safetensors(weights, {{"fc2.weight", w}, {"fc2.bias", b}});
  ProcessResult r = run_with({"--output-dir", (temp.root() / "plain").string()});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  r = run_with({"--weights", weights.string(), "--output-dir", (temp.root() / "scaled").string()});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  const Tensor plain = load_npy(temp.root() / "plain" / "logits.npy");
  const Tensor scaled = load_npy(temp.root() / "scaled" / "logits.npy");
  ASSERT_EQ(scaled.dims(), plain.dims());
  for (int64_t i = 0; i < plain.numel(); ++i)
    EXPECT_FLOAT_EQ(scaled.data_as<float>()[i], 2 * plain.data_as<float>()[i]) << i;
}

TEST(CliWeights, MismatchesExitOneNamingTheTensor) {
  TempFolder temp;
  struct Case {
    StateDict weights;
    std::vector<std::string> expected;  // in the single stderr line
  };
  const Tensor bias = model_tensor("fc2.bias");
  const std::vector<Case> cases = {
      {{{"fc2.bias", bias}, {"fc3.weight", Tensor(DataType::kFloat32, {2})}},
       {"tensor 'fc3.weight'", "is not a Parameter or buffer of the model"}},
      {{{"fc2.bias", Tensor(DataType::kFloat32, {11})}}, {"tensor 'fc2.bias'", "float32[11]", "float32[10]"}},
      {{{"fc2.bias", Tensor(DataType::kFloat64, {10})}}, {"tensor 'fc2.bias'", "float64[10]", "float32[10]"}},
  };
  const fs::path out = temp.root() / "out";
  for (size_t i = 0; i < cases.size(); ++i) {
    const fs::path weights = temp.root() / ("w" + std::to_string(i) + ".safetensors");
    save_safetensors(weights, cases[i].weights);
    const ProcessResult r = run_with({"--weights", weights.string(), "--output-dir", out.string()});
    SCOPED_TRACE(cases[i].expected.front());
    EXPECT_EQ(r.exit_code, 1) << r.describe();
    EXPECT_EQ(r.out, "") << r.describe();
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.describe();
    EXPECT_EQ(r.err.rfind("tunnx: error: " + weights.string() + ": ", 0), 0u) << r.describe();
    for (const auto& part : cases[i].expected) EXPECT_TRUE(contains(r.err, part)) << r.describe();
    EXPECT_FALSE(fs::exists(out)) << "nothing written on a refusal";
  }
  const ProcessResult r = run_with({"--weights", (temp.root() / "none.safetensors").string()});
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_TRUE(contains(r.err, "none.safetensors: no such file")) << r.describe();
}

TEST(CliWeights, OutputDirThatCannotBeMadeFailsWithOneLine) {
  TempFolder temp;
  const fs::path file = temp.root() / "file";
  std::ofstream(file) << "x";
  const ProcessResult r = run_with({"--output-dir", (file / "sub").string()});
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_TRUE(contains(r.err, (file / "sub").string() + ": cannot create the output folder")) << r.describe();
}

TEST(CliWeights, HelpShowsAnExample) {
  const ProcessResult r = run_cli({"run", "--help"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_TRUE(contains(r.out, "--weights FILE")) << r.out;
  EXPECT_TRUE(contains(r.out, "Example: tunnx run examples/digits_cnn.onnx")) << r.out;
}

}  // namespace
}  // namespace tunnx::e2e
