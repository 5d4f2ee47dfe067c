// Session: input checking by name/dtype/shape with symbolic dims, dynamic shapes, concurrent runs,
// parameters read in place, output subsets and statistics. Models are built in code.
#include <filesystem>
#include <set>
#include <thread>

#include "runtime/core/model_impl.h"
#include "tests/importer/model_builder.h"
#include "tunnx/io.h"
#include "tunnx/session.h"

namespace tunnx_test {
namespace {

using tunnx::DataType;
using tunnx::ErrorCode;
using tunnx::Model;
using tunnx::NamedValues;
using tunnx::Session;
using tunnx::Tensor;

class SessionTest : public TempDirTest {
 protected:
  // y = Relu(x + w), mask = Greater(x, w); x: float [batch, 4], w: a Parameter [4].
  Model add_relu_model() {
    ModelBuilder b;
    b.input("x", TensorProto::FLOAT, Dims{"batch", 4});
    b.initializer(float_tensor("w", {4}, {-1.f, 0.5f, 2.f, -3.f}));
    b.node("Add", {"x", "w"}, {"s"}, "add");
    b.node("Relu", {"s"}, {"y"}, "relu");
    b.node("Greater", {"x", "w"}, {"mask"}, "greater");
    b.output("y", TensorProto::FLOAT, Dims{"batch", 4});
    b.output("mask", TensorProto::BOOL, Dims{"batch", 4});
    return Model::load(b.save(path("m.onnx")));
  }

  static Tensor input(int64_t batch, float start = -2.f) {
    std::vector<float> values(static_cast<size_t>(batch * 4));
    for (size_t i = 0; i < values.size(); ++i) values[i] = start + 0.25f * static_cast<float>(i % 17);
    return Tensor::from_vector<float>({batch, 4}, values);
  }

  static std::vector<float> expected_y(const Tensor& x, const std::vector<float>& w) {
    std::vector<float> y(static_cast<size_t>(x.numel()));
    for (int64_t i = 0; i < x.numel(); ++i) y[static_cast<size_t>(i)] = std::max(0.f, x.data_as<float>()[i] + w[static_cast<size_t>(i % 4)]);
    return y;
  }
};

TEST_F(SessionTest, RunsAndComputesTheRightValues) {
  Model model = add_relu_model();
  Session session(model);
  Tensor x = input(3);
  NamedValues out = session.run({{"x", x}});
  EXPECT_EQ(values_of<float>(out.at("y").tensor()), expected_y(x, {-1.f, 0.5f, 2.f, -3.f}));
  const Tensor& mask = out.at("mask").tensor();
  EXPECT_EQ(mask.dtype(), DataType::kBool);
  EXPECT_EQ(mask.data_as<bool>()[0], -2.f > -1.f);
}

TEST_F(SessionTest, OneSessionRunsBatch1ThenBatch64) {
  Model model = add_relu_model();
  Session session(model);
  for (int64_t batch : {1, 64, 1}) {
    Tensor x = input(batch);
    NamedValues out = session.run({{"x", x}});
    EXPECT_EQ(out.at("y").tensor().dims(), (std::vector<int64_t>{batch, 4}));
    EXPECT_EQ(values_of<float>(out.at("y").tensor()), expected_y(x, {-1.f, 0.5f, 2.f, -3.f}));
  }
  EXPECT_EQ(session.stats().plans_built, 1);
}

TEST_F(SessionTest, ConcurrentRunsMatchASingleThreadedRun) {
  Model model = add_relu_model();
  Session session(model);
  std::vector<Tensor> inputs;
  std::vector<std::vector<float>> reference;
  for (int t = 0; t < 8; ++t) {
    inputs.push_back(input(1 + t * 3, -2.f + 0.1f * static_cast<float>(t)));
    reference.push_back(values_of<float>(session.run({{"x", inputs.back()}}).at("y").tensor()));
  }
  std::vector<int> mismatches(8, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t)
    threads.emplace_back([&, t] {
      for (int i = 0; i < 200; ++i)
        if (values_of<float>(session.run({{"x", inputs[static_cast<size_t>(t)]}}).at("y").tensor()) != reference[static_cast<size_t>(t)])
          ++mismatches[static_cast<size_t>(t)];
    });
  for (auto& th : threads) th.join();
  for (int t = 0; t < 8; ++t) EXPECT_EQ(mismatches[static_cast<size_t>(t)], 0) << "thread " << t;
  EXPECT_EQ(session.stats().runs, 8 + 8 * 200);
}

TEST_F(SessionTest, ParametersAreReadInPlace) {
  Model model = add_relu_model();
  Session session(model);
  float* w = model.parameter("w").mutable_data_as<float>();
  w[0] = 10.f;  // the session sees the model's parameter, not a copy taken at creation
  Tensor x = input(2);
  EXPECT_EQ(values_of<float>(session.run({{"x", x}}).at("y").tensor()), expected_y(x, {10.f, 0.5f, 2.f, -3.f}));
}

TEST_F(SessionTest, ChosenOutputsOnly) {
  Model model = add_relu_model();
  Session session(model);
  NamedValues out = session.run({{"x", input(2)}}, {"mask"});
  EXPECT_EQ(out.size(), 1u);
  EXPECT_TRUE(out.count("mask"));
  tunnx::Error e = expect_error([&] { session.run({{"x", input(2)}}, {"nope"}); });
  EXPECT_EQ(std::string(e.what()), path("m.onnx").string() + ": tensor 'nope': is not an output of this model");
}

TEST_F(SessionTest, InputErrorsNameTheInput) {
  Model model = add_relu_model();
  Session session(model);
  // Each line starts with the model file, as the errors of loading and planning do.
  const std::string file = path("m.onnx").string() + ": ";
  auto message = [&](const NamedValues& feeds) {
    const std::string what = expect_error([&] { session.run(feeds); }).what();
    EXPECT_EQ(what.rfind(file, 0), 0u) << what;
    return what.substr(std::min(what.size(), file.size()));
  };
  EXPECT_EQ(message({}), "tensor 'x': is a required input and was not given");
  EXPECT_EQ(message({{"x", input(2)}, {"z", input(2)}}), "tensor 'z': is not an input of this model (inputs: x)");
  EXPECT_EQ(message({{"x", Tensor::from_vector<double>({1, 4}, {1, 2, 3, 4})}}),
            "tensor 'x': expects dtype float32, got float64");
  EXPECT_EQ(message({{"x", Tensor::from_vector<float>({4}, {1, 2, 3, 4})}}),
            "tensor 'x': expects rank 2, got rank 1 (shapes expected [batch,4], got [4])");
  EXPECT_EQ(message({{"x", Tensor::from_vector<float>({1, 3}, {1, 2, 3})}}),
            "tensor 'x': dimension 1 must be 4, got 3 (shapes expected [batch,4], got [1,3])");
}

TEST_F(SessionTest, SymbolicDimsBindAcrossInputs) {
  ModelBuilder b;
  b.input("a", TensorProto::FLOAT, Dims{"n", 2});
  b.input("b", TensorProto::FLOAT, Dims{"n", 2});
  b.node("Add", {"a", "b"}, {"c"}, "add");
  b.output("c", TensorProto::FLOAT, Dims{"n", 2});
  Model model = Model::load(b.save(path("m.onnx")));
  Session session(model);
  Tensor two = Tensor::from_vector<float>({2, 2}, {1, 2, 3, 4});
  Tensor three = Tensor::from_vector<float>({3, 2}, {1, 2, 3, 4, 5, 6});
  EXPECT_NO_THROW(session.run({{"a", two}, {"b", two}}));
  tunnx::Error e = expect_error([&] { session.run({{"a", two}, {"b", three}}); });
  EXPECT_TRUE(contains(e.what(), "dimension 'n' is 2 in input 'a' axis 0 but 3 in input 'b' axis 0")) << e.what();
}

TEST_F(SessionTest, AnonymousDimsTakeAnySizeEachWhileNamedOnesBind) {
  // A PaddlePaddle classifier declares [?, 3, ?, ?]: every "?" (and an empty dim_param) is a size of
  // its own, in one input and across inputs; a named dim still binds, within one input too.
  ModelBuilder b;
  b.input("x", TensorProto::FLOAT, Dims{"?", 3, "?", "?"});
  b.input("y", TensorProto::FLOAT, Dims{"?", "h", "h"});
  b.node("Identity", {"x"}, {"x_out"}, "ix");
  b.node("Identity", {"y"}, {"y_out"}, "iy");
  b.output("x_out", TensorProto::FLOAT, Dims{"?", 3, "?", "?"});
  b.output("y_out", TensorProto::FLOAT, Dims{"?", "h", "h"});
  Model model = Model::load(b.save(path("m.onnx")));
  Session session(model);
  const Tensor x(tunnx::DataType::kFloat32, {1, 3, 48, 192});
  EXPECT_NO_THROW(session.run({{"x", x}, {"y", Tensor(tunnx::DataType::kFloat32, {5, 4, 4})}}));
  tunnx::Error e = expect_error([&] { session.run({{"x", x}, {"y", Tensor(tunnx::DataType::kFloat32, {5, 4, 6})}}); });
  EXPECT_TRUE(contains(e.what(), "dimension 'h' is 4 in input 'y' axis 1 but 6 in input 'y' axis 2")) << e.what();
}

TEST_F(SessionTest, UnsupportedOpIsRefusedAtCreationNamingTheNode) {
  ModelBuilder b;
  b.input("x", TensorProto::FLOAT, Dims{2});
  b.node("Relu", {"x"}, {"y"}, "relu");
  b.node("Frobnicate", {"y"}, {"z"}, "frob", "com.example");
  b.add_opset("com.example", 1);
  b.output("z", TensorProto::FLOAT, Dims{2});
  fs::path p = b.save(path("m.onnx"));
  Model model = Model::load(p);
  tunnx::Error e = expect_error([&] { Session session(model); });
  EXPECT_EQ(e.code(), ErrorCode::kUnsupported);
  EXPECT_EQ(std::string(e.what()),
            p.string() + ": node 'frob' (Frobnicate): operator com.example:Frobnicate is not supported on cpu");
}

TEST_F(SessionTest, StatisticsNameTheKernelPerNodeAndCountBytes) {
  Model model = add_relu_model();
  Session session(model);
  session.run({{"x", input(5)}});
  tunnx::SessionStats stats = session.stats();
  ASSERT_EQ(stats.kernels.size(), 3u);
  EXPECT_EQ(stats.kernels[0].node, "add");
  EXPECT_EQ(stats.kernels[0].kernel, "cpu/reference/Add");
  EXPECT_EQ(stats.plans_built, 1);
  // s and y: 5x4 floats each; mask: 5x4 bools.
  EXPECT_EQ(stats.last_run_bytes_allocated, 2 * 5 * 4 * 4 + 5 * 4);
}

TEST_F(SessionTest, ModelLocalFunctionsAreExpandedInTheSessionOnly) {
  ModelBuilder b;
  b.add_opset("local", 1);
  add_double_function(b.model());
  b.input("x", TensorProto::FLOAT, Dims{2});
  b.node("Double", {"x"}, {"y"}, "double", "local");
  b.node("Double", {"y"}, {"z"}, "", "local");
  b.output("z", TensorProto::FLOAT, Dims{2});
  Model model = Model::load(b.save(path("m.onnx")));
  Session session(model);
  Tensor x = Tensor::from_vector<float>({2}, {1.5f, -2.f});
  EXPECT_EQ(values_of<float>(session.run({{"x", x}}).at("z").tensor()), (std::vector<float>{6.f, -8.f}));
  ASSERT_EQ(session.stats().kernels.size(), 2u);
  EXPECT_EQ(session.stats().kernels[0].node, "double/Add");
  EXPECT_EQ(tunnx::model_impl(model).ir.graph.nodes.size(), 2u);  // the model still calls its function
  EXPECT_EQ(tunnx::model_impl(model).ir.graph.nodes[0].op_type, "Double");
}

}  // namespace
}  // namespace tunnx_test

namespace tunnx_test {
namespace {

// A profile descends into If/Loop bodies: their nodes follow the node that runs them, one level
// deeper, with the body's path; only the branch taken is timed, and the main graph's time holds it.
TEST(SessionProfile, DescendsIntoIfBranches) {
  // test_if_seq: each branch builds a sequence from a Constant (test_if's branches hold nothing but
  // their Constant weights, which load as the branches' initializers).
  const std::filesystem::path dir = std::filesystem::path(TUNNX_TESTDATA_DIR) / "node" / "test_if_seq";
  if (!std::filesystem::exists(dir / "model.onnx")) GTEST_SKIP() << "no libonnx-testdata";
  Model model = Model::load(dir / "model.onnx");
  Session session(model, {.profile = true});
  const tunnx::Value cond = tunnx::load_value(dir / "test_data_set_0" / "input_0.pb");
  const std::string input = model.info().inputs.at(0).name;
  for (int i = 0; i < 3; ++i) session.run({{input, cond}});
  const tunnx::SessionStats stats = session.stats();
  ASSERT_FALSE(stats.kernels.empty());
  EXPECT_EQ(stats.kernels[0].op_type, "If");
  EXPECT_EQ(stats.kernels[0].depth, 0);
  int timed_inside = 0, branches = 0;
  std::set<std::string> paths;
  for (const auto& k : stats.kernels)
    if (k.depth == 1) {
      ++branches;
      paths.insert(k.subgraph);
      timed_inside += k.calls == 3;
      EXPECT_LE(k.total_ms, stats.kernels[0].total_ms);
    }
  EXPECT_GE(branches, 2);  // both branches are listed
  EXPECT_GE(timed_inside, 1);  // the branch taken ran its nodes on every run
  const std::string node = stats.kernels[0].node.empty() ? "<unnamed>" : stats.kernels[0].node;
  EXPECT_TRUE(paths.count(node + "/then_branch") || paths.count(node + "/else_branch"));
}

}  // namespace
}  // namespace tunnx_test
