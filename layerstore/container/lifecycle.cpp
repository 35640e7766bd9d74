#include "layerstore/container/lifecycle.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <thread>

#include "layerstore/archive/fs_util.hpp"
#include "layerstore/archive/unique_fd.hpp"
#include "layerstore/container/container_log.hpp"
#include "layerstore/error.hpp"

namespace strata {

using nlohmann::json;

namespace {

ProcessRef ref_from(const Container& c, const char* pid_key, const char* start_key) {
  const json& st = c.cfg.contains("State") ? c.cfg["State"] : json::object();
  ProcessRef p;
  if (st.contains(pid_key) && st[pid_key].is_number_integer()) p.pid = st[pid_key].get<pid_t>();
  if (st.contains(start_key) && st[start_key].is_number_unsigned()) p.start_time = st[start_key].get<std::uint64_t>();
  return p;
}

void require_running(const Container& c) {
  if (c.status() != "Up") throw Error("container " + c.name + " is not running");
}

// Moves `fd` to at least 1000, so fds 3, 4 can be given out without clobbering it.
int move_high(int fd) {
  int high = fcntl(fd, F_DUPFD_CLOEXEC, 1000);
  if (high < 0) _exit(125);
  close(fd);
  return high;
}

void note_stderr(const std::string& s) { std::fprintf(stderr, "strata: %s\n", s.c_str()); }

// The detached monitor: a session of its own, stdout/stderr into a logger process, then the
// same run machinery as `strata run`. fd 3 is the log, fd 4 tells the caller the init runs.
[[noreturn]] void monitor_main(const StoreLayout& l, const Container& c, bool tty, bool remove, int log_fd,
                               int ready_wr) {
  if (setsid() < 0) _exit(125);
  log_fd = move_high(log_fd);
  ready_wr = move_high(ready_wr);
  if (dup3(log_fd, 3, O_CLOEXEC) != 3 || dup3(ready_wr, 4, O_CLOEXEC) != 4) _exit(125);
  // Nothing else of the caller's (the store lock, a terminal, sockets) stays open here.
  if (syscall(SYS_close_range, 5U, ~0U, 0U) != 0) _exit(125);
  int out[2], err[2];
  if (pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0) _exit(125);
  int null = open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null < 0) _exit(125);
  pid_t logger = fork();
  if (logger < 0) _exit(125);
  if (logger == 0) {
    close(out[1]);
    close(err[1]);
    close(4);
    for (int fd = 0; fd < 3; ++fd) dup2(null, fd);
    copy_to_json_log(out[0], err[0], 3);
    _exit(0);
  }
  close(out[0]);
  close(err[0]);
  close(3);
  if (dup2(null, 0) != 0 || dup2(out[1], 1) != 1 || dup2(err[1], 2) != 2) _exit(125);
  close(out[1]);
  close(err[1]);
  close(null);
  bool log_open = true;
  // Once the container is gone: our own ends of the pipes close, the logger writes the rest
  // and exits, and only then is the exit recorded (so `wait` then `logs` shows everything).
  auto finish_log = [&] {
    if (!log_open) return;
    log_open = false;
    std::fflush(stdout);
    std::fflush(stderr);
    dup2(0, 1);  // stdin is /dev/null
    dup2(0, 2);
    int st;
    while (waitpid(logger, &st, 0) < 0 && errno == EINTR) {
    }
  };
  RunOptions opt;
  opt.tty = tty;
  opt.on_started = [] {
    (void)!write(4, "r", 1);
    close(4);
  };
  opt.on_exited = finish_log;
  int code = 125;
  try {
    Container mine = c;
    code = run_container(l, mine, note_stderr, opt);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "strata: start %s: %s\n", c.name.c_str(), e.what());
  }
  finish_log();
  if (remove) {
    try {
      remove_container(l, reload_container(l, c), true);
    } catch (const std::exception&) {
      // removed by someone else meanwhile
    }
  }
  _exit(code);
}

// The last line the monitor wrote to stderr in the log since `from`, for the caller's error.
std::string last_error_in_log(const std::string& path, off_t from) {
  std::string text;
  try {
    text = read_file(path);
  } catch (const Error&) {
    return "";
  }
  if (from > 0 && static_cast<std::size_t>(from) <= text.size()) text.erase(0, static_cast<std::size_t>(from));
  std::string last;
  std::size_t start = 0, nl;
  while ((nl = text.find('\n', start)) != std::string::npos) {
    auto j = json::parse(text.substr(start, nl - start), nullptr, false);
    start = nl + 1;
    if (j.is_object() && j.value("stream", std::string()) == "stderr") last = j.value("log", std::string());
  }
  while (!last.empty() && last.back() == '\n') last.pop_back();
  for (const char* prefix : {"strata: run: ", "strata: "})
    if (last.rfind(prefix, 0) == 0) {
      last.erase(0, std::strlen(prefix));
      break;
    }
  return last;
}

}  // namespace

ProcessRef recorded_init_of(const Container& c) { return ref_from(c, "Pid", "PidStartTime"); }
ProcessRef recorded_monitor_of(const Container& c) { return ref_from(c, "MonitorPid", "MonitorStartTime"); }
bool state_running(const Container& c) { return c.cfg.contains("State") && c.cfg["State"].value("Running", false); }

Container reload_container(const StoreLayout& l, const Container& c) { return find_container(l, c.id); }

Container wait_exit_recorded(const StoreLayout& l, const Container& c) {
  Container now = c;
  for (int i = 0; i < 3000; ++i) {  // a minute: a monitor stuck past that is left alone
    try {
      now = reload_container(l, c);
    } catch (const Error&) {
      return now;  // removed meanwhile (run --rm)
    }
    if (!state_running(now) || !process_running(recorded_monitor_of(now))) return now;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return now;
}

void start_detached(const StoreLayout& l, const Container& c0, bool tty, bool remove) {
  Container c = reload_container(l, c0);
  if (c.status() == "Up") throw Error("container " + c.name + " is already running");
  if (state_running(c)) c = wait_exit_recorded(l, c);  // its monitor is still recording the last exit
  std::string log = container_log_path(l, c);
  UniqueFd log_fd(open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640));
  if (!log_fd) throw_errno("open " + log);
  off_t log_start = lseek(log_fd.get(), 0, SEEK_END);
  int ready[2];
  if (pipe2(ready, O_CLOEXEC) != 0) throw_errno("pipe");
  UniqueFd ready_rd(ready[0]), ready_wr(ready[1]);
  std::fflush(stdout);
  std::fflush(stderr);
  pid_t monitor = fork();
  if (monitor < 0) throw_errno("fork");
  if (monitor == 0) {
    ready_rd.reset();
    monitor_main(l, c, tty, remove, log_fd.release(), ready_wr.release());
  }
  ready_wr.reset();
  log_fd.reset();
  char b;
  ssize_t n;
  while ((n = read(ready_rd.get(), &b, 1)) < 0 && errno == EINTR) {
  }
  if (n == 1) return;  // the monitor runs on; when we exit, init adopts it
  int st = 0;
  while (waitpid(monitor, &st, 0) < 0 && errno == EINTR) {
  }
  std::string why = last_error_in_log(log, log_start);
  throw Error("the container did not start" + (why.empty() ? std::string() : ": " + why));
}

void stop_container(const StoreLayout& l, const Container& c0, std::chrono::seconds timeout) {
  Container c = reload_container(l, c0);
  require_running(c);
  ProcessRef init = recorded_init_of(c);
  signal_process(init, SIGTERM);
  if (!wait_process_gone(init, timeout)) {
    signal_process(init, SIGKILL);
    wait_process_gone(init, std::chrono::seconds(60));
  }
  wait_exit_recorded(l, c);
}

void kill_container(const Container& c, int sig) {
  require_running(c);
  if (!signal_process(recorded_init_of(c), sig)) throw Error("container " + c.name + " is not running");
}

int wait_container(const StoreLayout& l, const Container& c0) {
  Container c = reload_container(l, c0);
  std::string status = c.status();
  if (status == "Created") throw Error("container " + c.name + " has not been started");
  if (status == "Up" || state_running(c)) {  // also an init just gone whose monitor is still recording
    ProcessRef init = recorded_init_of(c);
    while (!wait_process_gone(init, std::chrono::hours(24))) {
    }
    c = wait_exit_recorded(l, c);
  }
  if (state_running(c)) throw Error("container " + c.name + " exited but its exit code is unknown (its monitor was killed)");
  return c.cfg["State"].value("ExitCode", 0);
}

int parse_signal(const std::string& s) {
  if (!s.empty() && s.find_first_not_of("0123456789") == std::string::npos) {
    int n = std::stoi(s.substr(0, 3));
    if (n >= 1 && n <= 64 && s.size() <= 2) return n;
    throw Error("invalid signal \"" + s + "\"");
  }
  std::string name = s;
  for (auto& ch : name) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  if (name.rfind("SIG", 0) == 0) name.erase(0, 3);
  for (int n = 1; n < 32; ++n) {
    const char* abbrev = sigabbrev_np(n);
    if (abbrev && name == abbrev) return n;
  }
  throw Error("invalid signal \"" + s + "\"");
}

}  // namespace strata
