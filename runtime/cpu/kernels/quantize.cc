// Linear quantization: QuantizeLinear, DequantizeLinear, DynamicQuantizeLinear. Shape rule: the output
// has the input's shape (DynamicQuantizeLinear adds two scalars). Scale and zero point are per tensor
// (one value), per axis (1-D, one value per index of `axis`, opset 13) or per block (opset 21: x's
// shape with dim `axis` shrunk to ceil(dim / block_size)).
// Rounding is round-half-to-even (std::nearbyint in the default rounding mode), then saturation to
// the integer type. Narrow outputs (opset 19: float8, 21: int4/uint4, 23: float4e2m1, 25: int2/uint2)
// keep ONNX's packing; into float8 `saturate` decides what overflow gives and the zero point is 0.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "runtime/core/narrow_types.h"
#include "runtime/cpu/kernels/common.h"
#include "runtime/cpu/kernels/vector_loops.h"
#include "runtime/cpu/kernels/kernels.h"

namespace tunnx::cpu {
namespace {

struct QuantAttrs {
  int64_t axis = 1;
  int64_t block_size = 0;
  DataType output_dtype = DataType::kUndefined;
  bool saturate = true;                       // into float8: overflow gives the largest value, not inf/NaN
  DataType precision = DataType::kUndefined;  // opset 23: the type x / scale is computed in
};

QuantAttrs read_attrs(const KernelInit& init) {
  QuantAttrs a;
  a.axis = init.attr_int("axis", 1);
  a.saturate = init.attr_int("saturate", 1) != 0;
  const int64_t precision = init.attr_int("precision", 0);
  if (precision != 0) {
    a.precision = static_cast<DataType>(precision);
    if (a.precision != DataType::kFloat32 && a.precision != DataType::kFloat16 && a.precision != DataType::kBFloat16 &&
        a.precision != DataType::kFloat64)
      throw init.error("precision " + std::to_string(precision) + " is not a float type");
  }
  a.block_size = init.attr_int("block_size", 0);
  if (a.block_size < 0) throw init.error("block_size must be >= 0, got " + std::to_string(a.block_size));
  const int64_t dt = init.attr_int("output_dtype", 0);
  if (dt != 0) {
    if (!is_known_data_type(static_cast<int32_t>(dt)))
      throw init.error("output_dtype " + std::to_string(dt) + " is not a supported data type");
    a.output_dtype = static_cast<DataType>(dt);
  }
  return a;
}

// For each element of x, which scale / zero-point value applies.
class ParamIndex {
 public:
  ParamIndex(const std::vector<int64_t>& x_dims, const Tensor& scale, const QuantAttrs& attrs, const KernelContext& ctx) {
    if (scale.numel() == 1) return;  // per tensor
    const int64_t rank = static_cast<int64_t>(x_dims.size());
    const size_t axis = static_cast<size_t>(normalize_axis(attrs.axis, rank, ctx));
    axis_dim_ = x_dims[axis];
    for (size_t d = axis + 1; d < x_dims.size(); ++d) inner_ *= x_dims[d];
    if (attrs.block_size == 0) {
      if (scale.rank() != 1 || scale.dims()[0] != axis_dim_)
        throw ctx.error("scale of shape " + dims_to_string(scale.dims()) + " is neither one value nor one per index of axis " +
                        std::to_string(axis) + " of input " + dims_to_string(x_dims));
      mode_ = kAxis;
      return;
    }
    block_ = attrs.block_size;
    blocks_ = (axis_dim_ + block_ - 1) / block_;
    std::vector<int64_t> expected = x_dims;
    expected[axis] = blocks_;
    if (scale.dims() != expected)
      throw ctx.error("blocked scale must have shape " + dims_to_string(expected) + " for input " + dims_to_string(x_dims) +
                      " and block_size " + std::to_string(block_) + ", got " + dims_to_string(scale.dims()));
    mode_ = kBlock;
  }

  int64_t operator()(int64_t flat) const {
    switch (mode_) {
      case kTensor: return 0;
      case kAxis: return (flat / inner_) % axis_dim_;
      case kBlock: {
        const int64_t outer = flat / (axis_dim_ * inner_), d = (flat / inner_) % axis_dim_, i = flat % inner_;
        return (outer * blocks_ + d / block_) * inner_ + i;
      }
    }
    return 0;
  }

 private:
  enum Mode { kTensor, kAxis, kBlock } mode_ = kTensor;
  int64_t axis_dim_ = 1, inner_ = 1, block_ = 1, blocks_ = 1;
};

// Every element of t as double, narrow types decoded.
std::vector<double> values_of(const Tensor& t, const KernelContext& ctx) {
  if (!is_narrow_float(t.dtype()) && !is_packed_integer(t.dtype())) return read_double_values(t, ctx);
  std::vector<double> out(static_cast<size_t>(t.numel()));
  for (int64_t i = 0; i < t.numel(); ++i) out[static_cast<size_t>(i)] = narrow_value(t.dtype(), t.data(), i);
  return out;
}

// The zero point's values (zeros when absent, and for float8, whose zero point must be 0, and
// float4e2m1 x, whose zero point ONNX's reference ignores); it must match the scale's shape.
std::vector<double> zero_points(const Tensor* zp, const Tensor& scale, const KernelContext& ctx, bool ignored = false) {
  if (!zp) return std::vector<double>(static_cast<size_t>(scale.numel()), 0.0);
  if (zp->dims() != scale.dims() && !(zp->numel() == 1 && scale.numel() == 1))
    throw ctx.error("zero point shape " + dims_to_string(zp->dims()) + " differs from scale shape " +
                    dims_to_string(scale.dims()));
  std::vector<double> zeros = values_of(*zp, ctx);
  const bool float8 = is_narrow_float(zp->dtype()) && zp->dtype() != DataType::kFloat4E2M1;
  if (float8 && std::any_of(zeros.begin(), zeros.end(), [](double z) { return z != 0; }))
    throw ctx.error(std::string("a ") + to_string(zp->dtype()) + " zero point must be 0");
  if (float8 || ignored) std::fill(zeros.begin(), zeros.end(), 0.0);
  return zeros;
}

// x / scale as ONNX's reference forms it: in `precision` when set, else in x's own type for floats
// (so float16 rounds to float16 first) and in double for int32 x.
template <typename T> double scaled(T x, double scale, DataType precision) {
  switch (precision) {
    case DataType::kFloat64: return to_double(x) / scale;
    case DataType::kFloat32: return static_cast<float>(to_double(x)) / static_cast<float>(scale);
    case DataType::kFloat16:
      return static_cast<float>(Float16(static_cast<float>(Float16(static_cast<float>(to_double(x)))) /
                                        static_cast<float>(Float16(static_cast<float>(scale)))));
    case DataType::kBFloat16:
      return static_cast<float>(BFloat16(static_cast<float>(BFloat16(static_cast<float>(to_double(x)))) /
                                         static_cast<float>(BFloat16(static_cast<float>(scale)))));
    default: break;
  }
  if constexpr (std::is_same_v<T, int32_t>) return static_cast<double>(x) / static_cast<double>(static_cast<float>(scale));
  else return static_cast<float>(T(static_cast<float>(x) / static_cast<float>(scale)));
}

// Quantized codes of a narrow output type: integers rounded, offset and clipped to their range;
// float8 rounded per `saturate`; float4e2m1 offset by its zero point first, as the reference does.
void quantize_narrow(const std::vector<double>& quotients, const ParamIndex& index, const std::vector<double>& zeros,
                     const QuantAttrs& attrs, Tensor& y) {
  const DataType q = y.dtype();
  void* codes = y.mutable_data();
  std::memset(codes, 0, y.nbytes());
  for (size_t i = 0; i < quotients.size(); ++i) {
    const double zero = zeros[static_cast<size_t>(index(static_cast<int64_t>(i)))];
    uint8_t code;
    if (is_packed_integer(q)) {
      const double v = std::clamp(std::nearbyint(quotients[i]) + zero, static_cast<double>(packed_integer_min(q)),
                                  static_cast<double>(packed_integer_max(q)));
      code = packed_integer_code(q, std::isnan(v) ? 0 : static_cast<int64_t>(v));
    } else {
      code = narrow_float_code(q, static_cast<float>(quotients[i] + zero), attrs.saturate);
    }
    write_code(q, codes, static_cast<int64_t>(i), code);
  }
}

// y = saturate(round(x / scale) + zero_point). The quotient is formed as numpy does in the spec's
// reference: in x's own type for floats (so float16 rounds to float16 first), in double for int32 x.
void run_quantize(KernelContext& ctx, const QuantAttrs& attrs) {
  const Tensor& x = ctx.input(0);
  const Tensor& scale = ctx.input(1);
  const Tensor* zp = ctx.has_input(2) ? &ctx.input(2) : nullptr;
  DataType out_type = attrs.output_dtype == DataType::kUndefined ? DataType::kUInt8 : attrs.output_dtype;
  if (zp) {
    if (attrs.output_dtype != DataType::kUndefined && attrs.output_dtype != zp->dtype())
      throw ctx.error(std::string("output_dtype ") + to_string(attrs.output_dtype) + " differs from the zero point's " +
                      to_string(zp->dtype()));
    out_type = zp->dtype();
  }
  const ParamIndex index(x.dims(), scale, attrs, ctx);
  const std::vector<double> scales = read_double_values(scale, ctx);
  const std::vector<double> zeros = zero_points(zp, scale, ctx);
  std::vector<double> quotients(static_cast<size_t>(x.numel()));
  dispatch<float, Float16, BFloat16, int32_t>(x.dtype(), ctx, [&](auto xtag) {
    using T = typename decltype(xtag)::type;
    const T* in = data<T>(x);
    for (int64_t i = 0; i < x.numel(); ++i)
      quotients[static_cast<size_t>(i)] = scaled(in[i], scales[static_cast<size_t>(index(i))], attrs.precision);
  });
  if (is_narrow_float(out_type) || is_packed_integer(out_type))
    return quantize_narrow(quotients, index, zeros, attrs, ctx.allocate_output(0, out_type, x.dims()));
  dispatch<uint8_t, int8_t, uint16_t, int16_t>(out_type, ctx, [&](auto qtag) {
    using Q = typename decltype(qtag)::type;
    Q* out = mutable_data<Q>(ctx.allocate_output(0, out_type, x.dims()));
    for (int64_t i = 0; i < x.numel(); ++i)
      out[i] = from_double<Q>(std::nearbyint(quotients[static_cast<size_t>(i)]) + zeros[static_cast<size_t>(index(i))]);
  });
}

// y = (x - zero_point) * scale, computed in float; y takes the scale's dtype (or output_dtype, 23+).
void run_dequantize(KernelContext& ctx, const QuantAttrs& attrs) {
  const Tensor& x = ctx.input(0);
  const Tensor& scale = ctx.input(1);
  const Tensor* zp = ctx.has_input(2) ? &ctx.input(2) : nullptr;
  if (zp && zp->dtype() != x.dtype())
    throw ctx.error(std::string("zero point is ") + to_string(zp->dtype()) + " but x is " + to_string(x.dtype()));
  const DataType out_type = attrs.output_dtype == DataType::kUndefined ? scale.dtype() : attrs.output_dtype;
  const ParamIndex index(x.dims(), scale, attrs, ctx);
  const std::vector<double> scales = read_double_values(scale, ctx);
  const std::vector<double> zeros = zero_points(zp, scale, ctx, x.dtype() == DataType::kFloat4E2M1);
  const std::vector<double> values = values_of(x, ctx);
  dispatch<float, Float16, BFloat16>(out_type, ctx, [&](auto tag) {
    using T = typename decltype(tag)::type;
    Tensor& y = ctx.allocate_output(0, out_type, x.dims());
    T* out = mutable_data<T>(y);
    for (int64_t i = 0; i < x.numel(); ++i) {
      const size_t p = static_cast<size_t>(index(i));
      const float centered = static_cast<float>(values[static_cast<size_t>(i)]) - static_cast<float>(zeros[p]);
      out[i] = static_cast<T>(centered * static_cast<float>(scales[p]));
    }
  });
}

// uint8 quantization of x over [min(x, 0), max(x, 0)]: scale = range / 255, zero point = rounded
// -min / scale saturated to [0, 255]; all in float like the spec's formula.
void run_dynamic_quantize(KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (x.dtype() != DataType::kFloat32) throw ctx.error(std::string("x must be float32, got ") + to_string(x.dtype()));
  const float* in = data<float>(x);
  float lo = 0, hi = 0;
  range_with_zero(in, x.numel(), lo, hi);
  const float scale = (hi == lo ? 1.0f : hi - lo) / 255.0f;
  const uint8_t zero = from_double<uint8_t>(std::clamp(0.0f - lo / scale, 0.0f, 255.0f));
  Tensor& y = ctx.allocate_output_uninitialized(0, DataType::kUInt8, x.dims());
  quantize_to_uint8(in, x.numel(), scale, static_cast<float>(zero), mutable_data<uint8_t>(y));
  mutable_data<float>(ctx.allocate_output(1, DataType::kFloat32, {}))[0] = scale;
  mutable_data<uint8_t>(ctx.allocate_output(2, DataType::kUInt8, {}))[0] = zero;
}

}  // namespace

void register_quantize_kernels(KernelRegistry& r) {
  // QuantizeLinear: 10 per tensor; 13 per axis; 19 float16/bfloat16 x, float8 outputs, saturate;
  // 21 blocks, int16/uint16/int4/uint4 outputs and output_dtype; 23 precision, float4e2m1; 25 int2/uint2.
  add_kernel(r, "QuantizeLinear", 10, INT_MAX,
             {DataType::kFloat32, DataType::kFloat16, DataType::kBFloat16, DataType::kInt32},
             [](const KernelInit& init) {
               QuantAttrs attrs = read_attrs(init);
               return make_kernel([attrs](KernelContext& ctx) { run_quantize(ctx, attrs); });
             });

  // DequantizeLinear: same layouts; 19 float16/bfloat16 scales, float8 x; 21 int16/uint16/int4/uint4 x;
  // 23 output_dtype, float4e2m1 x; 25 int2/uint2 x.
  add_kernel(r, "DequantizeLinear", 10, INT_MAX,
             {DataType::kInt8, DataType::kUInt8, DataType::kInt16, DataType::kUInt16, DataType::kInt32,
              DataType::kFloat8E4M3FN, DataType::kFloat8E4M3FNUZ, DataType::kFloat8E5M2, DataType::kFloat8E5M2FNUZ,
              DataType::kFloat4E2M1, DataType::kInt4, DataType::kUInt4, DataType::kInt2, DataType::kUInt2},
             [](const KernelInit& init) {
               QuantAttrs attrs = read_attrs(init);
               return make_kernel([attrs](KernelContext& ctx) { run_dequantize(ctx, attrs); });
             });

  add_kernel(r, "DynamicQuantizeLinear", 11, INT_MAX, {DataType::kFloat32},
             [](const KernelInit&) { return make_kernel(run_dynamic_quantize); });
}

}  // namespace tunnx::cpu
