// Copy-up: before anything in a lower layer changes, the overlay builds a full copy in the
// workdir (data, owner, mode, xattrs, times) and renames it into the upper, parents first,
// so no reader ever sees half a file and a crash leaves the old file in place. The rename
// goes between held directory fds with one name each and RENAME_NOREPLACE: nothing on the
// way is resolved, so a symlink planted in the upper cannot redirect it.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <vector>

#include "fs/core/dir_stream.hpp"
#include "fs/core/file_copy.hpp"
#include "fs/core/overlay.hpp"
#include "fs/core/xattr_names.hpp"

namespace strata::fs {

std::string Overlay::stage_name() {
  char buf[48];
  std::snprintf(buf, sizeof buf, "#%x-%llx", unsigned(::getpid()),
                (unsigned long long)stage_counter_.fetch_add(1));
  return buf;
}

Status Overlay::copy_xattrs(const Place& src, const XattrTarget& dst, int src_fd, bool* no_caps) {
  // Through the open source file when there is one: no /proc/self/fd path to resolve.
  auto list = [&](char* names, size_t size) {
    return src_fd >= 0 ? ::flistxattr(src_fd, names, size) : listxattr_at(src, names, size);
  };
  auto get = [&](const char* name, void* value, size_t size) {
    return src_fd >= 0 ? ::fgetxattr(src_fd, name, value, size) : getxattr_at(src, name, value, size);
  };
  ssize_t len = list(nullptr, 0);
  if (len == 0 && no_caps) *no_caps = true;
  if (len <= 0) return 0;
  std::vector<char> names(size_t(len) + 1);
  len = list(names.data(), names.size());
  if (len <= 0) return 0;
  bool caps = false;
  std::vector<char> value(4096);
  for (ssize_t off = 0; off < len;) {
    const char* name = names.data() + off;
    off += ssize_t(std::strlen(name)) + 1;
    // Overlay markers of the lower stay there; the recorded owner and mode move with the file.
    if (is_private_xattr(name) && !is_override_stat_xattr(name)) continue;
    ssize_t n = get(name, value.data(), value.size());
    if (n < 0 && errno == ERANGE) {
      ssize_t need = get(name, nullptr, 0);
      if (need < 0) {
        caps = true;  // unknown: not "none"
        continue;
      }
      value.resize(size_t(need));
      n = get(name, value.data(), value.size());
    }
    if (n < 0) {
      caps = true;
      continue;
    }
    if (dst.set(name, value.data(), size_t(n), 0) != 0) {
      // An unprivileged daemon cannot write trusted.* or security.*: keep what it can.
      if (errno != EPERM && errno != ENOTSUP && errno != EACCES) return errno;
    } else if (std::strcmp(name, "security.capability") == 0) {
      caps = true;
    }
  }
  if (no_caps) *no_caps = !caps;
  return 0;
}

Status Overlay::sync_copied_data(int fd) const {
  CopyupSync how = config_.fsync ? config_.copyup_sync : CopyupSync::Off;
  int r = 0;
  if (how == CopyupSync::Full) r = ::fsync(fd);
  else if (how == CopyupSync::Ordered)
    r = ::sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER);
  return r == 0 ? 0 : errno;
}

Status Overlay::stage_copy(const Place& src, const struct stat& st, const std::string& tmp, bool with_data,
                           bool* no_caps) {
  int work = work_fd_.get();
  mode_t type = st.st_mode & S_IFMT;
  UniqueFd in;  // the source file, when its data was copied from an fd
  switch (type) {
    case S_IFREG: {
      UniqueFd out(::openat(work, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
      if (!out) return errno;
      if (with_data) {
        std::shared_ptr<const LayerFileData> data;
        if (!src.orphan) data = source(src.layer).data(*src.dir, src.name);
        if (data) {
          if (Status s = copy_layer_data(*data, out.get()); s != 0) return s;
          if (Status s = sync_copied_data(out.get()); s != 0) return s;
        } else if (src.orphan) {
          in = UniqueFd(::open(path_of(src).c_str(), O_RDONLY | O_CLOEXEC));
          if (!in) return errno;
        } else {
          auto opened = source(src.layer).open(*src.dir, src.name, 0);
          if (!opened) return opened.error();
          in = std::move(*opened);
        }
        if (!data) {
          if (Status s = copy_file_data(in.get(), out.get(), st, &no_reflink_); s != 0) return s;
          if (Status s = sync_copied_data(out.get()); s != 0) return s;
        }
      }
      break;
    }
    case S_IFDIR:
      if (::mkdirat(work, tmp.c_str(), 0700) != 0) return errno;
      break;
    case S_IFLNK: {
      auto target = readlink_at(src);
      if (!target) return target.error();
      if (::symlinkat(target->c_str(), work, tmp.c_str()) != 0) return errno;
      break;
    }
    default:
      if (::mknodat(work, tmp.c_str(), st.st_mode, st.st_rdev) != 0) return errno;
      break;
  }

  // With xattr_permissions every upper file keeps the daemon's ids and the record holds its
  // owner: a rootless store's user reads, diffs and removes the upper outside the container's
  // user namespace. A layer on disk is stored that way (copy_xattrs moves its record); a lazy
  // layer's entries carry the image's owners: record those rather than chown the copy to them.
  const bool record_owner = config_.xattr_permissions != XattrPermissions::Off && !src.orphan && src.fd() < 0;
  // chown clears set-id bits and capabilities: owner first, then mode, then xattrs.
  if (!record_owner && ::fchownat(work, tmp.c_str(), st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) != 0 && privileged_ &&
      errno != EINVAL)
    return errno;
  // The recorded copy stays readable (a directory also writable and searchable) by the
  // store's user, as unpacking and create keep rootless files: commit reads it, rm empties it.
  const mode_t usable = record_owner ? (type == S_IFDIR ? 0700 : 0600) : 0;
  if (type != S_IFLNK && ::fchmodat(work, tmp.c_str(), (st.st_mode & 07777) | usable, 0) != 0) return errno;
  if (record_owner) {
    // user.* xattrs are for regular files and directories only: a symlink's or a FIFO's owner
    // is not recorded (as setattr and unpacking have it), the copy is still made.
    Status s = write_override(XattrTarget{fd_path(work, tmp), false}, st.st_uid, st.st_gid, st.st_mode);
    if (s != 0 && !(type != S_IFREG && type != S_IFDIR && (s == EPERM || s == ENOTSUP))) return s;
  }
  if (Status s = copy_xattrs(src, XattrTarget{fd_path(work, tmp), false}, in ? in.get() : -1, no_caps); s != 0)
    return s;
  struct timespec times[2] = {st.st_atim, st.st_mtim};
  if (::utimensat(work, tmp.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0) return errno;
  return 0;
}

namespace {

// Copy-up is invisible: like overlayfs, put back the upper parent's times that adding the
// copied entry changed.
class KeepDirTimes {
 public:
  explicit KeepDirTimes(int dir_fd) : dir_fd_(dir_fd) { saved_ = ::fstat(dir_fd_, &st_) == 0; }
  ~KeepDirTimes() {
    if (!saved_) return;
    struct timespec times[2] = {st_.st_atim, st_.st_mtim};
    // On the O_PATH fd itself where the kernel allows it (AT_EMPTY_PATH), else through /proc.
    if (::utimensat(dir_fd_, "", times, AT_EMPTY_PATH) != 0) ::utimensat(AT_FDCWD, fd_path(dir_fd_).c_str(), times, 0);
  }
  KeepDirTimes(const KeepDirTimes&) = delete;
  KeepDirTimes& operator=(const KeepDirTimes&) = delete;

 private:
  int dir_fd_;
  struct stat st_ {};
  bool saved_ = false;
};

}  // namespace

Status Overlay::ensure_upper_dir_locked(Inode* dir) {
  // The ancestors lacking an upper directory, nearest first; made from the top down.
  std::vector<Inode*> chain;
  for (Inode* n = dir; n != root_ && n->top.load() != 0;) {
    const Alias* a = n->first_alias();
    if (!a) return ENOENT;
    chain.push_back(n);
    n = a->parent;
  }
  for (auto it = chain.rbegin(); it != chain.rend(); ++it)
    if (Status s = copy_up_locked(*it, false); s != 0) return s;
  return 0;
}

Status Overlay::publish_copy(Inode* node, const std::string& tmp, const struct stat& src_st, int src_layer) {
  int work = work_fd_.get();
  struct stat ust {};
  if (const Alias* a = node->first_alias()) {
    Inode* parent = a->parent;
    std::string name = a->name;
    if (Status s = ensure_upper_dir_locked(parent); s != 0) return s;
    LayerDirRef pfd = layer_dir(parent, 0);
    if (!pfd) return errno;
    {
      KeepDirTimes keep(pfd->fd());
      if (::renameat2(work, tmp.c_str(), pfd->fd(), name.c_str(), RENAME_NOREPLACE) != 0) {
        int err = errno;
        // A directory already there (made beside the mount, or left by a crash between
        // steps) is the upper directory: keep it.
        struct stat est {};
        if (!(err == EEXIST && node->is_dir() && ::fstatat(pfd->fd(), name.c_str(), &est, AT_SYMLINK_NOFOLLOW) == 0 &&
              S_ISDIR(est.st_mode)))
          return err;
        ::unlinkat(work, tmp.c_str(), AT_REMOVEDIR);
      }
    }
    if (::fstatat(pfd->fd(), name.c_str(), &ust, AT_SYMLINK_NOFOLLOW) != 0) return errno;
  } else {
    // No name is left (the file was removed while open): the copy stays anonymous, held
    // open by the Inode, as the kernel copies up a disconnected file into its workdir.
    UniqueFd fd(::openat(work, tmp.c_str(), (node->is_reg() ? O_RDWR : O_PATH) | O_NOFOLLOW | O_CLOEXEC));
    if (!fd) return errno;
    ::unlinkat(work, tmp.c_str(), node->is_dir() ? AT_REMOVEDIR : 0);
    if (::fstat(fd.get(), &ust) != 0) return errno;
    node->orphan = std::move(fd);
  }
  if (!S_ISDIR(src_st.st_mode) && src_st.st_nlink > 1 && layers_.has_upper() && src_layer >= layers_.first_lower())
    link_other_names_locked(node, src_layer, src_st);
  record_origin(ust.st_ino, node->ino);
  if (node->keyed || !node->aliases.empty()) set_key(node, InodeKey{ust.st_dev, ust.st_ino});
  if (node->is_dir()) node->dir_layers.insert(node->dir_layers.begin(), 0);
  node->top.store(0);
  node->copyups.fetch_add(1);
  bump_version();
  return 0;
}

Status Overlay::copy_up_locked(Inode* node, bool with_data) {
  if (read_only_) return EROFS;
  int layer = node->top.load();
  if (layer == 0) return 0;
  auto place = place_of(node, layer);
  if (!place) return place.error();
  auto st = stat_at(*place);
  if (!st) return st.error();
  std::string tmp = stage_name();
  // Other names of a hardlinked file keep their content: never skip its data.
  bool keep_data = with_data || (S_ISREG(st->st_mode) && st->st_nlink > 1);
  bool no_caps = false;
  Status s = stage_copy(*place, *st, tmp, keep_data, &no_caps);
  if (s == 0) s = publish_copy(node, tmp, *st, layer);
  if (s == 0 && no_caps && !node->is_dir()) node->created_without_caps.store(true, std::memory_order_release);
  if (s != 0) ::unlinkat(work_fd_.get(), tmp.c_str(), S_ISDIR(st->st_mode) ? AT_REMOVEDIR : 0);
  return s;
}

Status Overlay::copy_up(Inode* node, bool with_data) {
  if (read_only_) return EROFS;
  if (node->top.load() == 0) return 0;
  if (node->is_dir()) {
    std::unique_lock lock(tree_);
    if (Status s = ensure_upper_dir_locked(node); s != 0) return s;
    return 0;
  }
  std::lock_guard copying(node->copy_mutex);
  if (node->top.load() == 0) return 0;

  // Find the source under the shared lock, then copy without it: a lower layer never
  // changes and the held directory fd keeps the source's directory, so nothing blocks the tree
  // while the data moves.
  std::string tmp = stage_name();
  struct stat st {};
  int layer;
  Place place;
  {
    std::shared_lock lock(tree_);
    layer = node->top.load();
    if (layer == 0) return 0;
    auto found = place_of(node, layer);
    if (!found) return found.error();
    auto lst = stat_at(*found);
    if (!lst) return lst.error();
    st = *lst;
    place = std::move(*found);
  }
  bool keep_data = with_data || (S_ISREG(st.st_mode) && st.st_nlink > 1);
  bool no_caps = false;
  Status s = stage_copy(place, st, tmp, keep_data, &no_caps);
  if (s == 0 && config_.copy_up_staged) config_.copy_up_staged();
  bool published = false;
  if (s == 0) {
    std::unique_lock lock(tree_);
    // The names may have moved meanwhile, and an operation holding the tree lock (unlink or
    // rename of another name of a hardlink) may have copied the file up itself.
    if (node->top.load() != 0) {
      s = publish_copy(node, tmp, st, layer);
      published = s == 0;
      // The copy has no capability unless one was copied: the kernel's GETXATTR before the
      // first write through it needs no syscall.
      if (published && no_caps) node->created_without_caps.store(true, std::memory_order_release);
    }
  }
  if (!published) ::unlinkat(work_fd_.get(), tmp.c_str(), 0);
  return s;
}

void Overlay::link_other_names_locked(Inode* node, int layer, const struct stat& lower_st) {
  const Alias* first = node->first_alias();
  if (!first) return;
  Inode* src_parent = first->parent;
  std::string src_name = first->name;
  LayerDirRef src_dir = layer_dir(src_parent, 0);
  if (!src_dir) return;
  const Layer& l = layers_[size_t(layer)];
  std::vector<Inode*> temp;
  nlink_t visible = 1;
  for (const std::string& other : hardlinks_[size_t(layer)]->names_of(source(layer), l.dev, lower_st.st_ino)) {
    auto slash = other.rfind('/');
    std::string base = slash == std::string::npos ? other : other.substr(slash + 1);
    Inode* parent = root_;
    if (slash != std::string::npos) {
      auto dir = walk_locked(other.substr(0, slash), temp);
      if (!dir || !dir->first->is_dir()) continue;
      parent = dir->first;
    }
    if (parent == src_parent && base == src_name) continue;
    // Only names the merged view still shows as this very file (the Inode still has the
    // lower key, so attach finds it).
    auto found = resolve(parent, base);
    if (!found || found->top != layer || found->st.st_ino != lower_st.st_ino) continue;
    if (attach(parent, base, *found) != node) continue;
    if (ensure_upper_dir_locked(parent) != 0) continue;
    LayerDirRef pfd = layer_dir(parent, 0);
    if (!pfd) continue;
    KeepDirTimes keep(pfd->fd());
    if (::linkat(src_dir->fd(), src_name.c_str(), pfd->fd(), base.c_str(), 0) == 0) ++visible;
  }
  release_all(temp);
  if (lower_st.st_nlink > visible) {
    struct stat ust {};
    if (::fstatat(src_dir->fd(), src_name.c_str(), &ust, AT_SYMLINK_NOFOLLOW) == 0)
      hidden_links_.add(src_dir->fd(), src_name, ust.st_ino, unsigned(lower_st.st_nlink - visible));
  }
}

Status Overlay::complete_upper_tree_locked(Inode* dir) {
  if (Status s = ensure_upper_dir_locked(dir); s != 0) return s;
  if (dir->dir_layers.size() <= 1) return 0;  // nothing below it
  auto entries = merged_entries(dir, dir->dir_layers, 0, 0);
  if (!entries) return entries.error();
  std::vector<Inode*> temp;
  Status result = 0;
  for (const DirEntry& e : *entries) {
    if (e.name == "." || e.name == "..") continue;
    bool lower_dir = e.type == DT_DIR;
    if (e.layer == 0 && !lower_dir) continue;  // already in the upper
    auto found = resolve(dir, e.name);
    if (!found) continue;  // gone meanwhile
    Inode* child = attach(dir, e.name, *found);
    child->pins++;
    temp.push_back(child);
    Status s = child->is_dir() ? complete_upper_tree_locked(child) : copy_up_locked(child, true);
    if (s != 0) {
      result = s;
      break;
    }
  }
  release_all(temp);
  if (result != 0) return result;

  // Everything the directory shows is in the upper now: it needs nothing from below, and
  // its whiteouts hide nothing. Each step leaves the same view, should the daemon die.
  auto place = place_of(dir, 0);
  if (!place) return place.error();
  if (dir != root_) {
    if (Status s = mark_opaque(place->fd(), place->name, whiteout_style()); s != 0) return s;
  }
  if (LayerDirRef self = layer_dir(dir, 0)) {
    std::vector<std::string> whiteouts;
    DirStream list(self->fd(), ".");
    while (struct dirent* de = list.ok() ? list.next() : nullptr) {
      std::string_view hidden;
      struct stat st {};
      if (parse_whiteout_name(de->d_name, hidden) ||
          ((de->d_type == DT_CHR || de->d_type == DT_UNKNOWN) &&
           ::fstatat(self->fd(), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && is_whiteout_device(st)))
        whiteouts.emplace_back(de->d_name);
    }
    for (const auto& w : whiteouts) ::unlinkat(self->fd(), w.c_str(), 0);
  }
  dir->dir_layers = {0};
  dir->opaque = true;
  bump_version();
  return 0;
}

}  // namespace strata::fs
