// Attributes: what stat shows for an Inode, and chmod/chown/truncate/utimes (copy-up first).
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "fs/core/overlay.hpp"
#include "fs/core/override_stat.hpp"
#include "fs/core/setid.hpp"
#include "fs/core/xattr_names.hpp"

namespace strata::fs {

namespace {

const char* override_xattr_name(XattrPermissions mode) {
  return mode == XattrPermissions::Privileged ? kPrivilegedOverrideStat : kOverrideStat;
}

}  // namespace

uint64_t Overlay::ino_for(int layer, const struct stat& st) const {
  if (layer == 0 && layers_.has_upper()) {
    std::lock_guard lock(origins_mutex_);
    if (auto it = origins_.find(st.st_ino); it != origins_.end()) return it->second;
  }
  return layers_.present_ino(st.st_dev, st.st_ino);
}

void Overlay::record_origin(ino_t upper_ino, uint64_t shown) {
  std::lock_guard lock(origins_mutex_);
  origins_[upper_ino] = shown;
}

void Overlay::forget_origin(ino_t upper_ino) {
  std::lock_guard lock(origins_mutex_);
  origins_.erase(upper_ino);
}

std::optional<OverrideStat> Overlay::recorded_override(
    const std::function<ssize_t(const char*, void*, size_t)>& xattr) const {
  if (config_.xattr_permissions == XattrPermissions::Off) return std::nullopt;
  char buf[128];
  ssize_t n = xattr(override_xattr_name(config_.xattr_permissions), buf, sizeof buf);
  if (n < 0 && config_.xattr_permissions == XattrPermissions::User) n = xattr(kFuseOverlayfsOverrideStat, buf, sizeof buf);
  if (n <= 0) return std::nullopt;
  return parse_override_stat(std::string_view(buf, size_t(n)));
}

struct stat Overlay::present(struct stat st, const std::function<ssize_t(const char*, void*, size_t)>& xattr,
                             const Inode* node) const {
  st.st_ino = node->ino;
  if (config_.ino32) st.st_ino = (st.st_ino ^ (st.st_ino >> 32)) & 0xffffffffu;

  if (auto o = recorded_override(xattr)) {
    st.st_uid = o->uid;
    st.st_gid = o->gid;
    mode_t type = o->type ? *o->type : (st.st_mode & S_IFMT);
    st.st_mode = type | o->mode;
    if (o->type && (*o->type == S_IFCHR || *o->type == S_IFBLK)) st.st_rdev = o->rdev;
  }
  st.st_uid = uids_.to_shown(st.st_uid);
  st.st_gid = gids_.to_shown(st.st_gid);

  // overlayfs reports 1 for merged directories rather than counting subdirectories of every
  // layer; find and friends treat 1 as "unknown".
  if (S_ISDIR(st.st_mode) && (config_.static_nlink || node->merged())) st.st_nlink = 1;
  return st;
}

void Overlay::show_newest_layer_mtime(Inode* dir, struct stat& st) {
  // A merged directory shows the newest mtime of its layers, so the kernel's readdir cache
  // notices a file added directly to any of them.
  if (dir->dir_layers.size() <= 1) return;
  for (size_t i = 1; i < dir->dir_layers.size(); ++i) {
    int layer = dir->dir_layers[i];
    LayerDirRef here = layer_dir(dir, layer);
    struct stat lst {};
    if (!here || source(layer).stat(*here, "", lst) != 0) continue;
    if (lst.st_mtim.tv_sec > st.st_mtim.tv_sec ||
        (lst.st_mtim.tv_sec == st.st_mtim.tv_sec && lst.st_mtim.tv_nsec > st.st_mtim.tv_nsec))
      st.st_mtim = lst.st_mtim;
  }
}

Result<struct stat> Overlay::getattr_locked(Inode* node) {
  auto place = place_of(node, node->top.load());
  if (!place) return Errno{place.error()};
  auto st = stat_at(*place);
  if (!st) return st;
  struct stat shown =
      present(*st, [&](const char* x, void* v, size_t n) { return getxattr_at(*place, x, v, n); }, node);
  if (node->is_dir()) show_newest_layer_mtime(node, shown);
  return shown;
}

struct stat Overlay::shown_stat(Inode* node, Inode* parent, std::string_view name, const Resolved& found) {
  // The override record is read only when the mount uses one (present() asks only then):
  // no reader is built on the lookup path otherwise.
  std::function<ssize_t(const char*, void*, size_t)> xattr;
  if (config_.xattr_permissions != XattrPermissions::Off)
    xattr = [&](const char* x, void* v, size_t n) -> ssize_t {
      LayerDirRef dir = layer_dir(parent, found.top);
      if (!dir) return -1;
      return getxattr_at(Place{dir, std::string(name), found.top, false}, x, v, n);
    };
  struct stat st = present(found.st, xattr, node);
  // A merged directory shows the newest mtime of its layers (see show_newest_layer_mtime).
  if (S_ISDIR(st.st_mode) && found.dir_layers.size() > 1) st.st_mtim = found.newest_mtime;
  return st;
}

Result<struct stat> Overlay::getattr(Inode* node, OpenFile* file) {
  if (file && !node->is_dir()) {
    // The handle's fd is the file itself, whatever became of its names.
    int fd = io_fd(*file);
    struct stat st {};
    if (::fstat(fd, &st) != 0) return last_errno();
    return present(st, [fd](const char* x, void* v, size_t n) { return ::fgetxattr(fd, x, v, n); }, node);
  }
  std::shared_lock lock(tree_);
  return getattr_locked(node);
}

Result<std::string> Overlay::readlink(Inode* node) {
  std::shared_lock lock(tree_);
  auto place = place_of(node, node->top.load());
  if (!place) return Errno{place.error()};
  return readlink_at(*place);
}

Result<struct statvfs> Overlay::statfs() {
  struct statvfs st {};
  if (::fstatvfs(layers_[0].root.get(), &st) != 0) return last_errno();
  return st;
}

void Overlay::drop_setid_bits_for(int fd, const Caller& caller) const {
  if (caller.may_keep_setid_bits()) return;
  drop_setid_bits(fd, [&](gid_t stored) { return caller.in_group(gids_.to_shown(stored)); });
}

Status Overlay::write_override(const XattrTarget& target, uid_t uid, gid_t gid, mode_t mode) {
  OverrideStat o;
  o.uid = uid;
  o.gid = gid;
  o.mode = mode & 07777;
  std::string value = format_override_stat(o);
  if (target.set(override_xattr_name(config_.xattr_permissions), value.data(), value.size(), 0) != 0)
    return errno;
  return 0;
}

Result<struct stat> Overlay::setattr(Inode* node, const AttrChange& change, const Caller& caller) {
  if (read_only_) return Errno{EROFS};
  bool only_truncate_to_zero = change.size && *change.size == 0;
  if (Status st = copy_up(node, !only_truncate_to_zero); st != 0) return Errno{st};

  std::shared_lock lock(tree_);
  auto place = place_of(node, 0);
  if (!place) return Errno{place.error()};
  const int dirfd = place->fd();
  const char* name = place->name.c_str();
  const bool anonymous = place->name.empty();  // the orphan: act on the fd itself
  const std::string path = path_of(*place);
  const bool is_link = S_ISLNK(node->type);

  bool use_override = config_.xattr_permissions != XattrPermissions::Off && (change.mode || change.uid || change.gid);
  if (use_override) {
    auto cur = getattr_locked(node);
    if (!cur) return cur;
    mode_t mode = change.mode.value_or(cur->st_mode) & 07777;
    if ((change.uid || change.gid) && !change.mode && S_ISREG(cur->st_mode)) {
      // A real chown drops these in the backing filesystem; a recorded one must do it here.
      mode &= ~(S_ISUID | ((mode & S_IXGRP) ? S_ISGID : 0));
      target_of(*place).remove("security.capability");
    }
    Status s = write_override(target_of(*place), uids_.to_stored(change.uid.value_or(cur->st_uid)),
                              gids_.to_stored(change.gid.value_or(cur->st_gid)), mode);
    // user.* xattrs are not allowed on symlinks: their owner cannot be recorded, and their
    // mode means nothing. fuse-overlayfs lets the call succeed; dpkg depends on it.
    if (s != 0 && !(is_link && (s == EPERM || s == ENOTSUP))) return Errno{s};
  } else {
    // The tree lock keeps `name` bound to this node, and it is no symlink: fchmodat cannot
    // be led elsewhere.
    if (change.mode && !is_link) {
      int r = anonymous ? ::chmod(path.c_str(), *change.mode & 07777)
                        : ::fchmodat(dirfd, name, *change.mode & 07777, 0);
      if (r != 0) return last_errno();
    }
    if (change.uid || change.gid) {
      uid_t uid = change.uid ? uids_.to_stored(*change.uid) : uid_t(-1);
      gid_t gid = change.gid ? gids_.to_stored(*change.gid) : gid_t(-1);
      if (::fchownat(dirfd, name, uid, gid, AT_SYMLINK_NOFOLLOW | (anonymous ? AT_EMPTY_PATH : 0)) != 0)
        return last_errno();
    }
  }
  if (change.size) {
    if (!S_ISREG(node->type)) return Errno{node->is_dir() ? EISDIR : EINVAL};
    UniqueFd f(anonymous ? ::open(path.c_str(), O_WRONLY | O_CLOEXEC)
                         : ::openat(dirfd, name, O_WRONLY | O_NOFOLLOW | O_CLOEXEC));
    if (!f) return last_errno();
    if (::ftruncate(f.get(), *change.size) != 0) return last_errno();
    if (!change.mode) drop_setid_bits_for(f.get(), caller);
  }
  if (change.atime || change.mtime) {
    struct timespec times[2];
    times[0] = change.atime.value_or(timespec{0, UTIME_OMIT});
    times[1] = change.mtime.value_or(timespec{0, UTIME_OMIT});
    int r = anonymous ? (is_link ? 0 : ::utimensat(AT_FDCWD, path.c_str(), times, 0))
                      : ::utimensat(dirfd, name, times, AT_SYMLINK_NOFOLLOW);
    if (r != 0) return last_errno();
  }
  return getattr_locked(node);
}

}  // namespace strata::fs
