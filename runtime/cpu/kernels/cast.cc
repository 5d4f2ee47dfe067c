// Cast and CastLike: every pair of numeric, bool and string types, and the narrow types (float8,
// float4, int4, int2) to and from numbers. Numeric conversions follow C++ with saturation where ONNX's
// reference does; string <-> number formatting and parsing follow ONNX's reference
// (locale-independent); narrow types convert as ONNX's reference (ml_dtypes) does.
// BitCast (opset 26): the same bytes read as another dtype of the same width.
#include "runtime/cpu/kernels/cast.h"

#include <charconv>
#include <cmath>
#include <limits>

#include "runtime/cpu/kernels/common.h"

namespace tunnx::cpu {
namespace {

// double -> float rounded to odd, so that a further rounding to a 16-bit float is not a double rounding.
float to_float_round_odd(double d) {
  float f = static_cast<float>(d);
  if (std::isfinite(f) && static_cast<double>(f) != d) {
    if (std::fabs(static_cast<double>(f)) > std::fabs(d)) f = std::nextafter(f, 0.0f);
    f = std::bit_cast<float>(std::bit_cast<uint32_t>(f) | 1u);
  }
  return f;
}

// Float to integer: truncation; out of range is undefined in ONNX, here it saturates to 64 bits and
// then wraps like integer narrowing (what numpy does on x86); NaN gives 0.
template <typename To> To float_to_int(double d) {
  if (std::isnan(d)) return To(0);
  d = std::trunc(d);
  if constexpr (std::is_unsigned_v<To>) {
    if (d >= 0) return static_cast<To>(d >= 18446744073709551615.0 ? UINT64_MAX : static_cast<uint64_t>(d));
  }
  if (d <= -9223372036854775808.0) return static_cast<To>(INT64_MIN);
  if (d >= 9223372036854775807.0) return static_cast<To>(INT64_MAX);
  return static_cast<To>(static_cast<int64_t>(d));
}

// Numeric -> numeric per the Cast spec (bool: nonzero is true; integers wrap).
template <typename To, typename From> To convert(const From& v) {
  if constexpr (std::is_same_v<To, From>) {
    return v;
  } else if constexpr (kIs16BitFloat<From>) {
    return convert<To>(static_cast<float>(v));
  } else if constexpr (std::is_same_v<To, bool>) {
    return v != From(0);
  } else if constexpr (kIs16BitFloat<To>) {
    if constexpr (std::is_same_v<From, float>) return To(v);
    else return To(to_float_round_odd(static_cast<double>(v)));
  } else if constexpr (std::is_floating_point_v<To>) {
    return static_cast<To>(v);
  } else if constexpr (std::is_floating_point_v<From>) {
    return float_to_int<To>(static_cast<double>(v));
  } else {
    return static_cast<To>(v);
  }
}

// Float -> string as the ONNX reference (numpy's str) writes it: the shortest digits that read back
// to the same value; positional between 1e-4 and a per-type bound, scientific ("1e+06") outside.
template <typename T> std::string float_to_string(T v) {
  const double d = static_cast<double>(static_cast<std::conditional_t<kIs16BitFloat<T>, float, T>>(v));
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  char buf[64];
  std::to_chars_result r{};
  if constexpr (kIs16BitFloat<T>) {  // no shortest mode for 16-bit floats: try more digits until it round-trips
    for (int precision = 0; precision < 9; ++precision) {
      r = std::to_chars(buf, buf + sizeof(buf), static_cast<float>(d), std::chars_format::scientific, precision);
      if (T(std::strtof(std::string(buf, r.ptr).c_str(), nullptr)).bits == v.bits) break;
    }
  } else {
    r = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::scientific);
  }
  const std::string sci(buf, r.ptr);  // [-]d[.ddd]e(+|-)XX
  const size_t e = sci.find('e');
  const bool negative = sci[0] == '-';
  std::string digits;
  for (size_t i = negative ? 1 : 0; i < e; ++i)
    if (sci[i] != '.') digits += sci[i];
  const int exponent = std::stoi(sci.substr(e + 1));
  const double max_positional = std::is_same_v<T, double> ? 1e16 : std::is_same_v<T, Float16> ? 1e3 : 1e6;
  const double a = std::fabs(d);
  std::string out = negative ? "-" : "";
  if (a == 0 || (a >= 1e-4 && a < max_positional)) {
    if (exponent >= 0) {
      std::string whole = digits.substr(0, std::min<size_t>(digits.size(), exponent + 1));
      whole.resize(static_cast<size_t>(exponent) + 1, '0');
      std::string frac = digits.size() > whole.size() ? digits.substr(whole.size()) : "0";
      out += whole + "." + frac;
    } else {
      out += "0." + std::string(static_cast<size_t>(-exponent - 1), '0') + digits;
    }
  } else {
    out += digits.substr(0, 1) + (digits.size() > 1 ? "." + digits.substr(1) : "");
    out += std::string("e") + (exponent < 0 ? "-" : "+") + (std::abs(exponent) < 10 ? "0" : "") +
           std::to_string(std::abs(exponent));
  }
  return out;
}

template <typename From> std::string to_text(const From& v) {
  if constexpr (std::is_same_v<From, bool>) return v ? "True" : "False";  // numpy's spelling, as the reference
  else if constexpr (kIsFloat<From>) return float_to_string(v);
  else return std::to_string(v);
}

// A float from text with std::from_chars (no locale); out-of-range text gives +-inf or +-0.
template <typename F> bool parse_float(const std::string& s, F& out) {
  const char* end = s.data() + s.size();
  auto r = std::from_chars(s.data(), end, out);
  if (s.empty() || r.ptr != end) return false;
  if (r.ec == std::errc::result_out_of_range) {  // from_chars left `out` alone
    const size_t e = s.find_first_of("eE");
    out = e != std::string::npos && s[e + 1] == '-' ? F(0) : std::numeric_limits<F>::infinity();
    if (s[0] == '-') out = -out;
  }
  return r.ec == std::errc() || r.ec == std::errc::result_out_of_range;
}

// String -> number: plain and scientific notation, INF/+INF/-INF/NaN in any case, and true/false for
// bool. False when the text is not a number.
template <typename To> bool parse_number(const std::string& text, To& out) {
  const size_t b = text.find_first_not_of(" \t\n\r"), e = text.find_last_not_of(" \t\n\r");
  std::string s = b == std::string::npos ? "" : text.substr(b, e - b + 1);
  if (!s.empty() && s[0] == '+') s.erase(0, 1);
  std::string lower = s;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  double d;
  if (lower == "inf" || lower == "infinity") {
    d = std::numeric_limits<double>::infinity();
  } else if (lower == "-inf" || lower == "-infinity") {
    d = -std::numeric_limits<double>::infinity();
  } else if (lower == "nan" || lower == "-nan") {
    d = std::numeric_limits<double>::quiet_NaN();
  } else if (std::is_same_v<To, bool> && (lower == "true" || lower == "false")) {
    d = lower == "true";
  } else {
    if constexpr (std::is_integral_v<To> && !std::is_same_v<To, bool>) {  // exact for wide integers
      std::conditional_t<std::is_signed_v<To>, int64_t, uint64_t> i;
      auto r = std::from_chars(s.data(), s.data() + s.size(), i);
      if (r.ec == std::errc() && r.ptr == s.data() + s.size()) {
        out = static_cast<To>(i);
        return true;
      }
    }
    if constexpr (std::is_same_v<To, float>) return parse_float(s, out);  // no double rounding
    if (!parse_float(s, d)) return false;
  }
  out = convert<To>(d);
  return true;
}

// The Cast types: every numeric type, bool and string.
template <typename Fn> void dispatch_cast_type(DataType dtype, const KernelContext& ctx, Fn&& fn) {
  dispatch<float, double, Float16, BFloat16, int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t,
           uint64_t, bool, std::string>(dtype, ctx, std::forward<Fn>(fn));
}

bool is_narrow(DataType dtype) { return is_narrow_float(dtype) || is_packed_integer(dtype); }

// A narrow tensor widened without loss: narrow floats to float32, packed integers to int32.
Tensor widen_narrow(const Tensor& x) {
  const bool is_float = is_narrow_float(x.dtype());
  Tensor wide = Tensor::uninitialized(is_float ? DataType::kFloat32 : DataType::kInt32, x.dims());
  if (is_float) {
    float* out = wide.mutable_data_as<float>();
    for (int64_t i = 0; i < x.numel(); ++i) out[i] = narrow_value(x.dtype(), x.data(), i);
  } else {
    int32_t* out = wide.mutable_data_as<int32_t>();
    for (int64_t i = 0; i < x.numel(); ++i) out[i] = static_cast<int32_t>(narrow_value(x.dtype(), x.data(), i));
  }
  return wide;
}

// Numbers (not narrow) into a narrow y. Into float8/float4 every value passes through float (rounded
// to odd from wider types, so the final rounding is the only one); into int4/int2 floats truncate and
// give 0 when out of range (as ml_dtypes, ONNX's reference, does), integers keep their low bits.
void narrow_into(const Tensor& x, Tensor& y, const KernelContext& ctx, const NarrowRounding& rounding) {
  const DataType to = y.dtype();
  void* codes = y.mutable_data();
  std::memset(codes, 0, y.nbytes());  // packed bytes are or-ed in; the padding bits stay 0
  dispatch<float, double, Float16, BFloat16, int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t,
           bool>(x.dtype(), ctx, [&](auto tag) {
    using From = typename decltype(tag)::type;
    const From* in = data<From>(x);
    for (int64_t i = 0; i < x.numel(); ++i) {
      uint8_t code;
      if (is_narrow_float(to)) {
        float f;
        if constexpr (std::is_same_v<From, float> || kIs16BitFloat<From>) f = static_cast<float>(in[i]);
        else f = to_float_round_odd(static_cast<double>(in[i]));
        code = narrow_float_code(to, f, rounding.saturate, rounding.e8m0);
      } else if constexpr (kIsFloat<From>) {
        const double v = std::trunc(static_cast<double>(load(in[i])));
        const bool fits = v >= static_cast<double>(packed_integer_min(to)) && v <= static_cast<double>(packed_integer_max(to));
        code = packed_integer_code(to, fits ? static_cast<int64_t>(v) : 0);  // NaN does not fit either
      } else {
        code = packed_integer_code(to, static_cast<int64_t>(in[i]));
      }
      write_code(to, codes, i, code);
    }
  });
}

void cast_narrow(const Tensor& x, Tensor& y, const KernelContext& ctx, const NarrowRounding& rounding) {
  if (x.dtype() == DataType::kString || y.dtype() == DataType::kString)
    throw ctx.error(std::string("Cast from ") + to_string(x.dtype()) + " to " + to_string(y.dtype()) + " is not supported");
  if (!is_narrow(x.dtype())) return narrow_into(x, y, ctx, rounding);
  const Tensor wide = widen_narrow(x);
  if (is_narrow(y.dtype())) return narrow_into(wide, y, ctx, rounding);
  cast_into(wide, y, ctx, rounding);
}

}  // namespace

void cast_into(const Tensor& x, Tensor& y, const KernelContext& ctx, const NarrowRounding& rounding) {
  if (is_narrow(x.dtype()) || is_narrow(y.dtype())) return cast_narrow(x, y, ctx, rounding);
  dispatch_cast_type(x.dtype(), ctx, [&](auto from_tag) {
    using From = typename decltype(from_tag)::type;
    dispatch_cast_type(y.dtype(), ctx, [&](auto to_tag) {
      using To = typename decltype(to_tag)::type;
      const From* in = data<From>(x);
      To* out = mutable_data<To>(y);
      if constexpr (!std::is_same_v<From, std::string> && !std::is_same_v<To, std::string>) {
        // Numbers and bools: no element can fail, so the run's threads split them.
        const int64_t n = x.numel();
        const int threads = n >= kParallelElements ? max_threads() : 1;
#pragma omp parallel for schedule(static) num_threads(threads)
        for (int64_t i = 0; i < n; ++i) {
          if constexpr (std::is_same_v<From, To>) out[i] = in[i];
          else out[i] = convert<To>(in[i]);
        }
      } else {  // strings: parsing may fail (an exception must not leave a parallel region)
        for (int64_t i = 0; i < x.numel(); ++i) {
          if constexpr (std::is_same_v<From, To>) {
            out[i] = in[i];
          } else if constexpr (std::is_same_v<From, std::string>) {
            if (!parse_number(in[i], out[i])) throw ctx.error("cannot cast the string '" + in[i] + "' to a number");
          } else {
            out[i] = to_text(in[i]);
          }
        }
      }
    });
  });
}

namespace {

// Cast's and CastLike's rounding into narrow types: `saturate` from opset 19, `round_mode` from 24.
NarrowRounding narrow_rounding(const KernelInit& init) {
  NarrowRounding r;
  r.saturate = init.attr_int("saturate", 1) != 0;
  try {
    r.e8m0 = e8m0_rounding_from_string(init.attr_string("round_mode", "up"));
  } catch (const Error& e) {
    throw init.error(e.message());
  }
  return r;
}

// Cast-1 names its target type by name ("FLOAT"); later opsets by number.
DataType cast_target(const KernelInit& init) {
  const ir::Attribute& to = init.required_attr("to");
  if (to.type != ir::AttributeType::kString) {
    if (!is_known_data_type(static_cast<int32_t>(to.i))) throw init.error("unknown 'to' type " + std::to_string(to.i));
    return static_cast<DataType>(to.i);
  }
  static const std::vector<std::pair<std::string, DataType>> names = {
      {"FLOAT", DataType::kFloat32},   {"UINT8", DataType::kUInt8},     {"INT8", DataType::kInt8},
      {"UINT16", DataType::kUInt16},   {"INT16", DataType::kInt16},     {"INT32", DataType::kInt32},
      {"INT64", DataType::kInt64},     {"STRING", DataType::kString},   {"BOOL", DataType::kBool},
      {"FLOAT16", DataType::kFloat16}, {"DOUBLE", DataType::kFloat64},  {"UINT32", DataType::kUInt32},
      {"UINT64", DataType::kUInt64},   {"BFLOAT16", DataType::kBFloat16}};
  for (const auto& [name, dtype] : names)
    if (to.s == name) return dtype;
  throw init.error("unknown 'to' type '" + to.s + "'");
}

// BitCast's dtypes: every one but string (element bytes are not the value there).
std::vector<DataType> bit_cast_types() {
  std::vector<DataType> types = numeric_types();
  types.insert(types.end(), {DataType::kBool, DataType::kComplex64, DataType::kComplex128});
  return types;
}

// The bytes of x as dtype `to`. Tensors are little endian in memory on every target tunnx builds
// for, as BitCast defines the bytes. A byte other than 0 or 1 read as bool is not a valid C++ bool,
// so it becomes true (1), as numpy's view of it reads.
void bit_cast(KernelContext& ctx, DataType to) {
  const Tensor& x = ctx.input(0);
  if (x.dtype() == DataType::kString || element_size(x.dtype()) != element_size(to))
    throw ctx.error(std::string("cannot bit-cast ") + to_string(x.dtype()) + " to " + to_string(to) +
                    ": the element widths differ");
  if (x.dtype() == to) return ctx.set_output(0, x);
  Tensor& y = ctx.allocate_output_uninitialized(0, to, x.dims());
  if (x.nbytes() == 0) return;
  if (to == DataType::kBool && x.dtype() != DataType::kBool) {
    const auto* in = static_cast<const uint8_t*>(x.data());
    bool* out = mutable_data<bool>(y);
    for (int64_t i = 0; i < x.numel(); ++i) out[i] = in[i] != 0;
    return;
  }
  std::memcpy(y.mutable_data(), x.data(), x.nbytes());
}

}  // namespace

void register_cast_kernels(KernelRegistry& r) {
  std::vector<DataType> any = all_types();
  for (DataType t : narrow_types()) any.push_back(t);
  // Cast / CastLike: numeric, bool and string in any pair; narrow types to and from numbers.
  add_kernel(r, "Cast", 1, INT_MAX, any, [](const KernelInit& init) {
    const DataType to = cast_target(init);
    const NarrowRounding rounding = narrow_rounding(init);
    return make_kernel([to, rounding](KernelContext& ctx) {
      const Tensor& x = ctx.input(0);
      if (x.dtype() == to) return ctx.set_output(0, x);
      // Every element is written: only strings need their empty start.
      Tensor& y = to == DataType::kString ? ctx.allocate_output(0, to, x.dims()) : ctx.allocate_output_uninitialized(0, to, x.dims());
      cast_into(x, y, ctx, rounding);
    });
  });
  add_kernel(r, "CastLike", 15, INT_MAX, any, [](const KernelInit& init) {
    const NarrowRounding rounding = narrow_rounding(init);
    return make_kernel([rounding](KernelContext& ctx) {
      const Tensor& x = ctx.input(0);
      const DataType to = ctx.input(1).dtype();
      if (x.dtype() == to) return ctx.set_output(0, x);
      cast_into(x, ctx.allocate_output(0, to, x.dims()), ctx, rounding);
    });
  });

  add_kernel(r, "BitCast", 26, INT_MAX, bit_cast_types(), [](const KernelInit& init) {
    const int64_t to_attr = init.required_attr("to").i;
    if (to_attr != static_cast<int32_t>(to_attr) || !is_known_data_type(static_cast<int32_t>(to_attr)) ||
        to_attr == int64_t(DataType::kString))
      throw init.error("unsupported 'to' type " + std::to_string(to_attr));
    const auto to = static_cast<DataType>(to_attr);
    const DataType from = init.input_type(0);
    if (from != DataType::kUndefined && element_size(from) != element_size(to))
      throw init.error(std::string("cannot bit-cast ") + to_string(from) + " to " + to_string(to) +
                       ": the element widths differ");
    return make_kernel([to](KernelContext& ctx) { bit_cast(ctx, to); });
  });
}

}  // namespace tunnx::cpu
