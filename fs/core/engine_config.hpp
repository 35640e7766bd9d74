// What the overlay engine needs to know about one mount. fs/options.cpp fills it from the
// fuse-overlayfs-compatible command line; tests fill it directly. The engine never sees the
// command line itself.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace strata::fs {

// One range of a uidmapping=/gidmapping= option "A:B:N", with fuse-overlayfs's meaning: ids
// [A, A+N) as stored in the layers (`container`, the image's own ids) are shown to the kernel
// as [B, B+N) (`host`, the ids the mounting user namespace maps).
struct IdMapRange {
  uint32_t container = 0;
  uint32_t host = 0;
  uint32_t count = 0;
};

enum class XattrPermissions { Off = 0, Privileged = 1, User = 2 };

// How a copied-up file's data reaches the disk before its name is moved into the upper dir.
// Full: fsync, as kernel overlayfs does. Ordered: written out (sync_file_range) but the device
// cache is not flushed: on a journaling filesystem the commit that makes the name durable
// flushes it first, so a crash leaves the lower file visible or the whole copy, never an empty
// one. Off: neither (fuse-overlayfs; -o volatile).
enum class CopyupSync { Off, Ordered, Full };

struct EngineConfig {
  std::vector<std::string> lowerdirs;  // top-most first
  std::string upperdir;                // empty: read-only
  std::string workdir;                 // required with upperdir
  bool read_only = false;

  std::vector<IdMapRange> uid_mappings;
  std::vector<IdMapRange> gid_mappings;
  std::optional<uid_t> squash_to_uid;
  std::optional<gid_t> squash_to_gid;

  bool static_nlink = false;
  bool noxattrs = false;
  XattrPermissions xattr_permissions = XattrPermissions::Off;
  bool fsync = true;
  CopyupSync copyup_sync = CopyupSync::Ordered;
  bool ino32 = false;
  bool writeback = false;  // the kernel caches writes: write-only opens become read-write
  // Upper bound on cached O_PATH directory fds (the process limit here is 20000, hard).
  size_t dir_fd_cache = 4096;
  // Tests only: runs after a copy-up has staged its copy in the workdir and before it takes
  // the tree lock to publish it, the window in which a container could rearrange names.
  std::function<void()> copy_up_staged;
};

}  // namespace strata::fs
