// What this machine's cores can do, measured in the same run as the runtimes' benchmarks
// (bench/compare_ort.py calls it):
//   fma_peak_gflops   FP32 FMA throughput of one core with no memory traffic at all: 12 independent
//                     FMA chains (enough to cover 2 pipes x 4-cycle latency) of the widest vectors
//                     the core has, AVX-512 (32 FLOP each) or AVX2 (16): the ceiling any matmul on
//                     this core can approach, at the clock it runs now (`fma_peak_isa` says which).
//                     oneDNN's sgemm uses AVX-512 where the core has it, so an AVX2 peak would
//                     understate the ceiling by half there.
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

// 12 chains of FMAs on vectors of kFloats floats, timed: GFLOP/s. One body for both ISAs, compiled
// inside each caller's target (a lambda would not inherit it).
#define TUNNX_FMA_CHAINS(Vec, kFloats, fma, set1, store)                                    \
  Vec acc[12];                                                                              \
  for (int i = 0; i < 12; ++i) acc[i] = set1(0.001f * static_cast<float>(i));              \
  const Vec scale = set1(0.9999f), shift = set1(0.0001f);                                   \
  const long iterations = 100000000;                                                        \
  const auto start = std::chrono::steady_clock::now();                                      \
  for (long k = 0; k < iterations; ++k) {                                                   \
    _Pragma("GCC unroll 12") for (int i = 0; i < 12; ++i) acc[i] = fma(acc[i], scale, shift); \
  }                                                                                         \
  const double s = seconds_since(start);                                                    \
  float sink[kFloats], total = 0; /* use the results so the loop is not optimized away */   \
  for (int i = 0; i < 12; ++i) {                                                            \
    store(sink, acc[i]);                                                                    \
    total += sink[0];                                                                       \
  }                                                                                         \
  if (total == 12345.0f) std::puts("");                                                     \
  return static_cast<double>(iterations) * 12 * 2 * kFloats / s / 1e9;

__attribute__((target("avx2,fma"))) double avx2_fma_peak_gflops() {
  TUNNX_FMA_CHAINS(__m256, 8, _mm256_fmadd_ps, _mm256_set1_ps, _mm256_storeu_ps)
}

__attribute__((target("avx512f"))) double avx512_fma_peak_gflops() {
  TUNNX_FMA_CHAINS(__m512, 16, _mm512_fmadd_ps, _mm512_set1_ps, _mm512_storeu_ps)
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
  const bool avx512 = __builtin_cpu_supports("avx512f");
  const std::string peak = avx512 ? std::to_string(avx512_fma_peak_gflops())
                           : fma  ? std::to_string(avx2_fma_peak_gflops())
                                  : "null";
  const char* isa = avx512 ? "\"avx512\"" : fma ? "\"avx2\"" : "null";
  std::printf("{\"threads\": %d, \"fma_peak_gflops\": %s, \"fma_peak_isa\": %s, \"onednn_ms\": %.4f, \"onednn_gflops\": %.2f}\n",
              threads, peak.c_str(), isa, ms, 2.0 * 1024 * 1024 * 1024 / ms / 1e6);
  return 0;
}
