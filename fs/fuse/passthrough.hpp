// FUSE passthrough (kernel 6.9+): the kernel reads, writes and mmaps an open file straight on
// a backing file the daemon registered, with no READ or WRITE request. libfuse 3.14 has no API
// for it: the INIT reply and the open replies are patched on their way out (init_flags.cpp),
// and the ids come from ioctls on /dev/fuse, which need CAP_SYS_ADMIN in the initial user
// namespace (root mounts; elsewhere open files keep going through the daemon).
//
// The kernel holds one backing file per inode: while an inode has a passthrough open, every
// other open of it must be passthrough with the same backing file, and while it has a cached
// open (through the daemon), none may be passthrough. The overlay changes an inode's backing
// file once, at copy-up, and a reader opened before a copy-up must then see the copy (kernel
// overlayfs reopens its real file; strata-fs's daemon path moves the fd). So:
//   - upper files (anything written, created or copied up) are passthrough, unless the inode
//     still has cached opens from before its copy-up; those opens and later ones stay cached
//     until all are closed;
//   - lower files stay cached: a reader holding the lower backing file would pin the inode to
//     it, and a later copy-up (an open for writing, chmod, truncate) could then neither move
//     that reader to the copy nor serve any new open of the inode;
//   - except on a read-only mount (no upper layer, or -o ro), where nothing is ever copied up:
//     there lower files are passthrough too, so reads and mmap use the layer file's own page
//     cache (large folios, shared with the host and with every other mount of that layer)
//     instead of FUSE's (one 4 KiB page per folio on Linux 6.18). Files of a lazy layer have
//     no file to pass through and stay with the daemon.
//
// Set-id bits: the kernel writes a passthrough file with the daemon's credentials, which keep
// them (CAP_FSETID), where a write by a caller without CAP_FSETID must clear them; the daemon
// clears them on the WRITE requests it serves. So a file with set-id bits is opened through
// the daemon. Bits added while the file is open through the kernel (dpkg and tar write, then
// fchmod 04755 before closing) are kept for root's writers; adding them while another user
// has it open for writing through the kernel fails with ETXTBSY until that open closes, and
// such a user opening it for writing beside a passthrough open gets ETXTBSY.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <mutex>
#include <unordered_map>

#include "fs/core/overlay.hpp"

namespace strata::fs::fuse {

class BackingFiles {
 public:
  // `dev_fuse`: the session's /dev/fuse fd (ioctls go there). `never_copies_up`: the mount is
  // read-only, so lower files may be passthrough as well.
  BackingFiles(int dev_fuse, bool never_copies_up) : dev_fuse_(dev_fuse), never_copies_up_(never_copies_up) {}

  enum class Mode { Cached, Passthrough, Busy };
  struct Grant {
    Mode mode = Mode::Cached;
    int32_t id = 0;  // with Passthrough
  };
  // How the kernel is to serve this open of `file` (a regular file or not). Every acquire
  // except Busy is matched by one release(file) when the open ends (also when the reply fails).
  // `root_caller`: the open comes from uid 0 with CAP_FSETID (a writer that keeps set-id bits).
  Grant acquire(OpenFile& file, bool root_caller);
  void release(OpenFile& file);

  // For a change that adds set-id bits to `node`: false while a caller other than root has it
  // open for writing through the kernel; else true, with `hold` keeping new such opens out until the caller has made the
  // change. Lock order: this lock before any engine lock.
  bool may_add_setid(Inode* node, std::unique_lock<std::mutex>& hold);

 private:
  struct Entry {
    int32_t id = 0;
    uint32_t passthrough = 0;  // opens using `id`
    uint32_t user_writers = 0; // of those, opened for writing by someone other than root
    uint32_t cached = 0;       // opens through the daemon
    dev_t dev = 0;             // the backing file behind `id`
    ino_t ino = 0;
  };
  int32_t open_backing(int fd);
  void close_backing(int32_t id);

  int dev_fuse_;
  bool never_copies_up_;
  std::mutex mutex_;  // never taken with an engine lock held
  std::unordered_map<Inode*, Entry> entries_;
  bool enabled_ = true;  // false once the kernel refused an id (no capability)
};

}  // namespace strata::fs::fuse
