// The strata-fs command line, parsed once into a typed struct.
// Accepts fuse-overlayfs's options so strata-fs can be containers/storage's mount_program.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace strata::fs {

// One range of a uidmapping=/gidmapping= option: container ids [container, container+count)
// are host ids [host, host+count).
struct IdMapRange {
  uint32_t container = 0;
  uint32_t host = 0;
  uint32_t count = 0;
};

enum class XattrPermissions { Off = 0, Privileged = 1, User = 2 };

struct Options {
  std::vector<std::string> lowerdirs;  // top-most first, as given in lowerdir=
  std::string upperdir;                // empty: read-only mount
  std::string workdir;                 // required with upperdir
  std::string mountpoint;

  bool foreground = false;  // -f
  bool debug = false;       // -d / -o debug
  bool read_only = false;   // -o ro, or no upperdir

  std::vector<IdMapRange> uid_mappings;
  std::vector<IdMapRange> gid_mappings;
  std::optional<uid_t> squash_to_uid;  // squash_to_root sets both to 0
  std::optional<gid_t> squash_to_gid;

  bool static_nlink = false;
  bool noacl = false;
  bool noxattrs = false;
  XattrPermissions xattr_permissions = XattrPermissions::Off;
  bool fsync = true;      // fsync=0 or volatile turns it off
  bool ino32 = false;     // ino32_t
  int threads = 0;        // threaded=N; 0: pick from the machine
  double timeout = 1.0;   // seconds the kernel may cache entries and attrs of upper/merged nodes
  bool writeback = false; // writeback=1
  bool redirect_dir = true;

  // Mount options handed to the kernel/libfuse unchanged (allow_other, default_permissions,
  // suid, dev, exec, fsname=..., ...).
  bool allow_other = false;
  bool default_permissions = false;
  std::vector<std::string> fuse_options;
};

// Parses argv as `strata-fs [-f] [-d] [-o OPTS]... [SOURCE] MOUNTPOINT` (mount.fuse3 passes a
// SOURCE such as "overlay" first; it is ignored). On failure returns nullopt and sets `error`
// to a one-line message naming the bad input.
std::optional<Options> parse_options(int argc, char** argv, std::string& error);

// Checks the directories exist and are usable (workdir on the same filesystem as upperdir, the
// mountpoint a directory and not already busy). Returns "" or a one-line error.
std::string validate_options(const Options& opts);

}  // namespace strata::fs
