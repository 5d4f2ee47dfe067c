// The kernel registry: every op of the CPU runtime's op set (tests/conformance/op_set.txt) has a
// kernel for every opset from its introduction to 28 (or to its deprecation), and lookups say
// precisely what is missing.
#include <algorithm>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <gtest/gtest.h>

#include "onnx/defs/schema.h"
#include "runtime/core/kernel_registry.h"

namespace {

using tunnx::DataType;
using tunnx::DeviceType;
using tunnx::KernelRegistry;

std::set<std::string> op_set() {
  std::ifstream in(std::string(TUNNX_SOURCE_DIR) + "/tests/conformance/op_set.txt");
  std::set<std::string> ops;
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream words(line);
    for (std::string op; words >> op;) ops.insert(op);
  }
  return ops;
}

// The first opset where ONNX defines `op`: from libonnx's schemas, which know opsets up to 17, or
// from the table for newer ops. LayerNormalization is fixed at 17 too: once a test has loaded a model, the registry also holds ONNX
// Runtime's version-1 schema that importer/onnx_validate.cc registers.
int first_opset(const std::string& op) {
  // onnx 1.23's schemas: the ops introduced after opset 17.
  static const std::map<std::string, int> known_first_opsets = {
      {"AffineGrid", 20},     {"Attention", 23},          {"BitCast", 26},         {"BitwiseAnd", 18},
      {"BitwiseNot", 18},     {"BitwiseOr", 18},          {"BitwiseXor", 18},      {"CausalConvWithState", 27},
      {"CenterCropPad", 18},  {"Col2Im", 18},             {"CumProd", 26},         {"DeformConv", 19},
      {"Gelu", 20},           {"GroupNormalization", 18}, {"ImageDecoder", 20},    {"LayerNormalization", 17},
      {"LinearAttention", 27}, {"Mish", 18},              {"RegexFullMatch", 20},  {"RMSNormalization", 23},
      {"RotaryEmbedding", 23}, {"StringConcat", 20},      {"StringSplit", 20},     {"SwiGLU", 28},
      {"Swish", 24},          {"TensorScatter", 24}};
  if (auto it = known_first_opsets.find(op); it != known_first_opsets.end()) return it->second;
  for (int v = 1; v <= 17; ++v)
    if (onnx::OpSchemaRegistry::Schema(op, v, "")) return v;
  return 0;
}

// The last opset (up to 28, the newest onnx 1.23 defines) where `op` is not deprecated (Upsample ends
// at 9).
int last_opset(const std::string& op) {
  for (int v = first_opset(op); v <= 17; ++v)
    if (const auto* schema = onnx::OpSchemaRegistry::Schema(op, v, ""); schema && schema->Deprecated()) return v - 1;
  return 28;
}

TEST(KernelRegistry, EveryOpOfTheSetHasAKernelAtEveryOpsetItExistsIn) {
  const KernelRegistry& registry = KernelRegistry::global();
  std::set<std::string> ops = op_set();
  ASSERT_GT(ops.size(), 150u);
  for (const auto& op : ops) {
    int first = first_opset(op);
    ASSERT_GT(first, 0) << op << " is not an ONNX operator";
    for (int opset = first; opset <= last_opset(op); ++opset) {
      std::string why;
      EXPECT_NE(registry.find("", op, opset, DeviceType::kCpu, {}, &why), nullptr) << op << " at opset " << opset << ": " << why;
    }
  }
}

TEST(KernelRegistry, LookupFailuresSayWhatIsMissing) {
  const KernelRegistry& registry = KernelRegistry::global();
  std::string why;
  EXPECT_EQ(registry.find("", "NoSuchOp", 17, DeviceType::kCpu, {}, &why), nullptr);
  EXPECT_EQ(why, "operator NoSuchOp is not supported");
  EXPECT_EQ(registry.find("", "Gelu", 17, DeviceType::kCpu, {}, &why), nullptr);
  EXPECT_EQ(why, "operator Gelu is not supported at opset 17");
  EXPECT_EQ(registry.find("", "Softmax", 13, DeviceType::kCpu, {DataType::kInt64}, &why), nullptr);
  EXPECT_EQ(why, "operator Softmax (opset 13) does not support dtype int64");
  EXPECT_EQ(registry.find("", "Relu", 14, DeviceType::kCuda, {}, &why), nullptr);
}

}  // namespace
