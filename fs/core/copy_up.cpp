// Copy-up: before anything in a lower layer changes, the overlay builds a full copy in the
// workdir (data, owner, mode, xattrs, times) and renames it into the upper, parents first,
// so no reader ever sees half a file and a crash leaves the old file in place.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

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

Status Overlay::copy_xattrs(const std::string& src_abs, const std::string& dst_abs) {
  ssize_t len = ::llistxattr(src_abs.c_str(), nullptr, 0);
  if (len <= 0) return 0;
  std::vector<char> names(size_t(len) + 1);
  len = ::llistxattr(src_abs.c_str(), names.data(), names.size());
  if (len <= 0) return 0;
  std::vector<char> value(4096);
  for (ssize_t off = 0; off < len;) {
    const char* name = names.data() + off;
    off += ssize_t(std::strlen(name)) + 1;
    // Overlay markers of the lower stay there; override_stat moves with the file.
    if (is_private_xattr(name) && std::strcmp(name, kOverrideStat) != 0) continue;
    ssize_t n = ::lgetxattr(src_abs.c_str(), name, value.data(), value.size());
    if (n < 0 && errno == ERANGE) {
      ssize_t need = ::lgetxattr(src_abs.c_str(), name, nullptr, 0);
      if (need < 0) continue;
      value.resize(size_t(need));
      n = ::lgetxattr(src_abs.c_str(), name, value.data(), value.size());
    }
    if (n < 0) continue;
    if (::lsetxattr(dst_abs.c_str(), name, value.data(), size_t(n), 0) != 0) {
      // An unprivileged daemon cannot write trusted.* or security.*: keep what it can.
      if (errno != EPERM && errno != ENOTSUP && errno != EACCES) return errno;
    }
  }
  return 0;
}

Status Overlay::sync_copied_data(int fd) const {
  CopyupSync how = opts_.fsync ? opts_.copyup_sync : CopyupSync::Off;
  int r = 0;
  if (how == CopyupSync::Full) r = ::fsync(fd);
  else if (how == CopyupSync::Ordered)
    r = ::sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER);
  return r == 0 ? 0 : errno;
}

Status Overlay::copy_entry(int layer, const std::string& src, int dst_dirfd, const std::string& dst,
                           const struct stat& st, bool with_data) {
  int src_root = layers_[size_t(layer)].root.get();
  std::string src_abs = abs_path(layer, src);
  std::string dst_abs = "/proc/self/fd/" + std::to_string(dst_dirfd) + "/" + dst;
  mode_t type = st.st_mode & S_IFMT;
  UniqueFd out;

  switch (type) {
    case S_IFREG: {
      out = UniqueFd(::openat(dst_dirfd, dst.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
      if (!out) return errno;
      if (with_data) {
        UniqueFd in(::openat(src_root, src.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC));
        if (!in) return errno;
        if (Status s = copy_file_data(in.get(), out.get(), st.st_size); s != 0) return s;
        if (Status s = sync_copied_data(out.get()); s != 0) return s;
      }
      break;
    }
    case S_IFDIR:
      if (::mkdirat(dst_dirfd, dst.c_str(), 0700) != 0) return errno;
      break;
    case S_IFLNK: {
      char target[PATH_MAX];
      ssize_t n = ::readlinkat(src_root, src.c_str(), target, sizeof target - 1);
      if (n < 0) return errno;
      target[n] = '\0';
      if (::symlinkat(target, dst_dirfd, dst.c_str()) != 0) return errno;
      break;
    }
    default:
      if (::mknodat(dst_dirfd, dst.c_str(), st.st_mode, st.st_rdev) != 0) return errno;
      break;
  }

  // chown clears set-id bits and capabilities: owner first, then mode, then xattrs.
  if (::fchownat(dst_dirfd, dst.c_str(), st.st_uid, st.st_gid, AT_SYMLINK_NOFOLLOW) != 0 &&
      privileged_ && errno != EINVAL)
    return errno;
  if (type != S_IFLNK && ::fchmodat(dst_dirfd, dst.c_str(), st.st_mode & 07777, 0) != 0) return errno;
  if (Status s = copy_xattrs(src_abs, dst_abs); s != 0) return s;
  struct timespec times[2] = {st.st_atim, st.st_mtim};
  if (::utimensat(dst_dirfd, dst.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0) return errno;
  return 0;
}

namespace {

// Copy-up is invisible: like overlayfs, put back the upper parent's times that adding the
// copied entry changed.
class KeepParentTimes {
 public:
  KeepParentTimes(int upper_fd, const std::string& child_path) : upper_fd_(upper_fd) {
    auto slash = child_path.rfind('/');
    parent_ = slash == std::string::npos ? "." : child_path.substr(0, slash);
    saved_ = ::fstatat(upper_fd_, parent_.c_str(), &st_, AT_SYMLINK_NOFOLLOW) == 0;
  }
  ~KeepParentTimes() {
    if (!saved_) return;
    struct timespec times[2] = {st_.st_atim, st_.st_mtim};
    ::utimensat(upper_fd_, parent_.c_str(), times, AT_SYMLINK_NOFOLLOW);
  }
  KeepParentTimes(const KeepParentTimes&) = delete;
  KeepParentTimes& operator=(const KeepParentTimes&) = delete;

 private:
  int upper_fd_;
  std::string parent_;
  struct stat st_ {};
  bool saved_ = false;
};

}  // namespace

Result<Overlay::Resolved> Overlay::resolve_path(const std::string& path) {
  std::vector<int> layers;
  for (size_t i = 0; i < layers_.size(); ++i) layers.push_back(int(i));
  std::string dir = ".";
  size_t start = 0;
  for (;;) {
    size_t slash = path.find('/', start);
    std::string name = path.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    auto found = resolve_in(layers, dir, name);
    if (!found || slash == std::string::npos) return found;
    if (!S_ISDIR(found->st.st_mode)) return Errno{ENOTDIR};
    layers = found->dir_layers;
    dir = join_path(dir, name);
    start = slash + 1;
  }
}

Node* Overlay::find_node(const std::string& path) {
  Node* n = root_;
  size_t start = 0;
  while (n && start <= path.size()) {
    size_t slash = path.find('/', start);
    auto it = n->children.find(path.substr(start, slash == std::string::npos ? std::string::npos : slash - start));
    n = it == n->children.end() ? nullptr : it->second;
    if (slash == std::string::npos) break;
    start = slash + 1;
  }
  return n;
}

void Overlay::mark_copied_up(const std::string& path) {
  std::unique_lock lock(tree_);
  Node* n = find_node(path);
  if (!n || n->top.load() == 0) return;
  if (n->is_dir()) n->dir_layers.insert(n->dir_layers.begin(), 0);
  n->top.store(0);
  n->copyups.fetch_add(1);
}

Status Overlay::ensure_upper_path(const std::string& dir_path) {
  if (dir_path == ".") return 0;
  int upper = layers_.upper_fd();
  struct stat st {};
  if (::fstatat(upper, dir_path.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) return S_ISDIR(st.st_mode) ? 0 : ENOTDIR;
  auto slash = dir_path.rfind('/');
  if (Status s = ensure_upper_path(slash == std::string::npos ? "." : dir_path.substr(0, slash)); s != 0) return s;
  auto found = resolve_path(dir_path);
  if (!found) return found.error();
  std::string tmp = stage_name();
  Status s = copy_entry(found->top, dir_path, work_fd_.get(), tmp, found->st, false);
  {
    KeepParentTimes keep(upper, dir_path);
    if (s == 0 && ::renameat2(work_fd_.get(), tmp.c_str(), upper, dir_path.c_str(), RENAME_NOREPLACE) != 0)
      s = errno;
  }
  if (s != 0) {
    ::unlinkat(work_fd_.get(), tmp.c_str(), AT_REMOVEDIR);
    return s == EEXIST ? 0 : s;
  }
  struct stat ust {};
  if (::fstatat(upper, dir_path.c_str(), &ust, AT_SYMLINK_NOFOLLOW) == 0)
    record_origin(ust, ino_for(found->top, found->st));
  mark_copied_up(dir_path);
  return 0;
}

void Overlay::link_other_names(int layer, const struct stat& st, const std::string& path, uint64_t ino) {
  const Layer& l = layers_[size_t(layer)];
  int upper = layers_.upper_fd();
  for (const std::string& other : hardlinks_[size_t(layer)]->names_of(l.root.get(), l.dev, st.st_ino)) {
    if (other == path) continue;
    // Only names the merged view still shows as this very file.
    auto found = resolve_path(other);
    if (!found || found->top != layer || found->st.st_ino != st.st_ino) continue;
    auto slash = other.rfind('/');
    if (ensure_upper_path(slash == std::string::npos ? "." : other.substr(0, slash)) != 0) continue;
    {
      KeepParentTimes keep(upper, other);
      if (::linkat(upper, path.c_str(), upper, other.c_str(), 0) != 0) continue;
    }
    struct stat ust {};
    if (::fstatat(upper, other.c_str(), &ust, AT_SYMLINK_NOFOLLOW) == 0) record_origin(ust, ino);
    mark_copied_up(other);
  }
}

Status Overlay::ensure_upper_dir(Node* dir) {
  if (dir == root_ || dir->top.load() == 0) return 0;
  return copy_up(dir, true);
}

Status Overlay::copy_up(Node* node, bool with_data) {
  if (read_only_) return EROFS;
  if (node->top.load() == 0) return 0;
  Node* parent;
  {
    std::shared_lock lock(tree_);
    parent = node->parent;
  }
  if (!parent) return ENOENT;
  if (Status s = ensure_upper_dir(parent); s != 0) return s;

  std::lock_guard lock(node->mutex);
  if (node->top.load() == 0) return 0;
  auto path = path_of(node);
  if (!path) return path.error();
  return copy_up_locked(node, *path, with_data);
}

Status Overlay::copy_up_locked(Node* node, const std::string& path, bool with_data) {
  int layer = node->top.load();
  int upper = layers_.upper_fd();
  struct stat st {};
  if (::fstatat(layers_[size_t(layer)].root.get(), path.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0)
    return errno;

  std::string tmp = stage_name();
  // Other names of a hardlinked file keep their content: never skip its data.
  bool keep_data = with_data || (S_ISREG(st.st_mode) && st.st_nlink > 1);
  Status s = copy_entry(layer, path, work_fd_.get(), tmp, st, keep_data);
  {
    KeepParentTimes keep(upper, path);
    // NOREPLACE: a hardlinked file may already have been linked here through another name.
    if (s == 0 && ::renameat2(work_fd_.get(), tmp.c_str(), upper, path.c_str(), RENAME_NOREPLACE) != 0)
      s = errno;
  }
  if (s != 0) {
    ::unlinkat(work_fd_.get(), tmp.c_str(), S_ISDIR(st.st_mode) ? AT_REMOVEDIR : 0);
    if (s != EEXIST) return s;
  } else if (S_ISREG(st.st_mode) && st.st_nlink > 1 && layer >= layers_.first_lower()) {
    link_other_names(layer, st, path, node->ino);
  }

  struct stat ust {};
  if (::fstatat(upper, path.c_str(), &ust, AT_SYMLINK_NOFOLLOW) == 0) record_origin(ust, node->ino);
  if (node->is_dir()) {
    std::unique_lock lock(tree_);
    node->dir_layers.insert(node->dir_layers.begin(), 0);
  }
  node->top.store(0);
  node->copyups.fetch_add(1);
  return 0;
}

}  // namespace strata::fs
