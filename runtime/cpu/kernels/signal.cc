// Signal ops: DFT, STFT, the Hann/Hamming/Blackman windows, MelWeightMatrix.
// Complex values are a trailing dimension of 2 (real, imaginary); real input has a trailing 1.
// Shape rules:
//   DFT     X [..., L(axis), ..., 1|2] -> [..., n or n/2+1 (onesided), ..., 2]; inverse+onesided -> [..., n, ..., 1]
//   STFT    signal [B, L, 1|2] -> [B, frames, frame_length or frame_length/2+1 (onesided), 2]
//   *Window size -> [size];  MelWeightMatrix -> [dft_length/2+1, num_mel_bins]
#include <cmath>
#include <complex>
#include <numbers>

#include "runtime/cpu/kernels/common.h"
#include "runtime/cpu/kernels/kernels.h"

namespace tunnx::cpu {
namespace {

using Complex = std::complex<double>;

bool is_pow2(int64_t n) { return n > 0 && (n & (n - 1)) == 0; }

// An unnormalized discrete Fourier transform of one fixed length, built once and applied to many
// lines: radix-2 for powers of two, Bluestein's chirp-z (through a radix-2 transform) otherwise, and
// the direct sum for short lengths. `inverse` flips the sign of the exponent (no 1/n).
class FourierTransform {
 public:
  FourierTransform(int64_t n, bool inverse) : n_(n) {
    if (n <= 1 || is_pow2(n)) {
      roots_ = unit_roots(n, inverse);
    } else if (n <= 32) {
      roots_ = unit_roots_full(n, inverse);
    } else {
      m_ = 1;
      while (m_ < 2 * n - 1) m_ <<= 1;
      roots_ = unit_roots(m_, false);
      roots_inv_ = unit_roots(m_, true);
      chirp_.resize(static_cast<size_t>(n));
      for (int64_t k = 0; k < n; ++k) {
        int64_t k2 = (k * k) % (2 * n);  // keeps the phase argument small and exact
        double angle = (inverse ? 1.0 : -1.0) * std::numbers::pi * static_cast<double>(k2) / static_cast<double>(n);
        chirp_[k] = std::polar(1.0, angle);
      }
      chirp_fft_.assign(static_cast<size_t>(m_), Complex(0));
      chirp_fft_[0] = std::conj(chirp_[0]);
      for (int64_t k = 1; k < n; ++k) chirp_fft_[k] = chirp_fft_[m_ - k] = std::conj(chirp_[k]);
      radix2(chirp_fft_, roots_);
    }
  }

  // a.size() == n; transformed in place.
  void apply(std::vector<Complex>& a) const {
    if (n_ <= 1) return;
    if (is_pow2(n_)) {
      radix2(a, roots_);
    } else if (m_ == 0) {
      std::vector<Complex> out(static_cast<size_t>(n_));
      for (int64_t k = 0; k < n_; ++k) {
        Complex acc = 0;
        for (int64_t j = 0; j < n_; ++j) acc += a[j] * roots_[(j * k) % n_];
        out[k] = acc;
      }
      a.swap(out);
    } else {
      std::vector<Complex> b(static_cast<size_t>(m_), Complex(0));
      for (int64_t k = 0; k < n_; ++k) b[k] = a[k] * chirp_[k];
      radix2(b, roots_);
      for (int64_t k = 0; k < m_; ++k) b[k] *= chirp_fft_[k];
      radix2(b, roots_inv_);
      const double scale = 1.0 / static_cast<double>(m_);
      for (int64_t k = 0; k < n_; ++k) a[k] = b[k] * scale * chirp_[k];
    }
  }

 private:
  // exp(-+2 pi i j / n) for j < n/2 (radix-2 twiddles).
  static std::vector<Complex> unit_roots(int64_t n, bool inverse) {
    std::vector<Complex> r(static_cast<size_t>(std::max<int64_t>(n / 2, 1)));
    for (int64_t j = 0; j < n / 2; ++j)
      r[j] = std::polar(1.0, (inverse ? 2.0 : -2.0) * std::numbers::pi * static_cast<double>(j) / static_cast<double>(n));
    return r;
  }
  static std::vector<Complex> unit_roots_full(int64_t n, bool inverse) {
    std::vector<Complex> r(static_cast<size_t>(n));
    for (int64_t j = 0; j < n; ++j)
      r[j] = std::polar(1.0, (inverse ? 2.0 : -2.0) * std::numbers::pi * static_cast<double>(j) / static_cast<double>(n));
    return r;
  }
  // Iterative Cooley-Tukey on a power-of-two length; `roots` holds the twiddles of that length.
  static void radix2(std::vector<Complex>& a, const std::vector<Complex>& roots) {
    const size_t n = a.size();
    for (size_t i = 1, j = 0; i < n; ++i) {
      size_t bit = n >> 1;
      for (; j & bit; bit >>= 1) j ^= bit;
      j ^= bit;
      if (i < j) std::swap(a[i], a[j]);
    }
    for (size_t len = 2; len <= n; len <<= 1) {
      const size_t step = n / len;
      for (size_t i = 0; i < n; i += len)
        for (size_t j = 0; j < len / 2; ++j) {
          Complex u = a[i + j], v = a[i + j + len / 2] * roots[j * step];
          a[i + j] = u + v;
          a[i + j + len / 2] = u - v;
        }
    }
  }

  int64_t n_;
  int64_t m_ = 0;  // Bluestein's padded length; 0 when not used
  std::vector<Complex> roots_, roots_inv_, chirp_, chirp_fft_;
};

// ---------------------------------------------------------------------------------------------
// DFT

struct DftAttrs {
  bool inverse = false, onesided = false;
  int64_t axis = 1;       // opset 17 attribute; opset 20 reads input 2 (default -2)
  bool axis_is_input = false;
};

// X viewed as [outer, len(axis), inner, c] with c = 1 (real) or 2 (complex).
template <typename T>
void run_dft_typed(const DftAttrs& a, KernelContext& ctx, const Tensor& x, int64_t axis, int64_t n) {
  const auto& dims = x.dims();
  const int64_t r = static_cast<int64_t>(dims.size());
  const int64_t c = dims[r - 1], len = dims[axis];
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < axis; ++i) outer *= dims[i];
  for (int64_t i = axis + 1; i < r - 1; ++i) inner *= dims[i];
  const bool irfft = a.inverse && a.onesided;
  const int64_t out_len = irfft ? n : (a.onesided ? n / 2 + 1 : n);
  const int64_t out_c = irfft ? 1 : 2;
  std::vector<int64_t> out_dims = dims;
  out_dims[axis] = out_len;
  out_dims[r - 1] = out_c;
  Tensor& y = ctx.allocate_output(0, x.dtype(), out_dims);
  if (y.numel() == 0) return;
  const T* in = data<T>(x);
  T* out = mutable_data<T>(y);
  FourierTransform ft(n, a.inverse);
  // How many input values along the axis are used: irfft reads the n/2+1 non-redundant bins.
  const int64_t used = std::min(len, irfft ? n / 2 + 1 : n);
  const double norm = a.inverse ? 1.0 / static_cast<double>(n) : 1.0;
  std::vector<Complex> line(static_cast<size_t>(n));
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i) {
      std::fill(line.begin(), line.end(), Complex(0));
      for (int64_t k = 0; k < used; ++k) {
        const T* p = in + ((o * len + k) * inner + i) * c;
        line[k] = Complex(static_cast<double>(p[0]), c == 2 ? static_cast<double>(p[1]) : 0.0);
      }
      if (irfft)  // rebuild the full spectrum from its Hermitian half
        for (int64_t k = 1; k < (n + 1) / 2 && k < used; ++k) line[n - k] = std::conj(line[k]);
      ft.apply(line);
      for (int64_t k = 0; k < out_len; ++k) {
        T* q = out + ((o * out_len + k) * inner + i) * out_c;
        q[0] = from_double<T>(line[k].real() * norm);
        if (out_c == 2) q[1] = from_double<T>(line[k].imag() * norm);
      }
    }
}

void run_dft(const DftAttrs& a, KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  const int64_t r = static_cast<int64_t>(x.rank());
  if (r < 2 || (x.dims()[r - 1] != 1 && x.dims()[r - 1] != 2))
    throw ctx.error("input must end in a dimension of 1 (real) or 2 (complex), got " + dims_to_string(x.dims()));
  int64_t axis = a.axis;
  if (a.axis_is_input && ctx.has_input(2)) axis = read_int_values(ctx.input(2), ctx).at(0);
  if (axis < 0) axis += r;
  if (axis < 0 || axis > r - 2)
    throw ctx.error("axis is out of range for rank " + std::to_string(r) + " (the last dimension holds complex parts)");
  int64_t n = a.inverse && a.onesided ? 2 * (x.dims()[axis] - 1) : x.dims()[axis];
  if (ctx.has_input(1)) {
    const Tensor& len = ctx.input(1);
    if (len.numel() != 1) throw ctx.error("dft_length must be a scalar");
    n = read_int_values(len, ctx)[0];
  }
  if (n < 1) throw ctx.error("dft_length must be positive, got " + std::to_string(n));
  dispatch(x.dtype(), ctx, FloatTypes{}, [&](auto tag) {
    run_dft_typed<typename decltype(tag)::type>(a, ctx, x, axis, n);
  });
}

// ---------------------------------------------------------------------------------------------
// STFT

template <typename T>
void run_stft_typed(bool onesided, KernelContext& ctx, const Tensor& x, int64_t step, const std::vector<double>& window,
                    int64_t frame_length) {
  const int64_t B = x.dims()[0], L = x.dims()[1], c = x.dims()[2];
  const int64_t frames = (L - frame_length) / step + 1;
  const int64_t bins = onesided ? frame_length / 2 + 1 : frame_length;
  Tensor& y = ctx.allocate_output(0, x.dtype(), {B, frames, bins, 2});
  if (y.numel() == 0) return;
  const T* in = data<T>(x);
  T* out = mutable_data<T>(y);
  FourierTransform ft(frame_length, false);
  std::vector<Complex> line(static_cast<size_t>(frame_length));
  for (int64_t b = 0; b < B; ++b)
    for (int64_t f = 0; f < frames; ++f) {
      for (int64_t k = 0; k < frame_length; ++k) {
        const T* p = in + (b * L + f * step + k) * c;
        double w = window.empty() ? 1.0 : window[k];
        line[k] = Complex(static_cast<double>(p[0]) * w, c == 2 ? static_cast<double>(p[1]) * w : 0.0);
      }
      ft.apply(line);
      T* q = out + (b * frames + f) * bins * 2;
      for (int64_t k = 0; k < bins; ++k) {
        q[2 * k] = from_double<T>(line[k].real());
        q[2 * k + 1] = from_double<T>(line[k].imag());
      }
    }
}

void run_stft(bool onesided, KernelContext& ctx) {
  const Tensor& x = ctx.input(0);
  if (x.rank() != 3 || (x.dims()[2] != 1 && x.dims()[2] != 2))
    throw ctx.error("signal must be [batch, signal_length, 1 or 2], got " + dims_to_string(x.dims()));
  const int64_t L = x.dims()[1];
  int64_t step = read_int_values(ctx.input(1), ctx).at(0);
  if (step < 1) throw ctx.error("frame_step must be positive, got " + std::to_string(step));
  std::vector<double> window;
  if (ctx.has_input(2)) {
    const Tensor& w = ctx.input(2);
    if (w.rank() != 1) throw ctx.error("window must be 1-D, got " + dims_to_string(w.dims()));
    window = read_double_values(w, ctx);
  }
  int64_t frame_length = window.empty() ? L : static_cast<int64_t>(window.size());
  if (ctx.has_input(3)) {
    frame_length = read_int_values(ctx.input(3), ctx).at(0);
    if (!window.empty() && static_cast<int64_t>(window.size()) != frame_length)
      throw ctx.error("window has " + std::to_string(window.size()) + " values but frame_length is " +
                      std::to_string(frame_length));
  }
  if (frame_length < 1 || frame_length > L)
    throw ctx.error("frame_length " + std::to_string(frame_length) + " must be in [1, signal_length " +
                    std::to_string(L) + "]");
  dispatch(x.dtype(), ctx, FloatTypes{}, [&](auto tag) {
    run_stft_typed<typename decltype(tag)::type>(onesided, ctx, x, step, window, frame_length);
  });
}

// ---------------------------------------------------------------------------------------------
// Windows and MelWeightMatrix

// w[n] = sum_k a_k cos(2 pi k n / N), N = size (periodic) or size - 1 (symmetric).
void register_window(KernelRegistry& r, const std::string& op, std::vector<double> coeffs) {
  add_kernel(r, op, 17, INT_MAX, {DataType::kInt32, DataType::kInt64}, [coeffs](const KernelInit& init) {
    auto dtype = static_cast<DataType>(init.attr_int("output_datatype", 1));
    bool periodic = init.attr_int("periodic", 1) != 0;
    return make_kernel([coeffs, dtype, periodic](KernelContext& ctx) {
      const Tensor& size_in = ctx.input(0);
      if (size_in.numel() != 1) throw ctx.error("size must be a scalar");
      int64_t size = read_int_values(size_in, ctx)[0];
      if (size < 0) throw ctx.error("size must not be negative, got " + std::to_string(size));
      const double N = static_cast<double>(periodic ? size : size - 1);
      std::vector<double> w(static_cast<size_t>(size));
      for (int64_t n = 0; n < size; ++n) {
        if (N == 0) {  // a symmetric window of one value
          w[n] = 1;
          continue;
        }
        double v = 0;
        for (size_t k = 0; k < coeffs.size(); ++k)
          v += coeffs[k] * std::cos(2 * std::numbers::pi * static_cast<double>(k) * static_cast<double>(n) / N);
        w[n] = v;
      }
      write_output(ctx, 0, dtype, {size}, w);
    });
  });
}

void run_mel_weight_matrix(DataType dtype, KernelContext& ctx) {
  auto scalar_int = [&](size_t i, const char* name) {
    const Tensor& t = ctx.input(i);
    if (t.numel() != 1) throw ctx.error(std::string(name) + " must be a scalar");
    return read_int_values(t, ctx)[0];
  };
  const int64_t num_mel_bins = scalar_int(0, "num_mel_bins"), dft_length = scalar_int(1, "dft_length");
  const int64_t sample_rate = scalar_int(2, "sample_rate");
  const double lower = read_scalar(ctx.input(3), ctx), upper = read_scalar(ctx.input(4), ctx);
  if (num_mel_bins < 1 || dft_length < 1 || sample_rate < 1)
    throw ctx.error("num_mel_bins, dft_length and sample_rate must be positive");
  if (lower < 0 || upper < lower) throw ctx.error("need 0 <= lower_edge_hertz <= upper_edge_hertz");
  const int64_t spectrogram_bins = dft_length / 2 + 1;
  // num_mel_bins + 2 band edges, evenly spaced on the mel scale, mapped to DFT bin indices.
  auto mel = [](double hz) { return 2595 * std::log10(1 + hz / 700); };
  const double low_mel = mel(lower), high_mel = mel(upper);
  const double mel_step = (high_mel - low_mel) / static_cast<double>(num_mel_bins + 2);
  std::vector<int64_t> edge(static_cast<size_t>(num_mel_bins + 2));
  for (int64_t i = 0; i < num_mel_bins + 2; ++i) {
    double hz = 700 * (std::pow(10.0, (static_cast<double>(i) * mel_step + low_mel) / 2595) - 1);
    edge[i] = static_cast<int64_t>(std::floor(static_cast<double>(dft_length + 1) * hz / static_cast<double>(sample_rate)));
  }
  std::vector<double> w(static_cast<size_t>(spectrogram_bins * num_mel_bins), 0.0);
  auto set = [&](int64_t bin, int64_t m, double v) {
    if (bin >= 0 && bin < spectrogram_bins) w[bin * num_mel_bins + m] = v;
  };
  for (int64_t m = 0; m < num_mel_bins; ++m) {
    const int64_t lo = edge[m], center = edge[m + 1], hi = edge[m + 2];
    if (center == lo) set(center, m, 1);
    else
      for (int64_t j = lo; j <= center; ++j)
        set(j, m, static_cast<double>(j - lo) / static_cast<double>(center - lo));
    if (hi > center)
      for (int64_t j = center; j < hi; ++j)
        set(j, m, static_cast<double>(hi - j) / static_cast<double>(hi - center));
  }
  write_output(ctx, 0, dtype, {spectrogram_bins, num_mel_bins}, w);
}

}  // namespace

void register_signal_kernels(KernelRegistry& r) {
  // DFT: 17 (axis attribute, default 1), 20+ (axis input, default -2).
  add_kernel(r, "DFT", 17, INT_MAX, kFloatTypes, [](const KernelInit& init) {
    DftAttrs a;
    a.inverse = init.attr_int("inverse", 0) != 0;
    a.onesided = init.attr_int("onesided", 0) != 0;
    a.axis_is_input = init.opset() >= 20;
    a.axis = a.axis_is_input ? -2 : init.attr_int("axis", 1);
    return make_kernel([a](KernelContext& ctx) { run_dft(a, ctx); });
  });

  add_kernel(r, "STFT", 17, INT_MAX, kFloatTypes, [](const KernelInit& init) {
    bool onesided = init.attr_int("onesided", 1) != 0;
    return make_kernel([onesided](KernelContext& ctx) { run_stft(onesided, ctx); });
  });

  register_window(r, "HannWindow", {0.5, -0.5});
  register_window(r, "HammingWindow", {25.0 / 46.0, -(1 - 25.0 / 46.0)});
  register_window(r, "BlackmanWindow", {0.42, -0.5, 0.08});

  add_kernel(r, "MelWeightMatrix", 17, INT_MAX, {DataType::kInt32, DataType::kInt64}, [](const KernelInit& init) {
    auto dtype = static_cast<DataType>(init.attr_int("output_datatype", 1));
    return make_kernel([dtype](KernelContext& ctx) { run_mel_weight_matrix(dtype, ctx); });
  });
}

}  // namespace tunnx::cpu
