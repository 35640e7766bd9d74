// DirLayerSource: a layer that is a directory tree, read through O_PATH directory fds and one
// name per *at call, so no symlink inside it is ever followed.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <climits>

#include "fs/core/dir_stream.hpp"
#include "fs/core/layer_source.hpp"
#include "fs/core/whiteout.hpp"
#include "fs/core/xattr_target.hpp"

namespace strata::fs {

namespace {

std::string one_name(std::string_view name) { return std::string(name); }

// The xattr path of `name` below `fd`; the directory itself for an empty name (a bare /proc
// link, which only the following calls pass through).
XattrTarget xattr_target(int fd, std::string_view name) { return {fd_path(fd, name), name.empty()}; }

}  // namespace

DirLayerSource::DirLayerSource(UniqueFd root) : root_(std::make_shared<const FdLayerDir>(std::move(root))) {}

LayerDirRef DirLayerSource::open_dir(const LayerDir& dir, std::string_view name) const {
  UniqueFd fd(::openat(dir.fd(), one_name(name).c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!fd) return nullptr;
  return std::make_shared<const FdLayerDir>(std::move(fd));
}

Status DirLayerSource::stat(const LayerDir& dir, std::string_view name, struct stat& st) const {
  int r = name.empty() ? ::fstatat(dir.fd(), "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW)
                       : ::fstatat(dir.fd(), one_name(name).c_str(), &st, AT_SYMLINK_NOFOLLOW);
  return r == 0 ? 0 : errno;
}

Status DirLayerSource::list(const LayerDir& dir,
                            const std::function<bool(std::string_view, ino_t, unsigned char)>& each) const {
  DirStream stream(dir.fd(), ".");
  if (!stream.ok()) return errno;
  errno = 0;
  while (struct dirent* de = stream.next()) {
    if (!each(de->d_name, de->d_ino, de->d_type)) return 0;
    errno = 0;
  }
  return errno;
}

Result<std::string> DirLayerSource::readlink(const LayerDir& dir, std::string_view name) const {
  char buf[PATH_MAX];
  ssize_t n = ::readlinkat(dir.fd(), one_name(name).c_str(), buf, sizeof buf);
  if (n < 0) return last_errno();
  return std::string(buf, size_t(n));
}

ssize_t DirLayerSource::getxattr(const LayerDir& dir, std::string_view name, const char* xname, void* value,
                                 size_t size) const {
  ssize_t n = xattr_target(dir.fd(), name).get(xname, value, size);
  return n < 0 ? -errno : n;
}

ssize_t DirLayerSource::listxattr(const LayerDir& dir, std::string_view name, char* list, size_t size) const {
  ssize_t n = xattr_target(dir.fd(), name).list(list, size);
  return n < 0 ? -errno : n;
}

Result<UniqueFd> DirLayerSource::open(const LayerDir& dir, std::string_view name, int flags) const {
  UniqueFd fd(::openat(dir.fd(), one_name(name).c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | (flags & ~O_ACCMODE)));
  if (!fd) return last_errno();
  return fd;
}

}  // namespace strata::fs
