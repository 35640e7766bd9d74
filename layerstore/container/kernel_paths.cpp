#include "layerstore/container/kernel_paths.hpp"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <string>

#include "layerstore/archive/unique_fd.hpp"
#include "layerstore/error.hpp"

namespace strata {

namespace {

constexpr const char* kMasked[] = {"/proc/asound",      "/proc/acpi",        "/proc/kcore",       "/proc/keys",
                                   "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
                                   "/proc/scsi",        "/sys/firmware",     "/sys/devices/virtual/powercap"};
constexpr const char* kReadOnly[] = {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"};

// `path` below the root, never following a symlink (nothing in the container may redirect
// a mask); an invalid fd when it does not exist.
UniqueFd open_in_root(int root, const std::string& path) {
  struct open_how how {};
  how.flags = O_PATH | O_CLOEXEC;
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  std::string rel = path.substr(1);
  int fd = static_cast<int>(syscall(SYS_openat2, root, rel.c_str(), &how, sizeof how));
  if (fd < 0 && errno != ENOENT) throw_errno("open " + path + " in the container");
  return UniqueFd(fd);
}

std::string fd_path(const UniqueFd& fd) { return "/proc/self/fd/" + std::to_string(fd.get()); }

void mask(int root, const std::string& path) {
  UniqueFd fd = open_in_root(root, path);
  if (!fd) return;
  struct stat st;
  if (fstat(fd.get(), &st) != 0) throw_errno("stat " + path);
  int r = S_ISDIR(st.st_mode)
              ? mount("tmpfs", fd_path(fd).c_str(), "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=0555")
              : mount("/dev/null", fd_path(fd).c_str(), nullptr, MS_BIND, nullptr);
  if (r != 0) throw_errno("mask " + path);
}

void read_only(int root, const std::string& path) {
  UniqueFd fd = open_in_root(root, path);
  if (!fd) return;
  if (mount(fd_path(fd).c_str(), fd_path(fd).c_str(), nullptr, MS_BIND | MS_REC, nullptr) != 0)
    throw_errno("bind " + path + " on itself");
  UniqueFd top = open_in_root(root, path);  // the new mount, not the one below it
  // The remount must repeat the flags locked on the source (nosuid, nodev, noexec of /proc)
  // or a user namespace refuses it.
  struct statvfs sv {};
  if (fstatvfs(top.get(), &sv) != 0) throw_errno("statvfs " + path);
  unsigned long flags = MS_REMOUNT | MS_BIND | MS_RDONLY | locked_mount_flags(sv);
  if (mount(nullptr, fd_path(top).c_str(), nullptr, flags, nullptr) != 0) throw_errno("remount " + path + " read-only");
}

}  // namespace

void protect_kernel_paths(int root_fd) {
  for (const char* p : kMasked) mask(root_fd, p);
  for (const char* p : kReadOnly) read_only(root_fd, p);
}

unsigned long locked_mount_flags(const struct statvfs& sv) {
  unsigned long flags = 0;
  if (sv.f_flag & ST_RDONLY) flags |= MS_RDONLY;
  if (sv.f_flag & ST_NOSUID) flags |= MS_NOSUID;
  if (sv.f_flag & ST_NODEV) flags |= MS_NODEV;
  if (sv.f_flag & ST_NOEXEC) flags |= MS_NOEXEC;
  if (sv.f_flag & ST_NOATIME) flags |= MS_NOATIME;
  if (sv.f_flag & ST_NODIRATIME) flags |= MS_NODIRATIME;
  if (sv.f_flag & ST_RELATIME) flags |= MS_RELATIME;
  return flags;
}

}  // namespace strata
