#include "layerstore/container/rootfs_setup.hpp"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <sstream>

#include "layerstore/archive/fs_util.hpp"
#include "layerstore/archive/unique_fd.hpp"
#include "layerstore/container/child_exit.hpp"
#include "layerstore/container/kernel_paths.hpp"
#include "layerstore/error.hpp"

namespace strata {

namespace {

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

// `nodev` (volumes of a confined container): strata has no device cgroup, so a device node
// made with CAP_MKNOD must not open anywhere it can be made.
void bind_into(int root, const std::string& source, const std::string& target, bool dir, bool ro, bool nodev = false) {
  UniqueFd t = target_in_root(root, target, dir);
  if (mount(source.c_str(), fd_path(t).c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0)
    die_errno("bind " + source + " on " + target);
  if (!ro && !nodev) return;
  // A remount must keep the flags the kernel locked on the source.
  struct statvfs sv {};
  statvfs(source.c_str(), &sv);
  unsigned long flags = MS_REMOUNT | MS_BIND | (ro ? MS_RDONLY : 0) | (nodev ? MS_NODEV : 0) | locked_mount_flags(sv);
  UniqueFd again = target_in_root(root, target, dir);
  if (mount(nullptr, fd_path(again).c_str(), nullptr, flags, nullptr) != 0)
    die_errno("remount " + target + (ro ? " read-only" : " nodev"));
}

}  // namespace

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
void setup_rootfs(const std::string& rootfs, const Container& c, const StoreLayout& l, const std::vector<Volume>& vols,
                  const Confinement& conf) {
  UniqueFd root(open(rootfs.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root) die_errno("open " + rootfs);
  {
    UniqueFd proc = target_in_root(root.get(), "/proc", true);
    if (mount("proc", fd_path(proc).c_str(), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0)
      die_errno("mount /proc");
  }
  {
    UniqueFd dev = target_in_root(root.get(), "/dev", true);
    // Confined: no program runs from /dev and no device node made there opens (the standard
    // nodes below are bind mounts and keep their own flags).
    unsigned long flags = MS_NOSUID | MS_STRICTATIME | (conf.privileged ? 0 : MS_NOEXEC | MS_NODEV);
    if (mount("tmpfs", fd_path(dev).c_str(), "tmpfs", flags, "mode=755,size=65536k") != 0) die_errno("mount /dev");
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
    // It shares the host's superblock (same network namespace): only --privileged gets it
    // writable, and a confined command can neither remount it nor write through it.
    unsigned long flags = (conf.privileged ? 0 : MS_RDONLY) | MS_NOSUID | MS_NODEV | MS_NOEXEC;
    mount("sysfs", fd_path(sys).c_str(), "sysfs", flags, nullptr);
  }
  if (!conf.privileged) {
    try {
      protect_kernel_paths(root.get());
    } catch (const Error& e) {
      die(e.what());
    }
  }
  for (const char* f : {"hostname", "hosts", "resolv.conf"})
    bind_into(root.get(), c.dir(l) + "/" + f, std::string("/etc/") + f, false, false);
  for (const auto& v : vols) {
    struct stat st;
    if (stat(v.host.c_str(), &st) != 0) die_errno("volume " + v.host);
    bind_into(root.get(), v.host, v.ctr, S_ISDIR(st.st_mode), v.ro, !conf.privileged);
  }
  if (chdir(rootfs.c_str()) != 0) die_errno("chdir " + rootfs);
  if (syscall(SYS_pivot_root, ".", ".") != 0) die_errno("pivot_root");
  if (umount2(".", MNT_DETACH) != 0) die_errno("detach the old root");
  if (chdir("/") != 0) die_errno("chdir /");
}

}  // namespace strata
