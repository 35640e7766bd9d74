#pragma once
// A process named by its pid AND its start time (field 22 of /proc/PID/stat, clock ticks
// after boot), so a pid the kernel has since given to another process is never mistaken for
// the container's and never signalled.
#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <optional>

namespace strata {

struct ProcessRef {
  pid_t pid = 0;
  std::uint64_t start_time = 0;
};

// The start time of `pid`, or nothing when there is no such process.
std::optional<std::uint64_t> process_start_time(pid_t pid);

// The process still runs (a zombie does not count).
bool process_running(const ProcessRef& p);

// Sends `sig` through a pidfd opened before the start time is checked, so the signal cannot
// reach a process that took the pid in between. False when the process is gone or another.
bool signal_process(const ProcessRef& p, int sig);

// Waits until the process has exited (or `limit` passed); true when it is gone.
bool wait_process_gone(const ProcessRef& p, std::chrono::milliseconds limit);

}  // namespace strata
