// Directory handles hold a snapshot of the merged listing, taken when reading starts at
// offset 0: offsets are indexes into it, so they stay valid across calls and seekdir.
#include <dirent.h>
#include <sys/stat.h>

#include <memory>
#include <mutex>
#include <vector>

#include "fs/fuse/context.hpp"

namespace strata::fs::fuse {

namespace {

struct DirHandle {
  std::mutex mutex;
  std::vector<DirEntry> entries;
  uint64_t version = 0;  // of the tree when listed
  bool loaded = false;
};

DirHandle& dir_of(fuse_file_info* fi) { return *reinterpret_cast<DirHandle*>(fi->fh); }

void op_opendir(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  auto dir = std::make_unique<DirHandle>();
  fi->fh = reinterpret_cast<uint64_t>(dir.release());
  // The kernel may cache listings: it drops them when the directory changes through the
  // mount, and (auto_inval_data) when its mtime changes, which for a merged directory is the
  // newest mtime of its layers.
  fi->cache_readdir = 1;
  fi->keep_cache = 1;
  if (fuse_reply_open(req, fi) == -ENOENT) delete &dir_of(fi);
}

void op_releasedir(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  delete &dir_of(fi);
  fuse_reply_err(req, 0);
}

void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi, bool plus) {
  Overlay& ov = overlay(req);
  Inode* dir_node = node_of(req, ino);
  DirHandle& dir = dir_of(fi);
  // The reply may let the kernel release the handle at once: build under the lock, reply after.
  std::unique_lock lock(dir.mutex);
  if (off == 0 || !dir.loaded) {
    auto entries = ov.list_dir(dir_node, &dir.version);
    if (!entries) {
      lock.unlock();
      fuse_reply_err(req, entries.error());
      return;
    }
    dir.entries = std::move(*entries);
    dir.loaded = true;
  }
  std::vector<char> buf(size);
  size_t used = 0;
  for (size_t i = size_t(off); i < dir.entries.size(); ++i) {
    const DirEntry& d = dir.entries[i];
    off_t next = off_t(i + 1);
    size_t n;
    if (!plus) {
      struct stat st {};
      st.st_ino = d.ino;
      st.st_mode = mode_t(d.type) << 12;
      n = fuse_add_direntry(req, buf.data() + used, size - used, d.name.c_str(), &st, next);
    } else {
      fuse_entry_param e{};
      Inode* looked_up = nullptr;
      if (d.name == "." || d.name == "..") {
        e.attr.st_ino = d.ino;
        e.attr.st_mode = mode_t(d.type) << 12;
      } else {
        auto entry = ov.lookup_listed(dir_node, d, dir.version);
        if (!entry) continue;  // vanished since the snapshot
        e = entry_param(context(req), *entry);
        looked_up = entry->node;
      }
      n = fuse_add_direntry_plus(req, buf.data() + used, size - used, d.name.c_str(), &e, next);
      if (n > size - used && looked_up) ov.forget(looked_up, 1);  // not sent: not counted
    }
    if (n > size - used) break;
    used += n;
  }
  lock.unlock();
  fuse_reply_buf(req, buf.data(), used);
}

void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  do_readdir(req, ino, size, off, fi, false);
}

void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  do_readdir(req, ino, size, off, fi, true);
}

void op_fsyncdir(fuse_req_t req, fuse_ino_t, int, fuse_file_info*) { fuse_reply_err(req, 0); }

}  // namespace

void add_dir_ops(fuse_lowlevel_ops& ops) {
  ops.opendir = guarded<op_opendir>;
  ops.releasedir = guarded<op_releasedir>;
  ops.readdir = guarded<op_readdir>;
  ops.readdirplus = guarded<op_readdirplus>;
  ops.fsyncdir = guarded<op_fsyncdir>;
}

}  // namespace strata::fs::fuse
