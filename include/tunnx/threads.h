// How tunnx's worker threads wait, process-wide.
//
// tunnx's parallel kernels and oneDNN's run on OpenMP (GNU libgomp). Between parallel regions its
// threads spin before they sleep, by default for about 300,000 polls: on a quiet machine that saves
// a wake-up per region, but while another process keeps the cores busy a spinning thread burns the
// time slice the thread it waits for needs: with another 2-thread OpenMP program running, a 2-thread
// ResNet-18 (bench/) took 560 ms a run at libgomp's default, 53 ms at 3,000 polls and 36 ms with no
// spinning (OMP_WAIT_POLICY=passive), against 23 ms on a quiet machine. libgomp reads its policy (OMP_WAIT_POLICY, GOMP_SPINCOUNT) once, when the
// process starts, before main, and offers no call to change it later; so the policy is set in the
// environment of the process, and this call does that for a program that has not.
#pragma once

namespace tunnx {

// The spin count tunnx recommends: short spins, then sleep. On a quiet 2-core machine 3,000 polls
// and more ran the bench/ models as fast as the default; 2,000 and less, or no spinning, cost the
// MLP at batch 1 (tiny parallel regions back to back) 2x and MobileNetV3 up to 40%. 5,000 keeps a
// margin above that edge.
inline constexpr const char* kRecommendedSpinCount = "5000";

// When the environment names no OpenMP wait policy (neither OMP_WAIT_POLICY nor GOMP_SPINCOUNT is
// set), sets GOMP_SPINCOUNT to kRecommendedSpinCount and executes the running program again
// (Linux: /proc/self/exe) with the same arguments, so the policy holds from the start: call it first
// thing in main. Returns normally when a policy is already set (a user's choice wins), when the
// program was already re-executed, or when executing it again is not possible. Costs one more
// program start (about 8 ms with tunnx's libraries), so `tunnx` does it for the commands that compute
// (run, bench, train) and not for the ones that only read a model.
void use_recommended_wait_policy(char** argv);

}  // namespace tunnx
