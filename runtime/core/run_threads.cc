#include "runtime/core/run_threads.h"

#include <sys/resource.h>
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

int ThreadGovernor::choose(int requested) {
  const int all = requested > 0 ? requested : RunThreads::current();
  if (!adaptive_ || all <= 1) return all;
  std::lock_guard<std::mutex> lock(mutex_);
  if (busy_ < kBusyRate) return all;
  // Busy: time each count (its first run builds primitives and is not counted), then keep the faster
  // and look at the other now and then.
  if (all_.samples < 2) return all;
  if (one_.samples < 2) return 1;
  const bool explore = ++runs_ % kExploreEvery == 0;
  const bool one_is_faster = one_.ms < all_.ms;
  return one_is_faster != explore ? 1 : all;
}

void ThreadGovernor::record(int threads, double ms, int64_t preemptions, int64_t shape_sum) {
  if (!adaptive_) return;
  std::lock_guard<std::mutex> lock(mutex_);
  if (shape_sum != shape_sum_) {  // other sizes: earlier times say nothing about these
    all_ = one_ = Arm{};
    shape_sum_ = shape_sum;
  }
  // One preemption in a short run is a high rate: capped, one stray switch on a quiet machine does
  // not make it busy; a steady stream does.
  const double rate = std::min(1.0, static_cast<double>(preemptions) / std::max(ms, 0.01));
  busy_ = 0.9 * busy_ + 0.1 * rate;
  Arm& arm = threads <= 1 ? one_ : all_;
  if (arm.samples++ == 0) return;
  arm.ms = arm.samples == 2 ? ms : 0.7 * arm.ms + 0.3 * ms;
}

int64_t ThreadGovernor::preemptions() {
  rusage usage{};
  if (getrusage(RUSAGE_SELF, &usage) != 0) return 0;
  return usage.ru_nivcsw;
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
