#include "layerstore/container/run.hpp"

#include <fcntl.h>
#include <linux/capability.h>
#include <poll.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <ctime>
#include <fstream>
#include <optional>
#include <sstream>
#include <thread>

#include "layerstore/archive/fs_util.hpp"
#include "layerstore/archive/unique_fd.hpp"
#include "layerstore/container/capabilities.hpp"
#include "layerstore/container/child_exit.hpp"
#include "layerstore/container/command_exec.hpp"
#include "layerstore/container/fuse_mount.hpp"
#include "layerstore/container/process_identity.hpp"
#include "layerstore/container/pty_relay.hpp"
#include "layerstore/container/rootfs_setup.hpp"
#include "layerstore/container/run_user.hpp"
#include "layerstore/container/seccomp_profile.hpp"
#include "layerstore/container/security_options.hpp"
#include "layerstore/container/signal_forwarding.hpp"
#include "layerstore/error.hpp"
#include "layerstore/timestamp.hpp"

namespace strata {

namespace {

// Exit status of a child as a shell reports it.
int wait_status(pid_t pid) {
  int st = 0;
  while (waitpid(pid, &st, 0) < 0) {
    if (errno != EINTR) return 125;
  }
  if (WIFEXITED(st)) return WEXITSTATUS(st);
  if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
  return 125;
}

// Dies with SIGNAL when the parent dies. The parent may already be gone by the time the
// request is made (the child is then adopted elsewhere): checked right after, as runc does.
void die_with_parent(int signal, pid_t parent) {
  if (prctl(PR_SET_PDEATHSIG, signal) != 0) die_errno("PR_SET_PDEATHSIG");
  if (getppid() != parent) _exit(125);
}

// Every fd above stderr closed: nothing the caller had open (a directory of the host, a
// socket) crosses into the container or into strata-fs.
void close_inherited_fds() {
  if (syscall(SYS_close_range, 3U, ~0U, 0U) != 0) die_errno("close_range");
}

// The same, keeping `keep` (moved to fd 3, which is returned): the init's pty socket.
int close_inherited_fds_but(int keep) {
  if (keep < 0) {
    close_inherited_fds();
    return -1;
  }
  if (keep != 3 && dup3(keep, 3, O_CLOEXEC) != 3) die_errno("dup3");
  if (syscall(SYS_close_range, 4U, ~0U, 0U) != 0) die_errno("close_range");
  return 3;
}

// A signal the init passes on to the command: every one a process can catch, except those a
// fault raises (a handler would loop) and SIGCHLD, which the init needs itself. `strata kill -s`
// signals the init; as pid 1 of its namespace it only receives what it has a handler for.
bool init_forwards(int sig) {
  switch (sig) {
    case SIGKILL: case SIGSTOP: case SIGCHLD: case SIGSEGV: case SIGBUS: case SIGFPE: case SIGILL:
    case SIGTRAP: case SIGSYS: case SIGABRT:
      return false;
    default:
      return true;
  }
}

// B, once the command is forked, keeps no more than the container's own confinement: it lives
// in the container's pid namespace, and a container given CAP_SYS_PTRACE (--cap-add SYS_PTRACE,
// a debugger's habit) may ptrace it despite PR_SET_DUMPABLE; with every capability and no
// seccomp filter it would lend the container all of them (load a module, mount the host's disk).
// Docker's pid 1 is the command itself. B keeps CAP_KILL to pass signals on to a non-root command.
void confine_container_init(const Confinement& conf) {
  if (conf.privileged) return;
  CapabilityMask keep = conf.capabilities | (CapabilityMask(1) << CAP_KILL);
  try {
    if (conf.no_new_privileges && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) throw_errno("PR_SET_NO_NEW_PRIVS");
    if (conf.seccomp) load_docker_seccomp_profile(keep);
    drop_bounding_set(keep);
    set_process_capabilities(keep);
  } catch (const Error& e) {
    die(std::string("confine the container's init: ") + e.what());
  }
}

// B: pid 1 of the container's pid namespace. Gets its own mount namespace (so pivot_root
// leaves A's alone), builds the rootfs and waits for the command like an init. When A dies
// (strata run killed), B is killed, and with it, by the kernel, everything in the container.
[[noreturn]] void container_init(const std::string& rootfs, const Container& c, const StoreLayout& l,
                                 const std::vector<Volume>& vols, const Confinement& conf, int setup_alive_rd,
                                 int setup_alive_wr, int tty_sock) {
  // getppid() is 0 in a new pid namespace, so A's liveness is read from a pipe only A
  // still holds open for writing: hung up means A is already gone.
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) die_errno("PR_SET_PDEATHSIG");
  close(setup_alive_wr);
  struct pollfd alive {setup_alive_rd, POLLIN, 0};
  if (poll(&alive, 1, 0) != 0) _exit(125);
  tty_sock = close_inherited_fds_but(tty_sock);
  // Nothing in the container may ptrace or read this process (it keeps every capability).
  prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
  if (unshare(CLONE_NEWNS) != 0) die_errno("unshare mount namespace");
  std::string hn = c.cfg["Config"].value("Hostname", std::string());
  if (sethostname(hn.data(), hn.size()) != 0) die_errno("sethostname");
  setup_rootfs(rootfs, c, l, vols, conf);
  int tty_slave = -1;
  if (tty_sock >= 0) {
    tty_slave = open_container_pty(tty_sock);
    if (tty_slave < 0) die_errno("open a pty in the container");
    close(tty_sock);
  }
  pid_t cmd = fork();
  if (cmd < 0) die_errno("fork");
  if (cmd == 0) {
    if (tty_slave >= 0 && !make_controlling_tty(tty_slave)) die_errno("make the pty the controlling terminal");
    exec_container_command(container_command(c.cfg), conf);
  }
  if (tty_slave >= 0) close(tty_slave);  // the pty ends when the container's processes close it
  confine_container_init(conf);
  forward_signals_to(cmd);
  for (int s = 1; s < 32; ++s)
    if (init_forwards(s)) forward_also(s);
  block_forwarded_signals(false);
  for (;;) {  // reap orphans too; stop when the command exits
    int st = 0;
    pid_t p = waitpid(-1, &st, 0);
    if (p < 0) {
      if (errno == EINTR) continue;
      _exit(125);
    }
    if (p == cmd) _exit(WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
  }
}

// A: owns the user and mount namespaces, runs strata-fs there, then the container init; reports
// the init's pid and start time to strata run on `report_wr`. A has a session of its own: a
// signal for strata run's process group (a terminal's ^C, `timeout`, systemd's stop) reaches
// strata run alone, which forwards it once, down A and B, to the command.
[[noreturn]] void container_setup(const StoreLayout& l, const Container& c, const OverlayMountSpec& spec,
                                  const std::string& strata_fs, const std::vector<Volume>& vols,
                                  const Confinement& conf, pid_t monitor, int sync_rd, int sync_wr, int report_wr,
                                  bool userns, int tty_sock, bool keep_stdin) {
  die_with_parent(SIGKILL, monitor);
  if (setsid() < 0) die_errno("setsid");
  if (!keep_stdin) {
    int null = open("/dev/null", O_RDONLY);
    if (null < 0 || dup2(null, 0) != 0) die_errno("open /dev/null");
    close(null);
  }
  if (userns) {
    if (unshare(CLONE_NEWUSER) != 0) die_errno("unshare user namespace (are user namespaces enabled?)");
    char b = 1;
    if (write(sync_wr, &b, 1) != 1 || read(sync_rd, &b, 1) != 1 || b != 1) _exit(125);
    if (setresgid(0, 0, 0) != 0 || setresuid(0, 0, 0) != 0) die_errno("become root in the user namespace");
    // The kernel clears the parent-death signal on every credential change: ask again.
    die_with_parent(SIGKILL, monitor);
  }
  close(sync_rd);
  close(sync_wr);
  pid_t setup = getpid();
  if (unshare(CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC) != 0) die_errno("unshare namespaces");
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) die_errno("make / private");
  pid_t fs = fork();
  if (fs < 0) die_errno("fork");
  if (fs == 0) {
    // strata-fs unmounts on SIGTERM when A goes; in a session of its own no group signal
    // meant for the command takes the container's root away first.
    die_with_parent(SIGTERM, setup);
    if (setsid() < 0) die_errno("setsid");
    int null = open("/dev/null", O_RDWR);
    dup2(null, 0);
    dup2(null, 1);
    close_inherited_fds();
    block_forwarded_signals(false);  // strata-fs must see its SIGTERM
    if (chdir(l.overlay2().c_str()) != 0) _exit(125);
    auto argv = strata_fs_argv(strata_fs, spec);
    std::vector<char*> a;
    for (auto& s : argv) a.push_back(s.data());
    a.push_back(nullptr);
    execv(a[0], a.data());
    _exit(127);
  }
  // Wait for the mount to appear (or strata-fs to give up).
  for (;;) {
    int st;
    if (waitpid(fs, &st, WNOHANG) == fs) die("strata-fs could not mount the container's rootfs");
    if (mount_state(spec.target) == MountState::Mounted) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (unshare(CLONE_NEWPID) != 0) die_errno("unshare pid namespace");
  int alive[2];
  if (pipe2(alive, O_CLOEXEC) != 0) die_errno("pipe");
  pid_t init = fork();
  if (init < 0) die_errno("fork");
  if (init == 0) {
    close(report_wr);
    container_init(spec.target, c, l, vols, conf, alive[0], alive[1], tty_sock);
  }
  close(alive[0]);  // alive[1] stays open until A exits
  if (tty_sock >= 0) close(tty_sock);  // B alone holds it: the monitor sees B's death as EOF
  forward_signals_to(init);
  block_forwarded_signals(false);
  // B cannot be reaped before A waits, so its start time is there to read.
  ProcessRef ref{init, process_start_time(init).value_or(0)};
  (void)!write(report_wr, &ref, sizeof ref);
  close(report_wr);
  int status = wait_status(init);
  forward_signals_to(0);
  kill(fs, SIGTERM);  // strata-fs unmounts and exits
  int st;
  while (waitpid(fs, &st, 0) < 0 && errno == EINTR) {
  }
  if (mount_state(spec.target) != MountState::NotMounted) umount2(spec.target.c_str(), MNT_DETACH);
  _exit(status);
}

}  // namespace

int run_container(const StoreLayout& l, Container& c, const NoteFn& note, const RunOptions& opt) {
  bool userns = geteuid() != 0;
  Confinement conf = confinement_of(c.cfg);
  std::string strata_fs = find_strata_fs();
  std::vector<Volume> vols = parse_volumes(c.cfg.value("Volumes", nlohmann::json::array()));
  if (c.status() == "Up") throw Error("container " + c.name + " is already running");
  std::string target = c.merged(l);
  mkdirs(target, 0755);
  switch (mount_state(target)) {
    case MountState::Mounted:
      throw Error("container " + c.name + " is mounted at " + target + " (strata container umount it first)");
    case MountState::Stale:
      note("stale mount at " + target + " (strata-fs is gone); detaching it");
      unmount_path(target, true);
      break;
    case MountState::NotMounted:
      break;
  }
  OverlayMountSpec spec;
  spec.lowers = container_lowers(l, c);
  spec.upper = c.rw_dir(l) + "/diff";
  spec.work = c.rw_dir(l) + "/work";
  spec.target = target;
  spec.rootless = userns;
  spec.allow_other = true;  // the command may run as another user
  // As podman with fuse-overlayfs: su, sudo, passwd, ping elevate (in a user namespace, to
  // the container's root).
  spec.suid = true;
  spec.foreground = true;

  int to_child[2], to_parent[2], report[2];
  if (pipe2(to_child, O_CLOEXEC) != 0 || pipe2(to_parent, O_CLOEXEC) != 0 || pipe2(report, O_CLOEXEC) != 0)
    throw_errno("pipe");
  int tty[2] = {-1, -1};
  if (opt.tty && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, tty) != 0) throw_errno("socketpair");
  pid_t monitor = getpid();
  // Signals that arrive before the forwarding is in place must not kill us half-way.
  block_forwarded_signals(true);
  pid_t a = fork();
  if (a < 0) throw_errno("fork");
  if (a == 0) {
    close(to_child[1]);
    close(to_parent[0]);
    close(report[0]);
    if (tty[0] >= 0) close(tty[0]);
    container_setup(l, c, spec, strata_fs, vols, conf, monitor, to_child[0], to_parent[1], report[1], userns, tty[1],
                    opt.keep_stdin);
  }
  close(to_child[0]);
  close(to_parent[1]);
  close(report[1]);
  UniqueFd tty_sock(tty[0]);
  if (tty[1] >= 0) close(tty[1]);
  forward_signals_to(a);
  block_forwarded_signals(false);
  if (userns) {
    char b = 0;
    if (read(to_parent[0], &b, 1) == 1) {
      try {
        map_user_namespace(a);
        b = 1;
      } catch (const Error& e) {
        note(std::string("cannot map the user namespace: ") + e.what());
        b = 0;
      }
      (void)!write(to_child[1], &b, 1);
    }
  }
  close(to_child[1]);
  close(to_parent[0]);
  // The container runs as long as its init (B): record B, with its start time so a pid the
  // kernel reuses later is never taken for it. Nothing arrives when setup failed before B.
  ProcessRef init;
  ssize_t got;
  while ((got = read(report[0], &init, sizeof init)) < 0 && errno == EINTR) {
  }
  close(report[0]);
  // -t: the init opens the pty after building the rootfs and waits for the window size.
  std::optional<RawTerminal> raw;
  std::optional<PtyRelay> relay;
  if (got == static_cast<ssize_t>(sizeof init) && tty_sock) {
    UniqueFd master = receive_pty_master(tty_sock.get());
    if (master) {
      copy_window_size(master.get());
      if (opt.keep_stdin) raw.emplace();
      (void)!send(tty_sock.get(), "g", 1, MSG_NOSIGNAL);  // an init gone already: EPIPE, not our death
      relay.emplace(std::move(master), opt.keep_stdin);
    }
  }
  tty_sock.reset();
  if (got == static_cast<ssize_t>(sizeof init)) {
    // The monitor (this process) is recorded too: whoever stops or removes the container
    // waits for it to record the exit and for strata-fs to be gone.
    c.cfg["State"] = {{"Running", true},
                      {"Pid", init.pid},
                      {"PidStartTime", init.start_time},
                      {"MonitorPid", getpid()},
                      {"MonitorStartTime", process_start_time(getpid()).value_or(0)},
                      {"ExitCode", 0},
                      {"StartedAt", rfc3339_now()},
                      {"FinishedAt", ""}};
    save_container(l, c);
    if (opt.on_started) opt.on_started();
  }
  int status = wait_status(a);
  forward_signals_to(0);
  if (relay) relay->join();  // the rest of the pty's output
  raw.reset();
  if (opt.on_exited) opt.on_exited();
  if (!c.cfg["State"].value("Running", false)) c.cfg["State"]["StartedAt"] = rfc3339_now();
  c.cfg["State"]["Running"] = false;
  c.cfg["State"]["Pid"] = 0;
  c.cfg["State"]["PidStartTime"] = 0;
  c.cfg["State"]["MonitorPid"] = 0;
  c.cfg["State"]["MonitorStartTime"] = 0;
  c.cfg["State"]["ExitCode"] = status;
  c.cfg["State"]["FinishedAt"] = rfc3339_now();
  try {
    save_container(l, c);
  } catch (const Error&) {
    if (path_exists(c.dir(l))) throw;  // else `rm -f` killed and removed it meanwhile
  }
  return status;
}

}  // namespace strata
