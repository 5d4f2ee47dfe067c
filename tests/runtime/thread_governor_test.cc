// ThreadGovernor (runtime/core/run_threads.h): a quiet machine gets the session's thread count on
// every run; a busy one (a steady stream of preemptions) times that count against one thread and
// keeps the faster, looking at the other now and then, and goes back to all threads once quiet.
#include <gtest/gtest.h>

#include "runtime/core/run_threads.h"

namespace {

using tunnx::ThreadGovernor;

// Runs `n` runs: each asks the governor, then reports `ms_of(threads)` and `preemptions` for it.
// Returns how many of them ran on one thread.
template <typename MsOf>
int drive(ThreadGovernor& g, int n, int requested, MsOf ms_of, int64_t preemptions, int64_t shape = 1) {
  int on_one = 0;
  for (int i = 0; i < n; ++i) {
    const int t = g.choose(requested);
    on_one += t == 1;
    g.record(t, ms_of(t), preemptions, shape);
  }
  return on_one;
}

TEST(ThreadGovernor, QuietMachineGetsEveryThreadOnEveryRun) {
  ThreadGovernor g(true);
  // A stray preemption now and then (a kernel thread) is no stream: one in 100 runs of 0.2 ms.
  for (int i = 0; i < 1000; ++i) {
    const int t = g.choose(4);
    EXPECT_EQ(t, 4) << "run " << i;
    g.record(t, 0.2, i % 100 == 0 ? 1 : 0, 1);
  }
}

TEST(ThreadGovernor, BusyMachineKeepsTheFasterCountAndLooksAtTheOther) {
  ThreadGovernor g(true);
  auto ms = [](int t) { return t == 1 ? 4.0 : 9.0; };  // beside busy cores, one thread wins
  drive(g, 50, 2, ms, 20);                              // preempted on every run: busy
  const int on_one = drive(g, 160, 2, ms, 20);
  EXPECT_GE(on_one, 145);  // one thread, but for a look at two threads every 16th run
  EXPECT_LT(on_one, 160);
  // The load goes: runs are no longer preempted and every run gets both threads again.
  drive(g, 100, 2, [](int t) { return t == 1 ? 4.0 : 2.2; }, 0);
  EXPECT_EQ(drive(g, 50, 2, [](int t) { return t == 1 ? 4.0 : 2.2; }, 0), 0);
}

TEST(ThreadGovernor, BusyMachineWhereAllThreadsStillWinKeepsThem) {
  ThreadGovernor g(true);
  auto ms = [](int t) { return t == 1 ? 40.0 : 25.0; };
  drive(g, 50, 2, ms, 100);
  EXPECT_LE(drive(g, 160, 2, ms, 100), 11);  // one thread only when looked at
}

TEST(ThreadGovernor, FixedOrSingleThreadSessionsAreLeftAlone) {
  ThreadGovernor fixed(false);
  EXPECT_EQ(drive(fixed, 100, 2, [](int t) { return t == 1 ? 1.0 : 9.0; }, 50), 0);
  ThreadGovernor single(true);
  for (int i = 0; i < 50; ++i) {
    EXPECT_EQ(single.choose(1), 1);
    single.record(1, 1.0, 50, 1);
  }
}

TEST(ThreadGovernor, OtherInputSizesAreNotComparedWithEarlierTimes) {
  ThreadGovernor g(true);
  drive(g, 60, 2, [](int t) { return t == 1 ? 4.0 : 9.0; }, 20, /*shape=*/1);
  // A new input size: both counts are timed afresh before one is preferred, and there all threads win.
  drive(g, 20, 2, [](int t) { return t == 1 ? 40.0 : 20.0; }, 20, /*shape=*/2);
  EXPECT_LE(drive(g, 64, 2, [](int t) { return t == 1 ? 40.0 : 20.0; }, 20, 2), 4);
}

}  // namespace
