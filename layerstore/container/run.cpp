#include "layerstore/container/run.hpp"

#include <fcntl.h>
#include <grp.h>
#include <linux/openat2.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <ctime>
#include <fstream>
#include <sstream>
#include <thread>

#include "layerstore/archive/fs_util.hpp"
#include "layerstore/archive/unique_fd.hpp"
#include "layerstore/container/fuse_mount.hpp"
#include "layerstore/container/run_user.hpp"
#include "layerstore/error.hpp"

namespace strata {

namespace {

volatile sig_atomic_t g_forward_pid = 0;

void forward_signal(int sig) {
  if (g_forward_pid > 0) kill(g_forward_pid, sig);
}

void install_forwarding(pid_t pid) {
  g_forward_pid = pid;
  struct sigaction sa {};
  sa.sa_handler = forward_signal;
  sigemptyset(&sa.sa_mask);
  for (int s : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2}) sigaction(s, &sa, nullptr);
}

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

[[noreturn]] void die(const std::string& what) {
  std::string msg = "strata: run: " + what + "\n";
  (void)!write(2, msg.data(), msg.size());
  _exit(125);
}

[[noreturn]] void die_errno(const std::string& what) { die(what + ": " + strerror(errno)); }

std::string now_rfc3339() {
  std::time_t t = std::time(nullptr);
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

void write_proc(pid_t pid, const char* file, const std::string& text) {
  std::string p = "/proc/" + std::to_string(pid) + "/" + file;
  int fd = open(p.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) throw_errno("open " + p);
  ssize_t n = write(fd, text.data(), text.size());
  int err = errno;
  close(fd);
  if (n != static_cast<ssize_t>(text.size())) throw SysError("write " + p + " \"" + text + "\"", err);
}

void run_helper(const std::vector<std::string>& argv) {
  pid_t pid = fork();
  if (pid < 0) throw_errno("fork");
  if (pid == 0) {
    std::vector<char*> a;
    for (const auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
    a.push_back(nullptr);
    execvp(a[0], a.data());
    _exit(127);
  }
  if (wait_status(pid) != 0) throw Error(argv[0] + " failed");
}

// Maps the child's new user namespace: newuidmap/newgidmap with the caller's subordinate
// ranges when it has them, else the caller alone as root.
std::string write_id_maps(pid_t pid) {
  uid_t uid = getuid();
  gid_t gid = getgid();
  auto sub_uid = subordinate_range("/etc/subuid", uid);
  auto sub_gid = subordinate_range("/etc/subgid", uid);
  if (sub_uid && sub_gid && access("/usr/bin/newuidmap", X_OK) == 0 && access("/usr/bin/newgidmap", X_OK) == 0) {
    try {
      std::string p = std::to_string(pid);
      run_helper({"newuidmap", p, "0", std::to_string(uid), "1", "1", std::to_string(sub_uid->first),
                  std::to_string(sub_uid->second)});
      run_helper({"newgidmap", p, "0", std::to_string(gid), "1", "1", std::to_string(sub_gid->first),
                  std::to_string(sub_gid->second)});
      return "newuidmap";
    } catch (const Error&) {
      // fall through to the single mapping (it may already be partly written: then it fails below)
    }
  }
  write_proc(pid, "uid_map", "0 " + std::to_string(uid) + " 1\n");
  write_proc(pid, "setgroups", "deny");
  write_proc(pid, "gid_map", "0 " + std::to_string(gid) + " 1\n");
  return "single";
}

// Opens `path` inside `root` (symlinks resolved as if root were /), creating it as a dir
// or empty file when missing, for use as a mount target via /proc/self/fd.
UniqueFd target_in_root(int root, const std::string& path, bool dir) {
  std::string rel;
  std::stringstream ss(path);
  for (std::string part; std::getline(ss, part, '/');) {
    if (part.empty() || part == ".") continue;
    std::string next = rel.empty() ? part : rel + "/" + part;
    struct open_how how {};
    how.flags = O_PATH | O_CLOEXEC;
    how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
    int fd = syscall(SYS_openat2, root, next.c_str(), &how, sizeof how);
    if (fd < 0 && errno == ENOENT) {
      how.flags = O_PATH | O_DIRECTORY | O_CLOEXEC;
      int pfd = rel.empty() ? dup(root) : syscall(SYS_openat2, root, rel.c_str(), &how, sizeof how);
      if (pfd < 0) die_errno("open /" + rel + " in the container");
      bool last = ss.eof() || ss.peek() == EOF;
      std::string pp = "/proc/self/fd/" + std::to_string(pfd);
      int r;
      if (!last || dir) {
        r = mkdirat(pfd, part.c_str(), 0755);
      } else {
        int f = openat(pfd, part.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        r = f < 0 ? -1 : close(f);
      }
      if (r != 0 && errno != EEXIST) die_errno("create /" + next + " in the container");
      close(pfd);
      how.flags = O_PATH | O_CLOEXEC;
      fd = syscall(SYS_openat2, root, next.c_str(), &how, sizeof how);
    }
    if (fd < 0) die_errno("open /" + next + " in the container");
    close(fd);
    rel = next;
  }
  struct open_how how {};
  how.flags = O_PATH | O_CLOEXEC;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  int fd = syscall(SYS_openat2, root, rel.empty() ? "." : rel.c_str(), &how, sizeof how);
  if (fd < 0) die_errno("open /" + rel + " in the container");
  return UniqueFd(fd);
}

std::string fd_path(const UniqueFd& fd) { return "/proc/self/fd/" + std::to_string(fd.get()); }

void bind_into(int root, const std::string& source, const std::string& target, bool dir, bool ro) {
  UniqueFd t = target_in_root(root, target, dir);
  if (mount(source.c_str(), fd_path(t).c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0)
    die_errno("bind " + source + " on " + target);
  if (!ro) return;
  // A read-only remount must keep the flags the kernel locked on the source.
  struct statvfs sv {};
  statvfs(source.c_str(), &sv);
  unsigned long flags = MS_REMOUNT | MS_BIND | MS_RDONLY;
  if (sv.f_flag & ST_NOSUID) flags |= MS_NOSUID;
  if (sv.f_flag & ST_NODEV) flags |= MS_NODEV;
  if (sv.f_flag & ST_NOEXEC) flags |= MS_NOEXEC;
  if (sv.f_flag & ST_NOATIME) flags |= MS_NOATIME;
  if (sv.f_flag & ST_NODIRATIME) flags |= MS_NODIRATIME;
  if (sv.f_flag & ST_RELATIME) flags |= MS_RELATIME;
  UniqueFd again = target_in_root(root, target, dir);
  if (mount(nullptr, fd_path(again).c_str(), nullptr, flags, nullptr) != 0) die_errno("remount " + target + " read-only");
}

struct Volume {
  std::string host, ctr;
  bool ro = false;
};

std::vector<Volume> parse_volumes(const nlohmann::json& v) {
  std::vector<Volume> out;
  if (!v.is_array()) return out;
  for (const auto& x : v) {
    std::string s = x.get<std::string>();
    Volume vol;
    auto a = s.find(':');
    if (a == std::string::npos) throw Error("invalid volume \"" + s + "\" (want HOST:CTR[:ro])");
    vol.host = s.substr(0, a);
    std::string rest = s.substr(a + 1);
    auto b = rest.find(':');
    vol.ctr = rest.substr(0, b);
    if (b != std::string::npos) {
      std::string mode = rest.substr(b + 1);
      if (mode == "ro") vol.ro = true;
      else if (mode != "rw") throw Error("invalid volume mode \"" + mode + "\" in \"" + s + "\" (ro or rw)");
    }
    if (vol.host.empty() || vol.host[0] != '/' || vol.ctr.empty() || vol.ctr[0] != '/')
      throw Error("invalid volume \"" + s + "\": both paths must be absolute");
    if (!path_exists(vol.host)) throw Error("volume source " + vol.host + " does not exist");
    out.push_back(vol);
  }
  return out;
}

// The mount namespace of the container (inside B, before pivot_root).
void setup_rootfs(const std::string& rootfs, const Container& c, const StoreLayout& l, const std::vector<Volume>& vols) {
  UniqueFd root(open(rootfs.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root) die_errno("open " + rootfs);
  {
    UniqueFd proc = target_in_root(root.get(), "/proc", true);
    if (mount("proc", fd_path(proc).c_str(), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0)
      die_errno("mount /proc");
  }
  {
    UniqueFd dev = target_in_root(root.get(), "/dev", true);
    if (mount("tmpfs", fd_path(dev).c_str(), "tmpfs", MS_NOSUID | MS_STRICTATIME, "mode=755,size=65536k") != 0)
      die_errno("mount /dev");
  }
  for (const char* d : {"null", "zero", "full", "random", "urandom", "tty"})
    bind_into(root.get(), std::string("/dev/") + d, std::string("/dev/") + d, false, false);
  {
    UniqueFd pts = target_in_root(root.get(), "/dev/pts", true);
    if (mount("devpts", fd_path(pts).c_str(), "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620") != 0)
      die_errno("mount /dev/pts");
    UniqueFd shm = target_in_root(root.get(), "/dev/shm", true);
    if (mount("shm", fd_path(shm).c_str(), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "mode=1777,size=65536k") != 0)
      die_errno("mount /dev/shm");
    UniqueFd devdir = target_in_root(root.get(), "/dev", true);
    UniqueFd dfd(openat(devdir.get(), ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
    symlinkat("pts/ptmx", dfd.get(), "ptmx");
    symlinkat("/proc/self/fd", dfd.get(), "fd");
    symlinkat("/proc/self/fd/0", dfd.get(), "stdin");
    symlinkat("/proc/self/fd/1", dfd.get(), "stdout");
    symlinkat("/proc/self/fd/2", dfd.get(), "stderr");
  }
  {
    UniqueFd sys = target_in_root(root.get(), "/sys", true);
    // A fresh sysfs needs a network namespace of our own; without one, no /sys (best effort).
    mount("sysfs", fd_path(sys).c_str(), "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr);
  }
  for (const char* f : {"hostname", "hosts", "resolv.conf"})
    bind_into(root.get(), c.dir(l) + "/" + f, std::string("/etc/") + f, false, false);
  for (const auto& v : vols) {
    struct stat st;
    if (stat(v.host.c_str(), &st) != 0) die_errno("volume " + v.host);
    bind_into(root.get(), v.host, v.ctr, S_ISDIR(st.st_mode), v.ro);
  }
  if (chdir(rootfs.c_str()) != 0) die_errno("chdir " + rootfs);
  if (syscall(SYS_pivot_root, ".", ".") != 0) die_errno("pivot_root");
  if (umount2(".", MNT_DETACH) != 0) die_errno("detach the old root");
  if (chdir("/") != 0) die_errno("chdir /");
}

std::string env_get(const std::vector<std::string>& env, const std::string& key) {
  for (const auto& e : env)
    if (e.compare(0, key.size() + 1, key + "=") == 0) return e.substr(key.size() + 1);
  return "";
}

// C: becomes the user, enters the working dir, execs the command.
[[noreturn]] void exec_command(const Container& c) {
  const auto& cfg = c.cfg["Config"];
  std::vector<std::string> env;
  for (const auto& e : cfg.value("Env", nlohmann::json::array())) env.push_back(e.get<std::string>());
  if (env_get(env, "PATH").empty()) env.push_back("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  env.push_back("HOSTNAME=" + cfg.value("Hostname", std::string()));
  ExecUser u;
  try {
    u = resolve_exec_user(cfg.value("User", std::string()), "/etc/passwd", "/etc/group");
  } catch (const Error& e) {
    die(e.what());
  }
  if (env_get(env, "HOME").empty()) env.push_back("HOME=" + u.home);
  std::string wd = cfg.value("WorkingDir", std::string());
  if (wd.empty()) wd = "/";
  if (mkdir(wd.c_str(), 0755) != 0 && errno != EEXIST) die_errno("create working dir " + wd);
  if (setgroups(u.groups.size(), u.groups.data()) != 0 && !(errno == EPERM && u.groups.empty())) {
    if (errno != EPERM) die_errno("setgroups");
  }
  if (setresgid(u.gid, u.gid, u.gid) != 0) die_errno("set gid " + std::to_string(u.gid) + " (not mapped in this user namespace?)");
  if (setresuid(u.uid, u.uid, u.uid) != 0) die_errno("set uid " + std::to_string(u.uid) + " (not mapped in this user namespace?)");
  if (chdir(wd.c_str()) != 0) die_errno("chdir " + wd);
  std::vector<std::string> argv{c.cfg.value("Path", std::string())};
  for (const auto& a : c.cfg.value("Args", nlohmann::json::array())) argv.push_back(a.get<std::string>());
  std::vector<char*> av, ev;
  for (auto& s : argv) av.push_back(s.data());
  av.push_back(nullptr);
  for (auto& s : env) ev.push_back(s.data());
  ev.push_back(nullptr);
  for (int s : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGPIPE}) signal(s, SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  std::string prog = argv[0];
  std::vector<std::string> candidates;
  if (prog.find('/') != std::string::npos) {
    candidates.push_back(prog);
  } else {
    std::stringstream ss(env_get(env, "PATH"));
    for (std::string d; std::getline(ss, d, ':');) candidates.push_back((d.empty() ? "." : d) + "/" + prog);
  }
  int err = ENOENT;
  for (const auto& p : candidates) {
    execve(p.c_str(), av.data(), ev.data());
    if (errno != ENOENT) err = errno;
  }
  std::string msg = "strata: run: exec " + prog + ": " + strerror(err) + "\n";
  (void)!write(2, msg.data(), msg.size());
  _exit(err == ENOENT ? 127 : 126);
}

// B: pid 1 of the container's pid namespace. Gets its own mount namespace (so pivot_root
// leaves A's alone), builds the rootfs and waits for the command like an init.
[[noreturn]] void container_init(const std::string& rootfs, const Container& c, const StoreLayout& l,
                                 const std::vector<Volume>& vols) {
  if (unshare(CLONE_NEWNS) != 0) die_errno("unshare mount namespace");
  std::string hn = c.cfg["Config"].value("Hostname", std::string());
  if (sethostname(hn.data(), hn.size()) != 0) die_errno("sethostname");
  setup_rootfs(rootfs, c, l, vols);
  pid_t cmd = fork();
  if (cmd < 0) die_errno("fork");
  if (cmd == 0) exec_command(c);
  install_forwarding(cmd);
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

// A: owns the user and mount namespaces, runs strata-fs there, then the container init.
[[noreturn]] void container_setup(const StoreLayout& l, const Container& c, const OverlayMountSpec& spec,
                                  const std::string& strata_fs, const std::vector<Volume>& vols, int sync_rd,
                                  int sync_wr, bool userns) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (userns) {
    if (unshare(CLONE_NEWUSER) != 0) die_errno("unshare user namespace (are user namespaces enabled?)");
    char b = 1;
    if (write(sync_wr, &b, 1) != 1 || read(sync_rd, &b, 1) != 1 || b != 1) _exit(125);
    if (setresgid(0, 0, 0) != 0 || setresuid(0, 0, 0) != 0) die_errno("become root in the user namespace");
  }
  close(sync_rd);
  close(sync_wr);
  if (unshare(CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC) != 0) die_errno("unshare namespaces");
  if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) die_errno("make / private");
  pid_t fs = fork();
  if (fs < 0) die_errno("fork");
  if (fs == 0) {
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    int null = open("/dev/null", O_RDWR);
    dup2(null, 0);
    dup2(null, 1);
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
  pid_t init = fork();
  if (init < 0) die_errno("fork");
  if (init == 0) container_init(spec.target, c, l, vols);
  install_forwarding(init);
  int status = wait_status(init);
  g_forward_pid = 0;
  kill(fs, SIGTERM);  // strata-fs unmounts and exits
  int st;
  while (waitpid(fs, &st, 0) < 0 && errno == EINTR) {
  }
  if (mount_state(spec.target) != MountState::NotMounted) umount2(spec.target.c_str(), MNT_DETACH);
  _exit(status);
}

}  // namespace

int run_container(const StoreLayout& l, Container& c, const NoteFn& note) {
  bool userns = geteuid() != 0;
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

  int to_child[2], to_parent[2];
  if (pipe2(to_child, O_CLOEXEC) != 0 || pipe2(to_parent, O_CLOEXEC) != 0) throw_errno("pipe");
  // Signals that arrive before the forwarding is in place must not kill us half-way.
  sigset_t block, old;
  sigemptyset(&block);
  for (int s : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) sigaddset(&block, s);
  sigprocmask(SIG_BLOCK, &block, &old);
  pid_t a = fork();
  if (a < 0) throw_errno("fork");
  if (a == 0) {
    sigprocmask(SIG_SETMASK, &old, nullptr);
    close(to_child[1]);
    close(to_parent[0]);
    container_setup(l, c, spec, strata_fs, vols, to_child[0], to_parent[1], userns);
  }
  close(to_child[0]);
  close(to_parent[1]);
  install_forwarding(a);
  sigprocmask(SIG_SETMASK, &old, nullptr);
  if (userns) {
    char b = 0;
    if (read(to_parent[0], &b, 1) == 1) {
      try {
        write_id_maps(a);
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
  c.cfg["State"] = {{"Running", true}, {"Pid", getpid()}, {"ExitCode", 0}, {"StartedAt", now_rfc3339()}, {"FinishedAt", ""}};
  save_container(l, c);
  int status = wait_status(a);
  g_forward_pid = 0;
  c.cfg["State"]["Running"] = false;
  c.cfg["State"]["Pid"] = 0;
  c.cfg["State"]["ExitCode"] = status;
  c.cfg["State"]["FinishedAt"] = now_rfc3339();
  save_container(l, c);
  return status;
}

}  // namespace strata
