// Directories are read without handles: OPENDIR is answered ENOSYS, after which the kernel
// (FUSE_NO_OPENDIR_SUPPORT) sends no OPENDIR or RELEASEDIR at all (two requests less per
// directory a walk enters) and keeps listings cached itself (FOPEN_KEEP_CACHE | FOPEN_CACHE_DIR,
// its defaults then): it drops them when the directory changes through the mount, and
// (auto_inval_data) when its mtime changes, which for a merged directory is the newest mtime of
// its layers. Each read from offset 0 takes a snapshot of the listing; an offset names the
// snapshot and the position in it, so a reader goes on through the listing it started, across
// calls, seekdir, changes it makes itself (rm -r unlinks what it reads) and other readers
// starting over after a change: a name present throughout comes once, as POSIX asks. Without
// handles the daemon cannot tell when a reader stops, so a directory keeps its last few
// snapshots (bounded), not one per reader.
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

// One listing of a directory, never changed once taken (readers share it without a lock).
struct Snapshot {
  std::vector<DirEntry> entries;
  uint64_t version = 0;  // of the tree when listed
  uint32_t generation = 0;
};

// An offset is generation << kIndexBits | position of the next entry: below 2^31, so 32-bit
// programs' telldir and getdents (which fail with EOVERFLOW past that) read these
// directories too. Generation 0 is never used, so no offset but the start is 0.
constexpr int kIndexBits = 27;                 // 134M entries per directory
constexpr uint32_t kGenerations = 15;          // 1..15, cycling
constexpr off_t kIndexMask = (off_t(1) << kIndexBits) - 1;

// READDIRPLUS replies carry every entry's attributes, so a walk that reads a directory and then
// stats its names (find, du, ls -l and ls --color, tar, rm -r) sends no LOOKUP per name. A bare
// listing of a huge directory pays for it (ls -f of 100k names: 1.2 s and 54 MiB against 0.2 s
// and 15 MiB with readdirplus=auto); leaving attributes out past the first reply of directories
// over 4096 names (node id 0) made that 0.13 s but a cold find over the same tree 2.4x slower
// (a LOOKUP per name), so every reply carries them, and readdirplus=auto is the choice for
// mounts whose huge directories are listed rather than walked.
off_t offset_of(uint32_t generation, size_t position) { return off_t(generation) << kIndexBits | off_t(position); }

// The snapshots of directories being read, by inode (the kernel holds an inode while it is
// open, and a read at an offset other than 0 follows one from 0 on the same kernel inode, so
// an Inode's address is not reused under a reader). Each directory keeps its last
// kPerDirectory snapshots; directories past kMaxDirectories are dropped least recently read
// first, and so are they while more than kMaxEntries names are held. A reader whose snapshot went (more readers starting over, with changes, than that
// while it read) continues at its position in a new one.
class Listings {
 public:
  std::shared_ptr<const Snapshot> find(Inode* dir, uint32_t generation) {
    std::lock_guard lock(mutex_);
    auto it = by_dir_.find(dir);
    if (it == by_dir_.end()) return nullptr;
    touch(it->second);
    for (const auto& s : it->second.snapshots)
      if (s->generation == generation) return s;
    return nullptr;
  }
  std::shared_ptr<const Snapshot> add(Inode* dir, std::vector<DirEntry> entries, uint64_t version) {
    auto snap = std::make_shared<Snapshot>();
    snap->entries = std::move(entries);
    snap->version = version;
    std::lock_guard lock(mutex_);
    auto [it, fresh] = by_dir_.try_emplace(dir);
    Dir& d = it->second;
    if (fresh) {
      order_.push_back(dir);
      d.in_order = std::prev(order_.end());
    } else {
      touch(d);
    }
    d.last_generation = d.last_generation % kGenerations + 1;
    snap->generation = d.last_generation;
    d.snapshots.push_back(snap);
    entries_ += snap->entries.size();
    if (d.snapshots.size() > kPerDirectory) {
      entries_ -= d.snapshots.front()->entries.size();
      d.snapshots.erase(d.snapshots.begin());
    }
    while (order_.size() > kMaxDirectories || (entries_ > kMaxEntries && order_.front() != dir)) {
      for (const auto& old : by_dir_.at(order_.front()).snapshots) entries_ -= old->entries.size();
      by_dir_.erase(order_.front());
      order_.pop_front();
    }
    return snap;
  }

 private:
  struct Dir {
    std::vector<std::shared_ptr<const Snapshot>> snapshots;  // oldest first
    uint32_t last_generation = 0;
    std::list<Inode*>::iterator in_order;
  };
  void touch(Dir& d) { order_.splice(order_.end(), order_, d.in_order); }

  static constexpr size_t kPerDirectory = 4;
  static constexpr size_t kMaxDirectories = 256;
  static constexpr size_t kMaxEntries = size_t(1) << 20;  // names held in all, ~50 MiB at most
  std::mutex mutex_;
  size_t entries_ = 0;
  std::unordered_map<Inode*, Dir> by_dir_;
  std::list<Inode*> order_;  // least recently read first
};

Listings listings;

void op_opendir(fuse_req_t req, fuse_ino_t, fuse_file_info*) { fuse_reply_err(req, ENOSYS); }

void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, bool plus) {
  Overlay& ov = overlay(req);
  Inode* dir_node = node_of(req, ino);
  if (off < 0 || off >= off_t(kGenerations + 1) << kIndexBits) {  // no offset we gave: the end
    fuse_reply_buf(req, nullptr, 0);
    return;
  }
  size_t position = size_t(off & kIndexMask);
  std::shared_ptr<const Snapshot> snap;
  if (off != 0) snap = listings.find(dir_node, uint32_t(off >> kIndexBits));
  if (!snap) {
    uint64_t version = 0;
    auto entries = ov.list_dir(dir_node, &version);
    if (!entries) {
      fuse_reply_err(req, entries.error());
      return;
    }
    snap = listings.add(dir_node, std::move(*entries), version);
  }
  std::vector<char> buf(size);
  size_t used = 0;
  for (size_t i = position; i < snap->entries.size(); ++i) {
    const DirEntry& d = snap->entries[i];
    off_t next = offset_of(snap->generation, i + 1);
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
        auto entry = ov.lookup_listed(dir_node, d, snap->version);
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
