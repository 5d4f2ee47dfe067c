// What the PyTorch-parity tests share (parity_test.cc, extension_parity_test.cc): slicing the fixed
// batches and the tolerance the issue sets (1e-5 relative, 1e-7 absolute near zero).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "tunnx/tensor.h"

namespace tunnx_test {

// Rows [begin, begin + count) of `t` along axis 0.
inline tunnx::Tensor rows(const tunnx::Tensor& t, int64_t begin, int64_t count) {
  std::vector<int64_t> dims = t.dims();
  const size_t row_bytes = t.nbytes() / static_cast<size_t>(dims[0]);
  dims[0] = count;
  tunnx::Tensor out(t.dtype(), dims);
  std::memcpy(out.mutable_data(), static_cast<const char*>(t.data()) + row_bytes * static_cast<size_t>(begin),
              row_bytes * static_cast<size_t>(count));
  return out;
}

inline double value_at(const tunnx::Tensor& t, int64_t i) {
  return t.dtype() == tunnx::DataType::kFloat64 ? t.data_as<double>()[i] : t.data_as<float>()[i];
}

// |a - b| <= 1e-5 |b|, or <= 1e-7 near zero.
inline bool close(double a, double b) { return std::abs(a - b) <= std::max(1e-5 * std::abs(b), 1e-7); }

}  // namespace tunnx_test
