// Datasets of named arrays and the batches of an epoch (include/tunnx/data.h).
#include <algorithm>
#include <cstring>

#include "tunnx/data.h"
#include "tunnx/io.h"
#include "tunnx/status.h"

#include "runtime/train/splitmix64.h"

namespace tunnx {
namespace {

}  // namespace

Dataset::Dataset(StateDict arrays, std::string source) : arrays_(std::move(arrays)), source_(std::move(source)) {
  const std::string where = source_.empty() ? std::string("dataset") : source_;
  if (arrays_.empty()) throw Error(ErrorCode::kInvalidArgument, "holds no arrays", {.file = where});
  const auto& [first_name, first] = arrays_.front();
  for (const auto& [name, array] : arrays_) {
    if (array.rank() == 0)
      throw Error(ErrorCode::kInvalidArgument, "is a scalar: every array needs a sample axis (axis 0)",
                  {.file = where, .tensor = name});
    if (array.dims()[0] != first.dims()[0])
      throw Error(ErrorCode::kInvalidArgument,
                  "has " + std::to_string(array.dims()[0]) + " samples on axis 0 but '" + first_name + "' has " +
                      std::to_string(first.dims()[0]),
                  {.file = where, .tensor = name});
  }
  size_ = first.dims()[0];
}

Dataset Dataset::load_npz(const std::filesystem::path& path) { return Dataset(tunnx::load_npz(path), path.string()); }

bool Dataset::contains(const std::string& name) const {
  return std::any_of(arrays_.begin(), arrays_.end(), [&](const auto& entry) { return entry.first == name; });
}

const Tensor& Dataset::array(const std::string& name) const {
  for (const auto& [key, array] : arrays_)
    if (key == name) return array;
  throw Error(ErrorCode::kNotFound, "has no array of that name", {.file = source_, .tensor = name});
}

NamedValues Dataset::batch(std::span<const int64_t> indices) const {
  NamedValues out;
  for (const auto& [name, array] : arrays_) {
    std::vector<int64_t> dims = array.dims();
    dims[0] = static_cast<int64_t>(indices.size());
    Tensor rows(array.dtype(), dims);
    const int64_t row_elements = size_ ? array.numel() / size_ : 0;
    for (size_t i = 0; i < indices.size(); ++i) {
      const int64_t from = indices[i];
      if (from < 0 || from >= size_)
        throw Error(ErrorCode::kInvalidArgument, "sample " + std::to_string(from) + " is out of range",
                    {.file = source_, .tensor = name});
      if (array.dtype() == DataType::kString) {
        const auto* src = array.data_as<std::string>() + from * row_elements;
        std::copy(src, src + row_elements, rows.mutable_data_as<std::string>() + static_cast<int64_t>(i) * row_elements);
      } else {
        const size_t row_bytes = static_cast<size_t>(row_elements) * element_size(array.dtype());
        std::memcpy(static_cast<std::byte*>(rows.mutable_data()) + i * row_bytes,
                    static_cast<const std::byte*>(array.data()) + static_cast<size_t>(from) * row_bytes, row_bytes);
      }
    }
    out.emplace(name, Value(std::move(rows)));
  }
  return out;
}

BatchSampler::BatchSampler(int64_t samples, BatchOptions options) : samples_(samples), options_(options) {
  if (options_.batch_size < 1)
    throw Error(ErrorCode::kInvalidArgument, "the batch size must be 1 or more, got " + std::to_string(options_.batch_size));
  if (samples_ < 1) throw Error(ErrorCode::kInvalidArgument, "the dataset holds no samples");
}

int64_t BatchSampler::batches_per_epoch() const {
  const int64_t full = samples_ / options_.batch_size;
  return options_.drop_last || samples_ % options_.batch_size == 0 ? full : full + 1;
}

std::vector<int64_t> BatchSampler::order(int64_t epoch) const {
  std::vector<int64_t> order(static_cast<size_t>(samples_));
  for (int64_t i = 0; i < samples_; ++i) order[static_cast<size_t>(i)] = i;
  if (!options_.shuffle) return order;
  // One stream per (seed, epoch): epochs are independent of one another, so resuming mid-run needs
  // no generator state beyond the epoch number.
  SplitMix64 rng{options_.seed * 0x9E3779B97F4A7C15ull ^ (static_cast<uint64_t>(epoch) + 1) * 0xD1B54A32D192ED03ull};
  for (int64_t i = samples_ - 1; i > 0; --i)
    std::swap(order[static_cast<size_t>(i)], order[rng.below(static_cast<uint64_t>(i) + 1)]);
  return order;
}

std::span<const int64_t> BatchSampler::batch(const std::vector<int64_t>& order, int64_t b) const {
  if (b < 0 || b >= batches_per_epoch())
    throw Error(ErrorCode::kInvalidArgument, "batch " + std::to_string(b) + " is out of range");
  const int64_t begin = b * options_.batch_size;
  const int64_t end = std::min<int64_t>(begin + options_.batch_size, static_cast<int64_t>(order.size()));
  return std::span<const int64_t>(order.data() + begin, static_cast<size_t>(end - begin));
}

}  // namespace tunnx
