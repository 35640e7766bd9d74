#include "layerstore/container/process_identity.hpp"

#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "layerstore/archive/unique_fd.hpp"

namespace strata {

namespace {

// The fields of /proc/PID/stat after "(comm)": state is field 3, so field N is at N - 3.
std::optional<std::vector<std::string>> stat_fields(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return std::nullopt;
  auto close = line.rfind(')');  // comm may itself hold spaces and ')'
  if (close == std::string::npos) return std::nullopt;
  std::istringstream ss(line.substr(close + 1));
  std::vector<std::string> f;
  for (std::string x; ss >> x;) f.push_back(x);
  if (f.size() < 20) return std::nullopt;
  return f;
}

bool matches(const ProcessRef& p, bool zombie_counts) {
  if (p.pid <= 0 || p.start_time == 0) return false;
  auto f = stat_fields(p.pid);
  if (!f || std::stoull((*f)[22 - 3]) != p.start_time) return false;
  return zombie_counts || ((*f)[0] != "Z" && (*f)[0] != "X");
}

// Through syscall(): glibc 2.36's <sys/pidfd.h> declares its wrappers without C linkage.
int open_pidfd(pid_t pid) { return static_cast<int>(syscall(SYS_pidfd_open, pid, 0U)); }

}  // namespace

std::optional<std::uint64_t> process_start_time(pid_t pid) {
  auto f = stat_fields(pid);
  if (!f) return std::nullopt;
  return std::stoull((*f)[22 - 3]);
}

bool process_running(const ProcessRef& p) { return matches(p, false); }

bool signal_process(const ProcessRef& p, int sig) {
  if (p.pid <= 0) return false;
  UniqueFd fd(open_pidfd(p.pid));
  if (!fd || !matches(p, true)) return false;
  return syscall(SYS_pidfd_send_signal, fd.get(), sig, nullptr, 0U) == 0;
}

bool wait_process_gone(const ProcessRef& p, std::chrono::milliseconds limit) {
  if (p.pid <= 0) return true;
  UniqueFd fd(open_pidfd(p.pid));
  if (!fd || !matches(p, true)) return true;
  struct pollfd pfd {fd.get(), POLLIN, 0};  // readable once the process has exited
  return poll(&pfd, 1, static_cast<int>(limit.count())) == 1;
}

}  // namespace strata
