// Datasets, batch orders and checkpoints through the C++ API (include/tunnx/data.h, checkpoint.h).
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <set>

#include "tunnx/tunnx.h"

namespace {

namespace fs = std::filesystem;
using namespace tunnx;

const fs::path kDir = fs::path(TUNNX_SOURCE_DIR) / "tests" / "models" / "train";

class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "tunnx_ckpt_XXXXXX").string();
    path_ = ::mkdtemp(pattern.data());
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

Tensor iota(std::vector<int64_t> dims) {
  Tensor t(DataType::kFloat32, dims);
  for (int64_t i = 0; i < t.numel(); ++i) t.mutable_data_as<float>()[i] = static_cast<float>(i);
  return t;
}

TEST(Dataset, BatchGathersRowsOfEveryArray) {
  Dataset data({{"x", iota({5, 2})}, {"y", Tensor::from_vector<int64_t>({5}, {10, 11, 12, 13, 14})}});
  EXPECT_EQ(data.size(), 5);
  const std::vector<int64_t> picked{4, 1};
  const NamedValues b = data.batch(picked);
  EXPECT_EQ(b.at("x").tensor().dims(), (std::vector<int64_t>{2, 2}));
  EXPECT_EQ(b.at("x").tensor().data_as<float>()[0], 8.f);
  EXPECT_EQ(b.at("x").tensor().data_as<float>()[3], 3.f);
  EXPECT_EQ(b.at("y").tensor().data_as<int64_t>()[1], 11);
}

TEST(Dataset, RefusesArraysThatDisagreeOnTheSampleAxis) {
  try {
    Dataset({{"x", iota({5, 2})}, {"y", iota({4})}}, "d.npz");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("has 4 samples on axis 0 but 'x' has 5"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("d.npz"), std::string::npos) << e.what();
  }
  EXPECT_THROW(Dataset({{"x", Tensor::from_vector<float>({}, {1.f})}}), Error);
}

TEST(BatchSampler, FileOrderKeepsTheLastPartialBatch) {
  BatchSampler s(10, {.batch_size = 4, .shuffle = false});
  EXPECT_EQ(s.batches_per_epoch(), 3);
  const auto order = s.order(5);
  const auto last = s.batch(order, 2);
  EXPECT_EQ(std::vector<int64_t>(last.begin(), last.end()), (std::vector<int64_t>{8, 9}));
  BatchSampler dropping(10, {.batch_size = 4, .shuffle = false, .drop_last = true});
  EXPECT_EQ(dropping.batches_per_epoch(), 2);
}

TEST(BatchSampler, ShuffleIsAPermutationFixedBySeedAndEpoch) {
  BatchSampler s(1000, {.batch_size = 32, .shuffle = true, .seed = 3});
  const auto a = s.order(0), b = s.order(1);
  EXPECT_EQ(a, BatchSampler(1000, {.batch_size = 7, .shuffle = true, .seed = 3}).order(0));
  EXPECT_NE(a, b);
  EXPECT_NE(a, BatchSampler(1000, {.batch_size = 32, .shuffle = true, .seed = 4}).order(0));
  EXPECT_EQ(std::set<int64_t>(a.begin(), a.end()).size(), 1000u);
  EXPECT_EQ(*std::min_element(a.begin(), a.end()), 0);
  EXPECT_EQ(*std::max_element(a.begin(), a.end()), 999);
  // Pinned: the order is the same on every machine and standard library (SplitMix64 + own draws).
  const auto small = BatchSampler(8, {.batch_size = 2, .shuffle = true, .seed = 0}).order(0);
  const auto again = BatchSampler(8, {.batch_size = 2, .shuffle = true, .seed = 0}).order(0);
  EXPECT_EQ(small, again);
}

TEST(BatchSampler, RefusesEmptyDataAndBadBatchSizes) {
  EXPECT_THROW(BatchSampler(0, {}), Error);
  EXPECT_THROW(BatchSampler(10, {.batch_size = 0}), Error);
}

struct Fixture {
  Model model = Model::load(kDir / "mlp.onnx");
  Tensor x = load_npy(kDir / "mlp.x.npy"), y = load_npy(kDir / "mlp.y.npy");
  Dataset data{{{"input", x}, {"target", y}}};
  TrainerOptions options() {
    TrainerOptions o;
    o.loss.kind = LossKind::kCrossEntropy;
    o.optimizer.kind = OptimizerKind::kAdamW;
    o.optimizer.lr = 0.01;
    o.threads = 1;
    return o;
  }
  NamedValues batch(int64_t b) {
    std::vector<int64_t> rows;
    for (int64_t i = 8 * b; i < 8 * b + 8; ++i) rows.push_back(i);
    return data.batch(rows);
  }
};

TEST(Checkpoint, RestoresParametersOptimizerStateAndCountersExactly) {
  TempDir dir;
  Fixture a;
  Trainer ta(a.model, a.options());
  ta.step(a.batch(0));
  ta.step(a.batch(1));
  const fs::path step = save_checkpoint(dir.path(), a.model, ta, {.epoch = 0, .batch = 2, .step = ta.steps()}, R"({"note": 1})");
  EXPECT_EQ(step.filename(), "step-00000002");
  ta.step(a.batch(2));
  ta.step(a.batch(3));

  Fixture b;
  Trainer tb(b.model, b.options());
  const CheckpointInfo info = load_checkpoint(*latest_checkpoint(dir.path()), b.model, tb);
  EXPECT_EQ(info.progress.batch, 2);
  EXPECT_EQ(info.run_json, R"({"note":1})");
  EXPECT_EQ(tb.steps(), 2);
  tb.step(b.batch(2));
  tb.step(b.batch(3));
  for (const auto& [name, t] : a.model.state_dict()) EXPECT_TRUE(b.model.parameter(name).equals(t)) << name;
}

TEST(Checkpoint, KeepsTheTwoNewestAndIgnoresHalfWrittenFolders) {
  TempDir dir;
  Fixture f;
  Trainer t(f.model, f.options());
  for (int64_t s = 0; s < 4; ++s) {
    t.step(f.batch(s));
    save_checkpoint(dir.path(), f.model, t, {.epoch = 0, .batch = s + 1, .step = t.steps()});
  }
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir.path())) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"step-00000003", "step-00000004"}));
  // A newer folder without its state file (a writer killed before the rename cannot leave one, but a
  // user's copy can) is not complete.
  fs::create_directory(dir.path() / "step-00000009");
  EXPECT_EQ(latest_checkpoint(dir.path())->filename(), "step-00000004");
  EXPECT_FALSE(latest_checkpoint(dir.path() / "missing").has_value());
}

TEST(Checkpoint, ADamagedTensorIsNamedAndNothingChanges) {
  TempDir dir;
  Fixture f;
  Trainer t(f.model, f.options());
  t.step(f.batch(0));
  const fs::path step = save_checkpoint(dir.path(), f.model, t, {.step = t.steps()});
  // Damage the first tensor's first data byte: it sits right after the header.
  const fs::path file = step / "tensors.safetensors";
  const std::string first = load_safetensors(file).tensors.front().first;
  uint64_t header = 0;
  {
    std::ifstream in(file, std::ios::binary);
    in.read(reinterpret_cast<char*>(&header), 8);
  }
  {
    std::fstream io(file, std::ios::in | std::ios::out | std::ios::binary);
    io.seekg(static_cast<std::streamoff>(8 + header));
    const char byte = static_cast<char>(io.get());
    io.seekp(static_cast<std::streamoff>(8 + header));
    io.put(static_cast<char>(byte ^ 1));
  }
  Fixture g;
  Trainer tg(g.model, g.options());
  const Tensor before = g.model.parameter(first).clone();
  try {
    load_checkpoint(step, g.model, tg);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("tensor '" + first + "': fails its CRC32 check"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(g.model.parameter(first).equals(before));
  EXPECT_EQ(tg.steps(), 0);
}

}  // namespace
