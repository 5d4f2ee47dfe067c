// The thread policy (runtime/core/run_threads.h): a run's thread count applies to the thread that runs
// it, for that run only; a lone run gets exactly the count it asked; concurrent runs share the cores,
// so their total stays bounded by the cores plus one per extra run; nested runs on one thread do not
// count their outer run against themselves.
#include <barrier>
#include <chrono>
#include <latch>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "runtime/core/run_threads.h"

namespace {

using tunnx::RunThreads;

int cores() {
#ifdef _OPENMP
  return omp_get_num_procs();
#else
  return 1;
#endif
}

#ifdef _OPENMP
constexpr bool kOpenMp = true;
#else
constexpr bool kOpenMp = false;
#endif

TEST(RunThreads, SetsTheCountForTheRunAndRestoresIt) {
  const int before = RunThreads::current();
  {
    RunThreads run(1);
    EXPECT_EQ(RunThreads::current(), 1);
    {
      RunThreads nested(3);  // nested on this thread: its own outer run does not count against it
      EXPECT_EQ(RunThreads::current(), kOpenMp ? 3 : 1);
    }
    EXPECT_EQ(RunThreads::current(), 1);
  }
  EXPECT_EQ(RunThreads::current(), before);
  EXPECT_EQ(RunThreads::in_use(), 0);
}

TEST(RunThreads, ZeroKeepsTheDefault) {
  const int before = RunThreads::current();
  RunThreads run(0);
  EXPECT_EQ(RunThreads::current(), before);
  EXPECT_EQ(run.granted(), before);
}

TEST(RunThreads, ALoneRunGetsExactlyItsCount) {
  if (!kOpenMp) GTEST_SKIP() << "built without OpenMP";
  for (int n : {1, 2, cores(), cores() + 3}) {
    RunThreads run(n);
    EXPECT_EQ(run.granted(), n);
    EXPECT_EQ(RunThreads::current(), n);
  }
}

TEST(RunThreads, AConcurrentRunGetsWhatIsLeftOfTheCores) {
  if (!kOpenMp) GTEST_SKIP() << "built without OpenMP";
  std::latch first_holds(1), second_done(1);
  std::thread first([&] {
    RunThreads run(1);
    first_holds.count_down();
    second_done.wait();
  });
  first_holds.wait();
  int granted = 0, seen = 0;
  std::thread second([&] {
    RunThreads run(cores() + 4);
    granted = run.granted();
    seen = RunThreads::current();
  });
  second.join();
  second_done.count_down();
  first.join();
  EXPECT_EQ(granted, std::max(1, cores() - 1));
  EXPECT_EQ(seen, granted);
  EXPECT_EQ(RunThreads::in_use(), 0);
}

TEST(RunThreads, ManyConcurrentRunsStayBounded) {
  const int runs = 8;
  std::barrier all_hold(runs + 1), release(runs + 1);
  std::vector<int> granted(runs, 0);
  std::vector<std::thread> threads;
  for (int i = 0; i < runs; ++i)
    threads.emplace_back([&, i] {
      RunThreads run(cores());
      granted[static_cast<size_t>(i)] = run.granted();
      all_hold.arrive_and_wait();
      release.arrive_and_wait();
    });
  all_hold.arrive_and_wait();
  const int total = RunThreads::in_use();
  release.arrive_and_wait();
  for (auto& t : threads) t.join();
  int sum = 0;
  for (int g : granted) {
    EXPECT_GE(g, 1);
    sum += g;
  }
  EXPECT_EQ(total, sum);
  // Unbounded would be runs x cores; the budget allows the cores once plus one per other run.
  EXPECT_LE(total, cores() + runs - 1);
  EXPECT_EQ(RunThreads::in_use(), 0);
}

}  // namespace
