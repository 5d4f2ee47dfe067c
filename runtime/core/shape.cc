#include <limits>

#include "tunnx/tensor.h"

namespace tunnx {

std::string Dim::to_string() const {
  if (is_fixed()) return std::to_string(value);
  if (!symbol.empty()) return symbol;
  return "?";
}

Shape Shape::of(const std::vector<int64_t>& fixed_dims) {
  Shape s;
  for (int64_t d : fixed_dims) s.dims.push_back(Dim::fixed(d));
  return s;
}

bool Shape::is_fixed() const {
  for (const auto& d : dims)
    if (!d.is_fixed()) return false;
  return true;
}

std::string Shape::to_string() const {
  std::string out = "[";
  for (size_t i = 0; i < dims.size(); ++i) {
    if (i) out += ',';
    out += dims[i].to_string();
  }
  return out + "]";
}

std::string dims_to_string(const std::vector<int64_t>& dims) {
  // Raw numbers, negatives included: this also formats invalid dims for error messages.
  std::string out = "[";
  for (size_t i = 0; i < dims.size(); ++i) {
    if (i) out += ',';
    out += std::to_string(dims[i]);
  }
  return out + "]";
}

int64_t checked_element_count(const std::vector<int64_t>& dims) {
  int64_t count = 1;
  bool zero = false;
  for (int64_t d : dims) {
    if (d < 0)
      throw Error(ErrorCode::kInvalidArgument, "negative dimension " + std::to_string(d),
                  {.shapes = dims_to_string(dims)});
    if (d == 0) zero = true;
  }
  if (zero) return 0;
  for (int64_t d : dims) {
    if (count > std::numeric_limits<int64_t>::max() / d)
      throw Error(ErrorCode::kLimitExceeded, "element count overflows int64",
                  {.shapes = dims_to_string(dims)});
    count *= d;
  }
  return count;
}

}  // namespace tunnx
