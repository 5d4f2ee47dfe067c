// Training data: named arrays that share a sample axis (axis 0), as a .npz file holds them, and the
// batches of an epoch. An epoch's order depends only on (seed, epoch), so a resumed run sees exactly
// the batches an uninterrupted run would.
//
//   tunnx::Dataset data = tunnx::Dataset::load_npz("train.npz");   // {"input": [N,...], "target": [N]}
//   tunnx::BatchSampler batches(data.size(), {.batch_size = 32, .shuffle = true, .seed = 0});
//   std::vector<int64_t> order = batches.order(epoch);
//   for (int64_t b = 0; b < batches.batches_per_epoch(); ++b)
//     trainer.step(data.batch(batches.batch(order, b)));
#pragma once

#include <cstdint>
#include <filesystem>
#include <span>
#include <string>
#include <vector>

#include "tunnx/model.h"
#include "tunnx/session.h"

namespace tunnx {

class Dataset {
 public:
  // Throws kInvalidArgument when the arrays disagree on axis 0 (naming both) or one is a scalar.
  explicit Dataset(StateDict arrays, std::string source = "");
  // Reads every array of a .npz file (see load_npz); errors name the file.
  static Dataset load_npz(const std::filesystem::path& path);

  int64_t size() const { return size_; }  // samples
  const StateDict& arrays() const { return arrays_; }
  const std::string& source() const { return source_; }  // the file, for messages
  bool contains(const std::string& name) const;
  const Tensor& array(const std::string& name) const;  // throws kNotFound naming the file

  // Samples `indices` (in that order) of every array, stacked along axis 0.
  NamedValues batch(std::span<const int64_t> indices) const;

 private:
  StateDict arrays_;
  std::string source_;
  int64_t size_ = 0;
};

struct BatchOptions {
  int64_t batch_size = 32;
  bool shuffle = true;     // a fresh permutation each epoch; off: file order
  uint64_t seed = 0;
  bool drop_last = false;  // off: the last, partial batch is used (DataLoader's default)
};

// Which samples form batch b of epoch e. Shuffled orders come from a generator seeded by (seed, e)
// with its own bounded draws, so they are the same on every machine and standard library.
class BatchSampler {
 public:
  BatchSampler(int64_t samples, BatchOptions options);
  int64_t batches_per_epoch() const;
  int64_t samples() const { return samples_; }
  const BatchOptions& options() const { return options_; }
  std::vector<int64_t> order(int64_t epoch) const;  // the epoch's permutation of [0, samples)
  // Batch b of an epoch whose order() is `order`: the last one may be short unless drop_last.
  std::span<const int64_t> batch(const std::vector<int64_t>& order, int64_t b) const;

 private:
  int64_t samples_;
  BatchOptions options_;
};

}  // namespace tunnx
