// Runs a program as a child process for the end-to-end tests: stdout and stderr captured separately,
// the exit status or the signal that killed it, and a deadline after which the child is killed.
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

extern char** environ;

namespace tunnx::e2e {

struct ProcessResult {
  bool exited = false;    // ended through exit(); `exit_code` is valid
  int exit_code = -1;
  bool signaled = false;  // killed by a signal; `signal` is valid
  int signal = 0;
  bool timed_out = false;  // we killed it at the deadline
  std::string out;         // everything it wrote to stdout
  std::string err;         // everything it wrote to stderr

  // "exit 1", "signal 11 (Segmentation fault)", for assertion messages.
  std::string status() const {
    if (exited) return "exit " + std::to_string(exit_code);
    if (signaled)
      return "signal " + std::to_string(signal) + " (" + strsignal(signal) + ")" +
             (timed_out ? " after the deadline" : "");
    return "unknown status";
  }
  // A readable dump for failure messages.
  std::string describe() const {
    return status() + "\n--- stdout ---\n" + out + "--- stderr ---\n" + err + "--------------";
  }
};

namespace detail {

inline std::runtime_error sys_error(const std::string& what, int err) {
  return std::runtime_error(what + ": " + std::strerror(err));
}

}  // namespace detail

// Runs `argv[0]` (a path, not searched in PATH) with the test's environment, stdin from /dev/null.
// Throws std::runtime_error only when the child could not be started at all.
inline ProcessResult run_process(const std::vector<std::string>& args,
                                 std::chrono::milliseconds deadline = std::chrono::seconds(120)) {
  if (args.empty()) throw std::runtime_error("run_process: no program");
  int out_pipe[2], err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) throw detail::sys_error("pipe2", errno);
  if (::pipe2(err_pipe, O_CLOEXEC) != 0) {
    int e = errno;
    ::close(out_pipe[0]);
    ::close(out_pipe[1]);
    throw detail::sys_error("pipe2", e);
  }

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  // dup2 clears O_CLOEXEC on the target, so only 0, 1 and 2 reach the child.
  posix_spawn_file_actions_adddup2(&actions, out_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&actions, err_pipe[1], 2);

  std::vector<char*> argv;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);

  pid_t pid = -1;
  int rc = ::posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  if (rc != 0) {
    ::close(out_pipe[0]);
    ::close(err_pipe[0]);
    throw detail::sys_error("posix_spawn " + args[0], rc);
  }

  ProcessResult result;
  // Read both pipes until both close, so a child that fills one pipe cannot block on it.
  struct pollfd fds[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
  std::string* sinks[2] = {&result.out, &result.err};
  int open_fds = 2;
  auto end = std::chrono::steady_clock::now() + deadline;
  char buffer[65536];
  while (open_fds > 0) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      result.timed_out = true;
      ::kill(pid, SIGKILL);
      break;
    }
    int ready = ::poll(fds, 2, static_cast<int>(left.count()));
    if (ready < 0) {
      if (errno == EINTR) continue;
      ::kill(pid, SIGKILL);
      break;
    }
    for (int i = 0; i < 2; ++i) {
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      ssize_t n = ::read(fds[i].fd, buffer, sizeof buffer);
      if (n > 0) {
        sinks[i]->append(buffer, static_cast<size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        ::close(fds[i].fd);
        fds[i].fd = -1;  // poll ignores negative descriptors
        --open_fds;
      }
    }
  }
  for (auto& f : fds)
    if (f.fd >= 0) ::close(f.fd);

  int status = 0;
  while (::waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) throw detail::sys_error("waitpid", errno);
  }
  if (WIFEXITED(status)) {
    result.exited = true;
    result.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.signaled = true;
    result.signal = WTERMSIG(status);
  }
  return result;
}

}  // namespace tunnx::e2e
