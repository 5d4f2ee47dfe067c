// `tunnx export`: a model written back through tunnx keeps its parameters and passes `tunnx check`;
// with --external-data its weights move to a data file; a failed export leaves nothing behind.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "tests/e2e/cli_harness.h"

namespace tunnx::e2e {
namespace {

using nlohmann::json;

json params_json(const fs::path& model) {
  ProcessResult r = run_cli({"params", "--json", model.string()});
  EXPECT_EQ(r.exit_code, 0) << r.describe();
  return json::parse(r.out);
}

// The parts of `params --json` that must survive an export: names, shapes, dtypes, roles.
json tensors_without_storage(json params) {
  for (auto& t : params["tensors"]) t.erase("external");
  return params["tensors"];
}

TEST(CliExport, RoundTripKeepsEveryParameterAndPassesCheck) {
  TempFolder temp;
  fs::path out = temp.model_dir() / "copy.onnx";
  ProcessResult r = run_cli({"export", kExampleModel.string(), "-o", out.string()});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  EXPECT_EQ(r.out, "wrote " + out.string() + "\n");

  ProcessResult check = run_cli({"check", out.string()});
  EXPECT_EQ(check.exit_code, 0) << check.describe();
  EXPECT_TRUE(contains(check.out, "is a valid ONNX model")) << check.out;
  EXPECT_EQ(tensors_without_storage(params_json(out)), tensors_without_storage(params_json(kExampleModel)));
}

TEST(CliExport, ExternalDataMovesWeightsToADataFile) {
  TempFolder temp;
  fs::path out = temp.model_dir() / "ext.onnx";
  ProcessResult r = run_cli({"export", kExampleModel.string(), "-o", out.string(), "--external-data"});
  ASSERT_EQ(r.exit_code, 0) << r.describe();
  ASSERT_TRUE(fs::exists(temp.model_dir() / "ext.onnx.data"));
  // fc1.weight (128 KiB) now lives in the data file, so the model file is small.
  EXPECT_LT(fs::file_size(out), 8u * 1024);
  EXPECT_GT(fs::file_size(temp.model_dir() / "ext.onnx.data"), 128u * 1024);

  json params = params_json(out);
  bool fc1_external = false;
  for (const auto& t : params["tensors"])
    if (t["name"] == "fc1.weight") fc1_external = t["external"].get<bool>();
  EXPECT_TRUE(fc1_external);
  EXPECT_EQ(tensors_without_storage(params), tensors_without_storage(params_json(kExampleModel)));
  EXPECT_EQ(run_cli({"check", out.string()}).exit_code, 0);
}

TEST(CliExport, NamedDataFileOutsideTheFolderIsRefused) {
  TempFolder temp;
  fs::path out = temp.model_dir() / "ext.onnx";
  ProcessResult r = run_cli({"export", kExampleModel.string(), "-o", out.string(), "--external-data",
                             "--external-data-file", "../escape.data"});
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_TRUE(contains(r.err, "tunnx: error: " + out.string() + ": external data file '../escape.data'"))
      << r.err;
  EXPECT_TRUE(fs::is_empty(temp.model_dir()));
  EXPECT_FALSE(fs::exists(temp.root() / "escape.data"));
}

TEST(CliExport, MissingOutputFolderFailsWithoutPartialFiles) {
  TempFolder temp;
  fs::path out = temp.model_dir() / "no such folder" / "m.onnx";
  ProcessResult r = run_cli({"export", kExampleModel.string(), "-o", out.string()});
  EXPECT_EQ(r.exit_code, 1) << r.describe();
  EXPECT_EQ(r.out, "");
  EXPECT_TRUE(contains(r.err, "tunnx: error: " + out.string() + ": cannot create a file in this folder")) << r.err;
  EXPECT_TRUE(fs::is_empty(temp.model_dir()));
}

TEST(CliExport, OutputIsRequired) {
  ProcessResult r = run_cli({"export", kExampleModel.string()});
  EXPECT_EQ(r.exit_code, 2) << r.describe();
}

}  // namespace
}  // namespace tunnx::e2e
