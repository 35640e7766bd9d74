// Directories are read without handles: OPENDIR is answered ENOSYS, after which the kernel
// (FUSE_NO_OPENDIR_SUPPORT) sends no OPENDIR or RELEASEDIR at all (two requests less per
// directory a walk enters) and keeps listings cached itself (FOPEN_KEEP_CACHE | FOPEN_CACHE_DIR,
// its defaults then): it drops them when the directory changes through the mount, and
// (auto_inval_data) when its mtime changes, which for a merged directory is the newest mtime of
// its layers. Each directory's listing is a snapshot taken when reading starts at offset 0;
// offsets are indexes into it, so they stay valid across calls, seekdir, and changes made
// while a reader goes through it (rm -r unlinks what it reads).
#include <dirent.h>
#include <sys/stat.h>

#include <list>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "fs/fuse/context.hpp"

namespace strata::fs::fuse {

namespace {

struct Listing {
  std::mutex mutex;
  std::vector<DirEntry> entries;
  uint64_t version = 0;  // of the tree when listed
  bool loaded = false;
};

// The snapshots of the directories being read, by inode. An offset other than 0 continues a
// read that started at 0 on the same kernel inode (the kernel holds the inode while the
// directory is open, so the Inode cannot be freed and its address reused meanwhile). A reader
// that reaches the end drops the snapshot; abandoned ones are dropped oldest first past
// kMaxListings, and a read that finds its snapshot gone lists the directory again.
class Listings {
 public:
  std::shared_ptr<Listing> get(Inode* dir) {
    std::lock_guard lock(mutex_);
    auto it = by_dir_.find(dir);
    if (it != by_dir_.end()) return it->second;
    auto listing = std::make_shared<Listing>();
    by_dir_.emplace(dir, listing);
    order_.push_back(dir);
    while (order_.size() > kMaxListings) {
      by_dir_.erase(order_.front());
      order_.pop_front();
    }
    return listing;
  }
  void drop(Inode* dir, const std::shared_ptr<Listing>& listing) {
    std::lock_guard lock(mutex_);
    auto it = by_dir_.find(dir);
    if (it == by_dir_.end() || it->second != listing) return;
    by_dir_.erase(it);
    for (auto o = order_.begin(); o != order_.end(); ++o)
      if (*o == dir) {
        order_.erase(o);
        break;
      }
  }

 private:
  static constexpr size_t kMaxListings = 256;
  std::mutex mutex_;
  std::unordered_map<Inode*, std::shared_ptr<Listing>> by_dir_;
  std::list<Inode*> order_;
};

Listings listings;

void op_opendir(fuse_req_t req, fuse_ino_t, fuse_file_info*) { fuse_reply_err(req, ENOSYS); }

void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, bool plus) {
  Overlay& ov = overlay(req);
  Inode* dir_node = node_of(req, ino);
  auto listing = listings.get(dir_node);
  Listing& dir = *listing;
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
  bool at_end = size_t(off) >= dir.entries.size();
  lock.unlock();
  if (at_end) listings.drop(dir_node, listing);
  fuse_reply_buf(req, buf.data(), used);
}

void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  do_readdir(req, ino, size, off, false);
}

void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info*) {
  do_readdir(req, ino, size, off, true);
}

void op_fsyncdir(fuse_req_t req, fuse_ino_t, int, fuse_file_info*) { fuse_reply_err(req, 0); }

}  // namespace

void add_dir_ops(fuse_lowlevel_ops& ops) {
  ops.opendir = guarded<op_opendir>;
  ops.readdir = guarded<op_readdir>;
  ops.readdirplus = guarded<op_readdirplus>;
  ops.fsyncdir = guarded<op_fsyncdir>;
}

}  // namespace strata::fs::fuse
