// Real models exported by PyTorch (scripts/make_real_models.py): a ResNet-18-shaped CNN and a 4-layer
// Transformer encoder with dynamic batch and sequence length. One session per model runs batch 1 and
// then batch 64; outputs must match ONNX Runtime's (recorded by the script) within rtol 1e-4, atol 1e-5.
#include <filesystem>
#include <iostream>
#include <map>
#include <string>

#include <gtest/gtest.h>

#include "tunnx/tunnx.h"

namespace {

namespace fs = std::filesystem;
const fs::path kModels = fs::path(TUNNX_SOURCE_DIR) / "tests" / "models";

// Returns the session's op types by count, for what the rewrites at level 2 made of the model.
std::map<std::string, int> expect_matches_onnx_runtime(const std::string& name, const std::string& input_name,
                                                       int level) {
  tunnx::Model model = tunnx::Model::load(kModels / (name + ".onnx"));
  int64_t parameters = 0;
  for (const auto& [pname, t] : model.named_parameters()) parameters += t.numel();
  EXPECT_GE(parameters, 1'000'000) << name << " should be a real-sized model";
  tunnx::Session session(model, tunnx::SessionOptions{.optimization_level = level});
  for (int batch : {1, 64}) {
    std::string stem = name + ".b" + std::to_string(batch);
    tunnx::Tensor input = tunnx::load_npy(kModels / (stem + ".input.npy"));
    tunnx::Tensor expected = tunnx::load_npy(kModels / (stem + ".ort.npy"));
    tunnx::NamedValues out = session.run({{input_name, input}});
    tunnx::Comparison c = tunnx::compare(expected, out.at("logits"), 1e-4, 1e-5);
    std::cout << "[ compare  ] " << stem << " (optimization " << level << "): max abs error " << c.max_abs_error << ", max rel error "
              << c.max_rel_error << " vs ONNX Runtime\n";
    EXPECT_TRUE(c.ok) << stem << ": " << c.detail;
  }
  EXPECT_EQ(session.stats().plans_built, 1);
  std::map<std::string, int> ops;
  for (const auto& k : session.stats().kernels) ++ops[k.op_type];
  return ops;
}

TEST(RealModels, ResNet18ShapedCnnMatchesOnnxRuntimeAtBatch1And64) {
  for (int level : {1, 2}) expect_matches_onnx_runtime("resnet18_narrow", "image", level);
}

TEST(RealModels, TransformerEncoderMatchesOnnxRuntimeAtBatch1And64) {
  std::map<std::string, int> as_written = expect_matches_onnx_runtime("encoder4", "tokens", 1);
  std::map<std::string, int> rewritten = expect_matches_onnx_runtime("encoder4", "tokens", 2);
  // torch spells GELU out (Div, Erf, Add, Mul, Mul) in each of the 4 layers; at level 2 each is one
  // Gelu folded into the feed-forward MatMul before it.
  EXPECT_EQ(as_written["Erf"], 4);
  EXPECT_EQ(rewritten.count("Erf"), 0u);
  EXPECT_EQ(rewritten.count("Gelu"), 0u);
  EXPECT_GE(rewritten["FusedMatMul"], 4);
}

}  // namespace
