// Random ops: RandomUniform, RandomNormal, their *Like forms, Bernoulli, Multinomial.
// A `seed` attribute makes a kernel deterministic: every run draws from a std::mt19937 seeded from it,
// so the same seed gives the same values run after run. Without a seed each run seeds from
// std::random_device. The engine lives on the stack of run(), so kernels stay thread-safe.
// Shape rules:
//   RandomUniform/RandomNormal -> the `shape` attribute;  *Like, Bernoulli -> the input's shape;
//   Multinomial [batch, classes] -> [batch, sample_size].
#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>
#include <optional>
#include <random>

#include "runtime/cpu/kernels/common.h"
#include "runtime/cpu/kernels/kernels.h"

namespace tunnx::cpu {
namespace {

// The seed attribute (a float in ONNX), when present.
std::optional<float> read_seed(const KernelInit& init) {
  if (!init.has_attr("seed")) return std::nullopt;
  return init.attr_float("seed", 0.0f);
}

std::mt19937 make_engine(const std::optional<float>& seed) {
  if (!seed) {
    std::random_device device;
    return std::mt19937(device());
  }
  // Integral seeds (the usual case) seed by value; fractional ones by their bits.
  float s = *seed;
  uint32_t value = std::trunc(s) == s && std::fabs(s) < 4e9f ? static_cast<uint32_t>(static_cast<int64_t>(s))
                                                             : std::bit_cast<uint32_t>(s);
  return std::mt19937(value);
}

bool is_random_float_type(DataType t) {
  return t == DataType::kFloat32 || t == DataType::kFloat64 || t == DataType::kFloat16 || t == DataType::kBFloat16;
}

// The output dtype: the `dtype` attribute, else `fallback` (the input's dtype for *Like/Bernoulli).
std::optional<DataType> read_dtype(const KernelInit& init) {
  if (!init.has_attr("dtype")) return std::nullopt;
  return static_cast<DataType>(init.attr_int("dtype", 1));
}

struct Distribution {
  bool normal = false;
  double a = 0, b = 1;  // uniform: [low, high); normal: mean, scale
};

// Fills a new output 0 of `dtype` and `dims` with draws from `dist`.
void fill_random(KernelContext& ctx, DataType dtype, const std::vector<int64_t>& dims, const Distribution& dist,
                 const std::optional<float>& seed) {
  dispatch(dtype, ctx, FloatTypes{}, [&](auto tag) {
    using T = typename decltype(tag)::type;
    Tensor& y = ctx.allocate_output(0, dtype, dims);
    T* out = mutable_data<T>(y);
    std::mt19937 engine = make_engine(seed);
    if (dist.normal) {
      std::normal_distribution<double> normal(dist.a, dist.b);
      for (int64_t i = 0; i < y.numel(); ++i) out[i] = static_cast<T>(normal(engine));
      return;
    }
    std::uniform_real_distribution<double> uniform(0.0, 1.0);
    for (int64_t i = 0; i < y.numel(); ++i) {
      // Rounding to a narrow type can reach `high`; draw again to keep the range half-open.
      T v;
      int tries = 0;
      do {
        v = static_cast<T>(dist.a + uniform(engine) * (dist.b - dist.a));
      } while (static_cast<double>(v) >= dist.b && dist.b > dist.a && ++tries < 64);
      out[i] = v;
    }
  });
}

Distribution read_distribution(const KernelInit& init, bool normal) {
  Distribution d;
  d.normal = normal;
  if (normal) {
    d.a = init.attr_float("mean", 0.0f);
    d.b = init.attr_float("scale", 1.0f);
    if (d.b < 0) throw init.error("scale must not be negative");
  } else {
    d.a = init.attr_float("low", 0.0f);
    d.b = init.attr_float("high", 1.0f);
    if (d.b < d.a) throw init.error("high must not be less than low");
  }
  return d;
}

// RandomUniform / RandomNormal: shape and dtype from attributes.
KernelFactory random_factory(bool normal) {
  return [normal](const KernelInit& init) {
    Distribution dist = read_distribution(init, normal);
    std::optional<float> seed = read_seed(init);
    DataType dtype = read_dtype(init).value_or(DataType::kFloat32);
    if (!is_random_float_type(dtype)) throw init.error(std::string("dtype ") + to_string(dtype) + " is not supported");
    if (!init.has_attr("shape")) throw init.error("attribute 'shape' is required");
    std::vector<int64_t> shape = init.attr_ints("shape");
    for (int64_t d : shape)
      if (d < 0) throw init.error("shape must not have negative dimensions");
    return make_kernel([dist, seed, dtype, shape](KernelContext& ctx) { fill_random(ctx, dtype, shape, dist, seed); });
  };
}

// RandomUniformLike / RandomNormalLike: shape from the input, dtype from the attribute or the input.
KernelFactory random_like_factory(bool normal) {
  return [normal](const KernelInit& init) {
    Distribution dist = read_distribution(init, normal);
    std::optional<float> seed = read_seed(init);
    std::optional<DataType> dtype = read_dtype(init);
    if (dtype && !is_random_float_type(*dtype))
      throw init.error(std::string("dtype ") + to_string(*dtype) + " is not supported");
    return make_kernel([dist, seed, dtype](KernelContext& ctx) {
      const Tensor& x = ctx.input(0);
      DataType out = dtype.value_or(x.dtype());
      if (!is_random_float_type(out))
        throw ctx.error(std::string("output dtype ") + to_string(out) + " is not a float type; set 'dtype'");
      fill_random(ctx, out, x.dims(), dist, seed);
    });
  };
}

void run_bernoulli(KernelContext& ctx, const std::optional<DataType>& dtype, const std::optional<float>& seed) {
  const Tensor& x = ctx.input(0);
  std::vector<double> p = read_double_values(x, ctx);
  for (double v : p)
    if (!(v >= 0 && v <= 1)) throw ctx.error("probabilities must be in [0, 1], got " + std::to_string(v));
  DataType out_type = dtype.value_or(x.dtype());
  dispatch<float, double, Float16, BFloat16, int8_t, int16_t, int32_t, int64_t, uint8_t, uint16_t, uint32_t, uint64_t,
           bool>(out_type, ctx, [&](auto tag) {
    using T = typename decltype(tag)::type;
    Tensor& y = ctx.allocate_output(0, out_type, x.dims());
    T* out = mutable_data<T>(y);
    std::mt19937 engine = make_engine(seed);
    std::uniform_real_distribution<double> uniform(0.0, 1.0);
    for (size_t i = 0; i < p.size(); ++i) out[i] = static_cast<T>(uniform(engine) < p[i] ? 1 : 0);
  });
}

void run_multinomial(KernelContext& ctx, DataType dtype, int64_t sample_size, const std::optional<float>& seed) {
  const Tensor& x = ctx.input(0);
  if (x.rank() != 2) throw ctx.error("input must be [batch_size, class_size], got " + dims_to_string(x.dims()));
  const int64_t batch = x.dims()[0], classes = x.dims()[1];
  if (classes < 1) throw ctx.error("class_size must be at least 1");
  std::vector<double> logits = read_double_values(x, ctx);
  std::vector<int64_t> samples(static_cast<size_t>(batch * sample_size));
  std::mt19937 engine = make_engine(seed);
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  std::vector<double> cumulative(static_cast<size_t>(classes));
  for (int64_t b = 0; b < batch; ++b) {
    const double* row = logits.data() + b * classes;
    // Unnormalized log-probabilities -> a cumulative distribution (shifted by the max for stability).
    double top = -std::numeric_limits<double>::infinity();
    for (int64_t c = 0; c < classes; ++c)
      if (!std::isnan(row[c])) top = std::max(top, row[c]);
    if (!std::isfinite(top)) throw ctx.error("row " + std::to_string(b) + " has no finite log-probability");
    double total = 0;
    for (int64_t c = 0; c < classes; ++c) {
      total += std::isnan(row[c]) ? 0.0 : std::exp(row[c] - top);
      cumulative[c] = total;
    }
    for (int64_t s = 0; s < sample_size; ++s) {
      double u = uniform(engine) * total;
      auto it = std::upper_bound(cumulative.begin(), cumulative.end(), u);
      int64_t c = std::min<int64_t>(it - cumulative.begin(), classes - 1);
      samples[static_cast<size_t>(b * sample_size + s)] = c;
    }
  }
  dispatch<int32_t, int64_t>(dtype, ctx, [&](auto tag) {
    using T = typename decltype(tag)::type;
    Tensor& y = ctx.allocate_output(0, dtype, {batch, sample_size});
    T* out = mutable_data<T>(y);
    for (size_t i = 0; i < samples.size(); ++i) out[i] = static_cast<T>(samples[i]);
  });
}

}  // namespace

void register_random_kernels(KernelRegistry& r) {
  // One signature from opset 1 on (22 only widened the dtypes to bfloat16, accepted everywhere).
  add_kernel(r, "RandomUniform", 1, INT_MAX, {}, random_factory(false), -1);
  add_kernel(r, "RandomNormal", 1, INT_MAX, {}, random_factory(true), -1);
  add_kernel(r, "RandomUniformLike", 1, INT_MAX, all_types(), random_like_factory(false));
  add_kernel(r, "RandomNormalLike", 1, INT_MAX, all_types(), random_like_factory(true));

  // Bernoulli (15+): out[i] = 1 with probability input[i].
  add_kernel(r, "Bernoulli", 15, INT_MAX, kFloatTypes, [](const KernelInit& init) {
    std::optional<DataType> dtype = read_dtype(init);
    std::optional<float> seed = read_seed(init);
    return make_kernel([dtype, seed](KernelContext& ctx) { run_bernoulli(ctx, dtype, seed); });
  });

  // Multinomial (7+): sample_size class indices per row of unnormalized log-probabilities.
  add_kernel(r, "Multinomial", 7, INT_MAX, kFloatTypes, [](const KernelInit& init) {
    auto dtype = static_cast<DataType>(init.attr_int("dtype", static_cast<int64_t>(DataType::kInt32)));
    if (dtype != DataType::kInt32 && dtype != DataType::kInt64) throw init.error("dtype must be int32 or int64");
    int64_t sample_size = init.attr_int("sample_size", 1);
    if (sample_size < 0) throw init.error("sample_size must not be negative");
    std::optional<float> seed = read_seed(init);
    return make_kernel([dtype, sample_size, seed](KernelContext& ctx) { run_multinomial(ctx, dtype, sample_size, seed); });
  });
}

}  // namespace tunnx::cpu
