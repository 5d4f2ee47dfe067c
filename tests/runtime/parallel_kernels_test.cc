// The reference kernels that split large loops among a run's threads (runtime/cpu/kernels): the
// tiled last-two-dims Transpose and Einsum "...ij->...ji", broadcast binary ops, unary ops, and
// com.tunnx:SumToShape's column sums give exactly a naive loop's answer, on 1 and on 2 threads, on
// shapes above the parallel threshold with edges that are not multiples of the tile; RMSNormalization
// (split by rows, float rows vectorized) and RotaryEmbedding (split by head vectors) give the same
// answer on 1 and 2 threads and agree with a naive loop. (The host memory cache's tests are in
// tests/unit/host_memory_test.cc.)
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
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

class ParallelKernels : public TempDirTest {
 protected:
  Tensor random(const std::vector<int64_t>& dims) {
    Tensor t(DataType::kFloat32, dims);
    std::uniform_real_distribution<float> dist(-2.0f, 2.0f);
    for (int64_t i = 0; i < t.numel(); ++i) t.mutable_data_as<float>()[i] = dist(rng_);
    return t;
  }

  // Runs `b`'s model on 1 and on 2 threads; both outputs must be equal, and are returned.
  Tensor run_both(ModelBuilder& b, const tunnx::NamedValues& inputs) {
    const Model model = Model::load(b.save(path("m.onnx")));
    Tensor outputs[2];
    for (int threads : {1, 2}) {
      Session session(model, {.threads = threads, .optimization_level = 0});
      outputs[threads - 1] = session.run(inputs).at("y").tensor();
    }
    EXPECT_TRUE(outputs[0].equals(outputs[1])) << "1 and 2 threads differ";
    return outputs[0];
  }

  std::mt19937 rng_{7};
};

TEST_F(ParallelKernels, TransposeAndEinsumSwapTheLastTwoDims) {
  const int64_t B = 3, R = 257, C = 301;  // not multiples of the 32-element tile
  const Tensor x = random({B, R, C});
  for (const std::string op : {"Transpose", "Einsum"}) {
    ModelBuilder b;
    b.input("x", onnx_type_of<float>(), Dims{B, R, C});
    auto& node = b.node(op, {"x"}, {"y"}, "swap");
    auto* attr = node.add_attribute();
    if (op == "Transpose") {
      attr->set_name("perm");
      attr->set_type(onnx::AttributeProto::INTS);
      for (int64_t p : {0, 2, 1}) attr->add_ints(p);
    } else {
      attr->set_name("equation");
      attr->set_type(onnx::AttributeProto::STRING);
      attr->set_s("...ij->...ji");
    }
    b.output("y", onnx_type_of<float>(), Dims{B, C, R});
    const Tensor y = run_both(b, {{"x", x}});
    ASSERT_EQ(y.dims(), (std::vector<int64_t>{B, C, R})) << op;
    int64_t wrong = 0;
    for (int64_t n = 0; n < B; ++n)
      for (int64_t i = 0; i < R; ++i)
        for (int64_t j = 0; j < C; ++j)
          wrong += y.data_as<float>()[(n * C + j) * R + i] != x.data_as<float>()[(n * R + i) * C + j];
    EXPECT_EQ(wrong, 0) << op;
  }
}

TEST_F(ParallelKernels, TransposeKeepingTheLastDimCopiesRows) {
  // Attention's head split [b, s, h, d] -> [b, h, s, d] and the other perms that keep d last.
  const std::vector<int64_t> dims = {3, 37, 5, 64};
  const Tensor x = random(dims);
  for (const std::vector<int64_t>& perm : std::vector<std::vector<int64_t>>{{0, 2, 1, 3}, {2, 1, 0, 3}, {1, 2, 0, 3}}) {
    ModelBuilder b;
    b.input("x", onnx_type_of<float>(), Dims{3, 37, 5, 64});
    auto* attr = b.node("Transpose", {"x"}, {"y"}, "t").add_attribute();
    attr->set_name("perm");
    attr->set_type(onnx::AttributeProto::INTS);
    for (int64_t p : perm) attr->add_ints(p);
    std::vector<int64_t> out(4);
    for (size_t i = 0; i < 4; ++i) out[i] = dims[static_cast<size_t>(perm[i])];
    b.output("y", onnx_type_of<float>(), Dims{out[0], out[1], out[2], out[3]});
    const Tensor y = run_both(b, {{"x", x}});
    ASSERT_EQ(y.dims(), out);
    int64_t wrong = 0;
    std::vector<int64_t> o(4), in(4);
    for (o[0] = 0; o[0] < out[0]; ++o[0])
      for (o[1] = 0; o[1] < out[1]; ++o[1])
        for (o[2] = 0; o[2] < out[2]; ++o[2])
          for (o[3] = 0; o[3] < out[3]; ++o[3]) {
            for (size_t i = 0; i < 4; ++i) in[static_cast<size_t>(perm[i])] = o[i];
            const int64_t yi = ((o[0] * out[1] + o[1]) * out[2] + o[2]) * out[3] + o[3];
            const int64_t xi = ((in[0] * dims[1] + in[1]) * dims[2] + in[2]) * dims[3] + in[3];
            wrong += y.data_as<float>()[yi] != x.data_as<float>()[xi];
          }
    EXPECT_EQ(wrong, 0) << tunnx::dims_to_string(perm);
  }
}

// Size-1 dims dropped before choosing a path: views, last-two swaps and row copies in disguise.
TEST_F(ParallelKernels, TransposeWithUnitDimsMatchesANaiveLoop) {
  struct Case {
    std::vector<int64_t> dims, perm;
  };
  const std::vector<Case> cases = {
      {{1, 40, 33, 1}, {0, 2, 1, 3}},   // tf2onnx's NCL1 -> NLC1: a last-two swap
      {{1, 7, 1, 5}, {2, 0, 3, 1}},     // nothing moves: a view
      {{3, 1, 20, 1}, {2, 3, 1, 0}},    // [3, 20] -> [20, 3]
      {{2, 1, 3, 1, 32}, {2, 1, 0, 3, 4}},  // keeps the last dim: rows
      {{1, 5, 1, 6}, {3, 2, 1, 0}},
  };
  for (const Case& c : cases) {
    const Tensor x = random(c.dims);
    const size_t rank = c.dims.size();
    ModelBuilder b;
    Dims in_dims, out_dims;
    std::vector<int64_t> out(rank);
    for (size_t i = 0; i < rank; ++i) {
      out[i] = c.dims[static_cast<size_t>(c.perm[i])];
      in_dims.push_back(c.dims[i]);
      out_dims.push_back(out[i]);
    }
    b.input("x", onnx_type_of<float>(), in_dims);
    auto* attr = b.node("Transpose", {"x"}, {"y"}, "t").add_attribute();
    attr->set_name("perm");
    attr->set_type(onnx::AttributeProto::INTS);
    for (int64_t p : c.perm) attr->add_ints(p);
    b.output("y", onnx_type_of<float>(), out_dims);
    const Tensor y = run_both(b, {{"x", x}});
    ASSERT_EQ(y.dims(), out) << tunnx::dims_to_string(c.dims);
    // Naive: walk the output, read X at the permuted index.
    const std::vector<int64_t> x_strides = [&] {
      std::vector<int64_t> st(rank, 1);
      for (size_t i = rank - 1; i-- > 0;) st[i] = st[i + 1] * c.dims[i + 1];
      return st;
    }();
    int64_t wrong = 0;
    for (int64_t flat = 0; flat < y.numel(); ++flat) {
      int64_t rest = flat, offset = 0;
      for (size_t i = rank; i-- > 0;) {
        offset += (rest % out[i]) * x_strides[static_cast<size_t>(c.perm[i])];
        rest /= out[i];
      }
      wrong += y.data_as<float>()[flat] != x.data_as<float>()[offset];
    }
    EXPECT_EQ(wrong, 0) << tunnx::dims_to_string(c.dims) << " perm " << tunnx::dims_to_string(c.perm);
  }
}

TEST_F(ParallelKernels, BroadcastBinaryAndUnaryOpsMatchANaiveLoop) {
  const Tensor a = random({64, 300, 7}), c = random({300, 1});
  ModelBuilder b;
  b.input("a", onnx_type_of<float>(), Dims{64, 300, 7});
  b.input("c", onnx_type_of<float>(), Dims{300, 1});
  b.node("Mul", {"a", "c"}, {"m"}, "mul");
  b.node("Sin", {"m"}, {"y"}, "sin");  // a reference unary kernel (Tanh now runs on oneDNN)
  b.output("y", onnx_type_of<float>(), Dims{64, 300, 7});
  const Tensor y = run_both(b, {{"a", a}, {"c", c}});
  int64_t wrong = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    const int64_t row = i / 7 % 300;
    wrong += y.data_as<float>()[i] != std::sin(a.data_as<float>()[i] * c.data_as<float>()[row]);
  }
  EXPECT_EQ(wrong, 0);
}

TEST_F(ParallelKernels, ReduceMaxAndMinOverAMiddleBlockGiveNaNWhereTheColumnHasOne) {
  // The column path of ReduceMax/Min (a channels-last global max pool's shape) on 1 and 2 threads: the
  // extreme of each column, NaN where the column holds one (numpy's rule, the general loop's too).
  Tensor x = random({2, 17, 1, 19, 300});
  float* v = x.mutable_data_as<float>();
  v[5 * 300 + 7] = std::nanf("");        // column 7 of batch 0
  v[(17 * 19 + 3) * 300 + 299] = std::nanf("");  // column 299 of batch 1
  for (const char* op : {"ReduceMax", "ReduceMin"}) {
    ModelBuilder b;
    b.input("x", onnx_type_of<float>(), Dims{2, 17, 1, 19, 300});
    auto& reduce = b.node(op, {"x"}, {"y"}, "reduce");
    attr_ints(reduce, "axes", {1, 2, 3});
    attr_int(reduce, "keepdims", 0);
    b.output("y", onnx_type_of<float>(), Dims{2, 300});
    const Tensor y = run_both(b, {{"x", x}});
    const bool max = std::string(op) == "ReduceMax";
    for (int64_t n = 0; n < 2; ++n)
      for (int64_t c = 0; c < 300; ++c) {
        float want = v[n * 17 * 19 * 300 + c];
        for (int64_t r = 0; r < 17 * 19; ++r) {
          const float e = v[(n * 17 * 19 + r) * 300 + c];
          if (std::isnan(e) || std::isnan(want)) want = std::nanf("");
          else want = max ? std::max(want, e) : std::min(want, e);
        }
        const float got = y.data_as<float>()[n * 300 + c];
        if (std::isnan(want)) ASSERT_TRUE(std::isnan(got)) << op << " " << n << ", " << c;
        else ASSERT_EQ(got, want) << op << " " << n << ", " << c;
      }
  }
}

TEST_F(ParallelKernels, SumToShapeColumnSumsAddRowsInOrder) {
  const Tensor g = random({96, 40, 513});
  ModelBuilder b;
  b.add_opset("com.tunnx", 1);
  b.input("g", onnx_type_of<float>(), Dims{96, 40, 513});
  b.initializer(int64_tensor("shape", {2}, {1, 513}));
  b.node("SumToShape", {"g", "shape"}, {"y"}, "sum", "com.tunnx");
  b.output("y", onnx_type_of<float>(), Dims{1, 513});
  const Tensor y = run_both(b, {{"g", g}});
  ASSERT_EQ(y.dims(), (std::vector<int64_t>{1, 513}));
  for (int64_t j = 0; j < 513; ++j) {
    float sum = 0;  // float accumulates in float (FloatAcc), rows in order
    for (int64_t r = 0; r < 96 * 40; ++r) sum += g.data_as<float>()[r * 513 + j];
    ASSERT_EQ(y.data_as<float>()[j], sum) << "column " << j;
  }
}

TEST_F(ParallelKernels, ReduceMeanOverAMiddleBlockSumsColumnsInOrder) {
  // A channels-last global average pool ([N, H, W, C] over H and W, a unit dim inside the block) and
  // a block with a kept dim before it: the column path, on 1 and 2 threads, equals a double sum in
  // input order.
  const Tensor x = random({2, 17, 1, 19, 300});
  ModelBuilder b;
  b.input("x", onnx_type_of<float>(), Dims{2, 17, 1, 19, 300});
  auto& mean = b.node("ReduceMean", {"x"}, {"y"}, "mean");
  attr_ints(mean, "axes", {1, 2, 3});
  attr_int(mean, "keepdims", 0);
  b.output("y", onnx_type_of<float>(), Dims{2, 300});
  const Tensor y = run_both(b, {{"x", x}});
  ASSERT_EQ(y.dims(), (std::vector<int64_t>{2, 300}));
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t c = 0; c < 300; ++c) {
      double sum = 0;
      for (int64_t r = 0; r < 17 * 19; ++r) sum += x.data_as<float>()[(n * 17 * 19 + r) * 300 + c];
      ASSERT_EQ(y.data_as<float>()[n * 300 + c], static_cast<float>(sum / (17 * 19))) << n << ", " << c;
    }
}

TEST_F(ParallelKernels, GlobalMaxPoolSkipsNaNAsASingleChainDoes) {
  // Planes of 203 values (not a multiple of the 8 running maxima), one with a NaN among them and one
  // all NaN (-inf, as std::max from -inf skips every NaN).
  Tensor x = random({2, 300, 203, 1});
  float* p = x.mutable_data_as<float>();
  p[5 * 203 + 17] = std::nanf("");
  for (int64_t i = 0; i < 203; ++i) p[7 * 203 + i] = std::nanf("");
  ModelBuilder b;
  b.input("x", onnx_type_of<float>(), Dims{2, 300, 203, 1});
  b.node("GlobalMaxPool", {"x"}, {"y"}, "pool");
  b.output("y", onnx_type_of<float>(), Dims{2, 300, 1, 1});
  const Tensor y = run_both(b, {{"x", x}});
  for (int64_t plane = 0; plane < 600; ++plane) {
    float best = -std::numeric_limits<float>::infinity();
    for (int64_t i = 0; i < 203; ++i) best = std::max(best, p[plane * 203 + i]);
    ASSERT_EQ(y.data_as<float>()[plane], best) << "plane " << plane;
  }
}

// Rows of 1, 2 and odd lengths (the vector loop's tails), a scale of the normalized shape (the
// vectorized float path) and one that broadcasts over it (the generic loop).
TEST_F(ParallelKernels, RmsNormalizationMatchesANaiveDoubleLoop) {
  struct Case {
    std::vector<int64_t> dims, scale_dims;
    int64_t axis;
  };
  const Case cases[] = {{{3, 411, 257}, {257}, -1},   {{2, 70, 3, 331}, {3, 331}, 2}, {{70000, 1}, {1}, 1},
                        {{40000, 2}, {2}, -1},        {{5, 129, 113}, {1, 113}, -1},  {{6, 20, 613}, {20, 1}, 1}};
  for (const Case& c : cases) {
    const Tensor x = random(c.dims), scale = random(c.scale_dims);
    ModelBuilder b(23);
    b.input("x", onnx_type_of<float>(), Dims(c.dims.begin(), c.dims.end()));
    b.input("scale", onnx_type_of<float>(), Dims(c.scale_dims.begin(), c.scale_dims.end()));
    auto& node = b.node("RMSNormalization", {"x", "scale"}, {"y"}, "rms");
    attr_int(node, "axis", c.axis);
    attr_float(node, "epsilon", 1e-3f);
    b.output("y", onnx_type_of<float>(), Dims(c.dims.begin(), c.dims.end()));
    const Tensor y = run_both(b, {{"x", x}, {"scale", scale}});
    const auto axis = static_cast<size_t>(c.axis < 0 ? c.axis + static_cast<int64_t>(c.dims.size()) : c.axis);
    int64_t cols = 1;
    for (size_t d = axis; d < c.dims.size(); ++d) cols *= c.dims[d];
    const int64_t scale_n = scale.numel();
    int64_t wrong = 0;
    for (int64_t r = 0; r < x.numel() / cols; ++r) {
      double sq = 0;
      for (int64_t j = 0; j < cols; ++j) sq += std::pow(static_cast<double>(x.data_as<float>()[r * cols + j]), 2);
      const double inv = 1.0 / std::sqrt(sq / static_cast<double>(cols) + static_cast<double>(1e-3f));
      for (int64_t j = 0; j < cols; ++j) {
        // The scale is right-aligned to the normalized dims: [20, 1] against [20, 613] repeats along 613.
        const int64_t s = scale_n == cols ? j : c.scale_dims.back() == 1 ? j / (cols / scale_n) : j % scale_n;
        const double want = static_cast<double>(x.data_as<float>()[r * cols + j]) * inv *
                            static_cast<double>(scale.data_as<float>()[s]);
        wrong += std::fabs(y.data_as<float>()[r * cols + j] - want) > 1e-6 * std::fabs(want) + 1e-7;
      }
    }
    EXPECT_EQ(wrong, 0) << tunnx::dims_to_string(c.dims) << " axis " << c.axis;
  }
}

// 4-D [B, H, S, D] and 3-D [B, S, H * D] inputs, halves and interleaved pairs, a partial rotary
// dim (the rest passes through), caches indexed by position_ids.
TEST_F(ParallelKernels, RotaryEmbeddingMatchesANaiveLoop) {
  const int64_t B = 2, H = 6, S = 97, D = 66, positions = 300;
  for (int layout = 0; layout < 2; ++layout)
    for (int interleaved = 0; interleaved < 2; ++interleaved)
      for (int64_t rot : {D, int64_t{34}}) {
        const std::vector<int64_t> dims = layout == 0 ? std::vector<int64_t>{B, H, S, D} : std::vector<int64_t>{B, S, H * D};
        const Tensor x = random(dims), cos = random({positions, rot / 2}), sin = random({positions, rot / 2});
        std::vector<int64_t> pos(static_cast<size_t>(B * S));
        for (auto& p : pos) p = static_cast<int64_t>(rng_() % positions);
        ModelBuilder b(23);
        b.input("x", onnx_type_of<float>(), Dims(dims.begin(), dims.end()));
        b.input("cos", onnx_type_of<float>(), Dims{positions, rot / 2});
        b.input("sin", onnx_type_of<float>(), Dims{positions, rot / 2});
        b.input("pos", onnx_type_of<int64_t>(), Dims{B, S});
        auto& node = b.node("RotaryEmbedding", {"x", "cos", "sin", "pos"}, {"y"}, "rope");
        attr_int(node, "interleaved", interleaved);
        attr_int(node, "rotary_embedding_dim", rot);
        if (layout == 1) attr_int(node, "num_heads", H);
        b.output("y", onnx_type_of<float>(), Dims(dims.begin(), dims.end()));
        const Tensor y = run_both(b, {{"x", x}, {"cos", cos}, {"sin", sin}, {"pos", Tensor::from_vector<int64_t>({B, S}, pos)}});
        int64_t wrong = 0;
        for (int64_t n = 0; n < B; ++n)
          for (int64_t h = 0; h < H; ++h)
            for (int64_t s = 0; s < S; ++s) {
              const int64_t base = (layout == 0 ? (n * H + h) * S + s : (n * S + s) * H + h) * D;
              const int64_t row = pos[static_cast<size_t>(n * S + s)] * (rot / 2);
              const float* xi = x.data_as<float>() + base;
              const float* yi = y.data_as<float>() + base;
              for (int64_t d = 0; d < rot / 2; ++d) {
                const int64_t i1 = interleaved ? 2 * d : d, i2 = interleaved ? 2 * d + 1 : d + rot / 2;
                const float c = cos.data_as<float>()[row + d], sn = sin.data_as<float>()[row + d];
                wrong += yi[i1] != c * xi[i1] - sn * xi[i2];
                wrong += yi[i2] != sn * xi[i1] + c * xi[i2];
              }
              for (int64_t d = rot; d < D; ++d) wrong += yi[d] != xi[d];
            }
        EXPECT_EQ(wrong, 0) << "layout " << layout << " interleaved " << interleaved << " rotary dim " << rot;
      }
}

}  // namespace
