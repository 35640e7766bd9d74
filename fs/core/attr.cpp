// Attributes: what stat shows for a node, and chmod/chown/truncate/utimes (copy-up first).
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "fs/core/overlay.hpp"
#include "fs/core/override_stat.hpp"
#include "fs/core/setid.hpp"

namespace strata::fs {

namespace {

const char* override_xattr_name(XattrPermissions mode) {
  return mode == XattrPermissions::Privileged ? "security.fuseoverlayfs.override_stat"
                                              : "user.containers.override_stat";
}

}  // namespace

uint64_t Overlay::ino_for(int layer, const struct stat& st) const {
  if (layer == 0 && layers_.has_upper()) {
    std::lock_guard lock(origins_mutex_);
    if (auto it = origins_.find(st.st_ino); it != origins_.end()) return it->second;
  }
  return layers_.present_ino(st.st_dev, st.st_ino);
}

void Overlay::record_origin(const struct stat& upper_st, uint64_t ino) {
  std::lock_guard lock(origins_mutex_);
  origins_[upper_st.st_ino] = ino;
}

struct stat Overlay::present(struct stat st, const std::string& path, int layer, const Node* node) const {
  st.st_ino = node ? node->ino : ino_for(layer, st);
  if (opts_.ino32) st.st_ino = (st.st_ino ^ (st.st_ino >> 32)) & 0xffffffffu;

  if (opts_.xattr_permissions != XattrPermissions::Off) {
    char buf[128];
    std::string abs = abs_path(layer, path);
    ssize_t n = ::lgetxattr(abs.c_str(), override_xattr_name(opts_.xattr_permissions), buf, sizeof buf);
    if (n < 0 && opts_.xattr_permissions == XattrPermissions::User)
      n = ::lgetxattr(abs.c_str(), "user.fuseoverlayfs.override_stat", buf, sizeof buf);
    if (n > 0) {
      if (auto o = parse_override_stat(std::string_view(buf, size_t(n)))) {
        st.st_uid = o->uid;
        st.st_gid = o->gid;
        mode_t type = o->type ? *o->type : (st.st_mode & S_IFMT);
        st.st_mode = type | o->mode;
        if (o->type && (*o->type == S_IFCHR || *o->type == S_IFBLK)) st.st_rdev = o->rdev;
      }
    }
  }
  st.st_uid = uids_.to_shown(st.st_uid);
  st.st_gid = gids_.to_shown(st.st_gid);

  if (S_ISDIR(st.st_mode)) {
    // overlayfs reports 1 for merged directories rather than counting subdirectories of every
    // layer; find and friends treat 1 as "unknown".
    if (opts_.static_nlink) st.st_nlink = 1;
    else if (node) {
      std::shared_lock lock(tree_);
      if (node->merged()) st.st_nlink = 1;
    }
  }
  return st;
}

Result<struct stat> Overlay::getattr(Node* node) {
  auto path = path_of(node);
  if (!path) return Errno{path.error()};
  for (int attempt = 0; attempt < 2; ++attempt) {
    int layer = node->top.load();
    struct stat st {};
    if (::fstatat(layers_[size_t(layer)].root.get(), path->c_str(), &st,
                  AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) == 0) {
      struct stat shown = present(st, *path, layer, node);
      if (node->is_dir()) show_newest_layer_mtime(node, *path, shown);
      return shown;
    }
    if (errno != ENOENT || node->top.load() == layer) return last_errno();
    // Copied up between reading `top` and the stat: look again in the upper.
  }
  return Errno{ENOENT};
}

void Overlay::show_newest_layer_mtime(Node* dir, const std::string& path, struct stat& st) const {
  std::vector<int> dir_layers;
  {
    std::shared_lock lock(tree_);
    if (dir->dir_layers.size() <= 1) return;
    dir_layers = dir->dir_layers;
  }
  for (size_t i = 1; i < dir_layers.size(); ++i) {
    struct stat lst {};
    if (::fstatat(layers_[size_t(dir_layers[i])].root.get(), path.c_str(), &lst, AT_SYMLINK_NOFOLLOW) != 0) continue;
    if (lst.st_mtim.tv_sec > st.st_mtim.tv_sec ||
        (lst.st_mtim.tv_sec == st.st_mtim.tv_sec && lst.st_mtim.tv_nsec > st.st_mtim.tv_nsec))
      st.st_mtim = lst.st_mtim;
  }
}

Result<std::string> Overlay::readlink(Node* node) {
  auto path = path_of(node);
  if (!path) return Errno{path.error()};
  char buf[PATH_MAX];
  ssize_t n = ::readlinkat(layers_[size_t(node->top.load())].root.get(), path->c_str(), buf, sizeof buf);
  if (n < 0) return last_errno();
  return std::string(buf, size_t(n));
}

Result<struct statvfs> Overlay::statfs() {
  struct statvfs st {};
  if (::fstatvfs(layers_[0].root.get(), &st) != 0) return last_errno();
  return st;
}

void Overlay::drop_setid_bits_for(int fd, const Caller& caller) const {
  if (caller.privileged()) return;
  drop_setid_bits(fd, [&](gid_t stored) { return caller.in_group(gids_.to_shown(stored)); });
}

Result<struct stat> Overlay::setattr(Node* node, const AttrChange& change, const Caller& caller) {
  if (read_only_) return Errno{EROFS};
  bool only_truncate_to_zero = change.size && *change.size == 0;
  if (Status st = copy_up(node, !only_truncate_to_zero); st != 0) return Errno{st};
  auto path = path_of(node);
  if (!path) return Errno{path.error()};
  int fd = layers_.upper_fd();
  const char* p = path->c_str();
  std::string abs = abs_path(0, *path);

  bool use_override = opts_.xattr_permissions != XattrPermissions::Off && (change.mode || change.uid || change.gid);
  if (use_override) {
    auto cur = getattr(node);
    if (!cur) return cur;
    OverrideStat o;
    o.uid = uids_.to_stored(change.uid.value_or(cur->st_uid));
    o.gid = gids_.to_stored(change.gid.value_or(cur->st_gid));
    o.mode = change.mode.value_or(cur->st_mode) & 07777;
    if ((change.uid || change.gid) && !change.mode && S_ISREG(cur->st_mode)) {
      // A real chown drops these in the backing filesystem; a recorded one must do it here.
      o.mode &= ~(S_ISUID | ((o.mode & S_IXGRP) ? S_ISGID : 0));
      ::lremovexattr(abs.c_str(), "security.capability");
    }
    std::string value = format_override_stat(o);
    if (::lsetxattr(abs.c_str(), override_xattr_name(opts_.xattr_permissions), value.data(), value.size(), 0) != 0)
      return last_errno();
  } else {
    if (change.mode && ::fchmodat(fd, p, *change.mode & 07777, 0) != 0) return last_errno();
    if (change.uid || change.gid) {
      uid_t uid = change.uid ? uids_.to_stored(*change.uid) : uid_t(-1);
      gid_t gid = change.gid ? gids_.to_stored(*change.gid) : gid_t(-1);
      if (::fchownat(fd, p, uid, gid, AT_SYMLINK_NOFOLLOW) != 0) return last_errno();
    }
  }
  if (change.size) {
    UniqueFd f(::openat(fd, p, O_WRONLY | O_NOFOLLOW | O_CLOEXEC));
    if (!f) return last_errno();
    if (::ftruncate(f.get(), *change.size) != 0) return last_errno();
    if (!change.mode) drop_setid_bits_for(f.get(), caller);
  }
  if (change.atime || change.mtime) {
    struct timespec times[2];
    times[0] = change.atime.value_or(timespec{0, UTIME_OMIT});
    times[1] = change.mtime.value_or(timespec{0, UTIME_OMIT});
    if (::utimensat(fd, p, times, AT_SYMLINK_NOFOLLOW) != 0) return last_errno();
  }
  return getattr(node);
}

}  // namespace strata::fs
