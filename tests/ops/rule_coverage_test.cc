// Every op the training issue lists has a gradient rule at the opsets models use today, and every
// com.tunnx op that rules emit has a CPU kernel.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "runtime/core/kernel_registry.h"
#include "runtime/core/ops/gradient.h"

namespace {

using tunnx::DeviceType;
using tunnx::KernelRegistry;
using tunnx::ops::GradientRegistry;

TEST(RuleCoverage, EveryListedOpHasARule) {
  const char* ops[] = {
      "MatMul", "Gemm", "Add", "Sub", "Mul", "Div", "Neg", "Pow", "Sqrt", "Reciprocal", "Exp", "Log", "Abs",
      "Relu", "LeakyRelu", "Elu", "Selu", "Sigmoid", "Tanh", "Erf", "Softplus", "HardSigmoid", "HardSwish",
      "Clip", "Softmax", "LogSoftmax", "LayerNormalization", "BatchNormalization", "InstanceNormalization",
      "Conv", "ConvTranspose", "MaxPool", "AveragePool", "GlobalAveragePool", "Flatten", "Reshape",
      "Transpose", "Concat", "Split", "Slice", "Gather", "GatherElements", "Squeeze", "Unsqueeze", "Expand",
      "Tile", "Pad", "ReduceMean", "ReduceSum", "ReduceMax", "Where", "Dropout", "Identity", "Cast", "Sum",
      "Mean", "Max", "Min", "Einsum", "SoftmaxCrossEntropyLoss", "NegativeLogLikelihoodLoss"};
  const GradientRegistry& rules = GradientRegistry::global();
  for (const char* op : ops)
    for (int64_t opset : {17, 21}) EXPECT_NE(rules.find("", op, opset), nullptr) << op << " at opset " << opset;
  EXPECT_NE(rules.find("", "Gelu", 20), nullptr);
  for (const char* op : {"FusedMatMul", "Gelu", "Loss", "BatchNormTrain", "TrainDropout"})
    EXPECT_NE(rules.find("com.tunnx", op, 1), nullptr) << "com.tunnx:" << op;
}

TEST(RuleCoverage, EveryGradientOpHasAKernel) {
  const char* ops[] = {"SumToShape", "Scale", "ZerosLike", "OnesLike", "CastLike", "ReduceGrad", "ReduceMaxGrad",
                       "GatherGrad", "GatherElementsGrad", "SliceGrad", "PadGrad", "ConcatGrad", "TileGrad",
                       "ElementwiseGrad", "PowGrad", "SoftmaxGrad", "LogSoftmaxGrad", "BatchNormTrain",
                       "BatchNormGrad", "InstanceNormGrad", "LayerNormGrad", "ConvGrad", "ConvTransposeGrad",
                       "MaxPoolGrad", "AveragePoolGrad", "GlobalPoolGrad", "Loss", "LossGrad",
                       "SoftmaxCrossEntropyLossGrad", "NegativeLogLikelihoodLossGrad", "TrainDropout", "DropoutGrad"};
  for (const char* op : ops)
    EXPECT_NE(KernelRegistry::global().find_reference("com.tunnx", op, 1, DeviceType::kCpu), nullptr)
        << "com.tunnx:" << op;
}

}  // namespace
