#include "layerstore/container/container_join.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include "layerstore/container/child_exit.hpp"
#include "layerstore/error.hpp"

namespace strata {

namespace {

// Parent pid (field 4) of /proc/PID/stat; -1 when gone.
pid_t parent_of(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return -1;
  auto close = line.rfind(')');
  if (close == std::string::npos) return -1;
  std::istringstream ss(line.substr(close + 1));
  std::string state;
  pid_t ppid = -1;
  ss >> state >> ppid;
  return ppid;
}

std::vector<pid_t> children_of(pid_t parent) {
  std::vector<pid_t> out;
  DIR* d = opendir("/proc");
  if (!d) return out;
  while (auto* e = readdir(d)) {
    char* end = nullptr;
    long pid = std::strtol(e->d_name, &end, 10);
    if (*end != '\0' || pid <= 0) continue;
    if (parent_of(static_cast<pid_t>(pid)) == parent) out.push_back(static_cast<pid_t>(pid));
  }
  closedir(d);
  return out;
}

UniqueFd open_ns(pid_t pid, const char* ns) {
  std::string p = "/proc/" + std::to_string(pid) + "/ns/" + ns;
  return UniqueFd(open(p.c_str(), O_RDONLY | O_CLOEXEC));
}

bool same_file(int fd, const char* path) {
  struct stat a {}, b {};
  return fstat(fd, &a) == 0 && stat(path, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

// All of one process's namespaces, or nothing (errno set) when one cannot be opened.
std::optional<ContainerNamespaces> open_all(pid_t pid) {
  ContainerNamespaces ns;
  ns.user = open_ns(pid, "user");
  ns.mnt = open_ns(pid, "mnt");
  ns.uts = open_ns(pid, "uts");
  ns.ipc = open_ns(pid, "ipc");
  ns.pid = open_ns(pid, "pid_for_children");
  if (!ns.pid) ns.pid = open_ns(pid, "pid");
  if (!ns.user || !ns.mnt || !ns.uts || !ns.ipc || !ns.pid) return std::nullopt;
  if (same_file(ns.user.get(), "/proc/self/ns/user")) ns.user.reset();  // no user namespace of its own
  return ns;
}

}  // namespace

ProcessRef recorded_container_init(const Container& c) {
  const auto& st = c.cfg.contains("State") ? c.cfg["State"] : nlohmann::json::object();
  ProcessRef p;
  if (st.contains("Pid") && st["Pid"].is_number_integer()) p.pid = st["Pid"].get<pid_t>();
  if (st.contains("PidStartTime") && st["PidStartTime"].is_number_unsigned())
    p.start_time = st["PidStartTime"].get<std::uint64_t>();
  return p;
}

// The init's first child, the container's command (forked before anything in the container
// runs, so an orphan the init adopted later is never taken for it); -1 when there is none.
pid_t container_command_of(pid_t init) {
  pid_t first = -1;
  std::uint64_t first_start = 0;
  for (pid_t child : children_of(init)) {
    auto start = process_start_time(child);
    if (!start) continue;
    if (first < 0 || *start < first_start || (*start == first_start && child < first)) {
      first = child;
      first_start = *start;
    }
  }
  return first;
}

ContainerNamespaces open_container_namespaces(const Container& c) {
  ProcessRef init = recorded_container_init(c);
  if (c.status() != "Up" || !process_running(init)) throw Error("container " + c.name + " is not running");
  auto ns = open_all(init.pid);
  int err = errno;
  // Rootless: the command until its execve is a copy of the init (not dumpable, host memory)
  // and cannot be read either; right after `run -d` or `start` it may not have got there yet.
  // It is waited for, up to 10 s (a command stuck before its exec would hold exec forever).
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!ns && err == EACCES && process_running(init)) {
    pid_t child = container_command_of(init.pid);
    auto start = child > 0 ? process_start_time(child) : std::nullopt;
    if (start) {
      ns = open_all(child);
      err = errno;
      if (ns && process_start_time(child) == start && parent_of(child) == init.pid) break;
      ns.reset();
      if (err != EACCES) break;
    }
    if (std::chrono::steady_clock::now() > deadline) {
      if (!process_running(init)) break;
      throw Error("container " + c.name + ": its command has not started (still not executed after 10 s)");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (!process_running(init)) throw Error("container " + c.name + " is not running");
  if (!ns) throw SysError("open the namespaces of container " + c.name + " (init pid " + std::to_string(init.pid) + ")", err);
  return std::move(*ns);
}

void join_container_namespaces(const ContainerNamespaces& ns, bool pid_ns) {
  if (ns.user) {
    if (setns(ns.user.get(), CLONE_NEWUSER) != 0) die_errno("join the container's user namespace");
    if (setresgid(0, 0, 0) != 0 || setresuid(0, 0, 0) != 0) die_errno("become root in the container's user namespace");
  }
  if (setns(ns.mnt.get(), CLONE_NEWNS) != 0) die_errno("join the container's mount namespace");
  if (setns(ns.uts.get(), CLONE_NEWUTS) != 0) die_errno("join the container's uts namespace");
  if (setns(ns.ipc.get(), CLONE_NEWIPC) != 0) die_errno("join the container's ipc namespace");
  if (pid_ns && setns(ns.pid.get(), CLONE_NEWPID) != 0) die_errno("join the container's pid namespace");
  // setns put our root and cwd at the mount namespace's root, the container's / as its init
  // pivoted to. Not /proc/PID/root: that is where PID chrooted itself (rootless, PID is the
  // command, and `chroot /jail cmd` would have exec and cp work inside /jail).
  if (chdir("/") != 0) die_errno("enter the container's root");
}

}  // namespace strata
