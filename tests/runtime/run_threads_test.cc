// The thread policy: a run's thread count applies to the thread that runs it, for that run only, and
// does not leak into other threads running at the same time.
#include <thread>

#include <gtest/gtest.h>

#include "runtime/core/run_threads.h"

namespace {

using tunnx::RunThreads;

TEST(RunThreads, SetsTheCountForTheRunAndRestoresIt) {
  const int before = RunThreads::current();
  {
    RunThreads run(1);
    EXPECT_EQ(RunThreads::current(), 1);
    {
      RunThreads nested(3);
      EXPECT_EQ(RunThreads::current(), 3);
    }
    EXPECT_EQ(RunThreads::current(), 1);
  }
  EXPECT_EQ(RunThreads::current(), before);
}

TEST(RunThreads, ZeroKeepsTheDefault) {
  const int before = RunThreads::current();
  RunThreads run(0);
  EXPECT_EQ(RunThreads::current(), before);
}

TEST(RunThreads, ConcurrentRunsKeepTheirOwnCounts) {
  int seen_a = 0, seen_b = 0;
  std::thread a([&] {
    RunThreads run(1);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    seen_a = RunThreads::current();
  });
  std::thread b([&] {
    RunThreads run(2);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    seen_b = RunThreads::current();
  });
  a.join();
  b.join();
#ifdef _OPENMP
  EXPECT_EQ(seen_a, 1);
  EXPECT_EQ(seen_b, 2);
#else
  EXPECT_EQ(seen_a, 1);
  EXPECT_EQ(seen_b, 1);
#endif
}

}  // namespace
