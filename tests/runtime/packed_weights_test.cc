// Constant weights kept in the layout a oneDNN primitive prefers (runtime/cpu/onednn/packed_weights.h):
// packed once, read from the copy while the weight is unchanged, repacked after a write, and never
// used for a tensor that is not the constant. The session-level behaviour (weight writes and fed
// inputs that shadow an initializer) is in onednn_matmul_test.cc.
#include <gtest/gtest.h>

#if TUNNX_WITH_ONEDNN

#include <cstdint>
#include <memory>
#include <vector>

#include "runtime/cpu/onednn/onednn_common.h"
#include "runtime/cpu/onednn/packed_weights.h"

namespace {

using tunnx::DataType;
using tunnx::Tensor;
using tunnx::cpu::onednn::PackedWeights;

// w stored [N=3, K=2] row-major, read as B' = w^T [K=2, N=3] (Gemm transB=1): strides {1, K}.
dnnl::memory::desc transposed_view() {
  return dnnl::memory::desc({2, 3}, dnnl::memory::data_type::f32, dnnl::memory::dims{1, 2});
}

std::vector<float> contents(const dnnl::memory& m) {
  const float* p = static_cast<const float*>(m.get_data_handle());
  return std::vector<float>(p, p + 6);
}

TEST(PackedWeights, PacksOnceAndRepacksAfterAWrite) {
  Tensor w = Tensor::from_vector<float>({3, 2}, {1, 2, 3, 4, 5, 6});
  PackedWeights packed(&w);
  const dnnl::memory::desc plain = tunnx::cpu::onednn::plain_f32({2, 3});
  EXPECT_TRUE(packed.is_constant(w));

  auto first = packed.get(w, transposed_view(), plain);
  EXPECT_EQ(contents(*first), (std::vector<float>{1, 3, 5, 2, 4, 6}));  // w^T, row-major
  auto again = packed.get(w, transposed_view(), plain);
  EXPECT_EQ(again.get(), first.get());  // the same copy: nothing repacked
  EXPECT_EQ(packed.packs(), 1);

  w.mutable_data_as<float>()[0] = 10;  // a write bumps the version
  auto after = packed.get(w, transposed_view(), plain);
  EXPECT_EQ(packed.packs(), 2);
  EXPECT_EQ(contents(*after), (std::vector<float>{10, 3, 5, 2, 4, 6}));
  EXPECT_EQ(contents(*first), (std::vector<float>{1, 3, 5, 2, 4, 6}));  // a holder keeps its old copy
}

TEST(PackedWeights, StoredLayoutIsWrappedNotCopied) {
  Tensor w = Tensor::from_vector<float>({2, 3}, {1, 2, 3, 4, 5, 6});
  PackedWeights packed(&w);
  const dnnl::memory::desc plain = tunnx::cpu::onednn::plain_f32({2, 3});
  auto m = packed.get(w, plain, plain);
  EXPECT_EQ(m->get_data_handle(), w.data());
  EXPECT_EQ(packed.packs(), 0);
}

TEST(PackedWeights, OnlyTheConstantItselfIsPacked) {
  Tensor w = Tensor::from_vector<float>({3, 2}, {1, 2, 3, 4, 5, 6});
  PackedWeights packed(&w);
  EXPECT_TRUE(packed.is_constant(Tensor(w)));                        // a copy of the handle: same storage
  EXPECT_FALSE(packed.is_constant(w.clone()));                       // equal values, other storage
  EXPECT_FALSE(packed.is_constant(w.reshaped({2, 3})));              // same storage, other shape
  EXPECT_FALSE(PackedWeights().is_constant(w));                      // no constant at all
  Tensor ints = Tensor::from_vector<int64_t>({2}, {1, 2});
  EXPECT_FALSE(PackedWeights(&ints).is_constant(ints));              // only float32 weights are packed
}

// A weight written between every two runs (an optimizer step each time) is told apart from one
// written once (load_state_dict) and from one left alone, so the product reads it plain instead of
// re-packing it every step.
TEST(PackedWeights, AWeightWrittenBeforeEveryRunIsSeenAsTrained) {
  Tensor w = Tensor::from_vector<float>({3, 2}, {1, 2, 3, 4, 5, 6});
  PackedWeights packed(&w);
  EXPECT_FALSE(packed.rewritten_every_run(w));  // the first run
  EXPECT_FALSE(packed.rewritten_every_run(w));  // unchanged
  w.mutable_data_as<float>()[0] = 7;
  EXPECT_FALSE(packed.rewritten_every_run(w));  // written once
  w.mutable_data_as<float>()[0] = 8;
  EXPECT_TRUE(packed.rewritten_every_run(w));   // written again: trained
  w.mutable_data_as<float>()[0] = 9;
  EXPECT_TRUE(packed.rewritten_every_run(w));
  EXPECT_FALSE(packed.rewritten_every_run(w));  // training stopped: packed again
  EXPECT_FALSE(packed.rewritten_every_run(w.clone()));  // not the constant
}

// SessionOptions::release_packed_originals: once the constant is freed, every layout (the plain one
// included) is reordered from the copy held, bit for bit what packing the original gives; the stand-in
// is the constant from then on, and its writes no longer matter.
TEST(PackedWeights, AReleasedConstantServesEveryLayoutFromItsCopy) {
  using tag = dnnl::memory::format_tag;
  std::vector<float> values(32 * 48);
  for (size_t i = 0; i < values.size(); ++i) values[i] = 0.01f * static_cast<float>(i % 97) - 0.3f;
  Tensor w = Tensor::from_vector<float>({32, 48}, values);
  const Tensor original = w.clone();
  const dnnl::memory::desc stored({32, 48, 1, 1}, dnnl::memory::data_type::f32, tag::oihw);
  const dnnl::memory::desc blocked({32, 48, 1, 1}, dnnl::memory::data_type::f32, tag::OIhw16i16o);
  const dnnl::memory::desc other({32, 48, 1, 1}, dnnl::memory::data_type::f32, tag::OIhw8i8o);
  auto bytes = [](const dnnl::memory& m) {
    const float* p = static_cast<const float*>(m.get_data_handle());
    return std::vector<float>(p, p + m.get_desc().get_size() / sizeof(float));
  };

  PackedWeights packed(&w);
  EXPECT_FALSE(packed.holds_reversible_copy());
  packed.get(w, stored, stored);  // the stored layout is wrapped, not a copy
  EXPECT_FALSE(packed.holds_reversible_copy());
  auto first = packed.get(w, stored, blocked);
  EXPECT_TRUE(packed.holds_reversible_copy());
  w.mutable_data_as<float>()[0] += 1;  // a copy of an older version does not count
  EXPECT_FALSE(packed.holds_reversible_copy());
  w.mutable_data_as<float>()[0] = values[0];
  first = packed.get(w, stored, blocked);
  ASSERT_TRUE(packed.holds_reversible_copy());

  // What packing the original into `other` gives, from a second object.
  PackedWeights reference(&w);
  const std::vector<float> want_other = bytes(*reference.get(w, stored, other));

  const Tensor stand_in = Tensor::placeholder(DataType::kFloat32, {32, 48});
  packed.release(stand_in);
  w.mutable_data_as<float>()[5] = 100;  // the caller's tensor: no longer the constant
  EXPECT_TRUE(packed.released());
  EXPECT_TRUE(packed.is_constant(stand_in));
  EXPECT_FALSE(packed.is_constant(w));
  EXPECT_EQ(packed.get(stand_in, stored, blocked).get(), first.get());  // held: nothing made
  const int64_t packs = packed.packs();
  EXPECT_EQ(bytes(*packed.get(stand_in, stored, other)), want_other);
  EXPECT_EQ(bytes(*packed.get(stand_in, stored, stored)), values);  // the plain layout, as a copy now
  EXPECT_EQ(packed.packs(), packs + 2);
  EXPECT_TRUE(packed.restored().equals(original));
  EXPECT_TRUE(packed.holds_reversible_copy());
}

}  // namespace

#endif  // TUNNX_WITH_ONEDNN
