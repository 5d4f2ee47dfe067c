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

#include <cstdint>
#include <mutex>

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

// Each run's thread count for one session on a machine that may be busy. oneDNN's teams are OpenMP's
// static split: when another process holds a core, the half of every primitive on it waits for its
// time slice and the run takes several times as long (MobileNetV3-small at 2 threads beside one busy
// loop per core: 19.5 ms against 4.0 on one thread), where ONNX Runtime's pool lets the caller take
// over the work. So a session watches the process's involuntary context switches (the scheduler
// taking a core from a runnable thread: a few per second on a quiet machine, hundreds under load).
// While they come at more than kBusyRate per millisecond of run, runs alternate between the
// session's count and one thread, timing each, and keep the faster, trying the other every
// kExploreEvery runs, so a machine that turns quiet gets all threads back. Quiet, every run gets the
// session's count. Thread-safe; what concurrent runs measure is the process's, which is what counts.
class ThreadGovernor {
 public:
  static constexpr double kBusyRate = 0.15;  // preemptions per ms of run (smoothed): quiet ~0.02
  static constexpr int kExploreEvery = 16;

  explicit ThreadGovernor(bool adaptive) : adaptive_(adaptive) {}

  // The thread count for the next run of a session asking for `requested` (0: OpenMP's default).
  int choose(int requested);
  // What that run measured; `shape_sum` tells runs of different input sizes apart (their times are
  // not compared).
  void record(int threads, double ms, int64_t preemptions, int64_t shape_sum);

  // The process's involuntary context switches so far.
  static int64_t preemptions();

 private:
  struct Arm {
    double ms = 0;    // smoothed time of a run
    int samples = 0;  // the first, which builds the primitives for this count, is not counted
  };
  bool adaptive_;
  std::mutex mutex_;
  double busy_ = 0;  // smoothed preemptions per ms
  Arm all_, one_;
  int64_t runs_ = 0, shape_sum_ = -1;
};

}  // namespace tunnx
