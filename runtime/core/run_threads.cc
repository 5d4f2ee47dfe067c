#include "runtime/core/run_threads.h"

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>

#include "tunnx/threads.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace tunnx {
namespace {

// The budget's ledger. A mutex, not an atomic, so two runs that start at once cannot both see an
// idle machine and both take all of it.
std::mutex ledger_mutex;
int threads_in_use = 0;
thread_local int held_by_this_thread = 0;  // by runs on this thread's stack (nested runs)

int cores() {
#ifdef _OPENMP
  return std::max(1, omp_get_num_procs());
#else
  return 1;
#endif
}

}  // namespace

RunThreads::RunThreads(int threads) {
#ifdef _OPENMP
  previous_ = omp_get_max_threads();
  const int wanted = threads > 0 ? threads : previous_;
  {
    std::lock_guard<std::mutex> lock(ledger_mutex);
    const int others = threads_in_use - held_by_this_thread;
    granted_ = others <= 0 ? wanted : std::clamp(cores() - others, 1, wanted);
    threads_in_use += granted_;
  }
  held_by_this_thread += granted_;
  omp_set_num_threads(granted_);
#else
  (void)threads;
  granted_ = 1;
  std::lock_guard<std::mutex> lock(ledger_mutex);
  threads_in_use += granted_;
  held_by_this_thread += granted_;
#endif
}

RunThreads::~RunThreads() {
  {
    std::lock_guard<std::mutex> lock(ledger_mutex);
    threads_in_use -= granted_;
  }
  held_by_this_thread -= granted_;
#ifdef _OPENMP
  omp_set_num_threads(previous_);
#endif
}

int RunThreads::current() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

int RunThreads::in_use() {
  std::lock_guard<std::mutex> lock(ledger_mutex);
  return threads_in_use;
}

void use_recommended_wait_policy(char** argv) {
  // The marker keeps a program that is run again from trying once more (were the variable dropped).
  constexpr const char* kMarker = "TUNNX_WAIT_POLICY_APPLIED";
  if (!argv || !argv[0] || std::getenv("OMP_WAIT_POLICY") || std::getenv("GOMP_SPINCOUNT") || std::getenv(kMarker)) return;
  if (setenv("GOMP_SPINCOUNT", kRecommendedSpinCount, 1) != 0 || setenv(kMarker, "1", 1) != 0) return;
  execv("/proc/self/exe", argv);
  // Still here: executing failed (no /proc). Run on with libgomp's default policy, as before; the
  // variables stay set for child processes, which then start with the policy.
}

}  // namespace tunnx
