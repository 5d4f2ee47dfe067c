// The thread policy of a run. Kernels that parallelize (oneDNN, on OpenMP) use
// SessionOptions::threads threads for the run that asked (0: OpenMP's default, all cores). OpenMP keeps
// its thread count per calling thread, so each run sets its own and the caller's comes back when the
// run ends.
//
// Concurrent runs share one budget of the machine's cores, so N callers do not start N x threads
// OpenMP threads: a run gets its full count when no other run holds threads, and otherwise what is
// left of the cores, at least 1 and at most its count. So a lone run gets exactly what it asked
// (even more than the cores, if asked), and K concurrent runs use at most max(first run's count,
// cores) + K - 1 threads. A run nested in another on the same thread (a run from inside a kernel)
// does not count its own outer run against itself.
#pragma once

namespace tunnx {

class RunThreads {
 public:
  explicit RunThreads(int threads);  // threads <= 0: OpenMP's default count
  ~RunThreads();
  RunThreads(const RunThreads&) = delete;
  RunThreads& operator=(const RunThreads&) = delete;

  int granted() const { return granted_; }  // threads this run may use

  // Threads a parallel kernel on this thread would use now (1 without OpenMP).
  static int current();
  // Threads held by runs in progress in this process.
  static int in_use();

 private:
  int previous_ = 1;
  int granted_ = 1;
};

}  // namespace tunnx
