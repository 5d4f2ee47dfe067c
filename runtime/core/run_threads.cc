#include "runtime/core/run_threads.h"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace tunnx {

RunThreads::RunThreads(int threads) {
#ifdef _OPENMP
  previous_ = omp_get_max_threads();
  if (threads > 0) omp_set_num_threads(threads);
#else
  (void)threads;
#endif
}

RunThreads::~RunThreads() {
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

}  // namespace tunnx
