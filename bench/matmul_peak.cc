// What this machine's cores can do, measured in the same run as the runtimes' benchmarks
// (bench/compare_ort.py calls it):
//   fma_peak_gflops   FP32 FMA throughput of one core with no memory traffic at all: 12 independent
//                     AVX2 FMA chains (enough to cover 2 pipes x 4-cycle latency), 16 FLOP each.
//                     The ceiling any matmul on this core can approach, at the clock it runs now.
//   onednn_ms         oneDNN's own sgemm on 1024^3 (row-major, no transposes) at --threads threads:
//                     the library alone, with no runtime around it.
// One JSON object on stdout. Not a test: nothing here is asserted.
#include <immintrin.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <oneapi/dnnl/dnnl.h>

namespace {

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

__attribute__((target("avx2,fma"))) double fma_peak_gflops() {
  __m256 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm256_set1_ps(0.001f * static_cast<float>(i));
  const __m256 scale = _mm256_set1_ps(0.9999f), shift = _mm256_set1_ps(0.0001f);
  const long iterations = 100000000;
  const auto start = std::chrono::steady_clock::now();
  for (long k = 0; k < iterations; ++k) {
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) acc[i] = _mm256_fmadd_ps(acc[i], scale, shift);
  }
  const double s = seconds_since(start);
  float sink[8], total = 0;  // use the results so the loop is not optimized away
  for (int i = 0; i < 12; ++i) {
    _mm256_storeu_ps(sink, acc[i]);
    total += sink[0];
  }
  if (total == 12345.0f) std::puts("");
  return static_cast<double>(iterations) * 12 * 16 / s / 1e9;
}

double onednn_sgemm_ms(int n, int iters) {
  std::vector<float> a(static_cast<size_t>(n) * n), b(a.size()), c(a.size());
  for (size_t i = 0; i < a.size(); ++i) {
    a[i] = static_cast<float>(i % 7) * 0.1f - 0.3f;
    b[i] = static_cast<float>(i % 5) * 0.1f - 0.2f;
  }
  std::vector<double> ms;
  for (int i = 0; i < iters + 3; ++i) {
    const auto start = std::chrono::steady_clock::now();
    dnnl_sgemm('N', 'N', n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
    if (i >= 3) ms.push_back(seconds_since(start) * 1e3);  // the first runs warm up
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 1, iters = 30;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--threads")) threads = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--iters")) iters = std::atoi(argv[i + 1]);
  }
  if (threads < 1 || iters < 1) {
    std::fprintf(stderr, "usage: tunnx_matmul_peak [--threads N] [--iters N]\n");
    return 2;
  }
  const bool fma = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  omp_set_num_threads(threads);
  const double ms = onednn_sgemm_ms(1024, iters);
  std::printf("{\"threads\": %d, \"fma_peak_gflops\": %s, \"onednn_ms\": %.4f, \"onednn_gflops\": %.2f}\n", threads,
              fma ? std::to_string(fma_peak_gflops()).c_str() : "null", ms, 2.0 * 1024 * 1024 * 1024 / ms / 1e6);
  return 0;
}
