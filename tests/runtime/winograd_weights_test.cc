// 3x3 weights into oneDNN's Winograd F(4x4, 3x3) and F(2x2, 3x3) layouts
// (runtime/cpu/onednn/winograd_weights.h): the fast transform writes what oneDNN's own reorder
// writes, within float rounding, for channel counts that fill whole blocks and counts the layout
// pads, at 1 and 2 threads; other layouts and sources are left to oneDNN.
#include <gtest/gtest.h>

#if TUNNX_WITH_ONEDNN

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "runtime/cpu/onednn/onednn_common.h"
#include "runtime/cpu/onednn/winograd_weights.h"

namespace {

using dt = dnnl::memory::data_type;
using tag = dnnl::memory::format_tag;
using tunnx::cpu::onednn::cpu_engine;
using tunnx::cpu::onednn::winograd_weights_into;

// The weights layout of oneDNN's Winograd convolution named `form` ("jit_wino_4x3": F(4x4, 3x3),
// "jit_fp32_wino_2x3": F(2x2, 3x3)) for these channels, if it offers one.
std::optional<dnnl::memory::desc> winograd_layout(int64_t in, int64_t out, int64_t side,
                                                  const std::string& form = "jit_wino_4x3") {
  const dnnl::memory::desc image_in({1, in, side, side}, dt::f32, tag::any), image_out({1, out, side, side}, dt::f32, tag::any);
  const dnnl::convolution_forward::desc desc(dnnl::prop_kind::forward_inference, dnnl::algorithm::convolution_winograd,
                                             image_in, dnnl::memory::desc({out, in, 3, 3}, dt::f32, tag::any), image_out,
                                             {1, 1}, {1, 1}, {1, 1});
  try {
    dnnl::convolution_forward::primitive_desc pd(desc, cpu_engine());
    do {
      if (std::string(pd.impl_info_str()).rfind(form, 0) == 0) return pd.weights_desc();
    } while (pd.next_impl());
  } catch (const dnnl::error&) {
  }
  return std::nullopt;
}

TEST(WinogradWeights, MatchOnednnsOwnReorder) {
  struct Case {
    int64_t in, out, side;
  };
  // Whole blocks (one and several per chunk, as YOLOv8n's and ResNet's layers), and padded channels;
  // images of 14x14 and 7x7, where F(2x2)'s layout is wino_wei_aaOio (ResNet's layers 3 and 4).
  const std::vector<Case> cases = {{16, 16, 32}, {32, 32, 32}, {64, 128, 28}, {80, 80, 40}, {256, 256, 20},
                                   {24, 40, 30}, {17, 33, 29}, {64, 64, 14},  {128, 256, 7}, {20, 40, 7}};
  int checked = 0;
  std::set<dnnl_wino_memory_format_t> formats;
  for (const std::string form : {"jit_wino_4x3", "jit_fp32_wino_2x3"})
  for (const Case& c : cases) {
    const std::optional<dnnl::memory::desc> layout = winograd_layout(c.in, c.out, c.side, form);
    if (!layout) continue;  // this machine's oneDNN has no such form for it
    const dnnl::memory::desc plain({c.out, c.in, 3, 3}, dt::f32, tag::oihw);
    dnnl::memory weights(plain, cpu_engine()), want(*layout, cpu_engine()), got(*layout, cpu_engine());
    std::mt19937 rng(static_cast<uint32_t>(c.in * 1000 + c.out));
    std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
    float* w = static_cast<float*>(weights.get_data_handle());
    for (int64_t i = 0; i < c.out * c.in * 9; ++i) w[i] = uniform(rng);
    dnnl::stream stream(cpu_engine());
    dnnl::reorder(weights, want).execute(stream, weights, want);
    stream.wait();
    for (int threads : {1, 2}) {
      const size_t floats = layout->get_size() / sizeof(float);
      float* g = static_cast<float*>(got.get_data_handle());
      std::fill(g, g + floats, 12345.0f);  // every float the layout holds must be written
      omp_set_num_threads(threads);
      ASSERT_TRUE(winograd_weights_into(weights, got)) << form << " " << c.in << "->" << c.out;
      const float* e = static_cast<const float*>(want.get_data_handle());
      float scale = 0;
      for (size_t i = 0; i < floats; ++i) scale = std::max(scale, std::fabs(e[i]));
      for (size_t i = 0; i < floats; ++i)
        ASSERT_LE(std::fabs(g[i] - e[i]), 1e-5f * scale)
            << form << " " << c.in << "->" << c.out << " at " << threads << " threads, float " << i << " of " << floats;
    }
    ++checked;
    formats.insert(layout->data.format_desc.wino_desc.wino_format);
  }
  omp_set_num_threads(omp_get_num_procs());
  // Where oneDNN has F(2x2, 3x3), its small-image layout was among those checked.
  if (formats.count(dnnl_wino_wei_aaOBiOo)) {
    EXPECT_TRUE(formats.count(dnnl_wino_wei_aaOio));
  }
  if (checked == 0) GTEST_SKIP() << "oneDNN offers no Winograd form on this machine";
}

TEST(WinogradWeights, OtherLayoutsAndSourcesAreLeftToOnednn) {
  const dnnl::memory::desc plain({32, 32, 3, 3}, dt::f32, tag::oihw);
  dnnl::memory weights(plain, cpu_engine());
  // A blocked layout is not the Winograd one.
  dnnl::memory blocked(dnnl::memory::desc({32, 32, 3, 3}, dt::f32, tag::OIhw16i16o), cpu_engine());
  EXPECT_FALSE(winograd_weights_into(weights, blocked));
  const std::optional<dnnl::memory::desc> layout = winograd_layout(32, 32, 32);
  if (!layout) GTEST_SKIP() << "oneDNN offers no F(4x4, 3x3) on this machine";
  dnnl::memory tiles(*layout, cpu_engine());
  // A source in HWIO, or of other dims, is not read.
  dnnl::memory hwio(dnnl::memory::desc({32, 32, 3, 3}, dt::f32, tag::hwio), cpu_engine());
  EXPECT_FALSE(winograd_weights_into(hwio, tiles));
  dnnl::memory smaller(dnnl::memory::desc({16, 32, 3, 3}, dt::f32, tag::oihw), cpu_engine());
  EXPECT_FALSE(winograd_weights_into(smaller, tiles));
}

}  // namespace

#endif  // TUNNX_WITH_ONEDNN
