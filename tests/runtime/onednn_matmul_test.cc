// The oneDNN MatMul/Gemm fast paths (runtime/cpu/onednn/matmul.cc): float32 nodes run on them (the
// session's statistics say so) and agree with a double-precision naive matmul on shapes with edge
// sizes, transposes, alpha/beta and every broadcast of C; other dtypes stay on the reference
// kernels; concurrent runs give identical outputs. Skipped when the build has no oneDNN.
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "runtime/core/kernel_registry.h"
#include "runtime/core/run_threads.h"
#if TUNNX_WITH_ONEDNN
#include "runtime/cpu/onednn/onednn_common.h"
#include "runtime/cpu/onednn/packed_weights.h"
#endif
#include "tests/importer/model_builder.h"

namespace {

using namespace tunnx_test;
using tunnx::DataType;
using tunnx::Model;
using tunnx::NamedValues;
using tunnx::Session;
using tunnx::Tensor;

void pack_plain_layouts(bool on) {
#if TUNNX_WITH_ONEDNN
  tunnx::cpu::onednn::set_pack_plain_layouts_for_tests(on);
#else
  (void)on;
#endif
}

bool have_onednn() {
  const tunnx::KernelDef* def = tunnx::KernelRegistry::global().find("", "MatMul", 13, tunnx::DeviceType::kCpu,
                                                                      {DataType::kFloat32, DataType::kFloat32}, nullptr);
  return def && def->name == "cpu/onednn/MatMul";
}

Tensor random_tensor(const std::vector<int64_t>& dims, std::mt19937& rng) {
  Tensor t(DataType::kFloat32, dims);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  float* p = t.mutable_data_as<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] = dist(rng);
  return t;
}

Dims dims_of(const std::vector<int64_t>& d) { return Dims(d.begin(), d.end()); }

// Y [M, N] = alpha * op(A) op(B) + beta * C in double, with the error bound each element may have:
// float summation of K products errs by about K * 2^-24 of the sum of their magnitudes.
struct Expected {
  std::vector<double> values, bounds;
};

// op(A)[i, k] of a row-major A stored [M, K] or, transposed, [K, M].
double at(const float* x, int64_t rows_stored, int64_t cols_stored, bool transposed, int64_t i, int64_t k) {
  (void)rows_stored;
  return transposed ? x[k * cols_stored + i] : x[i * cols_stored + k];
}

void naive_gemm(const float* a, const float* b, int64_t M, int64_t K, int64_t N, bool ta, bool tb, double alpha,
                Expected& out, size_t offset) {
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double sum = 0, mag = 0;
      for (int64_t k = 0; k < K; ++k) {
        const double x = at(a, ta ? K : M, ta ? M : K, ta, i, k) * at(b, tb ? N : K, tb ? K : N, tb, k, j);
        sum += x;
        mag += std::fabs(x);
      }
      out.values[offset + static_cast<size_t>(i * N + j)] = alpha * sum;
      out.bounds[offset + static_cast<size_t>(i * N + j)] = 2e-7 * static_cast<double>(K + 16) * std::fabs(alpha) * mag;
    }
}

void expect_close(const Tensor& y, const Expected& e, const std::string& what) {
  ASSERT_EQ(static_cast<size_t>(y.numel()), e.values.size()) << what;
  const float* p = y.data_as<float>();
  int bad = 0;
  for (size_t i = 0; i < e.values.size() && bad < 5; ++i)
    if (!(std::fabs(p[i] - e.values[i]) <= e.bounds[i] + 1e-6)) {
      ADD_FAILURE() << what << ": element " << i << " is " << p[i] << ", expected " << e.values[i];
      ++bad;
    }
}

class OnednnMatMulTest : public TempDirTest {
 protected:
  void SetUp() override {
    TempDirTest::SetUp();
    if (!have_onednn()) GTEST_SKIP() << "built without oneDNN";
  }

  // A one-node MatMul model: y = a x b, both graph inputs of `dtype`, or b an initializer holding
  // `constant_b` (the 1x1-convolution path of conv_linear.h).
  Model matmul_model(const std::vector<int64_t>& ad, const std::vector<int64_t>& bd, const std::vector<int64_t>& yd,
                     int32_t dtype = onnx_type_of<float>(), const Tensor* constant_b = nullptr) {
    ModelBuilder b;
    b.input("a", dtype, dims_of(ad));
    if (constant_b)
      b.initializer(float_tensor("b", bd, std::vector<float>(constant_b->data_as<float>(),
                                                            constant_b->data_as<float>() + constant_b->numel())));
    else
      b.input("b", dtype, dims_of(bd));
    b.node("MatMul", {"a", "b"}, {"y"}, "mm");
    b.output("y", dtype, dims_of(yd));
    return Model::load(b.save(path("m.onnx")));
  }

  void check_constant_weights(const std::string& mode);

  std::mt19937 rng_{1234};
};

// numpy.matmul's output shape and, per output matrix, which A and B matrices it multiplies.
std::vector<int64_t> matmul_out_dims(std::vector<int64_t> ad, std::vector<int64_t> bd) {
  const bool a1 = ad.size() == 1, b1 = bd.size() == 1;
  if (a1) ad.insert(ad.begin(), 1);
  if (b1) bd.push_back(1);
  const size_t r = std::max(ad.size(), bd.size());
  ad.insert(ad.begin(), r - ad.size(), 1);
  bd.insert(bd.begin(), r - bd.size(), 1);
  std::vector<int64_t> out;
  for (size_t i = 0; i + 2 < r; ++i) out.push_back(std::max(ad[i], bd[i]));
  if (!a1) out.push_back(ad[r - 2]);
  if (!b1) out.push_back(bd[r - 1]);
  return out;
}

Expected naive_matmul(const Tensor& a, const Tensor& b) {
  std::vector<int64_t> ad = a.dims(), bd = b.dims();
  if (ad.size() == 1) ad.insert(ad.begin(), 1);
  if (bd.size() == 1) bd.push_back(1);
  const size_t r = std::max(ad.size(), bd.size());
  ad.insert(ad.begin(), r - ad.size(), 1);
  bd.insert(bd.begin(), r - bd.size(), 1);
  const int64_t M = ad[r - 2], K = ad[r - 1], N = bd[r - 1];
  std::vector<int64_t> batch;
  for (size_t i = 0; i + 2 < r; ++i) batch.push_back(std::max(ad[i], bd[i]));
  int64_t count = 1;
  for (int64_t d : batch) count *= d;
  Expected e;
  e.values.resize(static_cast<size_t>(count * M * N));
  e.bounds.resize(e.values.size());
  for (int64_t n = 0; n < count; ++n) {
    // The batch index of output matrix n, then each operand's matrix (size-1 dims broadcast).
    int64_t rest = n, ai = 0, bi = 0, a_stride = 1, b_stride = 1;
    for (size_t d = batch.size(); d-- > 0;) {
      const int64_t idx = rest % batch[d];
      rest /= batch[d];
      ai += (ad[d] == 1 ? 0 : idx) * a_stride;
      bi += (bd[d] == 1 ? 0 : idx) * b_stride;
      a_stride *= ad[d];
      b_stride *= bd[d];
    }
    naive_gemm(a.data_as<float>() + ai * M * K, b.data_as<float>() + bi * K * N, M, K, N, false, false, 1.0, e,
               static_cast<size_t>(n * M * N));
  }
  return e;
}

TEST_F(OnednnMatMulTest, MatMulMatchesNaiveOnEdgeShapes) {
  struct Case {
    std::vector<int64_t> a, b;
  };
  const std::vector<Case> cases = {
      {{1, 1}, {1, 1}},
      {{1, 7}, {7, 1}},
      {{3, 5}, {5, 7}},
      {{17, 1}, {1, 13}},
      {{1, 1024}, {1024, 3}},
      {{33, 1024}, {1024, 65}},
      {{64, 257}, {257, 31}},
      {{2, 3, 4, 5}, {2, 3, 5, 6}},
      {{3, 1, 4, 5}, {1, 2, 5, 6}},  // both sides broadcast
      {{2, 4, 9}, {9, 3}},           // B shared by every batch
      {{9}, {2, 9, 3}},              // 1-D A
      {{2, 4, 9}, {9}},              // 1-D B
      {{9}, {9}},                    // a dot product
      {{5, 1, 1, 1, 3}, {4, 1, 3, 2}},
      // A wide row-major B with many rows of A: brgemm reads it transposed into scratch first.
      {{64, 96}, {96, 1000}},
      {{2, 40, 33}, {33, 1030}},  // B shared by every batch
  };
  for (const Case& c : cases)
    for (bool constant : {false, true}) {
      if (constant && c.b.size() != 2) continue;  // constant 2-D weights take the convolution path
      const std::string what = tunnx::dims_to_string(c.a) + " x " + tunnx::dims_to_string(c.b) +
                               (constant ? " (B an initializer)" : "");
      const std::vector<int64_t> yd = matmul_out_dims(c.a, c.b);
      Tensor a = random_tensor(c.a, rng_), b = random_tensor(c.b, rng_);
      Model model = matmul_model(c.a, c.b, yd, onnx_type_of<float>(), constant ? &b : nullptr);
      Session session(model);
      ASSERT_EQ(session.stats().kernels.size(), 1u);
      EXPECT_EQ(session.stats().kernels[0].kernel, "cpu/onednn/MatMul") << what;
      NamedValues feeds = {{"a", a}};
      if (!constant) feeds["b"] = b;
      NamedValues out = session.run(feeds);
      const Tensor& y = out.at("y").tensor();
      EXPECT_EQ(y.dims(), yd) << what;
      expect_close(y, naive_matmul(a, b), what);
    }
}

TEST_F(OnednnMatMulTest, OneKernelServesManyShapes) {
  // Symbolic dims: the one kernel builds a primitive per shape and keeps more than its cache holds.
  ModelBuilder b;
  b.input("a", onnx_type_of<float>(), Dims{"m", "k"});
  b.input("b", onnx_type_of<float>(), Dims{"k", "n"});
  b.node("MatMul", {"a", "b"}, {"y"}, "mm");
  b.output("y", onnx_type_of<float>(), Dims{"m", "n"});
  Model model = Model::load(b.save(path("m.onnx")));
  Session session(model);
  EXPECT_EQ(session.stats().kernels[0].kernel, "cpu/onednn/MatMul");
  for (int round = 0; round < 2; ++round)
    for (int64_t s = 1; s <= 20; ++s) {
      const std::vector<int64_t> ad = {s, s + 2}, bd = {s + 2, 21 - s};
      Tensor a = random_tensor(ad, rng_), bt = random_tensor(bd, rng_);
      NamedValues out = session.run({{"a", a}, {"b", bt}});
      expect_close(out.at("y").tensor(), naive_matmul(a, bt), tunnx::dims_to_string(ad) + " x " + tunnx::dims_to_string(bd));
    }
}

TEST_F(OnednnMatMulTest, InitializerWeightsAndInnerMismatchError) {
  ModelBuilder b;
  Tensor w = random_tensor({64, 48}, rng_);
  b.initializer(float_tensor("w", {64, 48}, std::vector<float>(w.data_as<float>(), w.data_as<float>() + w.numel())));
  b.input("a", onnx_type_of<float>(), Dims{"m", 64});
  b.node("MatMul", {"a", "w"}, {"y"}, "mm");
  b.output("y", onnx_type_of<float>(), Dims{"m", 48});
  Model model = Model::load(b.save(path("m.onnx")));
  Session session(model);
  EXPECT_EQ(session.stats().kernels[0].kernel, "cpu/onednn/MatMul");
  for (int64_t m : {1, 5, 1}) {
    Tensor a = random_tensor({m, 64}, rng_);
    expect_close(session.run({{"a", a}}).at("y").tensor(), naive_matmul(a, w), "m=" + std::to_string(m));
  }
  // Later writes to the model's weights are seen by later runs (nothing stale is kept).
  Tensor param = model.parameter("w");
  param.mutable_data_as<float>()[0] += 1.0f;
  Tensor a = random_tensor({3, 64}, rng_);
  expect_close(session.run({{"a", a}}).at("y").tensor(), naive_matmul(a, param), "after a weight write");
}

// Gemm with transB weights as an initializer (how torch exports Linear): oneDNN reads a copy in the
// layout it prefers. The copy follows every write to the weight (a write through the model,
// load_state_dict), and an input fed under the initializer's name is read instead of the copy.
TEST_F(OnednnMatMulTest, ConstantWeightsFollowWritesAndFedInputs) {
  for (bool pack_plain : {false, true}) {
    // AVX2 machines are offered plain layouts only, which are not copied; packing them too runs the
    // packed path here as AVX-512 machines run it.
    pack_plain_layouts(pack_plain);
    check_constant_weights(pack_plain ? "packed" : "as stored");
  }
  pack_plain_layouts(false);
}

void OnednnMatMulTest::check_constant_weights(const std::string& mode) {
  SCOPED_TRACE(mode);
  const int64_t K = 40, N = 24;
  Tensor w0 = random_tensor({N, K}, rng_);
  ModelBuilder b;
  b.initializer(float_tensor("w", {N, K}, std::vector<float>(w0.data_as<float>(), w0.data_as<float>() + w0.numel())));
  b.input("a", onnx_type_of<float>(), Dims{"m", K});
  b.input("w", onnx_type_of<float>(), Dims{N, K});  // an initializer that is also an input: a default
  onnx::NodeProto& n = b.node("Gemm", {"a", "w"}, {"y"}, "gemm");
  attr_int(n, "transB", 1);
  b.output("y", onnx_type_of<float>(), Dims{"m", N});
  Model model = Model::load(b.save(path("m.onnx")));
  Session session(model);
  EXPECT_EQ(session.stats().kernels[0].kernel, "cpu/onednn/Gemm");

  auto expected = [&](const Tensor& a, const Tensor& w) {
    Expected e;
    e.values.resize(static_cast<size_t>(a.dims()[0] * N));
    e.bounds.resize(e.values.size());
    naive_gemm(a.data_as<float>(), w.data_as<float>(), a.dims()[0], K, N, false, true, 1.0, e, 0);
    return e;
  };
  for (int64_t m : {1, 9, 1}) {
    Tensor a = random_tensor({m, K}, rng_);
    expect_close(session.run({{"a", a}}).at("y").tensor(), expected(a, w0), "m=" + std::to_string(m));
  }
  Tensor param = model.parameter("w");
  param.mutable_data_as<float>()[5] += 2.0f;
  Tensor a = random_tensor({4, K}, rng_);
  expect_close(session.run({{"a", a}}).at("y").tensor(), expected(a, param), "after a write");

  Tensor w1 = random_tensor({N, K}, rng_);
  model.load_state_dict({{"w", w1}});
  expect_close(session.run({{"a", a}}).at("y").tensor(), expected(a, w1), "after load_state_dict");

  Tensor fed = random_tensor({N, K}, rng_);
  expect_close(session.run({{"a", a}, {"w", fed}}).at("y").tensor(), expected(a, fed), "a fed w");
  expect_close(session.run({{"a", a}}).at("y").tensor(), expected(a, w1), "the initializer again");
}

TEST_F(OnednnMatMulTest, OtherDtypesStayOnTheReferenceKernel) {
  Model model = matmul_model({3, 4}, {4, 2}, {3, 2}, onnx_type_of<double>());
  Session session(model);
  EXPECT_EQ(session.stats().kernels[0].kernel, "cpu/reference/MatMul");
  Tensor a = Tensor::from_vector<double>({3, 4}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12});
  Tensor b = Tensor::from_vector<double>({4, 2}, {1, 0, 0, 1, 1, 0, 0, 1});
  Tensor y = session.run({{"a", a}, {"b", b}}).at("y").tensor();
  EXPECT_EQ(values_of<double>(y), (std::vector<double>{4, 6, 12, 14, 20, 22}));
}

TEST_F(OnednnMatMulTest, ShapeErrorsAreTheReferenceKernels) {
  ModelBuilder b;
  b.input("a", onnx_type_of<float>(), Dims{"m", "k"});
  b.input("b", onnx_type_of<float>(), Dims{"j", "n"});
  b.node("MatMul", {"a", "b"}, {"y"}, "mm");
  b.output("y", onnx_type_of<float>(), Dims{"m", "n"});
  Model model = Model::load(b.save(path("m.onnx")));
  Session session(model);
  tunnx::Error e = expect_error([&] {
    session.run({{"a", random_tensor({2, 3}, rng_)}, {"b", random_tensor({4, 5}, rng_)}});
  });
  EXPECT_TRUE(contains(e.what(), "inner dimensions differ"));
  EXPECT_TRUE(contains(e.what(), "mm"));
}

// ---- Gemm ----

struct GemmCase {
  int64_t M, K, N;
  bool ta, tb;
  float alpha, beta;
  bool has_c;
  std::vector<int64_t> c_dims;
};

std::string describe(const GemmCase& g) {
  return "M=" + std::to_string(g.M) + " K=" + std::to_string(g.K) + " N=" + std::to_string(g.N) +
         " transA=" + std::to_string(g.ta) + " transB=" + std::to_string(g.tb) + " alpha=" + std::to_string(g.alpha) +
         " beta=" + std::to_string(g.beta) + " C=" + (g.has_c ? tunnx::dims_to_string(g.c_dims) : std::string("none"));
}

TEST_F(OnednnMatMulTest, GemmMatchesNaiveForEveryVariant) {
  std::vector<GemmCase> cases;
  const std::vector<std::vector<int64_t>> shapes = {{1, 1, 1}, {3, 5, 7}, {17, 1024, 9}, {1, 33, 65}, {70, 40, 1030}};
  for (const auto& s : shapes) {
    const int64_t M = s[0], K = s[1], N = s[2];
    for (int ta = 0; ta < 2; ++ta)
      for (int tb = 0; tb < 2; ++tb) {
        cases.push_back({M, K, N, ta != 0, tb != 0, 1.0f, 1.0f, false, {}});
        cases.push_back({M, K, N, ta != 0, tb != 0, 0.5f, 1.0f, true, {M, N}});
      }
    for (const auto& cd : std::vector<std::vector<int64_t>>{{}, {1}, {N}, {M, 1}, {1, N}, {1, 1}, {M, N}})
      for (float beta : {1.0f, -2.0f, 0.0f}) cases.push_back({M, K, N, false, true, 1.5f, beta, true, cd});
  }
  for (const GemmCase& g : cases)
    for (bool constant : {false, true}) {
    const std::string what = describe(g) + (constant ? " B an initializer" : "");
    const std::vector<int64_t> ad = g.ta ? std::vector<int64_t>{g.K, g.M} : std::vector<int64_t>{g.M, g.K};
    const std::vector<int64_t> bd = g.tb ? std::vector<int64_t>{g.N, g.K} : std::vector<int64_t>{g.K, g.N};
    Tensor a = random_tensor(ad, rng_), bt = random_tensor(bd, rng_);
    ModelBuilder b;
    b.input("a", onnx_type_of<float>(), dims_of(ad));
    if (constant)
      b.initializer(float_tensor("b", bd, std::vector<float>(bt.data_as<float>(), bt.data_as<float>() + bt.numel())));
    else
      b.input("b", onnx_type_of<float>(), dims_of(bd));
    std::vector<std::string> inputs = {"a", "b"};
    if (g.has_c) {
      b.input("c", onnx_type_of<float>(), dims_of(g.c_dims));
      inputs.push_back("c");
    }
    onnx::NodeProto& n = b.node("Gemm", inputs, {"y"}, "gemm");
    attr_int(n, "transA", g.ta);
    attr_int(n, "transB", g.tb);
    attr_float(n, "alpha", g.alpha);
    attr_float(n, "beta", g.beta);
    b.output("y", onnx_type_of<float>(), Dims{g.M, g.N});
    Model model = Model::load(b.save(path("m.onnx")));
    Session session(model);
    EXPECT_EQ(session.stats().kernels[0].kernel, "cpu/onednn/Gemm") << what;

    NamedValues feeds = {{"a", a}};
    if (!constant) feeds["b"] = bt;
    Expected e;
    e.values.resize(static_cast<size_t>(g.M * g.N));
    e.bounds.resize(e.values.size());
    naive_gemm(a.data_as<float>(), bt.data_as<float>(), g.M, g.K, g.N, g.ta, g.tb, g.alpha, e, 0);
    if (g.has_c) {
      Tensor c = random_tensor(g.c_dims, rng_);
      feeds["c"] = c;
      std::vector<int64_t> cd = g.c_dims;
      cd.insert(cd.begin(), 2 - cd.size(), 1);
      for (int64_t i = 0; i < g.M; ++i)
        for (int64_t j = 0; j < g.N; ++j) {
          const double cv = c.data_as<float>()[(cd[0] == 1 ? 0 : i * cd[1]) + (cd[1] == 1 ? 0 : j)];
          e.values[static_cast<size_t>(i * g.N + j)] += g.beta * cv;
          e.bounds[static_cast<size_t>(i * g.N + j)] += 1e-6 * std::fabs(g.beta * cv);
        }
    }
    expect_close(session.run(feeds).at("y").tensor(), e, what);
    }
}

TEST_F(OnednnMatMulTest, ConcurrentRunsGiveIdenticalOutputs) {
  ModelBuilder b;
  b.input("a", onnx_type_of<float>(), Dims{"m", 96});
  b.input("w", onnx_type_of<float>(), Dims{80, 96});
  b.input("c", onnx_type_of<float>(), Dims{80});
  onnx::NodeProto& n = b.node("Gemm", {"a", "w", "c"}, {"h"}, "gemm");
  attr_int(n, "transB", 1);
  b.input("v", onnx_type_of<float>(), Dims{80, 33});
  b.node("MatMul", {"h", "v"}, {"y"}, "mm");
  b.output("y", onnx_type_of<float>(), Dims{"m", 33});
  Model model = Model::load(b.save(path("m.onnx")));
  Session session(model);
  ASSERT_EQ(session.stats().kernels.size(), 2u);
  EXPECT_EQ(session.stats().kernels[0].kernel, "cpu/onednn/Gemm");
  EXPECT_EQ(session.stats().kernels[1].kernel, "cpu/onednn/MatMul");

  // Each thread uses its own batch size too, so primitives are built while others run.
  const std::vector<int64_t> rows = {1, 7, 32, 7};
  Tensor w = random_tensor({80, 96}, rng_), c = random_tensor({80}, rng_), v = random_tensor({80, 33}, rng_);
  std::vector<Tensor> inputs, expected;
  for (int64_t m : rows) {
    inputs.push_back(random_tensor({m, 96}, rng_));
    expected.push_back(session.run({{"a", inputs.back()}, {"w", w}, {"c", c}, {"v", v}}).at("y").tensor());
  }
  std::vector<int> mismatches(rows.size(), 0);
  std::vector<std::thread> threads;
  for (size_t t = 0; t < rows.size(); ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 50; ++i) {
        Tensor y = session.run({{"a", inputs[t]}, {"w", w}, {"c", c}, {"v", v}}).at("y").tensor();
        if (!y.equals(expected[t])) ++mismatches[t];
      }
    });
  for (auto& th : threads) th.join();
  for (size_t t = 0; t < rows.size(); ++t) EXPECT_EQ(mismatches[t], 0) << "thread " << t;
}

// Constant weights under concurrency: fresh sessions whose first runs happen at once on several
// threads (so the weights are packed and primitives built while other runs wait or run) give the
// outputs a session run alone gives. One thread per run, so results do not depend on how many threads
// a run was granted.
TEST_F(OnednnMatMulTest, ConcurrentFirstRunsOnConstantWeights) {
  ModelBuilder b;
  auto values = [&](const std::vector<int64_t>& d) {
    Tensor t = random_tensor(d, rng_);
    return std::vector<float>(t.data_as<float>(), t.data_as<float>() + t.numel());
  };
  b.initializer(float_tensor("w", {80, 96}, values({80, 96})));
  b.initializer(float_tensor("c", {80}, values({80})));
  b.initializer(float_tensor("v", {80, 33}, values({80, 33})));
  b.input("a", onnx_type_of<float>(), Dims{"m", 96});
  onnx::NodeProto& n = b.node("Gemm", {"a", "w", "c"}, {"h"}, "gemm");
  attr_int(n, "transB", 1);
  b.node("Relu", {"h"}, {"r"}, "relu");
  b.node("MatMul", {"r", "v"}, {"y"}, "mm");
  b.output("y", onnx_type_of<float>(), Dims{"m", 33});
  Model model = Model::load(b.save(path("m.onnx")));
  const std::vector<int64_t> rows = {2, 7, 32, 7};
  std::vector<Tensor> inputs, expected;
  {
    Session alone(model, {.threads = 1});
    for (int64_t m : rows) {
      inputs.push_back(random_tensor({m, 96}, rng_));
      expected.push_back(alone.run({{"a", inputs.back()}}).at("y").tensor());
    }
  }
  for (int round = 0; round < 3; ++round) {
    Session session(model, {.threads = 1});
    std::vector<int> mismatches(rows.size(), 0);
    std::vector<std::thread> threads;
    for (size_t t = 0; t < rows.size(); ++t)
      threads.emplace_back([&, t] {
        for (int i = 0; i < 20; ++i)
          if (!session.run({{"a", inputs[t]}}).at("y").tensor().equals(expected[t])) ++mismatches[t];
      });
    for (auto& th : threads) th.join();
    for (size_t t = 0; t < rows.size(); ++t) EXPECT_EQ(mismatches[t], 0) << "round " << round << ", thread " << t;
  }
}

#if TUNNX_WITH_ONEDNN
// A primitive of a few microseconds runs on the calling thread (waking the team cost more than the
// work); the run's thread count comes back after it, and larger work keeps every thread.
TEST(SerialIfSmall, SmallWorkRunsOnTheCallingThreadAndTheCountComesBack) {
  tunnx::RunThreads threads(2);
  if (tunnx::RunThreads::current() != 2) GTEST_SKIP() << "built without OpenMP";
  {
    const tunnx::cpu::onednn::SerialIfSmall serial(100);
    EXPECT_EQ(tunnx::RunThreads::current(), 1);
  }
  EXPECT_EQ(tunnx::RunThreads::current(), 2);
  {
    const tunnx::cpu::onednn::SerialIfSmall serial(tunnx::cpu::onednn::SerialIfSmall::kSerialWork * 2);
    EXPECT_EQ(tunnx::RunThreads::current(), 2);
  }
  // Primitives are cached per the team they are built for: small work one thread, large the run's.
  EXPECT_EQ(tunnx::cpu::onednn::team_for(100), 1);
  EXPECT_EQ(tunnx::cpu::onednn::team_for(tunnx::cpu::onednn::SerialIfSmall::kSerialWork * 2), 2);
  tunnx::RunThreads one(1);
  EXPECT_EQ(tunnx::cpu::onednn::team_for(tunnx::cpu::onednn::SerialIfSmall::kSerialWork * 2), 1);
}
#endif

}  // namespace
