// Floats moved between oneDNN's blocked layouts by tunnx's own loops (runtime/cpu/onednn/blocked_reorder.h):
// every byte equal to what oneDNN's reorder writes, padding included, for the layouts convolutions and
// products pick (blocks of 16, 32, 48 and 64, two blocks on a dim, grouped and 3-D weights, channels
// the blocks pad) both ways, at 1 and 2 threads; what the loops do not take is left untouched.
#include <gtest/gtest.h>

#if TUNNX_WITH_ONEDNN

#include <omp.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "runtime/cpu/onednn/blocked_reorder.h"
#include "runtime/cpu/onednn/onednn_common.h"

namespace {

using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;
using tunnx::cpu::onednn::blocked_reorder_into;
using tunnx::cpu::onednn::channel_block_reorder;
using tunnx::cpu::onednn::cpu_engine;

// `from` filled with distinct values, then reordered into `to` both ways; the bytes must agree.
void expect_same_as_onednn(const dnnl::memory::desc& from, const dnnl::memory::desc& to, const std::string& what) {
  dnnl::memory source(from, cpu_engine()), expected(to, cpu_engine()), mine(to, cpu_engine());
  auto* s = static_cast<float*>(source.get_data_handle());
  std::mt19937 rng(7);
  for (size_t i = 0; i < from.get_size() / sizeof(float); ++i) s[i] = static_cast<float>(rng() % 100000) + 0.5f;
  std::memset(expected.get_data_handle(), 0x7f, to.get_size());  // unlike garbage: padding must be written
  std::memset(mine.get_data_handle(), 0x3f, to.get_size());
  dnnl::stream stream(cpu_engine());
  dnnl::reorder(source, expected).execute(stream, source, expected);
  stream.wait();
  ASSERT_TRUE(blocked_reorder_into(source, mine)) << what;
  const auto* e = static_cast<const float*>(expected.get_data_handle());
  const auto* m = static_cast<const float*>(mine.get_data_handle());
  for (size_t i = 0; i < to.get_size() / sizeof(float); ++i)
    ASSERT_EQ(std::memcmp(&e[i], &m[i], sizeof(float)), 0) << what << ": float " << i << " is " << m[i] << ", oneDNN's " << e[i];
}

// The weights layout oneDNN's convolution picks for these shapes (format `any`).
dnnl::memory::desc conv_weights_layout(const dnnl::memory::dims& src, const dnnl::memory::dims& weights,
                                       const dnnl::memory::dims& dst, int64_t spatial) {
  const dnnl::memory::dims ones(static_cast<size_t>(spatial), 1), zeros(static_cast<size_t>(spatial), 0);
  const dnnl::convolution_forward::desc desc(
      dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_direct, dnnl::memory::desc(src, dt::f32, tag::any),
      dnnl::memory::desc(weights, dt::f32, tag::any), dnnl::memory::desc(dst, dt::f32, tag::any), ones, zeros, zeros);
  return dnnl::convolution_forward::primitive_desc(desc, cpu_engine()).weights_desc();
}

TEST(BlockedReorder, MatchesOnednnsOwnReorder) {
  struct Case {
    dnnl::memory::dims dims;
    tag from, to;
  };
  const std::vector<Case> cases = {
      {{8, 3, 3, 3}, tag::oihw, tag::Acdb16a},        // 8 channels padded to a block of 16
      {{88, 16, 1, 1}, tag::oihw, tag::Acdb32a},       // 88 into blocks of 32
      {{22, 88, 1, 1}, tag::oihw, tag::Abcd16a},
      {{48, 16, 1, 1}, tag::oihw, tag::Acdb48a},
      {{40, 24, 3, 3}, tag::oihw, tag::OIhw16i16o},    // both dims blocked and padded
      {{64, 40, 1, 1}, tag::oihw, tag::OIhw4i16o4i},   // two blocks on one dim
      {{24, 1, 1, 5, 5}, tag::goihw, tag::Goihw16g},   // depthwise, 24 groups padded to 32
      {{30, 1, 1, 3, 3}, tag::goihw, tag::Goihw8g},
      {{2, 24, 16, 3, 3}, tag::goihw, tag::gOIhw16i16o},
      {{32, 16, 3, 3, 3}, tag::oidhw, tag::OIdhw16i16o},
      {{17, 5, 7}, tag::oiw, tag::Owi16o},
      {{300, 200}, tag::ab, tag::BA16a64b},            // a product's weights
      {{200, 300}, tag::ab, tag::AB16b64a},
      {{300, 200}, tag::ba, tag::AB16b32a},
      {{40, 24, 3, 3}, tag::OIhw16i16o, tag::oihw},    // back from blocks, padding dropped
      {{24, 1, 1, 5, 5}, tag::Goihw16g, tag::goihw},
      {{64, 40, 1, 1}, tag::OIhw4i16o4i, tag::Acdb32a},
      {{1, 20, 7, 9}, tag::nchw, tag::nChw16c},        // an activation
      {{1, 20, 7, 9}, tag::nChw16c, tag::nhwc},
      {{256, 384, 1, 1}, tag::oihw, tag::OIhw16i16o},  // 96 Ki floats: shared by the threads
  };
  for (int threads : {1, 2}) {
    omp_set_num_threads(threads);
    for (const Case& c : cases)
      expect_same_as_onednn(dnnl::memory::desc(c.dims, dt::f32, c.from), dnnl::memory::desc(c.dims, dt::f32, c.to),
                            "case of " + std::to_string(c.dims.size()) + " dims, first " + std::to_string(c.dims[0]) +
                                ", at " + std::to_string(threads) + " threads");
    // Layouts oneDNN's convolutions pick here.
    expect_same_as_onednn(dnnl::memory::desc({8, 3, 3, 3}, dt::f32, tag::oihw),
                          conv_weights_layout({1, 3, 48, 96}, {8, 3, 3, 3}, {1, 8, 46, 94}, 2), "a first convolution's");
    expect_same_as_onednn(dnnl::memory::desc({88, 16, 1, 1}, dt::f32, tag::oihw),
                          conv_weights_layout({6, 16, 12, 48}, {88, 16, 1, 1}, {6, 88, 12, 48}, 2), "a pointwise one's");
    expect_same_as_onednn(dnnl::memory::desc({24, 16, 3, 3, 3}, dt::f32, tag::oidhw),
                          conv_weights_layout({1, 16, 6, 6, 6}, {24, 16, 3, 3, 3}, {1, 24, 4, 4, 4}, 3), "a 3-D one's");
  }
  omp_set_num_threads(omp_get_num_procs());
}

TEST(BlockedReorder, LeavesOtherPairsToOnednn) {
  const auto refused = [](const dnnl::memory::desc& from, const dnnl::memory::desc& to) {
    dnnl::memory source(from, cpu_engine()), target(to, cpu_engine());
    std::memset(target.get_data_handle(), 0x5a, to.get_size());
    const bool taken = blocked_reorder_into(source, target);
    const auto* bytes = static_cast<const unsigned char*>(target.get_data_handle());
    for (size_t i = 0; i < to.get_size(); ++i)
      if (bytes[i] != 0x5a) return false;  // written although refused
    return !taken;
  };
  // Larger than the loops take: oneDNN's generated code is faster there.
  EXPECT_TRUE(refused(dnnl::memory::desc({512, 512, 1, 1}, dt::f32, tag::oihw),
                      dnnl::memory::desc({512, 512, 1, 1}, dt::f32, tag::OIhw16i16o)));
  // An empty tensor: taken, nothing to write.
  {
    const dnnl::memory::desc empty({0, 16, 3, 3}, dt::f32, tag::oihw), blocked({0, 16, 3, 3}, dt::f32, tag::OIhw16i16o);
    dnnl::memory source(empty, cpu_engine()), target(blocked, cpu_engine());
    EXPECT_TRUE(blocked_reorder_into(source, target));
  }
  // Other types, and dims that differ.
  EXPECT_TRUE(refused(dnnl::memory::desc({16, 16}, dt::s8, tag::ab), dnnl::memory::desc({16, 16}, dt::s8, tag::ba)));
  EXPECT_TRUE(refused(dnnl::memory::desc({16, 8}, dt::f32, tag::ab), dnnl::memory::desc({16, 16}, dt::f32, tag::ab)));
  EXPECT_TRUE(refused(dnnl::memory::desc({16, 16}, dt::f32, tag::ab), dnnl::memory::desc({16, 16}, dt::bf16, tag::ab)));
}

// Activations between channels-last and nChw16c / nChw8c or channels-first (channel_block_reorder,
// what a Winograd convolution's source and destination and a first convolution's image go through at
// 2 threads): every float where oneDNN's reorder puts it, both ways, for 2-D, 1-D and 3-D images, a
// batch of two, at 1 and 2 threads; pairs it does not take (channels the block would pad, other
// layouts) are left alone.
TEST(BlockedReorder, ChannelBlocksMatchOnednn) {
  struct Case {
    dnnl::memory::dims dims;
    tag last, blocked;
  };
  const std::vector<Case> cases = {
      {{1, 64, 56, 56}, tag::nhwc, tag::nChw16c}, {{2, 32, 7, 9}, tag::nhwc, tag::nChw16c},
      {{2, 24, 5, 3}, tag::nhwc, tag::nChw8c},    {{1, 48, 300}, tag::nwc, tag::nCw16c},
      {{2, 16, 3, 4, 5}, tag::ndhwc, tag::nCdhw16c},
      {{1, 3, 224, 224}, tag::nhwc, tag::nchw},   {{2, 5, 7, 3}, tag::nhwc, tag::nchw},  // an image, channels-first
      {{2, 20, 9}, tag::nwc, tag::ncw},
  };
  for (int threads : {1, 2}) {
    omp_set_num_threads(threads);
    for (const Case& c : cases)
      for (const bool into_blocks : {true, false}) {
        const dnnl::memory::desc from(c.dims, dt::f32, into_blocks ? c.last : c.blocked);
        const dnnl::memory::desc to(c.dims, dt::f32, into_blocks ? c.blocked : c.last);
        dnnl::memory source(from, cpu_engine()), expected(to, cpu_engine()), mine(to, cpu_engine());
        auto* s = static_cast<float*>(source.get_data_handle());
        for (size_t i = 0; i < from.get_size() / sizeof(float); ++i) s[i] = static_cast<float>(i) + 0.25f;
        std::memset(mine.get_data_handle(), 0x3f, to.get_size());
        dnnl::stream stream(cpu_engine());
        dnnl::reorder(source, expected).execute(stream, source, expected);
        stream.wait();
        const std::string what = std::to_string(c.dims[1]) + " channels, " + std::to_string(c.dims.size()) + " dims, " +
                                 (into_blocks ? "into" : "out of") + " blocks, " + std::to_string(threads) + " threads";
        ASSERT_TRUE(channel_block_reorder(from, s, to, static_cast<float*>(mine.get_data_handle()))) << what;
        EXPECT_EQ(std::memcmp(expected.get_data_handle(), mine.get_data_handle(), to.get_size()), 0) << what;
        // With a step on what is written (a Winograd convolution's activation): every value once.
        const size_t count = to.get_size() / sizeof(float);
        const auto* e = static_cast<const float*>(expected.get_data_handle());
        auto* m = static_cast<float*>(mine.get_data_handle());
        std::memset(m, 0x3f, to.get_size());
        ASSERT_TRUE(channel_block_reorder(from, s, to, m, [](float* v, int64_t n) {
          for (int64_t i = 0; i < n; ++i) v[i] = 2 * v[i] + 1;
        })) << what;
        for (size_t i = 0; i < count; ++i) ASSERT_EQ(m[i], 2 * e[i] + 1) << what << ", float " << i;
      }
  }
  omp_set_num_threads(omp_get_num_procs());
  std::vector<float> x(2 * 20 * 9), y(x.size(), 1.0f);
  // 20 channels would pad a block of 16; plain channels-first is not channels-last.
  EXPECT_FALSE(channel_block_reorder(dnnl::memory::desc({2, 20, 3, 3}, dt::f32, tag::nhwc), x.data(),
                                     dnnl::memory::desc({2, 20, 3, 3}, dt::f32, tag::nChw16c), y.data()));
  EXPECT_FALSE(channel_block_reorder(dnnl::memory::desc({2, 16, 3, 3}, dt::f32, tag::nchw), x.data(),
                                     dnnl::memory::desc({2, 16, 3, 3}, dt::f32, tag::nChw16c), y.data()));
  EXPECT_EQ(y[0], 1.0f);
}

}  // namespace

#endif  // TUNNX_WITH_ONEDNN
