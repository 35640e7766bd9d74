#include "fs/core/whiteout.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "fs/core/dir_stream.hpp"
#include "fs/core/unique_fd.hpp"
#include "fs/core/xattr_names.hpp"

namespace strata::fs {


bool parse_whiteout_name(std::string_view name, std::string_view& hidden) {
  if (!is_marker_name(name) || name == kOpaqueMarkerFile) return false;
  hidden = name.substr(kWhiteoutPrefix.size());
  return !hidden.empty();
}

namespace {


}  // namespace

std::string fd_path(int fd, std::string_view name) {
  std::string out = "/proc/self/fd/" + std::to_string(fd);
  if (!name.empty()) out.append("/").append(name);
  return out;
}

bool is_opaque_dir(const LayerSource& layer, const LayerDir& parent, std::string_view name) {
  // One listxattr tells whether any opaque xattr form is present at all; most dirs have none.
  char names[1024];
  ssize_t len = layer.listxattr(parent, name, names, sizeof names);
  auto says_yes = [&](const char* xname) {
    char value[4];
    return layer.getxattr(parent, name, xname, value, sizeof value) == 1 && (value[0] == 'y' || value[0] == 'Y');
  };
  if (len > 0) {
    for (ssize_t off = 0; off < len;) {
      const char* xname = names + off;
      off += ssize_t(std::strlen(xname)) + 1;
      if ((!std::strcmp(xname, kTrustedOpaque) || !std::strcmp(xname, kUserOpaque) ||
           !std::strcmp(xname, kFuseOverlayfsOpaque)) &&
          says_yes(xname))
        return true;
    }
  } else if (len == -ERANGE) {
    for (const char* xname : {kTrustedOpaque, kUserOpaque, kFuseOverlayfsOpaque})
      if (says_yes(xname)) return true;
  }
  LayerDirRef dir = layer.open_dir(parent, name);
  struct stat st {};
  return dir && layer.stat(*dir, kOpaqueMarkerFile, st) == 0;
}

bool dir_has_whiteout_files(const LayerSource& layer, const LayerDir& dir) {
  bool found = false;
  Status s = layer.list(dir, [&](std::string_view name, ino_t, unsigned char) {
    std::string_view hidden;
    found = parse_whiteout_name(name, hidden);
    return !found;
  });
  return found || s != 0;
}

WhiteoutStyle probe_whiteout_style(int upper_fd, int work_fd) {
  WhiteoutStyle style;
  const char* probe = "strata-probe";
  ::unlinkat(work_fd, probe, 0);
  style.device = ::mknodat(work_fd, probe, S_IFCHR | 0000, makedev(0, 0)) == 0;
  ::unlinkat(work_fd, probe, 0);

  ::unlinkat(work_fd, probe, AT_REMOVEDIR);
  if (::mkdirat(work_fd, probe, 0700) == 0) {
    std::string abs = fd_path(work_fd, probe);
    style.trusted_xattrs = ::lsetxattr(abs.c_str(), "trusted.overlay.strata-probe", "y", 1, 0) == 0;
    style.user_xattrs = ::lsetxattr(abs.c_str(), "user.overlay.strata-probe", "y", 1, 0) == 0;
    ::unlinkat(work_fd, probe, AT_REMOVEDIR);
  }
  (void)upper_fd;
  return style;
}

Status make_whiteout(int dir_fd, std::string_view name, const WhiteoutStyle& style, bool* wrote_file) {
  std::string n(name);
  if (style.device) {
    if (::mknodat(dir_fd, n.c_str(), S_IFCHR | 0000, makedev(0, 0)) == 0) return 0;
    if (errno == EEXIST) return EEXIST;
    if (errno != EPERM && errno != EOPNOTSUPP) return errno;
  }
  std::string marker = std::string(kWhiteoutPrefix) + n;
  UniqueFd fd(::openat(dir_fd, marker.c_str(), O_CREAT | O_EXCL | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0000));
  if (!fd && errno != EEXIST) return errno;
  if (wrote_file) *wrote_file = true;
  return 0;
}

Status mark_opaque(int dir_fd, std::string_view name, const WhiteoutStyle& style) {
  std::string path = fd_path(dir_fd, name);
  if (style.trusted_xattrs && ::lsetxattr(path.c_str(), kTrustedOpaque, "y", 1, 0) == 0) return 0;
  if (style.user_xattrs && ::lsetxattr(path.c_str(), kUserOpaque, "y", 1, 0) == 0) return 0;
  std::string marker = std::string(name) + "/" + std::string(kOpaqueMarkerFile);
  UniqueFd fd(::openat(dir_fd, marker.c_str(), O_CREAT | O_WRONLY | O_NOFOLLOW | O_CLOEXEC, 0000));
  return fd ? 0 : errno;
}

}  // namespace strata::fs
