// The thread policy of a run: kernels that parallelize (oneDNN, on OpenMP) use
// SessionOptions::threads threads for the run that asked (0: OpenMP's default, all cores). OpenMP keeps
// its thread count per calling thread, so concurrent runs each get their own count, and the caller's
// own setting comes back when the run ends.
#pragma once

namespace tunnx {

class RunThreads {
 public:
  explicit RunThreads(int threads);  // threads <= 0 leaves the caller's count as it is
  ~RunThreads();
  RunThreads(const RunThreads&) = delete;
  RunThreads& operator=(const RunThreads&) = delete;

  // Threads a parallel kernel on this thread would use now (1 without OpenMP).
  static int current();

 private:
  int previous_ = 1;
};

}  // namespace tunnx
