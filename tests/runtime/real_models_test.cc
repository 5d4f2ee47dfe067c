// Real models exported by PyTorch (scripts/make_real_models.py): a ResNet-18-shaped CNN, a 4-layer
// Transformer encoder with dynamic batch and sequence length, torchvision's MobileNetV3-small, a
// YOLOv8-style detector, a BiLSTM recognizer and a Llama-style decoder block at opset 23. One session per model runs each recorded batch; outputs
// must match ONNX Runtime's (recorded by the script) within rtol 1e-4, atol 1e-5.
#include <filesystem>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tunnx/tunnx.h"

namespace {

namespace fs = std::filesystem;
const fs::path kModels = fs::path(TUNNX_SOURCE_DIR) / "tests" / "models";

// One fixture: its input and output names, the batches recorded, and how many parameters make it
// real-sized.
struct Fixture {
  std::string name, input = "image", output = "logits";
  std::vector<int> batches = {1, 64};
  int64_t min_parameters = 1'000'000;
};

// Returns the session's op types by count, for what the rewrites at level 2 made of the model.
std::map<std::string, int> expect_matches_onnx_runtime(const Fixture& f, int level) {
  tunnx::Model model = tunnx::Model::load(kModels / (f.name + ".onnx"));
  int64_t parameters = 0;
  for (const auto& [pname, t] : model.named_parameters()) parameters += t.numel();
  EXPECT_GE(parameters, f.min_parameters) << f.name << " should be a real-sized model";
  tunnx::Session session(model, tunnx::SessionOptions{.optimization_level = level});
  for (int batch : f.batches) {
    std::string stem = f.name + ".b" + std::to_string(batch);
    tunnx::Tensor input = tunnx::load_npy(kModels / (stem + ".input.npy"));
    tunnx::Tensor expected = tunnx::load_npy(kModels / (stem + ".ort.npy"));
    tunnx::NamedValues out = session.run({{f.input, input}});
    tunnx::Comparison c = tunnx::compare(expected, out.at(f.output).tensor(), 1e-4, 1e-5);
    std::cout << "[ compare  ] " << stem << " (optimization " << level << "): max abs error " << c.max_abs_error << ", max rel error "
              << c.max_rel_error << " vs ONNX Runtime\n";
    EXPECT_TRUE(c.ok) << stem << ": " << c.detail;
  }
  EXPECT_EQ(session.stats().plans_built, 1);
  std::map<std::string, int> ops;
  for (const auto& k : session.stats().kernels) ++ops[k.op_type];
  return ops;
}

std::map<std::string, int> expect_matches_onnx_runtime(const std::string& name, const std::string& input_name, int level) {
  return expect_matches_onnx_runtime(Fixture{.name = name, .input = input_name}, level);
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

// Architectures as people export them (scripts/make_real_models.py, random weights): torchvision's
// MobileNetV3-small (depthwise convolutions, HardSwish, squeeze-excite), a YOLOv8-style detector (SiLU,
// Upsample + Concat neck, DFL softmax over a transposed view, anchor grid) and a CRNN-shaped
// recognizer (a 2-layer bidirectional LSTM), each at batch 1 and 4, as written and rewritten.
TEST(RealModels, TorchExportedArchitecturesMatchOnnxRuntime) {
  const Fixture fixtures[] = {
      {.name = "mobilenet_v3_small", .batches = {1, 4}},
      {.name = "yolo_style_detector", .output = "detections", .batches = {1, 4}, .min_parameters = 500'000},
      {.name = "bilstm_recognizer", .output = "log_probs", .batches = {1, 4}, .min_parameters = 200'000},
  };
  for (const Fixture& f : fixtures)
    for (int level : {1, 2}) expect_matches_onnx_runtime(f, level);
}

// torch.onnx.export (dynamo, opset 23) of a Llama-style decoder block: nn.RMSNorm, torch.onnx.ops'
// rotary_embedding and causal grouped-query scaled_dot_product_attention come out as ONNX's
// RMSNormalization, RotaryEmbedding and Attention nodes (8 query heads over 2 key/value heads), which
// run on their fast paths here (float32).
TEST(RealModels, DecoderBlockWithOpset23AttentionMatchesOnnxRuntime) {
  const Fixture f{.name = "decoder_block", .input = "hidden_states", .output = "output", .batches = {1, 2},
                  .min_parameters = 700'000};
  for (int level : {1, 2}) {
    std::map<std::string, int> ops = expect_matches_onnx_runtime(f, level);
    EXPECT_EQ(ops["Attention"], 1);
    EXPECT_EQ(ops["RMSNormalization"], 2);
    EXPECT_EQ(ops["RotaryEmbedding"], 2);
    // Level 2 keeps Q, K, V and Y in the projections' [B, S, N * H] layout (passes/attention_layout.h):
    // the exporter's four Transposes are gone.
    EXPECT_EQ(ops["Transpose"], level == 2 ? 0 : 4) << "level " << level;
  }
}

}  // namespace
