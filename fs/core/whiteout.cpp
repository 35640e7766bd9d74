#include "fs/core/whiteout.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "fs/core/dir_stream.hpp"
#include "fs/core/layer_stack.hpp"
#include "fs/core/unique_fd.hpp"
#include "fs/core/xattr_names.hpp"

namespace strata::fs {


bool parse_whiteout_name(std::string_view name, std::string_view& hidden) {
  if (!is_marker_name(name) || name == kOpaqueMarkerFile) return false;
  hidden = name.substr(kWhiteoutPrefix.size());
  return !hidden.empty();
}

namespace {

bool xattr_says_yes(const char* path, const char* name) {
  char value[4];
  ssize_t n = ::lgetxattr(path, name, value, sizeof value);
  return n == 1 && (value[0] == 'y' || value[0] == 'Y');
}

}  // namespace

bool is_opaque_dir(int layer_fd, const std::string& path, const std::string& abs_path) {
  // One listxattr tells whether any opaque xattr form is present at all; most dirs have none.
  char names[1024];
  ssize_t len = ::llistxattr(abs_path.c_str(), names, sizeof names);
  if (len > 0) {
    for (ssize_t off = 0; off < len;) {
      const char* name = names + off;
      off += ssize_t(std::strlen(name)) + 1;
      if ((!std::strcmp(name, kTrustedOpaque) || !std::strcmp(name, kUserOpaque) ||
           !std::strcmp(name, kFuseOverlayfsOpaque)) &&
          xattr_says_yes(abs_path.c_str(), name))
        return true;
    }
  } else if (len < 0 && errno == ERANGE) {
    for (const char* name : {kTrustedOpaque, kUserOpaque, kFuseOverlayfsOpaque})
      if (xattr_says_yes(abs_path.c_str(), name)) return true;
  }
  struct stat st {};
  return ::fstatat(layer_fd, join_path(path, kOpaqueMarkerFile).c_str(), &st,
                   AT_SYMLINK_NOFOLLOW) == 0;
}

bool dir_has_whiteout_files(int layer_fd, const std::string& path) {
  DirStream dir(layer_fd, path);
  if (!dir.ok()) return true;
  errno = 0;
  while (struct dirent* de = dir.next()) {
    std::string_view hidden;
    if (parse_whiteout_name(de->d_name, hidden)) return true;
  }
  return errno != 0;
}

WhiteoutStyle probe_whiteout_style(int upper_fd, int work_fd) {
  WhiteoutStyle style;
  const char* probe = "strata-probe";
  ::unlinkat(work_fd, probe, 0);
  style.device = ::mknodat(work_fd, probe, S_IFCHR | 0000, makedev(0, 0)) == 0;
  ::unlinkat(work_fd, probe, 0);

  ::unlinkat(work_fd, probe, AT_REMOVEDIR);
  if (::mkdirat(work_fd, probe, 0700) == 0) {
    std::string abs = "/proc/self/fd/" + std::to_string(work_fd) + "/" + probe;
    style.trusted_xattrs = ::lsetxattr(abs.c_str(), "trusted.overlay.strata-probe", "y", 1, 0) == 0;
    style.user_xattrs = ::lsetxattr(abs.c_str(), "user.overlay.strata-probe", "y", 1, 0) == 0;
    ::unlinkat(work_fd, probe, AT_REMOVEDIR);
  }
  (void)upper_fd;
  return style;
}

Status make_whiteout(int upper_fd, const std::string& dir_path, std::string_view name,
                     const WhiteoutStyle& style) {
  std::string path = join_path(dir_path, name);
  if (style.device) {
    if (::mknodat(upper_fd, path.c_str(), S_IFCHR | 0000, makedev(0, 0)) == 0) return 0;
    if (errno == EEXIST) return EEXIST;
    if (errno != EPERM && errno != EOPNOTSUPP) return errno;
  }
  std::string marker = join_path(dir_path, std::string(kWhiteoutPrefix) + std::string(name));
  UniqueFd fd(::openat(upper_fd, marker.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0000));
  if (!fd && errno != EEXIST) return errno;
  return 0;
}

Status remove_whiteout(int upper_fd, const std::string& dir_path, std::string_view name) {
  std::string path = join_path(dir_path, name);
  struct stat st {};
  if (::fstatat(upper_fd, path.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && is_whiteout_device(st)) {
    if (::unlinkat(upper_fd, path.c_str(), 0) != 0) return errno;
  }
  std::string marker = join_path(dir_path, std::string(kWhiteoutPrefix) + std::string(name));
  if (::unlinkat(upper_fd, marker.c_str(), 0) != 0 && errno != ENOENT) return errno;
  return 0;
}

Status mark_opaque(int upper_fd, const std::string& path, const std::string& abs_path,
                   const WhiteoutStyle& style) {
  if (style.trusted_xattrs &&
      ::lsetxattr(abs_path.c_str(), kTrustedOpaque, "y", 1, 0) == 0)
    return 0;
  if (style.user_xattrs && ::lsetxattr(abs_path.c_str(), kUserOpaque, "y", 1, 0) == 0) return 0;
  UniqueFd fd(::openat(upper_fd, join_path(path, kOpaqueMarkerFile).c_str(),
                       O_CREAT | O_WRONLY | O_CLOEXEC, 0000));
  return fd ? 0 : errno;
}

}  // namespace strata::fs
