// Forward values of AffineGrid, Col2Im, CenterCropPad, BitCast, TensorScatter and SpaceToDepth's CRD
// mode against hand-computed results, and one error message per op for a bad input.
#include <gtest/gtest.h>

#include <bit>
#include <string>
#include <vector>

#include "runtime/core/float16.h"
#include "tests/ops/grad_check.h"

namespace tunnx_test {
namespace {

using tunnx::ops::attr;
using Ints = std::vector<int64_t>;

Tensor f32(Ints dims, std::vector<float> values) { return Tensor::from_vector<float>(std::move(dims), values); }

// ---- AffineGrid ----------------------------------------------------------------------------------

TEST(ForwardOps, AffineGrid2dAlignCorners) {
  // x' = x + 2y + 3, y' = 4x + 5y + 6 over x in {-1, 0, 1} (W = 3), y in {-1, 1} (H = 2).
  const Tensor theta = f64({1, 2, 3}, {1, 2, 3, 4, 5, 6});
  const auto out =
      run_node("", "AffineGrid", {theta, i64({4}, {1, 1, 2, 3})}, {attr("align_corners", int64_t{1})}, 20);
  EXPECT_EQ(out[0].tensor().dims(), (Ints{1, 2, 3, 2}));
  EXPECT_EQ(values_of<double>(out[0]), (std::vector<double>{0, -3, 1, 1, 2, 5, 4, 7, 5, 11, 6, 15}));
}

TEST(ForwardOps, AffineGrid3dPixelCentres) {
  // Without align_corners two pixels sit at -0.5 and 0.5, one at 0. x' = x, y' = y + 7, z' = 10 z,
  // with x along W and z along D.
  const Tensor theta = f32({1, 3, 4}, {1, 0, 0, 0, 0, 1, 0, 7, 0, 0, 10, 0});
  const auto out = run_node("", "AffineGrid", {theta, i64({5}, {1, 1, 2, 1, 2})}, {}, 20);
  EXPECT_EQ(out[0].tensor().dims(), (Ints{1, 2, 1, 2, 3}));
  EXPECT_EQ(values_of<float>(out[0]), (std::vector<float>{-0.5f, 7, -5, 0.5f, 7, -5, -0.5f, 7, 5, 0.5f, 7, 5}));
  // A 2-D theta with a 3-D size.
  const Tensor theta_2d = f32({1, 2, 3}, {1, 0, 0, 0, 1, 0});
  const std::string why = error_of([&] { run_node("", "AffineGrid", {theta_2d, i64({5}, {1, 1, 2, 2, 2})}, {}, 20); });
  EXPECT_NE(why.find("theta must be [1, 3, 4]"), std::string::npos) << why;
  EXPECT_NE(why.find("AffineGrid"), std::string::npos) << why;
}

// ---- Col2Im --------------------------------------------------------------------------------------

TEST(ForwardOps, Col2ImOverlapsAdd) {
  // Blocks 1x2 over a 1x3 image, stride 1: two blocks; the middle pixel gets one value of each.
  const Tensor cols = f32({1, 2, 2}, {1, 2, 10, 20});  // rows: kernel positions, columns: blocks
  const auto out = run_node("", "Col2Im", {cols, i64({2}, {1, 3}), i64({2}, {1, 2})}, {}, 18);
  EXPECT_EQ(out[0].tensor().dims(), (Ints{1, 1, 1, 3}));
  EXPECT_EQ(values_of<float>(out[0]), (std::vector<float>{1, 12, 20}));
  const std::string why = error_of([&] {
    run_node("", "Col2Im", {f32({1, 2, 3}, {1, 2, 3, 4, 5, 6}), i64({2}, {1, 3}), i64({2}, {1, 2})}, {}, 18);
  });
  EXPECT_NE(why.find("must be [N, C * 2, 2]"), std::string::npos) << why;
}

TEST(ForwardOps, Col2ImPadsStridesDilations) {
  // One pixel of pad on each side of W: three blocks, pixel = block - 1 + kernel position.
  const Tensor cols = f32({1, 2, 3}, {1, 2, 3, 10, 20, 30});
  EXPECT_EQ(values_of<float>(run_node("", "Col2Im", {cols, i64({2}, {1, 2}), i64({2}, {1, 2})},
                                      {attr("pads", Ints{0, 1, 0, 1})}, 18)[0]),
            (std::vector<float>{12, 23}));
  // Dilation 2 and stride 3 over W = 5: one block, pixels 0 and 2; int32, two channels.
  const Tensor ints = Tensor::from_vector<int32_t>({1, 4, 1}, {4, 5, 6, 7});
  const auto out = run_node("", "Col2Im", {ints, i64({2}, {1, 5}), i64({2}, {1, 2})},
                            {attr("dilations", Ints{1, 2}), attr("strides", Ints{1, 3})}, 18);
  EXPECT_EQ(out[0].tensor().dims(), (Ints{1, 2, 1, 5}));
  EXPECT_EQ(values_of<int32_t>(out[0]), (std::vector<int32_t>{4, 0, 5, 0, 0, 6, 0, 7, 0, 0}));
}

// ---- CenterCropPad -------------------------------------------------------------------------------

TEST(ForwardOps, CenterCropPad) {
  // [2, 3] -> [4, 1]: one zero row above and below, the middle column kept.
  const Tensor x = f32({2, 3}, {1, 2, 3, 4, 5, 6});
  const auto out = run_node("", "CenterCropPad", {x, i64({2}, {4, 1})}, {}, 18);
  EXPECT_EQ(out[0].tensor().dims(), (Ints{4, 1}));
  EXPECT_EQ(values_of<float>(out[0]), (std::vector<float>{0, 2, 5, 0}));
  // Odd surpluses: the crop window starts floor(3 / 2) = 1 in, the extra pad goes on the right.
  const Tensor row = Tensor::from_vector<int32_t>({1, 4}, {1, 2, 3, 4});
  const tunnx::ir::Attribute last = attr("axes", Ints{-1});
  EXPECT_EQ(values_of<int32_t>(run_node("", "CenterCropPad", {row, i64({1}, {1})}, {last}, 18)[0]),
            (std::vector<int32_t>{2}));
  EXPECT_EQ(values_of<int32_t>(run_node("", "CenterCropPad", {row, i64({1}, {2})}, {last}, 18)[0]),
            (std::vector<int32_t>{2, 3}));
  EXPECT_EQ(values_of<int32_t>(run_node("", "CenterCropPad", {row, i64({1}, {7})}, {last}, 18)[0]),
            (std::vector<int32_t>{0, 1, 2, 3, 4, 0, 0}));
  const std::string why = error_of([&] { run_node("", "CenterCropPad", {x, i64({3}, {1, 1, 1})}, {}, 18); });
  EXPECT_NE(why.find("shape has 3 values for 2 axes"), std::string::npos) << why;
}

// ---- BitCast -------------------------------------------------------------------------------------

TEST(ForwardOps, BitCast) {
  const auto to = [](tunnx::DataType t) { return attr("to", static_cast<int64_t>(t)); };
  const Tensor x = f32({2}, {1.0f, -2.0f});
  EXPECT_EQ(values_of<int32_t>(run_node("", "BitCast", {x}, {to(DataType::kInt32)}, 26)[0]),
            (std::vector<int32_t>{0x3f800000, static_cast<int32_t>(0xc0000000u)}));
  const Tensor scalar = Tensor::from_vector<int64_t>({}, {std::bit_cast<int64_t>(2.5)});
  const auto d = run_node("", "BitCast", {scalar}, {to(DataType::kFloat64)}, 26);
  EXPECT_EQ(d[0].tensor().dims(), Ints{});
  EXPECT_EQ(values_of<double>(d[0]), std::vector<double>{2.5});
  // Any non-zero byte reads as true.
  const Tensor bytes = Tensor::from_vector<uint8_t>({3}, {0, 1, 2});
  EXPECT_EQ(values_of<bool>(run_node("", "BitCast", {bytes}, {to(DataType::kBool)}, 26)[0]),
            (std::vector<bool>{false, true, true}));
  const Tensor flags = Tensor::from_vector<bool>({2}, {true, false});
  EXPECT_EQ(values_of<uint8_t>(run_node("", "BitCast", {flags}, {to(DataType::kUInt8)}, 26)[0]),
            (std::vector<uint8_t>{1, 0}));
  Tensor half(DataType::kFloat16, {1});
  *static_cast<uint16_t*>(half.mutable_data()) = tunnx::Float16::from_float(1.0f);
  EXPECT_EQ(values_of<uint16_t>(run_node("", "BitCast", {half}, {to(DataType::kUInt16)}, 26)[0]),
            std::vector<uint16_t>{0x3c00});
  const std::string why = error_of([&] { run_node("", "BitCast", {x}, {to(DataType::kInt64)}, 26); });
  EXPECT_NE(why.find("cannot bit-cast float32 to int64: the element widths differ"), std::string::npos) << why;
}

// ---- TensorScatter -------------------------------------------------------------------------------

TEST(ForwardOps, TensorScatterLinearAndCircular) {
  // past [batch 2, max_seq 3, 2], sequence axis -2.
  const Tensor past = f32({2, 3, 2}, {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11});
  const Tensor one_step = f32({2, 1, 2}, {100, 101, 200, 201});
  EXPECT_EQ(values_of<float>(run_node("", "TensorScatter", {past, one_step, i64({2}, {2, 0})}, {}, 24)[0]),
            (std::vector<float>{0, 1, 2, 3, 100, 101, 200, 201, 8, 9, 10, 11}));
  // Circular: batch 0 writes rows 2 and then 0.
  const Tensor two_steps = f32({2, 2, 2}, {100, 101, 102, 103, 200, 201, 202, 203});
  EXPECT_EQ(values_of<float>(run_node("", "TensorScatter", {past, two_steps, i64({2}, {2, 0})},
                                      {attr("mode", std::string("circular"))}, 24)[0]),
            (std::vector<float>{102, 103, 2, 3, 100, 101, 200, 201, 202, 203, 10, 11}));
  const std::string why =
      error_of([&] { run_node("", "TensorScatter", {past, two_steps, i64({2}, {2, 0})}, {}, 24); });
  EXPECT_NE(why.find("write index 2 plus 2 updates does not fit max_sequence_length 3 in linear mode"),
            std::string::npos)
      << why;
}

TEST(ForwardOps, TensorScatterHeadsShareTheBatchIndex) {
  // past [batch 2, heads 2, max_seq 3, 1]: both heads of a batch write at that batch's index.
  const Tensor past = f32({2, 2, 3, 1}, std::vector<float>(12, 0.0f));
  const Tensor update = f32({2, 2, 1, 1}, {1, 2, 3, 4});
  EXPECT_EQ(values_of<float>(run_node("", "TensorScatter", {past, update, i64({2}, {1, 0})}, {}, 24)[0]),
            (std::vector<float>{0, 1, 0, 0, 2, 0, 3, 0, 0, 4, 0, 0}));
  // Without write_indices every batch writes from 0.
  EXPECT_EQ(values_of<float>(run_node("", "TensorScatter", {past, update}, {}, 24)[0]),
            (std::vector<float>{1, 0, 0, 2, 0, 0, 3, 0, 0, 4, 0, 0}));
}

// ---- SpaceToDepth --------------------------------------------------------------------------------

TEST(ForwardOps, SpaceToDepthModes) {
  // Two channels of 2x2: DCR puts the block position outermost, CRD the channel.
  const Tensor x = f32({1, 2, 2, 2}, {1, 2, 3, 4, 5, 6, 7, 8});
  const tunnx::ir::Attribute bs = attr("blocksize", int64_t{2});
  EXPECT_EQ(values_of<float>(run_node("", "SpaceToDepth", {x}, {bs}, 13)[0]),
            (std::vector<float>{1, 5, 2, 6, 3, 7, 4, 8}));
  EXPECT_EQ(values_of<float>(run_node("", "SpaceToDepth", {x}, {bs, attr("mode", std::string("DCR"))}, 28)[0]),
            (std::vector<float>{1, 5, 2, 6, 3, 7, 4, 8}));
  EXPECT_EQ(values_of<float>(run_node("", "SpaceToDepth", {x}, {bs, attr("mode", std::string("CRD"))}, 28)[0]),
            (std::vector<float>{1, 2, 3, 4, 5, 6, 7, 8}));
  const std::string why =
      error_of([&] { run_node("", "SpaceToDepth", {x}, {bs, attr("mode", std::string("RDC"))}, 28); });
  EXPECT_NE(why.find("unknown mode 'RDC'"), std::string::npos) << why;
}

TEST(ForwardOps, SpaceToDepthCrdGradient) {
  check_gradient(make_grad_case("SpaceToDepth", 28, {GradInput::of({1, 2, 4, 4})},
                                {attr("blocksize", int64_t{2}), attr("mode", std::string("CRD"))}));
}

}  // namespace
}  // namespace tunnx_test
