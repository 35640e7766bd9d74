// Names and attributes: lookup, forget, getattr, setattr, readlink, statfs, and the
// operations that create, remove and move names.
#include <linux/fs.h>
#include <sys/stat.h>

#include <optional>

#include "fs/fuse/context.hpp"

namespace strata::fs::fuse {

fuse_entry_param entry_param(const Context& ctx, const Entry& entry) {
  fuse_entry_param e{};
  e.ino = reinterpret_cast<fuse_ino_t>(entry.node);
  e.generation = 0;
  e.attr = entry.st;
  e.attr_timeout = attr_timeout(ctx, entry.node, entry.st);
  // A directory's layers may change beside the mount (a new upper dir): look it up again.
  e.entry_timeout = entry.node->top.load() != 0 && !S_ISDIR(entry.st.st_mode) ? kLowerFileTimeout : ctx.timeout;
  return e;
}

void reply_entry(fuse_req_t req, const Result<Entry>& entry) {
  if (!entry) {
    fuse_reply_err(req, entry.error());
    return;
  }
  fuse_entry_param e = entry_param(context(req), entry.value());
  if (fuse_reply_entry(req, &e) == -ENOENT) {
    // The request was interrupted: the kernel will not count this lookup.
    overlay(req).forget(entry.value().node, 1);
  }
}

namespace {

void op_lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  auto entry = overlay(req).lookup(node_of(req, parent), name);
  if (!entry && entry.error() == ENOENT) {
    // A negative entry: the kernel may remember the absence for the timeout.
    fuse_entry_param e{};
    e.entry_timeout = context(req).timeout;
    fuse_reply_entry(req, &e);
    return;
  }
  reply_entry(req, entry);
}

void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  if (ino != FUSE_ROOT_ID) overlay(req).forget(node_of(req, ino), nlookup);
  fuse_reply_none(req);
}

void op_forget_multi(fuse_req_t req, size_t count, fuse_forget_data* forgets) {
  for (size_t i = 0; i < count; ++i)
    if (forgets[i].ino != FUSE_ROOT_ID) overlay(req).forget(node_of(req, forgets[i].ino), forgets[i].nlookup);
  fuse_reply_none(req);
}

void op_getattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Inode* node = node_of(req, ino);
  // A handle comes with fstat only sometimes; without one, the Inode answers (also when no
  // name of it is left).
  auto st = overlay(req).getattr(node, fi && fi->fh && !node->is_dir() ? &file_of(fi) : nullptr);
  if (!st) fuse_reply_err(req, st.error());
  else fuse_reply_attr(req, &st.value(), attr_timeout(context(req), node, *st));
}

struct timespec time_of(const struct stat& attr, int to_set, int set_flag, int now_flag, bool atime) {
  if (to_set & now_flag) return timespec{0, UTIME_NOW};
  (void)set_flag;
  return atime ? attr.st_atim : attr.st_mtim;
}

// Under the writeback cache the kernel keeps a regular file's mtime and ctime itself and
// writes them back with a SETATTR of both after every change it counts (a name removed or
// added, a write). One that leaves mtime as it is changes nothing a reader sees, and must not
// copy a lower file up (nor change a nameless one): kernel overlayfs does neither.
bool is_unchanged_time_writeback(fuse_req_t req, Inode* node, const struct stat& attr, int to_set) {
  if (!context(req).writeback || to_set != (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_CTIME)) return false;
  auto now = overlay(req).getattr(node);
  return now && now->st_mtim.tv_sec == attr.st_mtim.tv_sec && now->st_mtim.tv_nsec == attr.st_mtim.tv_nsec;
}

void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info* fi) {
  Overlay& ov = overlay(req);
  Inode* node = node_of(req, ino);
  if (is_unchanged_time_writeback(req, node, *attr, to_set)) {
    op_getattr(req, ino, fi);
    return;
  }
  AttrChange change;
  if (to_set & FUSE_SET_ATTR_MODE) change.mode = attr->st_mode;
  if (to_set & FUSE_SET_ATTR_UID) change.uid = attr->st_uid;
  if (to_set & FUSE_SET_ATTR_GID) change.gid = attr->st_gid;
  if (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_ATIME_NOW))
    change.atime = time_of(*attr, to_set, FUSE_SET_ATTR_ATIME, FUSE_SET_ATTR_ATIME_NOW, true);
  if (to_set & (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW))
    change.mtime = time_of(*attr, to_set, FUSE_SET_ATTR_MTIME, FUSE_SET_ATTR_MTIME_NOW, false);
  if (to_set & FUSE_SET_ATTR_SIZE) {
    if (fi && fi->fh) {
      // ftruncate on an open file: the handle's fd is already the upper copy when writable.
      OpenFile& file = file_of(fi);
      if ((file.flags & O_ACCMODE) != O_RDONLY) {
        if (::ftruncate(ov.io_fd(file), attr->st_size) != 0) {
          fuse_reply_err(req, errno);
          return;
        }
        // As write(2): a caller without CAP_FSETID loses the file's set-id bits.
        ov.drop_setid_bits_for(ov.io_fd(file), caller_of(req));
      }
      if ((file.flags & O_ACCMODE) == O_RDONLY) change.size = attr->st_size;
    } else {
      change.size = attr->st_size;
    }
  }
  // Set-id bits may not appear under a writer the daemon does not see (passthrough.hpp).
  std::unique_lock<std::mutex> no_new_writers;
  BackingFiles* backing = context(req).backing;
  if (backing && change.mode && (*change.mode & (S_ISUID | S_ISGID)) && !backing->may_add_setid(node, no_new_writers)) {
    fuse_reply_err(req, ETXTBSY);
    return;
  }
  auto st = ov.setattr(node, change, caller_of(req));
  if (!st) fuse_reply_err(req, st.error());
  else fuse_reply_attr(req, &st.value(), attr_timeout(context(req), node, *st));
}

void op_readlink(fuse_req_t req, fuse_ino_t ino) {
  auto target = overlay(req).readlink(node_of(req, ino));
  if (!target) fuse_reply_err(req, target.error());
  else fuse_reply_readlink(req, target->c_str());
}

void op_statfs(fuse_req_t req, fuse_ino_t) {
  auto st = overlay(req).statfs();
  if (!st) fuse_reply_err(req, st.error());
  else fuse_reply_statfs(req, &st.value());
}

void op_mknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev) {
  reply_entry(req, overlay(req).mknod(node_of(req, parent), name, mode, rdev, caller_of(req)));
}

void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  reply_entry(req, overlay(req).mkdir(node_of(req, parent), name, mode, caller_of(req)));
}

void op_symlink(fuse_req_t req, const char* target, fuse_ino_t parent, const char* name) {
  reply_entry(req, overlay(req).symlink(node_of(req, parent), name, target, caller_of(req)));
}

void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t new_parent, const char* new_name) {
  auto entry = overlay(req).link(node_of(req, ino), node_of(req, new_parent), new_name);
  // The reply names the same inode as `ino`, with its new link count.
  (void)ino;
  reply_entry(req, entry);
}

// With the writeback cache the kernel counts a removed name down itself (drop_nlink) and
// then invalidates only the inode's ctime, which it keeps itself for regular files: it goes
// on showing that count for the attribute timeout (a day for lower files). Where the file's
// count is not one less than before — a lower file whose last name went shows the lower
// file's own count, as kernel overlayfs does, and hidden names of a copied-up hardlink count
// too — the daemon invalidates the inode's attributes. It does so before replying, so the
// kernel's count-down comes after the invalidation and the next stat asks the daemon.
class RemovedName {
 public:
  // The request is gone once replied to: the context is kept instead.
  RemovedName(fuse_req_t req, Inode* parent, const char* name) : ctx_(context(req)) {
    if (!ctx_.writeback) return;
    auto found = overlay(req).lookup(parent, name);
    if (!found) return;
    if (S_ISDIR(found->st.st_mode)) {
      overlay(req).forget(found->node, 1);
      return;
    }
    victim_ = found->node;
    nlink_before_ = found->st.st_nlink;
  }
  RemovedName(const RemovedName&) = delete;
  RemovedName& operator=(const RemovedName&) = delete;
  ~RemovedName() {
    if (victim_) ctx_.overlay->forget(victim_, 1);
  }

  // After the name went: tells the kernel when its own count-down would be wrong.
  void removed() {
    if (!victim_) return;
    auto st = ctx_.overlay->getattr(victim_);
    if (st && st->st_nlink + 1 == nlink_before_) return;
    fuse_lowlevel_notify_inval_inode(ctx_.session, reinterpret_cast<fuse_ino_t>(victim_), -1, 0);
  }

 private:
  Context& ctx_;
  Inode* victim_ = nullptr;
  nlink_t nlink_before_ = 0;
};

void op_unlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  RemovedName removed(req, node_of(req, parent), name);
  int err = overlay(req).unlink(node_of(req, parent), name);
  if (err == 0) removed.removed();
  fuse_reply_err(req, err);
}

void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
  fuse_reply_err(req, overlay(req).rmdir(node_of(req, parent), name));
}

void op_rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t new_parent,
               const char* new_name, unsigned int flags) {
  // RENAME_EXCHANGE removes no name; any other rename removes the name it replaces.
  std::optional<RemovedName> replaced;
  if (!(flags & RENAME_EXCHANGE)) replaced.emplace(req, node_of(req, new_parent), new_name);
  int err = overlay(req).rename(node_of(req, parent), name, node_of(req, new_parent), new_name, flags);
  if (err == 0 && replaced) replaced->removed();
  fuse_reply_err(req, err);
}

}  // namespace

void add_entry_ops(fuse_lowlevel_ops& ops) {
  ops.lookup = guarded<op_lookup>;
  ops.forget = op_forget;
  ops.forget_multi = op_forget_multi;
  ops.getattr = guarded<op_getattr>;
  ops.setattr = guarded<op_setattr>;
  ops.readlink = guarded<op_readlink>;
  ops.statfs = guarded<op_statfs>;
  ops.mknod = guarded<op_mknod>;
  ops.mkdir = guarded<op_mkdir>;
  ops.symlink = guarded<op_symlink>;
  ops.link = guarded<op_link>;
  ops.unlink = guarded<op_unlink>;
  ops.rmdir = guarded<op_rmdir>;
  ops.rename = guarded<op_rename>;
}

}  // namespace strata::fs::fuse
