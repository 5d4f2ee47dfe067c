// `tunnx bench`: the report's shape (JSON fields, percentiles in order), dynamic batch on the bundled
// digits model, and clean failures. No timing is asserted: speed is measured in bench/, not here.
#include <algorithm>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/e2e/cli_harness.h"
#include "tests/importer/model_builder.h"
#include "tunnx/threads.h"

namespace tunnx::e2e {
namespace {

using nlohmann::json;

json bench_json(const std::vector<std::string>& extra) {
  std::vector<std::string> args{"bench", kExampleModel.string(), "--iters", "5", "--warmup", "1", "--json"};
  args.insert(args.end(), extra.begin(), extra.end());
  ProcessResult r = run_cli(args);
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.err, "") << r.describe();
  json j;
  EXPECT_NO_THROW(j = json::parse(r.out)) << r.out;
  return j;
}

void expect_one_error_line(const ProcessResult& r, int exit_code, const std::string& wanted) {
  ASSERT_TRUE(r.exited) << r.describe();
  EXPECT_EQ(r.exit_code, exit_code) << r.describe();
  EXPECT_EQ(r.out, "") << r.describe();
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "stderr must be exactly one line\n" << r.describe();
  EXPECT_EQ(r.err.rfind("tunnx: error: ", 0), 0u) << r.describe();
  EXPECT_TRUE(contains(r.err, wanted)) << "stderr lacks \"" << wanted << "\"\n" << r.describe();
}

TEST(CliBench, JsonHasTheLatencyFields) {
  json j = bench_json({});
  ASSERT_TRUE(j.is_object()) << j.dump();
  for (const char* field : {"median_ms", "p90_ms", "p99_ms", "mean_ms", "iters", "threads", "batch", "peak_rss_bytes",
                            "load_ms", "session_ms", "first_run_ms", "wait_policy"})
    EXPECT_TRUE(j.contains(field)) << "missing " << field << " in " << j.dump();
  EXPECT_EQ(j.at("iters"), 5);
  EXPECT_EQ(j.at("warmup"), 1);
  EXPECT_EQ(j.at("threads"), 0);
  EXPECT_EQ(j.at("batch"), 1);
  EXPECT_GT(j.at("median_ms").get<double>(), 0.0);
  EXPECT_GE(j.at("p90_ms").get<double>(), j.at("median_ms").get<double>());
  EXPECT_GE(j.at("p99_ms").get<double>(), j.at("p90_ms").get<double>());
  EXPECT_GT(j.at("peak_rss_bytes").get<uint64_t>(), 0u);
  EXPECT_EQ(j.at("inputs"), json::parse(R"([{"name": "input", "dtype": "float32", "shape": [1, 1, 8, 8], "data": "synthesized"}])"));
}

// By default the session takes the model and frees the weights the kernels pack; the JSON says how
// much. --keep-weights keeps them; --release-weights, the default, is still taken.
TEST(CliBench, ReleasesPackedWeightsUnlessToldToKeepThem) {
  json kept = bench_json({"--threads", "1", "--keep-weights"});
  EXPECT_EQ(kept.at("release_weights"), false);
  EXPECT_EQ(kept.at("released_initializers"), 0);
  EXPECT_EQ(kept.at("released_bytes"), 0);
  for (const std::vector<std::string>& args : {std::vector<std::string>{"--threads", "1"},
                                               std::vector<std::string>{"--threads", "1", "--release-weights"}}) {
    json released = bench_json(args);
    EXPECT_EQ(released.at("release_weights"), true);
    if (TUNNX_WITH_ONEDNN) {
      EXPECT_GE(released.at("released_initializers").get<int64_t>(), 2);  // the two Gemm weights at least
      EXPECT_GT(released.at("released_bytes").get<int64_t>(), 0);
    }
  }
}

// OpenMP's wait policy (tunnx/threads.h): bench starts again with the recommended spin count when
// the environment names none, and keeps the user's when it does; the JSON says which it ran with.
TEST(CliBench, StartsWithTheRecommendedWaitPolicyUnlessOneIsSet) {
  const std::vector<std::string> bench = {kCli.string(), "bench", kExampleModel.string(), "--iters", "2", "--json"};
  auto policy_with = [&](std::vector<std::string> env_args) {
    env_args.insert(env_args.begin(), {"/usr/bin/env", "-u", "OMP_WAIT_POLICY", "-u", "GOMP_SPINCOUNT", "-u",
                                       "TUNNX_WAIT_POLICY_APPLIED"});
    env_args.insert(env_args.end(), bench.begin(), bench.end());
    ProcessResult r = run_process(env_args, std::chrono::seconds(120));
    EXPECT_EQ(r.exit_code, 0) << r.describe();
    json j = json::parse(r.out, nullptr, false);
    return j.is_object() && j.contains("wait_policy") ? j.at("wait_policy").get<std::string>() : r.describe();
  };
  EXPECT_EQ(policy_with({}), std::string("GOMP_SPINCOUNT=") + kRecommendedSpinCount);
  EXPECT_EQ(policy_with({"OMP_WAIT_POLICY=passive"}), "OMP_WAIT_POLICY=passive");
  EXPECT_EQ(policy_with({"GOMP_SPINCOUNT=123"}), "GOMP_SPINCOUNT=123");
}

TEST(CliBench, BatchSetsTheSymbolicDim) {
  json j = bench_json({"--batch", "3", "--threads", "1"});
  EXPECT_EQ(j.at("batch"), 3);
  EXPECT_EQ(j.at("threads"), 1);
  EXPECT_EQ(j.at("inputs")[0].at("shape"), json({3, 1, 8, 8}));
  EXPECT_GT(j.at("median_ms").get<double>(), 0.0);
}

TEST(CliBench, TextReportNamesThePercentiles) {
  ProcessResult r = run_cli({"bench", kExampleModel.string(), "--iters", "3", "--warmup", "0"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  for (const char* word : {"median", "p90", "p99", "throughput", "peak RSS", "[1,1,8,8]"})
    EXPECT_TRUE(contains(r.out, word)) << "missing " << word << "\n" << r.describe();
}

// --optimization picks the graph rewrites: at 0 the digits model's Gemm and Relu stay two nodes, at 2
// (the default) they are one fused node; --threads is what the run was granted when it runs alone.
TEST(CliBench, OptimizationLevelChoosesTheKernels) {
  json plain = bench_json({"--optimization", "0", "--threads", "1"});
  EXPECT_EQ(plain.at("optimization"), 0);
  EXPECT_EQ(plain.at("threads_granted"), 1);
  EXPECT_TRUE(plain.at("kernels").contains(TUNNX_WITH_ONEDNN ? "cpu/onednn/Relu" : "cpu/reference/Relu")) << plain.dump();
  EXPECT_FALSE(plain.at("kernels").contains("cpu/onednn/FusedMatMul")) << plain.dump();
  json fused = bench_json({});
  EXPECT_EQ(fused.at("optimization"), 2);
  EXPECT_TRUE(fused.at("kernels").contains("cpu/onednn/FusedMatMul")) << fused.dump();
}

// --profile times every node on a second session: per-node calls and times, the executor's overhead.
TEST(CliBench, ProfileReportsNodesAndOverhead) {
  json j = bench_json({"--profile"});
  ASSERT_TRUE(j.contains("profile")) << j.dump();
  const json& p = j.at("profile");
  EXPECT_EQ(p.at("runs"), 6);  // 1 warmup + 5 timed
  EXPECT_GT(p.at("run_ms").get<double>(), 0);
  EXPECT_GT(p.at("kernel_ms").get<double>(), 0);
  EXPECT_LE(p.at("kernel_ms").get<double>(), p.at("run_ms").get<double>());
  EXPECT_NEAR(p.at("overhead_ms").get<double>(), p.at("run_ms").get<double>() - p.at("kernel_ms").get<double>(), 1e-9);
  ASSERT_FALSE(p.at("nodes").empty());
  for (const json& node : p.at("nodes")) {
    EXPECT_EQ(node.at("calls"), 6) << node.dump();
    EXPECT_GE(node.at("ms_per_call").get<double>(), 0) << node.dump();
  }
  ProcessResult text = run_cli({"bench", kExampleModel.string(), "--iters", "3", "--warmup", "0", "--profile"});
  ASSERT_EQ(text.exit_code, 0) << text.describe();
  EXPECT_TRUE(contains(text.out, "executor overhead")) << text.out;
  EXPECT_TRUE(contains(text.out, "ms/call")) << text.out;
}

TEST(CliBench, OptimizationOutOfRangeIsAUsageError) {
  ProcessResult r = run_cli({"bench", kExampleModel.string(), "--optimization", "3"});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
  EXPECT_EQ(r.out, "") << r.describe();
  EXPECT_TRUE(contains(r.err, "--optimization")) << r.describe();
}

TEST(CliBench, ZeroItersIsAUsageError) {
  expect_one_error_line(run_cli({"bench", kExampleModel.string(), "--iters", "0"}), 2, "--iters");
}

TEST(CliBench, ZeroBatchIsAUsageError) {
  expect_one_error_line(run_cli({"bench", kExampleModel.string(), "--batch", "0"}), 2, "--batch");
}

TEST(CliBench, MissingModelFailsWithOneLine) {
  TempFolder temp;
  fs::path missing = temp.model_dir() / "missing.onnx";
  expect_one_error_line(run_cli({"bench", missing.string(), "--iters", "1"}), 1, missing.string());
}

TEST(CliBench, UnknownDeviceFailsWithOneLine) {
  expect_one_error_line(run_cli({"bench", kExampleModel.string(), "--device", "tpu", "--iters", "1"}), 1, "tpu");
}

// Real shapes: --shape fixes an input's dims, --dim a named free dim, --input times real data.
TEST(CliBench, ShapeDimAndInputChooseTheInputs) {
  json shaped = bench_json({"--shape", "input=3x1x8x8"});
  EXPECT_EQ(shaped.at("inputs")[0].at("shape"), json::array({3, 1, 8, 8})) << shaped.dump();
  json dim = bench_json({"--dim", "batch=5"});
  EXPECT_EQ(dim.at("inputs")[0].at("shape"), json::array({5, 1, 8, 8})) << dim.dump();
  const fs::path sample = fs::path(TUNNX_SOURCE_DIR) / "examples" / "digits_sample.npy";  // [4, 1, 8, 8]
  json data = bench_json({"--input", "input=" + sample.string()});
  ASSERT_EQ(data.at("inputs").size(), 1u) << data.dump();
  EXPECT_EQ(data.at("inputs")[0].at("data"), "file");
  EXPECT_EQ(data.at("inputs")[0].at("shape"), json::array({4, 1, 8, 8}));
}

TEST(CliBench, ShapeDimAndInputRefusals) {
  auto refused = [](std::vector<std::string> extra, const std::string& message) {
    std::vector<std::string> args{"bench", kExampleModel.string(), "--iters", "1", "--warmup", "0"};
    args.insert(args.end(), extra.begin(), extra.end());
    expect_one_error_line(run_cli(args), 1, message);
  };
  refused({"--shape", "image=1x1x8x8"}, "--shape 'image=1x1x8x8': the model has no input 'image' (its inputs: input)");
  refused({"--shape", "input=1x1x8"}, "tensor 'input': --shape [1,1,8] does not fit the declared [batch,1,8,8]");
  refused({"--shape", "input=2x3x8x8"}, "tensor 'input': --shape [2,3,8,8] does not fit the declared [batch,1,8,8]");
  refused({"--shape", "input=2x0x8x8"}, "--shape 'input=2x0x8x8': '0' is not a positive size");
  refused({"--shape", "input"}, "--shape 'input' must be NAME=DxDx... (e.g. image=1x3x224x224)");
  refused({"--dim", "batch=-2"}, "--dim 'batch=-2': '-2' is not a positive size");
  refused({"--input", "input=/nonexistent/x.npy"}, "/nonexistent/x.npy");
}

// A size bench made up that the model cannot take: the error says where it came from and how to set it.
TEST(CliBench, AMadeUpSizeTheModelRefusesSaysHowToSetIt) {
  TempFolder temp;
  tunnx_test::ModelBuilder b;
  b.input("x", onnx::TensorProto::FLOAT, tunnx_test::Dims{"n"});
  b.initializer(tunnx_test::int64_tensor("shape", {2}, {2, 3}));
  b.node("Reshape", {"x", "shape"}, {"y"}, "reshape");
  b.output("y", onnx::TensorProto::FLOAT, tunnx_test::Dims{2, 3});
  const fs::path model = b.save(temp.model_dir() / "reshape.onnx");
  expect_one_error_line(run_cli({"bench", model.string(), "--iters", "1"}), 1,
                        "(bench made up the input sizes x [1]: --batch for the first free dim, 1 for the others; set "
                        "them with --shape NAME=DxD..., --dim SYMBOL=N or --input NAME=FILE)");
  ProcessResult ok = run_cli({"bench", model.string(), "--iters", "1", "--dim", "n=6"});
  EXPECT_EQ(ok.exit_code, 0) << ok.describe();
}

// A free dim without a name ("?") names no size for expected_dims: --infer-dims has shape inference
// run again with the inputs' dims, and the convolution behind it is prepared with the session.
TEST(CliBench, InferDimsPreparesBehindUnnamedDims) {
  TempFolder temp;
  tunnx_test::ModelBuilder b;
  b.input("x", onnx::TensorProto::FLOAT, tunnx_test::Dims{tunnx_test::kUnknownDim, 4, 10, 10});
  b.initializer(tunnx_test::float_tensor("w", {8, 4, 3, 3}, std::vector<float>(8 * 4 * 9, 0.25f)));
  b.node("Conv", {"x", "w"}, {"c"}, "conv");
  b.node("Relu", {"c"}, {"y"}, "relu");
  b.output("y", onnx::TensorProto::FLOAT, tunnx_test::Dims{tunnx_test::kUnknownDim, 8, 8, 8});
  const fs::path model = b.save(temp.model_dir() / "unnamed.onnx");
  auto bench = [&](std::vector<std::string> extra) {
    std::vector<std::string> args{"bench", model.string(), "--iters", "2", "--warmup", "1", "--json", "--threads", "1",
                                  "--shape", "x=2x4x10x10"};
    args.insert(args.end(), extra.begin(), extra.end());
    ProcessResult r = run_cli(args);
    EXPECT_EQ(r.exit_code, 0) << r.describe();
    json j;
    EXPECT_NO_THROW(j = json::parse(r.out)) << r.out;
    return j;
  };
  const json plain = bench({}), inferred = bench({"--infer-dims"});
  EXPECT_EQ(plain.at("infer_dims"), false);
  EXPECT_EQ(inferred.at("infer_dims"), true);
  EXPECT_EQ(plain.at("prepared_nodes"), 0);
  if (inferred.at("kernels").contains("cpu/onednn/FusedConv")) {
    EXPECT_EQ(inferred.at("prepared_nodes"), 1) << inferred.dump();
  }
}

}  // namespace
}  // namespace tunnx::e2e
