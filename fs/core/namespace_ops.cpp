// Creating and removing names: mknod, mkdir, symlink, link, create, unlink, rmdir.
// A name that a lower layer still holds is hidden by a whiteout in the upper; a directory
// made where a whiteout was is opaque, so nothing below reappears inside it.
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstdio>

#include "fs/core/overlay.hpp"
#include "fs/core/tree_remove.hpp"

namespace strata::fs {

bool Overlay::name_in_lowers(const Node* parent, const std::string& path, int below_layer) const {
  std::vector<int> dir_layers;
  {
    std::shared_lock lock(tree_);
    dir_layers = parent->dir_layers;
  }
  for (int layer : dir_layers) {
    if (layer <= below_layer || layer < layers_.first_lower()) continue;
    struct stat st {};
    if (::fstatat(layers_[size_t(layer)].root.get(), path.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0)
      return !is_whiteout_device(st);
  }
  return false;
}

mode_t Overlay::effective_mode(Node* parent, mode_t mode, const Caller& caller) {
  if ((caller.umask & 0777) == 0) return mode;
  // A default ACL on the parent replaces the umask: the backing filesystem applies it.
  if (auto path = path_of(parent)) {
    std::string abs = abs_path(parent->top.load(), *path);
    if (::lgetxattr(abs.c_str(), "system.posix_acl_default", nullptr, 0) > 0) return mode;
  }
  return mode & ~(caller.umask & 0777);
}

Status Overlay::set_new_owner(int dirfd, const std::string& rel, const Caller& caller,
                              const std::string& parent_path, bool is_dir) {
  uid_t uid = uids_.to_stored(caller.uid);
  gid_t gid = gids_.to_stored(caller.gid);
  struct stat pst {};
  if (::fstatat(layers_.upper_fd(), parent_path.c_str(), &pst, AT_SYMLINK_NOFOLLOW) == 0 &&
      (pst.st_mode & S_ISGID)) {
    gid = pst.st_gid;  // BSD group semantics of a set-gid directory, as the kernel applies them
    if (is_dir) {
      struct stat st {};
      if (::fstatat(dirfd, rel.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0)
        ::fchmodat(dirfd, rel.c_str(), (st.st_mode & 07777) | S_ISGID, 0);
    }
  }
  if (uid == ::geteuid() && gid == ::getegid()) return 0;
  if (::fchownat(dirfd, rel.c_str(), uid, gid, AT_SYMLINK_NOFOLLOW) != 0 && privileged_) return errno;
  return 0;
}

Result<Entry> Overlay::create_node(Node* parent, std::string_view name, bool is_dir, const Caller* caller,
                                   const std::function<Status(int, const std::string&)>& make) {
  if (read_only_) return Errno{EROFS};
  if (is_marker_name(name)) return Errno{EINVAL};
  auto parent_path = path_of(parent);
  if (!parent_path) return Errno{parent_path.error()};
  if (auto existing = resolve(parent, *parent_path, name); existing) return Errno{EEXIST};
  if (Status s = ensure_upper_dir(parent); s != 0) return Errno{s};

  int upper = layers_.upper_fd();
  std::string path = join_path(*parent_path, name);
  std::string wh_file = join_path(*parent_path, std::string(kWhiteoutPrefix) + std::string(name));
  struct stat st {};
  bool wh_device = ::fstatat(upper, path.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
  if (wh_device && !is_whiteout_device(st)) return Errno{EEXIST};
  bool wh_named = ::fstatat(upper, wh_file.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;

  if (wh_device) {
    // Build it aside, then swap it with the whiteout in one step.
    std::string tmp = stage_name();
    Status s = make(work_fd_.get(), tmp);
    if (s == 0 && caller) s = set_new_owner(work_fd_.get(), tmp, *caller, *parent_path, is_dir);
    if (s == 0 && is_dir) s = mark_opaque(work_fd_.get(), tmp, work_path_ + "/" + tmp, whiteout_style());
    if (s == 0) {
      if (is_dir) {
        if (::renameat2(work_fd_.get(), tmp.c_str(), upper, path.c_str(), RENAME_EXCHANGE) != 0) s = errno;
        else ::unlinkat(work_fd_.get(), tmp.c_str(), 0);
      } else if (::renameat(work_fd_.get(), tmp.c_str(), upper, path.c_str()) != 0) {
        s = errno;
      }
    }
    if (s != 0) {
      remove_tree(work_fd_.get(), tmp);
      return Errno{s};
    }
  } else {
    if (Status s = make(upper, path); s != 0) return Errno{s};
    Status s = caller ? set_new_owner(upper, path, *caller, *parent_path, is_dir) : 0;
    if (s == 0 && is_dir && wh_named) s = mark_opaque(upper, path, abs_path(0, path), whiteout_style());
    if (s != 0) {
      remove_tree(upper, path);
      return Errno{s};
    }
    if (wh_named) ::unlinkat(upper, wh_file.c_str(), 0);
  }
  // No second walk through the layers: the name was absent from the merged view, so the new
  // entry is all there is (a new directory merges with nothing below it either: any lower
  // directory of that name is hidden by a whiteout).
  Resolved made;
  made.top = 0;
  if (::fstatat(upper, path.c_str(), &made.st, AT_SYMLINK_NOFOLLOW) != 0) return last_errno();
  if (is_dir) {
    made.dir_layers = {0};
    made.opaque = wh_device || wh_named;
  }
  Entry entry = attach(parent, name, made);
  entry.st = present(made.st, path, 0, entry.node);
  return entry;
}

Result<Entry> Overlay::mknod(Node* parent, std::string_view name, mode_t mode, dev_t rdev, const Caller& caller) {
  // In the upper it would be a whiteout, so it could never be seen; overlayfs refuses it too.
  if (S_ISCHR(mode) && rdev == 0) return Errno{EPERM};
  mode = effective_mode(parent, mode, caller);
  return create_node(parent, name, false, &caller, [&](int dirfd, const std::string& rel) -> Status {
    return ::mknodat(dirfd, rel.c_str(), mode, rdev) == 0 ? 0 : errno;
  });
}

Result<Entry> Overlay::mkdir(Node* parent, std::string_view name, mode_t mode, const Caller& caller) {
  mode = effective_mode(parent, mode, caller);
  return create_node(parent, name, true, &caller, [&](int dirfd, const std::string& rel) -> Status {
    return ::mkdirat(dirfd, rel.c_str(), mode) == 0 ? 0 : errno;
  });
}

Result<Entry> Overlay::symlink(Node* parent, std::string_view name, const std::string& target,
                               const Caller& caller) {
  return create_node(parent, name, false, &caller, [&](int dirfd, const std::string& rel) -> Status {
    return ::symlinkat(target.c_str(), dirfd, rel.c_str()) == 0 ? 0 : errno;
  });
}

Result<std::pair<Entry, std::unique_ptr<OpenFile>>> Overlay::create(Node* parent, std::string_view name,
                                                                    mode_t mode, int flags,
                                                                    const Caller& caller) {
  mode = effective_mode(parent, mode, caller);
  UniqueFd fd;
  int open_flags = (flags & ~(O_CREAT | O_EXCL | O_NOFOLLOW)) | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW;
  // Reads through a write-only handle happen (writeback, mmap): open read-write when we can.
  if ((open_flags & O_ACCMODE) == O_WRONLY) open_flags = (open_flags & ~O_ACCMODE) | O_RDWR;
  auto entry = create_node(parent, name, false, &caller, [&](int dirfd, const std::string& rel) -> Status {
    fd = UniqueFd(::openat(dirfd, rel.c_str(), open_flags, mode));
    return fd ? 0 : errno;
  });
  if (!entry) return Errno{entry.error()};
  auto file = std::make_unique<OpenFile>();
  file->current = fd.get();
  file->fd = std::move(fd);
  file->node = entry->node;
  file->flags = open_flags;
  file->copyups_seen = entry->node->copyups.load();
  return std::make_pair(*entry, std::move(file));
}

Result<Entry> Overlay::link(Node* node, Node* new_parent, std::string_view new_name) {
  if (read_only_) return Errno{EROFS};
  if (node->is_dir()) return Errno{EPERM};
  if (Status s = copy_up(node); s != 0) return Errno{s};
  auto src = path_of(node);
  if (!src) return Errno{src.error()};
  int upper = layers_.upper_fd();
  // A new name of an existing inode keeps its owner: no caller ids to apply.
  auto entry = create_node(new_parent, new_name, false, nullptr, [&](int dirfd, const std::string& rel) -> Status {
    return ::linkat(upper, src->c_str(), dirfd, rel.c_str(), 0) == 0 ? 0 : errno;
  });
  return entry;
}

Status Overlay::remove_upper_entry(const std::string& path, bool is_dir, bool leave_whiteout) {
  int upper = layers_.upper_fd();
  if (leave_whiteout) {
    // Move the entry out and leave a whiteout in one step, so the lower never shows through.
    std::string tmp = stage_name();
    if (::renameat2(upper, path.c_str(), work_fd_.get(), tmp.c_str(), RENAME_WHITEOUT) == 0) {
      return remove_tree(work_fd_.get(), tmp);
    }
    if (errno != EINVAL && errno != EPERM && errno != EOPNOTSUPP) return errno;
  }
  if (is_dir) {
    if (Status s = remove_tree(upper, path); s != 0) return s;
  } else if (::unlinkat(upper, path.c_str(), 0) != 0) {
    return errno;
  }
  if (!leave_whiteout) return 0;
  auto slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : path.substr(0, slash);
  std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  return make_whiteout(upper, dir, name, whiteout_style());
}

Status Overlay::remove_name(Node* parent, const std::string& parent_path, std::string_view name, int top,
                            bool is_dir) {
  std::string path = join_path(parent_path, name);
  bool lower = name_in_lowers(parent, path, 0);
  Status s = top == 0 ? remove_upper_entry(path, is_dir, lower)
                      : make_whiteout(layers_.upper_fd(), parent_path, name, whiteout_style());
  if (s != 0) return s;
  std::unique_lock lock(tree_);
  detach_child(parent, name);
  return 0;
}

Status Overlay::unlink(Node* parent, std::string_view name) {
  if (read_only_) return EROFS;
  auto parent_path = path_of(parent);
  if (!parent_path) return parent_path.error();
  auto found = resolve(parent, *parent_path, name);
  if (!found) return found.error();
  if (S_ISDIR(found->st.st_mode)) return EISDIR;
  std::string path = join_path(*parent_path, name);
  if (Status s = ensure_upper_dir(parent); s != 0) return s;
  if (found->top > 0 && S_ISREG(found->st.st_mode) && found->st.st_nlink > 1) {
    // The other names must show one link less, as with overlayfs index=on: copy-up links
    // every name to one upper inode, whose count then drops with this name.
    Entry held = attach(parent, name, *found);
    Status s = copy_up(held.node);
    forget(held.node, 1);
    if (s != 0) return s;
    found->top = 0;
  }
  return remove_name(parent, *parent_path, name, found->top, false);
}

Status Overlay::rmdir(Node* parent, std::string_view name) {
  if (read_only_) return EROFS;
  auto parent_path = path_of(parent);
  if (!parent_path) return parent_path.error();
  auto found = resolve(parent, *parent_path, name);
  if (!found) return found.error();
  if (!S_ISDIR(found->st.st_mode)) return ENOTDIR;
  auto entry = attach(parent, name, *found);
  auto empty = merged_dir_empty(entry.node);
  forget(entry.node, 1);
  if (!empty) return empty.error();
  if (!*empty) return ENOTEMPTY;

  if (Status s = ensure_upper_dir(parent); s != 0) return s;
  return remove_name(parent, *parent_path, name, found->top, true);
}

}  // namespace strata::fs
