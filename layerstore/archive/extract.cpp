#include "layerstore/archive/extract.hpp"

#include "common/overlay_xattrs.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "layerstore/archive/archive_error.hpp"
#include "layerstore/archive/fs_util.hpp"
#include "layerstore/archive/safe_path.hpp"
#include "layerstore/error.hpp"

namespace strata {

namespace {
constexpr size_t kMaxPath = 4096;

std::string proc_path(int dirfd, const std::string& base) {
  return "/proc/self/fd/" + std::to_string(dirfd) + "/" + base;
}

// Overlay xattrs inside a layer would let an image forge redirects or opaque dirs in the
// mount; Docker drops them too.
bool forbidden_xattr(const char* name) { return strata::is_private_xattr(name); }
}  // namespace

LayerExtractor::LayerExtractor(int diff_dirfd, WhiteoutStyle style, WarnFn warn)
    : root_(diff_dirfd), style_(std::move(style)), warn_(std::move(warn)), buf_(1 << 20) {}

void LayerExtractor::extract_all(archive* a, const std::function<void(archive_entry*)>& check) {
  archive_entry* e;
  for (;;) {
    int r = archive_read_next_header(a, &e);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) throw Error("invalid tar: " + archive_error_text(a));
    if (check) check(e);
    extract_entry(a, e);
  }
  finish_directories();
}

int LayerExtractor::parent_fd(const std::string& parent, const std::string& entry) {
  if (cached_fd_ && cached_parent_ == parent) return cached_fd_.get();
  cached_fd_.reset();
  int err = 0;
  UniqueFd fd = open_beneath(root_, parent, O_PATH | O_DIRECTORY, 0, err);
  if (!fd && err == ENOENT) {
    make_parents(parent, entry);
    fd = open_beneath(root_, parent, O_PATH | O_DIRECTORY, 0, err);
  }
  if (!fd) {
    if (err == EXDEV || err == ELOOP)
      throw Error("entry \"" + entry + "\" escapes the layer through a symlinked parent");
    if (err == ENOTDIR) throw Error("entry \"" + entry + "\": a parent is not a directory");
    throw SysError("entry \"" + entry + "\": open parent", err);
  }
  cached_parent_ = parent;
  cached_fd_ = std::move(fd);
  return cached_fd_.get();
}

// Missing parents are created 0755 root-owned, as Docker does for tars that omit them.
void LayerExtractor::make_parents(const std::string& parent, const std::string& entry) {
  size_t pos = 0;
  while (pos <= parent.size()) {
    size_t slash = parent.find('/', pos);
    if (slash == std::string::npos) slash = parent.size();
    std::string prefix = parent.substr(0, slash);
    auto [pp, base] = split_parent(prefix);
    int err = 0;
    UniqueFd pfd = open_beneath(root_, pp, O_PATH | O_DIRECTORY, 0, err);
    if (!pfd) {
      if (err == EXDEV || err == ELOOP)
        throw Error("entry \"" + entry + "\" escapes the layer through a symlinked parent");
      throw SysError("entry \"" + entry + "\": open parent", err);
    }
    if (mkdirat(pfd.get(), base.c_str(), 0755) == 0) {
      if (style_.override_stat) mark_root_owned(proc_path(pfd.get(), base), entry);
    } else if (errno != EEXIST) {
      throw_errno("entry \"" + entry + "\": mkdir " + prefix);
    }
    pos = slash + 1;
  }
}

void LayerExtractor::clear_existing(int pfd, const std::string& base, bool keep_dir, const std::string& entry) {
  struct stat st;
  if (fstatat(pfd, base.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return;
  if (keep_dir && S_ISDIR(st.st_mode)) return;
  remove_tree_at(pfd, base, entry);
}

void LayerExtractor::extract_entry(archive* a, archive_entry* e) {
  const char* raw = archive_entry_pathname(e);
  std::string name = raw ? raw : "";
  if (name.size() > kMaxPath) throw Error("entry name longer than " + std::to_string(kMaxPath) + " bytes");
  std::string path = clean_entry_path(name);
  stats_.entries++;
  mode_t type = archive_entry_filetype(e);
  const char* hardlink = archive_entry_hardlink(e);
  bool is_dir = type == AE_IFDIR && !hardlink;
  if (path.empty()) {
    // "./": the layer root itself. Keep the diff dir's own mode (0755), like Docker.
    return;
  }
  if (!seen_.insert(path).second && !(is_dir && dirs_.count(path)))
    throw Error("duplicate entry \"" + path + "\" in layer");
  if (is_dir) dirs_.insert(path);

  auto [parent, base] = split_parent(path);
  WhiteoutName wh = classify_whiteout(base);
  if (wh.kind == WhiteoutKind::AufsMeta) return;
  if (wh.kind == WhiteoutKind::Opaque || wh.kind == WhiteoutKind::Whiteout) {
    int err = 0;
    UniqueFd probe = open_beneath(root_, parent, O_PATH | O_DIRECTORY | O_NOFOLLOW, 0, err);
    if (!probe && (err == ENOTDIR || err == ELOOP || err == EXDEV)) {
      // umoci writes "a/link/.wh.x" after turning a/link into a symlink: the marker is
      // meaningless there (the symlink already hides a/link), so skip it, never follow it.
      warn_("skipping whiteout \"" + path + "\": its parent is not a directory in this layer");
      stats_.skipped_whiteouts++;
      return;
    }
    int pfd = parent_fd(parent, path);
    if (wh.kind == WhiteoutKind::Opaque) {
      UniqueFd dfd(openat(pfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
      if (!dfd || fsetxattr(dfd.get(), style_.opaque_xattr.c_str(), "y", 1, 0) != 0)
        throw_errno("entry \"" + path + "\": set " + style_.opaque_xattr);
    } else {
      write_whiteout(pfd, parent, wh.target, path);
    }
    return;
  }

  int pfd = parent_fd(parent, path);
  if (hardlink) {
    std::string target = clean_entry_path(hardlink);
    if (target.empty()) throw Error("hardlink \"" + path + "\" points at the layer root");
    auto [tparent, tbase] = split_parent(target);
    int err = 0;
    UniqueFd tpfd = open_beneath(root_, tparent, O_PATH | O_DIRECTORY, 0, err);
    if (!tpfd) {
      if (err == EXDEV || err == ELOOP) throw Error("hardlink \"" + path + "\" points outside the layer");
      throw SysError("hardlink \"" + path + "\" -> \"" + target + "\"", err);
    }
    clear_existing(pfd, base, false, path);
    if (linkat(tpfd.get(), tbase.c_str(), pfd, base.c_str(), 0) != 0)
      throw_errno("hardlink \"" + path + "\" -> \"" + target + "\"");
    return;
  }
  clear_existing(pfd, base, is_dir, path);
  switch (type) {
    case AE_IFREG:
      write_file(a, pfd, base, e, path);
      return;
    case AE_IFDIR: {
      if (mkdirat(pfd, base.c_str(), 0700) != 0 && errno != EEXIST) throw_errno("mkdir \"" + path + "\"");
      UniqueFd dfd(openat(pfd, base.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!dfd) throw_errno("open \"" + path + "\"");
      apply_metadata(pfd, base, e, dfd.get(), path);
      struct timespec mt{archive_entry_mtime(e), archive_entry_mtime_nsec(e)};
      dir_times_.emplace_back(path, mt);
      return;
    }
    case AE_IFLNK: {
      const char* target = archive_entry_symlink(e);
      if (symlinkat(target ? target : "", pfd, base.c_str()) != 0) throw_errno("symlink \"" + path + "\"");
      apply_metadata(pfd, base, e, -1, path);
      return;
    }
    case AE_IFCHR:
    case AE_IFBLK:
    case AE_IFIFO: {
      dev_t dev = makedev(archive_entry_rdevmajor(e), archive_entry_rdevminor(e));
      mode_t m = (type == AE_IFCHR ? S_IFCHR : type == AE_IFBLK ? S_IFBLK : S_IFIFO) | 0600;
      if (mknodat(pfd, base.c_str(), m, dev) != 0) {
        if ((errno == EPERM || errno == EACCES) && type != AE_IFIFO && geteuid() != 0) {
          warn_("skipping device node \"" + path + "\": mknod not permitted");
          stats_.skipped_devices++;
          return;
        }
        throw_errno("mknod \"" + path + "\"");
      }
      apply_metadata(pfd, base, e, -1, path);
      return;
    }
    default:
      warn_("skipping \"" + path + "\": unsupported entry type (socket)");
      return;
  }
}

void LayerExtractor::write_whiteout(int pfd, const std::string& parent, const std::string& target,
                                    const std::string& entry) {
  (void)parent;
  clear_existing(pfd, target, false, entry);
  if (style_.char_device) {
    if (mknodat(pfd, target.c_str(), S_IFCHR | 0000, makedev(0, 0)) != 0)
      throw_errno("whiteout \"" + entry + "\": mknod");
    return;
  }
  std::string name = std::string(kWhiteoutPrefix) + target;
  UniqueFd fd(openat(pfd, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0000));
  if (!fd && errno != EEXIST) throw_errno("whiteout \"" + entry + "\": create");
}

void LayerExtractor::write_file(archive* a, int pfd, const std::string& base, archive_entry* e,
                                const std::string& entry) {
  UniqueFd fd(openat(pfd, base.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!fd) throw_errno("create \"" + entry + "\"");
  const void* block;
  size_t size;
  la_int64_t offset;
  int64_t written = 0;
  for (;;) {
    int r = archive_read_data_block(a, &block, &size, &offset);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) throw Error("read \"" + entry + "\": " + archive_error_text(a));
    const char* p = static_cast<const char*>(block);
    while (size > 0) {
      ssize_t n = pwrite(fd.get(), p, size, offset);
      if (n < 0) throw_errno("write \"" + entry + "\"");
      p += n;
      size -= n;
      offset += n;
      written += n;
    }
  }
  int64_t want = archive_entry_size(e);
  if (written != want && ftruncate(fd.get(), want) != 0) throw_errno("truncate \"" + entry + "\"");
  stats_.content_bytes += static_cast<uint64_t>(want);
  apply_metadata(pfd, base, e, fd.get(), entry);
}

void LayerExtractor::apply_xattrs(int pfd, const std::string& base, archive_entry* e, int fd,
                                  const std::string& entry) {
  const char* name;
  const void* value;
  size_t size;
  archive_entry_xattr_reset(e);
  while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK) {
    if (forbidden_xattr(name)) {
      warn_("dropping xattr " + std::string(name) + " on \"" + entry + "\"");
      continue;
    }
    int r = fd >= 0 ? fsetxattr(fd, name, value, size, 0)
                    : lsetxattr(proc_path(pfd, base).c_str(), name, value, size, 0);
    if (r != 0) {
      if (errno == ENOTSUP || errno == EPERM) {
        warn_("cannot set xattr " + std::string(name) + " on \"" + entry + "\"");
        continue;
      }
      throw_errno("setxattr " + std::string(name) + " on \"" + entry + "\"");
    }
  }
}

void LayerExtractor::apply_metadata(int pfd, const std::string& base, archive_entry* e, int fd,
                                    const std::string& entry) {
  mode_t type = archive_entry_filetype(e);
  uid_t uid = static_cast<uid_t>(archive_entry_uid(e));
  gid_t gid = static_cast<gid_t>(archive_entry_gid(e));
  mode_t perm = archive_entry_perm(e) & 07777;
  bool owned = (fd >= 0 ? fchown(fd, uid, gid) : fchownat(pfd, base.c_str(), uid, gid, AT_SYMLINK_NOFOLLOW)) == 0;
  if (!owned && !style_.override_stat) throw_errno("chown \"" + entry + "\"");
  apply_xattrs(pfd, base, e, fd, entry);
  if (type != AE_IFLNK) {
    mode_t real = perm;
    if (style_.override_stat) real |= (type == AE_IFDIR ? 0700 : 0600);  // keep it readable by us
    if (style_.override_stat && (!owned || real != perm)) {
      // Rootless: the true owner and mode live in an xattr strata-fs reads (xattr_permissions=2).
      char v[64];
      snprintf(v, sizeof v, "%u:%u:0%o", uid, gid, perm);
      int r = fd >= 0 ? fsetxattr(fd, "user.containers.override_stat", v, strlen(v), 0)
                      : lsetxattr(proc_path(pfd, base).c_str(), "user.containers.override_stat", v, strlen(v), 0);
      if (r != 0 && errno != ENOTSUP && errno != EPERM) throw_errno("set override_stat on \"" + entry + "\"");
    }
    int r = fd >= 0 ? fchmod(fd, real) : fchmodat(pfd, base.c_str(), real, 0);
    if (r != 0) throw_errno("chmod \"" + entry + "\"");
  }
  if (type != AE_IFDIR) {
    struct timespec ts[2];
    ts[1] = {archive_entry_mtime(e), archive_entry_mtime_is_set(e) ? archive_entry_mtime_nsec(e) : 0};
    ts[0] = archive_entry_atime_is_set(e) ? timespec{archive_entry_atime(e), archive_entry_atime_nsec(e)} : ts[1];
    int r = fd >= 0 ? futimens(fd, ts) : utimensat(pfd, base.c_str(), ts, AT_SYMLINK_NOFOLLOW);
    if (r != 0) throw_errno("set times on \"" + entry + "\"");
  }
}

// Directory mtimes change as entries are added, so they are set last, deepest first.
// Rootless, a directory the extractor creates itself belongs to the user: record that the
// image means it root-owned 0755 (read by strata-fs with xattr_permissions=2).
void LayerExtractor::mark_root_owned(const std::string& path, const std::string& entry) {
  static constexpr char kRootDir[] = "0:0:0755";
  if (lsetxattr(path.c_str(), "user.containers.override_stat", kRootDir, sizeof kRootDir - 1, XATTR_CREATE) != 0 &&
      errno != EEXIST && errno != ENOTSUP && errno != EPERM)
    throw_errno("set override_stat on \"" + entry + "\"");
}

void LayerExtractor::finish_directories() {
  cached_fd_.reset();
  // The layer root is the store's own dir; the image means it root-owned, as Docker makes it.
  if (style_.override_stat) mark_root_owned("/proc/self/fd/" + std::to_string(root_) + "/.", ".");
  for (auto it = dir_times_.rbegin(); it != dir_times_.rend(); ++it) {
    int err = 0;
    UniqueFd fd = open_beneath(root_, it->first, O_RDONLY | O_DIRECTORY | O_NOFOLLOW, 0, err);
    if (!fd) continue;  // replaced by a later entry
    struct timespec ts[2] = {it->second, it->second};
    futimens(fd.get(), ts);
  }
}

}  // namespace strata
