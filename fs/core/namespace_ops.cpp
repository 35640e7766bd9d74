// Creating and removing names: mknod, mkdir, symlink, link, create, unlink, rmdir.
// A name that a lower layer still holds is hidden by a whiteout in the upper; a directory
// made where a whiteout was is opaque, so nothing below reappears inside it. Each runs under
// the exclusive tree lock, so the upper changes together with the tree.
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <vector>

#include "fs/core/overlay.hpp"
#include "fs/core/override_stat.hpp"
#include "fs/core/tree_remove.hpp"

namespace strata::fs {

bool Overlay::name_in_lowers(Inode* parent, std::string_view name) {
  std::string n(name);
  for (int layer : parent->dir_layers) {
    if (layer < layers_.first_lower() || layer == 0) continue;
    LayerDirRef dir = layer_dir(parent, layer);
    if (!dir) continue;
    const LayerSource& src = source(layer);
    struct stat st {};
    if (src.stat(*dir, n, st) == 0) return !is_whiteout_device(st);
    if (!may_hold_whiteout_file(parent, layer)) continue;
    if (src.stat(*dir, std::string(kWhiteoutPrefix) + n, st) == 0) return false;
  }
  return false;
}

bool Overlay::has_default_acl(Inode* dir) {
  // Asked once per directory, not per create: the answer changes only with the directory's
  // xattrs, and setxattr and removexattr through the mount forget it.
  if (uint8_t known = dir->default_acl.load(std::memory_order_acquire)) return known == 2;
  auto place = place_of(dir, dir->top.load());
  if (!place) return false;
  bool has = getxattr_at(*place, "system.posix_acl_default", nullptr, 0) > 0;
  dir->default_acl.store(has ? 2 : 1, std::memory_order_release);
  return has;
}

mode_t Overlay::effective_mode(Inode* parent, mode_t mode, const Caller& caller) {
  if ((caller.umask & 0777) == 0) return mode;
  // A default ACL on the parent replaces the umask: the backing filesystem applies it.
  if (has_default_acl(parent)) return mode;
  return mode & ~(caller.umask & 0777);
}

Status Overlay::whiteout_at(int dir_fd, std::string_view name) {
  bool wrote_file = false;
  Status s = make_whiteout(dir_fd, name, whiteout_style(), &wrote_file);
  if (wrote_file) wrote_whiteout_files_.store(true, std::memory_order_release);
  return s;
}

Status Overlay::set_new_owner(int dirfd, const std::string& name, const Caller& caller, int parent_fd, bool is_dir,
                              mode_t mode) {
  uid_t uid = uids_.to_stored(caller.uid);
  gid_t gid = gids_.to_stored(caller.gid);
  // Made in place by the daemon for a caller with the daemon's own ids: the backing
  // filesystem has already given it what this function would, owner and group, including a
  // set-gid directory's group (and S_ISGID on a new subdirectory), as the kernel does.
  if (config_.xattr_permissions == XattrPermissions::Off && dirfd == parent_fd && uid == daemon_uid_ &&
      gid == daemon_gid_)
    return 0;
  struct stat pst {};
  const bool parent_known = ::fstat(parent_fd, &pst) == 0;
  if (parent_known && config_.xattr_permissions != XattrPermissions::Off) {
    // The parent's group and set-gid bit are the recorded ones: on disk it is the daemon's
    // user's, and a chmod g+s in the container changed only the record.
    XattrTarget parent{fd_path(parent_fd), true};  // the directory the magic link names
    if (auto o = recorded_override([&](const char* n, void* b, size_t s) { return parent.get(n, b, s); })) {
      pst.st_gid = o->gid;
      pst.st_mode = (pst.st_mode & S_IFMT) | o->mode;
    }
  }
  if (parent_known && (pst.st_mode & S_ISGID)) {
    gid = pst.st_gid;  // BSD group semantics of a set-gid directory, as the kernel applies them
    if (is_dir) {
      mode |= S_ISGID;
      struct stat st {};
      if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0)
        ::fchmodat(dirfd, name.c_str(), (st.st_mode & 07777) | S_ISGID, 0);
    }
  }
  if (config_.xattr_permissions != XattrPermissions::Off) {
    // Owner and mode live in the override record; the file itself stays usable by the
    // daemon's user (diff, commit and copy-up read it as that user), as containers/storage does.
    struct stat st {};
    if (::fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return errno;
    if (S_ISLNK(st.st_mode)) return 0;
    mode_t usable = (st.st_mode & 07777) | (S_ISDIR(st.st_mode) ? 0700 : 0600);
    if (usable != (st.st_mode & 07777)) ::fchmodat(dirfd, name.c_str(), usable, 0);
    if (uid == daemon_uid_ && gid == daemon_gid_ && usable == (st.st_mode & 07777)) return 0;
    return write_override(XattrTarget{fd_path(dirfd, name), false}, uid, gid, S_ISLNK(st.st_mode) ? 0777 : (mode & 07777));
  }
  if (uid == daemon_uid_ && gid == daemon_gid_) return 0;
  if (::fchownat(dirfd, name.c_str(), uid, gid, AT_SYMLINK_NOFOLLOW) != 0 && privileged_) return errno;
  return 0;
}

namespace {

// A directory in the workdir with the default ACL of an upper directory, removed (with what is
// left in it) when it goes out of scope.
class AclStagingDir {
 public:
  explicit AclStagingDir(int work) : work_(work) {}
  ~AclStagingDir() {
    if (!name_.empty()) remove_tree(work_, name_);
  }
  AclStagingDir(const AclStagingDir&) = delete;
  AclStagingDir& operator=(const AclStagingDir&) = delete;

  Status make(int upper_dir, const std::string& name) {
    ssize_t len = ::getxattr(fd_path(upper_dir).c_str(), "system.posix_acl_default", nullptr, 0);
    if (len <= 0) return len == 0 || errno == ENODATA ? 0 : errno;
    std::vector<char> acl(size_t(len) + 1);
    len = ::getxattr(fd_path(upper_dir).c_str(), "system.posix_acl_default", acl.data(), acl.size());
    if (len < 0) return errno;
    if (::mkdirat(work_, name.c_str(), 0700) != 0) return errno;
    name_ = name;
    fd_ = UniqueFd(::openat(work_, name.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!fd_) return errno;
    if (::setxattr(fd_path(fd_.get()).c_str(), "system.posix_acl_default", acl.data(), size_t(len), 0) != 0)
      return errno;
    return 0;
  }
  int fd() const { return fd_ ? fd_.get() : -1; }

 private:
  int work_;
  std::string name_;
  UniqueFd fd_;
};

}  // namespace

Result<Entry> Overlay::create_node(Inode* parent, std::string_view name, bool is_dir, const Caller* caller,
                                   mode_t mode, const std::function<Status(int, const std::string&)>& make,
                                   const UniqueFd* made_fd, struct stat* made_st) {
  if (read_only_) return Errno{EROFS};
  if (is_marker_name(name) || name == "." || name == "..") return Errno{EINVAL};
  // The first entry made learns how this mount writes whiteouts: from then on, lookups in
  // upper directories know whether .wh.NAME files can appear there (lookup.cpp).
  whiteout_style();
  // The probes that found the name absent also say what the upper holds there.
  Absence absence;
  if (auto existing = resolve_for_change(parent, name, absence); existing) return Errno{EEXIST};
  if (Status s = ensure_upper_dir_locked(parent); s != 0) return Errno{s};
  LayerDirRef pfd = layer_dir(parent, 0);
  if (!pfd) return last_errno();
  int upper = pfd->fd();
  int work = work_fd_.get();

  std::string n(name);
  std::string wh_file = std::string(kWhiteoutPrefix) + n;
  bool wh_device = absence.whiteout_device;
  bool wh_named = absence.whiteout_file;
  if (!absence.upper_probed) {
    // The upper directory was made just now (or the lookup could not reach it).
    struct stat st {};
    wh_device = ::fstatat(upper, n.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
    if (wh_device && !is_whiteout_device(st)) return Errno{EEXIST};
    wh_named = ::fstatat(upper, wh_file.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
  }

  if (wh_device) {
    // Build it aside, then swap it with the whiteout in one step.
    std::string tmp = stage_name();
    // An entry made in the parent inherits its default ACL (access ACL, mode, and a
    // directory's default ACL) from the backing filesystem; one built in the workdir would get
    // none and keep the mode the umask was not applied to. Build it in a staging directory
    // carrying the parent's default ACL instead.
    AclStagingDir staging(work);
    if (caller && has_default_acl(parent))
      if (Status s = staging.make(upper, stage_name()); s != 0) return Errno{s};
    const int build = staging.fd() >= 0 ? staging.fd() : work;
    Status s = make(build, tmp);
    if (s == 0 && caller) s = set_new_owner(build, tmp, *caller, upper, is_dir, mode);
    if (s == 0 && is_dir) s = mark_opaque(build, tmp, whiteout_style());
    if (s == 0) {
      if (is_dir) {
        if (::renameat2(build, tmp.c_str(), upper, n.c_str(), RENAME_EXCHANGE) != 0) s = errno;
        else ::unlinkat(build, tmp.c_str(), 0);
      } else if (::renameat(build, tmp.c_str(), upper, n.c_str()) != 0) {
        s = errno;
      }
    }
    if (s != 0) {
      remove_tree(build, tmp);
      return Errno{s};
    }
  } else {
    if (Status s = make(upper, n); s != 0) return Errno{s};
    Status s = caller ? set_new_owner(upper, n, *caller, upper, is_dir, mode) : 0;
    if (s == 0 && is_dir && wh_named) s = mark_opaque(upper, n, whiteout_style());
    if (s != 0) {
      remove_tree(upper, n);
      return Errno{s};
    }
    if (wh_named) ::unlinkat(upper, wh_file.c_str(), 0);
  }
  // No second walk through the layers: the name was absent from the merged view, so the new
  // entry is all there is (a new directory merges with nothing below it either: any lower
  // directory of that name is hidden by a whiteout).
  Resolved made;
  made.top = 0;
  // What `make` opened is the file, wherever it was made: no name to look up again.
  int r = made_fd && *made_fd ? ::fstat(made_fd->get(), &made.st)
                              : ::fstatat(upper, n.c_str(), &made.st, AT_SYMLINK_NOFOLLOW);
  if (r != 0) return last_errno();
  if (made_st) *made_st = made.st;
  if (is_dir) {
    made.dir_layers = {0};
    made.opaque = wh_device || wh_named;
  }
  bump_version();
  Inode* node = attach(parent, name, made);
  node->nlookup++;
  if (is_dir && node->whiteout_scan) node->whiteout_scan[0].store(2, std::memory_order_release);  // empty
  // A new file has no file capability until one is set through the mount (a link is no new file).
  if (!is_dir && caller) node->created_without_caps.store(true, std::memory_order_release);
  return Entry{node, shown_stat(node, parent, name, made)};
}

Result<Entry> Overlay::mknod(Inode* parent, std::string_view name, mode_t mode, dev_t rdev, const Caller& caller) {
  // In the upper it would be a whiteout, so it could never be seen; overlayfs refuses it too.
  if (S_ISCHR(mode) && rdev == 0) return Errno{EPERM};
  std::unique_lock lock(tree_);
  mode = effective_mode(parent, mode, caller);
  return create_node(parent, name, false, &caller, mode, [&](int dirfd, const std::string& rel) -> Status {
    return ::mknodat(dirfd, rel.c_str(), mode, rdev) == 0 ? 0 : errno;
  });
}

Result<Entry> Overlay::mkdir(Inode* parent, std::string_view name, mode_t mode, const Caller& caller) {
  std::unique_lock lock(tree_);
  mode = effective_mode(parent, mode, caller);
  return create_node(parent, name, true, &caller, mode, [&](int dirfd, const std::string& rel) -> Status {
    return ::mkdirat(dirfd, rel.c_str(), mode) == 0 ? 0 : errno;
  });
}

Result<Entry> Overlay::symlink(Inode* parent, std::string_view name, const std::string& target,
                               const Caller& caller) {
  std::unique_lock lock(tree_);
  return create_node(parent, name, false, &caller, 0777, [&](int dirfd, const std::string& rel) -> Status {
    return ::symlinkat(target.c_str(), dirfd, rel.c_str()) == 0 ? 0 : errno;
  });
}

Result<std::pair<Entry, std::unique_ptr<OpenFile>>> Overlay::create(Inode* parent, std::string_view name,
                                                                    mode_t mode, int flags,
                                                                    const Caller& caller) {
  UniqueFd fd;
  int open_flags = (flags & ~(O_CREAT | O_EXCL | O_NOFOLLOW)) | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW;
  // Reads through a write-only handle happen (writeback, mmap): open read-write when we can.
  if ((open_flags & O_ACCMODE) == O_WRONLY) open_flags = (open_flags & ~O_ACCMODE) | O_RDWR;
  std::unique_lock lock(tree_);
  mode = effective_mode(parent, mode, caller);
  struct stat st {};
  auto entry = create_node(
      parent, name, false, &caller, mode,
      [&](int dirfd, const std::string& rel) -> Status {
        fd = UniqueFd(::openat(dirfd, rel.c_str(), open_flags, mode));
        return fd ? 0 : errno;
      },
      &fd, &st);
  if (!entry) return Errno{entry.error()};
  auto file = std::make_unique<OpenFile>();
  file->created_st = st;
  file->current = fd.get();
  file->fd = std::move(fd);
  file->node = entry->node;
  file->flags = open_flags & ~(O_CREAT | O_EXCL);
  file->copyups_seen = entry->node->copyups.load();
  return std::make_pair(*entry, std::move(file));
}

Result<Entry> Overlay::link(Inode* node, Inode* new_parent, std::string_view new_name) {
  if (read_only_) return Errno{EROFS};
  if (node->is_dir()) return Errno{EPERM};
  if (Status s = copy_up(node); s != 0) return Errno{s};
  std::unique_lock lock(tree_);
  auto src = place_of(node, 0);
  if (!src) return Errno{src.error()};
  // A new name of an existing inode keeps its owner: no caller ids to apply.
  auto entry = create_node(new_parent, new_name, false, nullptr, 0, [&](int dirfd, const std::string& rel) -> Status {
    int r = src->name.empty()
                ? ::linkat(AT_FDCWD, path_of(*src).c_str(), dirfd, rel.c_str(), AT_SYMLINK_FOLLOW)
                : ::linkat(src->fd(), src->name.c_str(), dirfd, rel.c_str(), 0);
    return r == 0 ? 0 : errno;
  });
  return entry;
}

Status Overlay::remove_upper_entry(int dirfd, const std::string& name, bool is_dir, bool leave_whiteout) {
  int work = work_fd_.get();
  if (leave_whiteout) {
    // Move the entry out and leave a whiteout in one step, so the lower never shows through.
    std::string tmp = stage_name();
    if (::renameat2(dirfd, name.c_str(), work, tmp.c_str(), RENAME_WHITEOUT) == 0) return remove_tree(work, tmp);
    if (errno != EINVAL && errno != EPERM && errno != EOPNOTSUPP) return errno;
  }
  if (is_dir) {
    if (Status s = remove_tree(dirfd, name); s != 0) return s;
  } else if (::unlinkat(dirfd, name.c_str(), 0) != 0) {
    return errno;
  }
  if (!leave_whiteout) return 0;
  return whiteout_at(dirfd, name);
}

Status Overlay::remove_name_locked(Inode* parent, std::string_view name, const Resolved& found) {
  bool is_dir = S_ISDIR(found.st.st_mode);
  if (Status s = ensure_upper_dir_locked(parent); s != 0) return s;
  LayerDirRef pfd = layer_dir(parent, 0);
  if (!pfd) return errno;
  std::string n(name);

  // The Inode this name shows, if the kernel or an operation knows it: it must outlive the
  // name (open files keep working), so hold its backing file first.
  Inode* victim = nullptr;
  if (auto it = parent->children.find(n); it != parent->children.end()) victim = it->second;
  UniqueFd held;
  bool upper = found.top == 0;
  if (victim) {
    LayerDirRef where = layer_dir(parent, found.top);
    if (where) held = hold_backing(Place{where, n});
  }
  if (upper && !is_dir && !victim && found.st.st_nlink <= 1) forget_origin(found.st.st_ino);

  bool lower = name_in_lowers(parent, name);
  Status s = upper ? remove_upper_entry(pfd->fd(), n, is_dir, lower) : whiteout_at(pfd->fd(), n);
  if (s != 0) return s;
  bump_version();
  if (victim) {
    after_name_removed(victim, parent, name, std::move(held), upper);
    release_if_unused(victim);
  }
  return 0;
}

Status Overlay::unlink(Inode* parent, std::string_view name) {
  if (read_only_) return EROFS;
  std::unique_lock lock(tree_);
  auto found = resolve(parent, name);
  if (!found) return found.error();
  if (S_ISDIR(found->st.st_mode)) return EISDIR;
  if (found->top > 0 && found->st.st_nlink > 1) {
    // The other names must show one link less, as with overlayfs index=on: copy-up links
    // every name to one upper inode, whose count then drops with this name.
    Inode* node = attach(parent, name, *found);
    node->pins++;
    std::vector<Inode*> temp{node};
    Status s = copy_up_locked(node, true);
    release_all(temp);
    if (s != 0) return s;
    found = resolve(parent, name);
    if (!found) return found.error();
  }
  return remove_name_locked(parent, name, *found);
}

Status Overlay::rmdir(Inode* parent, std::string_view name) {
  if (read_only_) return EROFS;
  std::unique_lock lock(tree_);
  auto found = resolve(parent, name);
  if (!found) return found.error();
  if (!S_ISDIR(found->st.st_mode)) return ENOTDIR;
  Inode* dir = attach(parent, name, *found);
  dir->pins++;
  std::vector<Inode*> temp{dir};
  auto empty = merged_dir_empty_locked(dir);
  Status s = !empty ? empty.error() : (!*empty ? ENOTEMPTY : 0);
  if (s == 0) s = remove_name_locked(parent, name, *found);
  release_all(temp);
  return s;
}

}  // namespace strata::fs
