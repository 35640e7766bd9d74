#include "fs/fuse/passthrough.hpp"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/stat.h>

#include <cerrno>

#include <spdlog/spdlog.h>

namespace strata::fs::fuse {

namespace {

// <linux/fuse.h> of kernels 6.9+ (Debian 12's headers predate them).
struct BackingMap {
  int32_t fd;
  uint32_t flags;
  uint64_t padding;
};
constexpr unsigned long kBackingOpen = _IOW(229, 1, BackingMap);
constexpr unsigned long kBackingClose = _IOW(229, 2, uint32_t);
static_assert(kBackingOpen == 0x4010e501 && kBackingClose == 0x4004e502);

// OpenFile::kernel_io: which count of its inode's entry an open is in.
constexpr uint8_t kUntracked = 0, kCounted = 1, kPassthrough = 2, kPassthroughWriter = 3;

// Bits a write by an unprivileged caller may clear (this kernel clears S_ISGID without group
// execute too).
bool has_setid(mode_t mode) { return mode & (S_ISUID | S_ISGID); }

}  // namespace

int32_t BackingFiles::open_backing(int fd) {
  BackingMap map{fd, 0, 0};
  int id = ::ioctl(dev_fuse_, kBackingOpen, &map);
  return id > 0 ? id : -errno;
}

void BackingFiles::close_backing(int32_t id) {
  uint32_t u = uint32_t(id);
  if (::ioctl(dev_fuse_, kBackingClose, &u) != 0) spdlog::debug("passthrough: closing backing id {}: errno {}", id, errno);
}

BackingFiles::Grant BackingFiles::acquire(OpenFile& file, bool root_caller) {
  Inode* node = file.node;
  if (!node->is_reg()) return {};
  // The syscall outside the registry's lock: every open of a regular file comes here. A file
  // the open created was stat'ed by the engine already.
  int fd = file.current.load();
  struct stat st {};
  if (file.created_st) st = *file.created_st;
  else if (::fstat(fd, &st) != 0) return {};
  std::lock_guard lock(mutex_);
  if (!enabled_) return {};
  bool user_writer = (file.flags & O_ACCMODE) != O_RDONLY && !root_caller;
  bool setid = has_setid(st.st_mode);
  Entry& e = entries_[node];
  if (e.passthrough > 0) {
    // Another file behind the inode than its passthrough opens use: a copy-up since, or, on
    // a read-only mount, the layer file replaced beside the mount. There the inode goes on
    // being the file the mount looked up (its cached attributes describe that one), as on
    // kernel overlayfs, which keeps the lower file it found: this open reads it too.
    bool replaced = st.st_dev != e.dev || st.st_ino != e.ino;
    if ((replaced && !never_copies_up_) || (user_writer && setid)) return {Mode::Busy, 0};
    e.passthrough++;
    e.user_writers += user_writer;
    file.kernel_io = user_writer ? kPassthroughWriter : kPassthrough;
    return {Mode::Passthrough, e.id};
  }
  // An fd opened before a copy-up that has happened since is the old file: only the daemon
  // moves it to the copy. A read-only mount has neither copy-ups nor writers.
  bool lower = file.from_lower.load() || file.copyups_seen.load() != node->copyups.load();
  bool stays_put = never_copies_up_ && !file.lower_data;  // a lazy layer's file has no fd of its data
  // A set-id file goes through the daemon, whoever opens it first: a user's writer opened
  // beside a passthrough open would have to be passthrough too, and keep the bits.
  if (e.cached > 0 || (lower && !stays_put) || (setid && !never_copies_up_)) {
    e.cached++;
    file.kernel_io = kCounted;
    return {};
  }
  int32_t id = open_backing(fd);
  if (id < 0) {
    if (id == -EPERM) {
      // No CAP_SYS_ADMIN in the initial user namespace, or the kernel turned it off.
      enabled_ = false;
      spdlog::info("passthrough: the kernel refused a backing file (EPERM): open files go through the daemon");
    }
    e.cached++;
    file.kernel_io = kCounted;
    return {};
  }
  e.id = id;
  e.passthrough = 1;
  e.user_writers = user_writer;
  e.dev = st.st_dev;
  e.ino = st.st_ino;
  file.kernel_io = user_writer ? kPassthroughWriter : kPassthrough;
  return {Mode::Passthrough, id};
}

bool BackingFiles::may_add_setid(Inode* node, std::unique_lock<std::mutex>& hold) {
  hold = std::unique_lock(mutex_);
  auto it = entries_.find(node);
  if (it == entries_.end() || it->second.user_writers == 0) return true;
  hold.unlock();
  return false;
}

void BackingFiles::release(OpenFile& file) {
  if (file.kernel_io == kUntracked) return;
  std::lock_guard lock(mutex_);
  auto it = entries_.find(file.node);
  if (it == entries_.end()) return;
  Entry& e = it->second;
  if (file.kernel_io == kCounted) {
    e.cached--;
  } else {
    e.passthrough--;
    if (file.kernel_io == kPassthroughWriter) e.user_writers--;
  }
  file.kernel_io = kUntracked;
  if (e.passthrough > 0 || e.cached > 0) return;
  // The kernel looks the id up after it reads the open reply, and holds its own reference
  // from then on: closing at the last release is safe, closing after the reply is not.
  if (e.id > 0) close_backing(e.id);
  entries_.erase(it);
}

}  // namespace strata::fs::fuse
