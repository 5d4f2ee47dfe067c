// tunnx::Error: one line that says where things went wrong, built from the context's set fields.
#include <gtest/gtest.h>

#include <stdexcept>

#include "tunnx/status.h"

namespace tunnx {
namespace {

TEST(Error, MessageAloneIsTheWholeText) {
  Error e(ErrorCode::kNotFound, "no such file");
  EXPECT_STREQ(e.what(), "no such file");
  EXPECT_EQ(e.message(), "no such file");
  EXPECT_EQ(e.code(), ErrorCode::kNotFound);
  EXPECT_TRUE(e.context().file.empty());
}

TEST(Error, EveryContextFieldInOrder) {
  Error e(ErrorCode::kInvalidModel, "bad dims",
          {.file = "m.onnx", .node = "conv1", .op_type = "Conv", .tensor = "w", .field = "dims", .shapes = "[1,2]"});
  EXPECT_STREQ(e.what(), "m.onnx: node 'conv1' (Conv): tensor 'w': field 'dims': bad dims (shapes [1,2])");
  EXPECT_EQ(e.message(), "bad dims");  // the message stays bare
}

TEST(Error, NodeWithoutOpType) {
  Error e(ErrorCode::kInvalidModel, "m", {.node = "n1"});
  EXPECT_STREQ(e.what(), "node 'n1': m");
}

TEST(Error, OpTypeWithoutNodeName) {
  Error e(ErrorCode::kInvalidModel, "m", {.op_type = "Relu"});
  EXPECT_STREQ(e.what(), "node of type Relu: m");
}

TEST(Error, FileAndTensorOnly) {
  Error e(ErrorCode::kIo, "cannot open", {.file = "/x/y.data", .tensor = "t"});
  EXPECT_STREQ(e.what(), "/x/y.data: tensor 't': cannot open");
}

TEST(Error, ShapesAloneFollowTheMessage) {
  Error e(ErrorCode::kLimitExceeded, "too big", {.shapes = "[9,9]"});
  EXPECT_STREQ(e.what(), "too big (shapes [9,9])");
}

TEST(Error, IsAStdRuntimeError) {
  try {
    throw Error(ErrorCode::kInternal, "boom", {.field = "f"});
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "field 'f': boom");
    return;
  }
  FAIL() << "not caught as std::runtime_error";
}

TEST(Error, WithContextFillsEmptyFields) {
  Error inner(ErrorCode::kInvalidModel, "bad", {.tensor = "w"});
  Error outer = inner.with_context({.file = "model.onnx", .field = "raw_data"});
  EXPECT_STREQ(outer.what(), "model.onnx: tensor 'w': field 'raw_data': bad");
  EXPECT_EQ(outer.context().file, "model.onnx");
}

TEST(Error, WithContextKeepsFieldsAlreadySet) {
  Error inner(ErrorCode::kInvalidModel, "bad",
              {.file = "weights.bin", .node = "inner", .op_type = "MatMul", .tensor = "w", .shapes = "[1]"});
  Error outer = inner.with_context(
      {.file = "model.onnx", .node = "outer", .op_type = "If", .tensor = "x", .field = "f", .shapes = "[2]"});
  EXPECT_EQ(outer.context().file, "weights.bin");
  EXPECT_EQ(outer.context().node, "inner");
  EXPECT_EQ(outer.context().op_type, "MatMul");
  EXPECT_EQ(outer.context().tensor, "w");
  EXPECT_EQ(outer.context().field, "f");
  EXPECT_EQ(outer.context().shapes, "[1]");
  EXPECT_STREQ(outer.what(), "weights.bin: node 'inner' (MatMul): tensor 'w': field 'f': bad (shapes [1])");
}

TEST(Error, WithContextKeepsCodeAndMessageAndLeavesTheOriginalAlone) {
  Error inner(ErrorCode::kLimitExceeded, "too big");
  Error outer = inner.with_context({.file = "m.onnx"});
  EXPECT_EQ(outer.code(), ErrorCode::kLimitExceeded);
  EXPECT_EQ(outer.message(), "too big");
  EXPECT_STREQ(inner.what(), "too big");
}

TEST(Error, CodeNames) {
  EXPECT_STREQ(to_string(ErrorCode::kInvalidModel), "invalid model");
  EXPECT_STREQ(to_string(ErrorCode::kInvalidArgument), "invalid argument");
  EXPECT_STREQ(to_string(ErrorCode::kNotFound), "not found");
  EXPECT_STREQ(to_string(ErrorCode::kUnsupported), "unsupported");
  EXPECT_STREQ(to_string(ErrorCode::kLimitExceeded), "limit exceeded");
  EXPECT_STREQ(to_string(ErrorCode::kIo), "i/o error");
  EXPECT_STREQ(to_string(ErrorCode::kInternal), "internal error");
}

}  // namespace
}  // namespace tunnx
