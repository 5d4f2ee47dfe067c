// The attention fusion (runtime/core/passes/fuse_attention.cc): at optimization level 2, attention
// written out as MatMul(Q, K^T) -> scale -> [mask] -> Softmax -> MatMul(P, V) runs as one
// com.tunnx:Attention and gives level 0's outputs, in the layouts exporters write (BERT's head split
// and merge, K^T as a transpose of [B, T, N, H] or of [B, N, T, H], a scale by Div or Mul, from an
// initializer or a Constant node, a mask or none); the scale is still read from its initializer after
// a write; chains the fused node would compute differently are left alone.
#include <cmath>
#include <map>
#include <random>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "tests/importer/model_builder.h"

namespace {

using namespace tunnx_test;
using tunnx::DataType;
using tunnx::Model;
using tunnx::Session;
using tunnx::Tensor;

constexpr int32_t kF32 = onnx_type_of<float>();
constexpr int64_t kSeq = 20, kHeads = 3, kHead = 16, kHidden = kHeads * kHead;

struct Variant {
  std::string k_layout = "bsnh";  // K^T from [B, S, N, H] (perm 0,2,3,1) or "bnth" (perm 0,1,3,2)
  std::string scale = "div";       // "div", "mul", "mul_constant" (a Constant node) or "none"
  bool mask = false;               // an additive mask [B, 1, 1, T]
  int64_t softmax_axis = -1;
  bool scores_returned = false;    // the scores are also a graph output: nothing may fuse
  bool q_direct = false;           // Q a 4-D graph input (the scale goes on Q itself)
};

class FuseAttention : public TempDirTest {
 protected:
  Tensor random(const std::vector<int64_t>& dims) {
    Tensor t(DataType::kFloat32, dims);
    std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
    for (int64_t i = 0; i < t.numel(); ++i) t.mutable_data_as<float>()[i] = dist(rng_);
    return t;
  }

  // x [B, S, N*H] -> q, k, v = x Wq, x Wk, x Wv, split into heads as BERT does; the context merged
  // back to [B, S, N*H]. Opset 17, batch symbolic.
  Model build(const Variant& v) {
    ModelBuilder b(17);
    b.input("x", kF32, Dims{DimSpec("B"), kSeq, kHidden});
    b.initializer(int64_tensor("split", {4}, {0, 0, kHeads, kHead}));
    b.initializer(int64_tensor("merge", {3}, {0, 0, kHidden}));
    auto heads = [&](const std::string& name, const std::vector<int64_t>& perm) {
      b.initializer(float_tensor("w" + name, {kHidden, kHidden}, values(random({kHidden, kHidden}))));
      b.node("MatMul", {"x", "w" + name}, {name + "_proj"}, name + "_proj");
      b.node("Reshape", {name + "_proj", "split"}, {name + "_bsnh"}, name + "_split");
      auto& t = b.node("Transpose", {name + "_bsnh"}, {name + "_heads"}, name + "_heads");
      attr_ints(t, "perm", perm);
    };
    if (v.q_direct) {
      b.input("q_heads", kF32, Dims{DimSpec("B"), kHeads, kSeq, kHead});
    } else {
      heads("q", {0, 2, 1, 3});
    }
    if (v.k_layout == "bsnh") {
      heads("k", {0, 2, 3, 1});
    } else {
      heads("k4", {0, 2, 1, 3});
      auto& t = b.node("Transpose", {"k4_heads"}, {"k_heads"}, "k_t");
      attr_ints(t, "perm", {0, 1, 3, 2});
    }
    heads("v", {0, 2, 1, 3});
    b.node("MatMul", {"q_heads", "k_heads"}, {"scores"}, "scores");
    std::string s = "scores";
    if (v.scale == "div") {
      b.initializer(float_tensor("sqrt_d", {1}, {4.0f}));
      b.node("Div", {s, "sqrt_d"}, {"scaled"}, "scale");
      s = "scaled";
    } else if (v.scale == "mul") {
      b.initializer(float_tensor("inv_sqrt_d", {}, {0.3f}));
      b.node("Mul", {"inv_sqrt_d", s}, {"scaled"}, "scale");
      s = "scaled";
    } else if (v.scale == "mul_constant") {
      auto& c = b.node("Constant", {}, {"c"}, "c");
      attr_tensor(c, "value", float_tensor("", {}, {0.25f}));
      b.node("Mul", {s, "c"}, {"scaled"}, "scale");
      s = "scaled";
    }
    if (v.mask) {
      b.input("mask", kF32, Dims{DimSpec("B"), 1, 1, kSeq});
      b.node("Add", {s, "mask"}, {"masked"}, "mask");
      s = "masked";
    }
    auto& softmax = b.node("Softmax", {s}, {"probs"}, "softmax");
    attr_int(softmax, "axis", v.softmax_axis);
    b.node("MatMul", {"probs", "v_heads"}, {"context"}, "context");
    auto& t = b.node("Transpose", {"context"}, {"context_bsnh"}, "merge_t");
    attr_ints(t, "perm", {0, 2, 1, 3});
    b.node("Reshape", {"context_bsnh", "merge"}, {"y"}, "merge");
    b.output("y", kF32, Dims{DimSpec("B"), kSeq, kHidden});
    if (v.scores_returned) b.output("scores", kF32, Dims{DimSpec("B"), kHeads, kSeq, kSeq});
    return Model::load(b.save(path("m" + std::to_string(saved_++) + ".onnx")));
  }

  static std::vector<float> values(const Tensor& t) {
    return std::vector<float>(t.data_as<float>(), t.data_as<float>() + t.numel());
  }

  tunnx::NamedValues inputs(const Variant& v, int64_t batch) {
    tunnx::NamedValues in = {{"x", random({batch, kSeq, kHidden})}};
    if (v.q_direct) in.emplace("q_heads", random({batch, kHeads, kSeq, kHead}));
    if (v.mask) {
      Tensor m = random({batch, 1, 1, kSeq});
      for (int64_t i = 0; i < m.numel(); i += 3) m.mutable_data_as<float>()[i] = -10000.0f;  // masked keys
      in.emplace("mask", std::move(m));
    }
    return in;
  }

  static void expect_near(const tunnx::NamedValues& got, const tunnx::NamedValues& want, const std::string& what) {
    for (const auto& [name, value] : want) {
      const Tensor& w = value.tensor();
      const Tensor& g = got.at(name).tensor();
      ASSERT_EQ(g.dims(), w.dims()) << what << " " << name;
      for (int64_t i = 0; i < g.numel(); ++i)
        ASSERT_NEAR(g.data_as<float>()[i], w.data_as<float>()[i], 2e-5 * std::fmax(1.0, std::fabs(w.data_as<float>()[i])))
            << what << " " << name << "[" << i << "]";
    }
  }

  static std::map<std::string, int> ops(const Session& s) {
    std::map<std::string, int> count;
    for (const auto& k : s.stats().kernels) ++count[k.op_type];
    return count;
  }

  std::mt19937 rng_{5};
  int saved_ = 0;
};

TEST_F(FuseAttention, EveryLayoutAndScaleRunsAsOneAttentionWithLevelZerosOutputs) {
  std::vector<Variant> variants;
  for (const char* k : {"bsnh", "bnth"})
    for (const char* scale : {"div", "mul", "mul_constant", "none"})
      for (bool mask : {false, true}) variants.push_back({.k_layout = k, .scale = scale, .mask = mask});
  variants.push_back({.softmax_axis = 3});
  variants.push_back({.q_direct = true});
  variants.push_back({.scale = "mul", .mask = true, .q_direct = true});
  for (const Variant& v : variants) {
    const std::string what = "K " + v.k_layout + ", scale " + v.scale + (v.mask ? ", mask" : "") +
                             ", axis " + std::to_string(v.softmax_axis) + (v.q_direct ? ", Q fed" : "");
    const Model model = build(v);
    Session plain(model, {.optimization_level = 0}), fused(model, {.optimization_level = 2});
    for (int64_t batch : {1, 2}) {
      const tunnx::NamedValues in = inputs(v, batch);
      expect_near(fused.run(in), plain.run(in), what + ", batch " + std::to_string(batch));
    }
    std::map<std::string, int> kinds = ops(fused);
    EXPECT_EQ(kinds["Attention"], 1) << what;
    EXPECT_EQ(kinds["Softmax"], 0) << what;
    EXPECT_EQ(kinds["MatMul"] + kinds["FusedMatMul"], v.q_direct ? 2 : 3) << what;  // the projections only
    // The exporter's head split and merge transposes went too, where Q came through them.
    if (!v.q_direct) {
      EXPECT_EQ(kinds["Transpose"], 0) << what;
    }
  }
}

TEST_F(FuseAttention, AWrittenScaleIsSeenByTheNextRun) {
  const Variant v{.scale = "div", .mask = true};
  Model model = build(v);
  Session plain(model, {.optimization_level = 0}), fused(model, {.optimization_level = 2});
  ASSERT_EQ(ops(fused)["Attention"], 1);
  const tunnx::NamedValues in = inputs(v, 2);
  expect_near(fused.run(in), plain.run(in), "before the write");
  tunnx::NamedValues before = fused.run(in);
  const tunnx::StateDict changed = {{"sqrt_d", Tensor::from_vector<float>({1}, {2.5f})}};
  model.load_state_dict(changed, /*strict=*/false);
  const tunnx::NamedValues after = fused.run(in);
  expect_near(after, plain.run(in), "after load_state_dict");
  EXPECT_NE(after.at("y").tensor().data_as<float>()[0], before.at("y").tensor().data_as<float>()[0]);
}

TEST_F(FuseAttention, ChainsAttentionWouldComputeDifferentlyStay) {
  // Softmax over the queries, and scores the graph also returns.
  for (const Variant& v : {Variant{.softmax_axis = 2}, Variant{.scores_returned = true}}) {
    const Model model = build(v);
    Session plain(model, {.optimization_level = 0}), fused(model, {.optimization_level = 2});
    const tunnx::NamedValues in = inputs(v, 2);
    expect_near(fused.run(in), plain.run(in), "axis " + std::to_string(v.softmax_axis));
    EXPECT_EQ(ops(fused)["Attention"], 0) << v.softmax_axis;
    EXPECT_EQ(ops(fused)["Softmax"], 1) << v.softmax_axis;
  }
}

}  // namespace
