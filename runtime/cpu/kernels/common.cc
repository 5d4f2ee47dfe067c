#include "runtime/cpu/kernels/common.h"

#include <algorithm>

namespace tunnx::cpu {

uint16_t Float16::from_float(float f) {
  uint32_t x = std::bit_cast<uint32_t>(f);
  uint32_t sign = (x >> 16) & 0x8000;
  uint32_t mantissa = x & 0x007fffff;
  int32_t exp = static_cast<int32_t>((x >> 23) & 0xff) - 127 + 15;
  if (((x >> 23) & 0xff) == 0xff) return static_cast<uint16_t>(sign | 0x7c00 | (mantissa ? 0x200 : 0));  // inf/nan
  if (exp >= 0x1f) return static_cast<uint16_t>(sign | 0x7c00);  // overflow -> inf
  if (exp <= 0) {
    if (exp < -10) return static_cast<uint16_t>(sign);  // underflow -> signed zero
    mantissa |= 0x00800000;
    uint32_t shift = static_cast<uint32_t>(14 - exp);
    uint32_t half = mantissa >> shift;
    uint32_t rest = mantissa & ((1u << shift) - 1);
    uint32_t halfway = 1u << (shift - 1);
    if (rest > halfway || (rest == halfway && (half & 1))) ++half;
    return static_cast<uint16_t>(sign | half);
  }
  uint32_t half = sign | (static_cast<uint32_t>(exp) << 10) | (mantissa >> 13);
  uint32_t rest = mantissa & 0x1fff;
  if (rest > 0x1000 || (rest == 0x1000 && (half & 1))) ++half;  // round to nearest even; may carry into exp
  return static_cast<uint16_t>(half);
}

float Float16::to_float(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mantissa = h & 0x3ff;
  uint32_t bits;
  if (exp == 0x1f) {
    bits = sign | 0x7f800000 | (mantissa << 13);
  } else if (exp == 0) {
    if (mantissa == 0) {
      bits = sign;
    } else {
      int e = -1;
      do {
        ++e;
        mantissa <<= 1;
      } while (!(mantissa & 0x400));
      bits = sign | (static_cast<uint32_t>(127 - 15 - e) << 23) | ((mantissa & 0x3ff) << 13);
    }
  } else {
    bits = sign | ((exp + 127 - 15) << 23) | (mantissa << 13);
  }
  return std::bit_cast<float>(bits);
}

std::vector<DataType> numeric_types() {
  std::vector<DataType> all = kFloatTypes;
  all.insert(all.end(), kIntTypes.begin(), kIntTypes.end());
  return all;
}

std::vector<DataType> all_types() {
  std::vector<DataType> all = numeric_types();
  all.push_back(DataType::kBool);
  all.push_back(DataType::kString);
  return all;
}

std::vector<int64_t> strides_of(const std::vector<int64_t>& dims) {
  std::vector<int64_t> strides(dims.size(), 1);
  for (size_t i = dims.size(); i-- > 1;) strides[i - 1] = strides[i] * dims[i];
  return strides;
}

std::vector<int64_t> broadcast_shapes(const std::vector<std::vector<int64_t>>& shapes, const KernelContext& ctx) {
  size_t rank = 0;
  for (const auto& s : shapes) rank = std::max(rank, s.size());
  std::vector<int64_t> out(rank, 1);
  for (const auto& s : shapes) {
    for (size_t i = 0; i < s.size(); ++i) {
      int64_t& o = out[rank - s.size() + i];
      int64_t d = s[i];
      if (d == o || d == 1) continue;
      if (o == 1) {
        o = d;
        continue;
      }
      std::string all;
      for (const auto& t : shapes) all += (all.empty() ? "" : " and ") + dims_to_string(t);
      throw ctx.error("shapes " + all + " do not broadcast");
    }
  }
  return out;
}

std::vector<int64_t> broadcast_index_map(const std::vector<int64_t>& in_dims, const std::vector<int64_t>& out_dims) {
  int64_t total = 1;
  for (int64_t d : out_dims) total *= d;
  std::vector<int64_t> map(static_cast<size_t>(total));
  size_t rank = out_dims.size(), offset = rank - in_dims.size();
  std::vector<int64_t> in_strides = strides_of(in_dims);
  std::vector<int64_t> index(rank, 0);
  for (int64_t flat = 0; flat < total; ++flat) {
    int64_t src = 0;
    for (size_t i = offset; i < rank; ++i)
      if (in_dims[i - offset] != 1) src += index[i] * in_strides[i - offset];
    map[static_cast<size_t>(flat)] = src;
    for (size_t i = rank; i-- > 0;) {
      if (++index[i] < out_dims[i]) break;
      index[i] = 0;
    }
  }
  return map;
}

int64_t normalize_axis(int64_t axis, int64_t rank, const KernelContext& ctx) {
  if (axis < -rank || axis >= std::max<int64_t>(rank, 1))
    throw ctx.error("axis " + std::to_string(axis) + " is out of range for rank " + std::to_string(rank));
  return axis < 0 ? axis + rank : axis;
}

int64_t normalize_axis(int64_t axis, int64_t rank, const KernelInit& init) {
  if (axis < -rank || axis >= std::max<int64_t>(rank, 1))
    throw init.error("axis " + std::to_string(axis) + " is out of range for rank " + std::to_string(rank));
  return axis < 0 ? axis + rank : axis;
}

std::vector<int64_t> read_int_values(const Tensor& t, const KernelContext& ctx) {
  std::vector<int64_t> out(static_cast<size_t>(t.numel()));
  if (t.dtype() == DataType::kInt64) std::memcpy(out.data(), t.data(), t.nbytes());
  else if (t.dtype() == DataType::kInt32)
    for (int64_t i = 0; i < t.numel(); ++i) out[static_cast<size_t>(i)] = data<int32_t>(t)[i];
  else throw ctx.error(std::string("expected an int32 or int64 tensor, got ") + to_string(t.dtype()));
  return out;
}

std::vector<double> read_double_values(const Tensor& t, const KernelContext& ctx) {
  std::vector<double> out(static_cast<size_t>(t.numel()));
  dispatch<float, double, Float16, BFloat16, int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t,
           uint64_t, bool>(t.dtype(), ctx, [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* p = data<T>(t);
    for (int64_t i = 0; i < t.numel(); ++i) out[static_cast<size_t>(i)] = static_cast<double>(p[i]);
  });
  return out;
}

double read_scalar(const Tensor& t, const KernelContext& ctx) {
  if (t.numel() != 1) throw ctx.error("expected a single value, got shape " + dims_to_string(t.dims()));
  return read_double_values(t, ctx)[0];
}

void add_kernel(KernelRegistry& registry, const std::string& op_type, int64_t since, int64_t until,
                std::vector<DataType> types, KernelFactory factory, int type_input) {
  KernelDef def;
  def.op_type = op_type;
  def.since_version = since;
  def.until_version = until;
  def.types = std::move(types);
  def.type_input = type_input;
  def.factory = std::move(factory);
  registry.add(std::move(def));
}

}  // namespace tunnx::cpu
