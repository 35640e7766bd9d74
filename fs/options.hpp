// The strata-fs command line, parsed once into a typed struct.
// Accepts fuse-overlayfs's options so strata-fs can be containers/storage's mount_program.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fs/core/engine_config.hpp"

namespace strata::fs {

// Paths: parse_options stores lowerdirs, upperdir, workdir and mountpoint as absolute paths
// (make_absolute: realpath when the path resolves, else joined to the cwd), because the daemon
// chdirs to / when it detaches.
struct Options {
  std::vector<std::string> lowerdirs;  // top-most first, as given in lowerdir=
  std::string upperdir;                // empty: read-only mount
  std::string workdir;                 // required with upperdir
  std::string mountpoint;
  std::string source;                  // mount.fuse3's SOURCE argument ("overlay"); unused

  bool foreground = false;  // -f (also set by -d / --debug / -o debug, as libfuse does)
  bool debug = false;       // -d / --debug / -o debug
  bool read_only = false;   // -o ro, or no upperdir

  // -h/--help, -V/--version: parse_options returns at once with only this set (no other
  // checks); the caller prints usage_text()/version_text() to stdout and exits 0.
  bool show_help = false;
  bool show_version = false;

  std::vector<IdMapRange> uid_mappings;
  std::vector<IdMapRange> gid_mappings;
  std::optional<uid_t> squash_to_uid;  // squash_to_root sets both to 0
  std::optional<gid_t> squash_to_gid;

  bool static_nlink = false;
  bool noacl = false;
  bool noxattrs = false;
  XattrPermissions xattr_permissions = XattrPermissions::Off;
  bool fsync = true;      // fsync=0 or volatile turns it off
  CopyupSync copyup_sync = CopyupSync::Ordered;  // copyup_sync=; Off whenever fsync is off
  bool ino32 = false;     // ino32_t
  int threads = 0;        // threaded=N as given; 0 or 1 (fuse-overlayfs's "on"): pick the default
  bool clone_fd = false;  // clone_fd (a libfuse loop setting, not a mount option)
  double timeout = 1.0;   // seconds the kernel may cache entries and attrs of upper/merged nodes
  // writeback=0|1: the kernel's writeback cache. Not given: on where passthrough cannot be
  // (a writable mount by a daemon without CAP_SYS_ADMIN in the initial user namespace:
  // rootless, podman's user namespace), as fuse-overlayfs has it; off on root mounts, where
  // passthrough writes faster and the kernel would turn passthrough off under the cache.
  bool writeback = false;
  bool writeback_given = false;
  // passthrough=auto|off: reads, writes and mmap of open upper files go straight to the
  // backing file when the kernel offers FUSE passthrough and the daemon may use it (root);
  // fs/fuse/passthrough.hpp says why not lower files.
  bool passthrough = true;
  // uring=auto|off: requests through per-CPU io_uring queues when the kernel offers FUSE over
  // io_uring (fs/fuse/uring.hpp), else /dev/fuse; off: always /dev/fuse.
  bool uring = true;
  // readdirplus=always|auto: every READDIR reply carries the entries' attributes (always, the
  // default: no LOOKUP per name when a program reads a whole directory and then stats it), or
  // only the first reply of a listing and those after a lookup in it (auto: a bare listing of a
  // huge directory does not make the daemon stat every entry).
  bool readdirplus_auto = false;
  bool redirect_dir = true;

  // Mount options handed to the kernel/libfuse unchanged (ro, rw, allow_other, allow_root,
  // default_permissions, suid, dev, exec, atime flags, sync, fsname=..., subtype=...,
  // max_read=..., context=..., ...), in order, each in libfuse -o syntax: backslash escapes are
  // kept and a comma inside double quotes (context="...:c1,c2") is written as "\,", so
  // joining them with ',' gives a valid -o argument. Not included: strata-fs's own options,
  // plugins=, clone_fd, debug, and fstab/mount(8)-only options (auto, noauto, user, nouser,
  // users, defaults, _netdev, nofail, comment=, x-*), which are accepted and dropped because
  // libfuse rejects them.
  bool allow_other = false;
  bool default_permissions = false;
  std::vector<std::string> fuse_options;
};

// Parses argv as `strata-fs [-f] [-d] [-o OPTS]... [SOURCE] MOUNTPOINT` (mount.fuse3 passes a
// SOURCE such as "overlay" first; it is ignored). Options may follow the positionals, -o may
// repeat (options accumulate, a later value wins), "-oOPTS" is accepted, short flags may be
// grouped (-fd), "--" ends the flags. In OPTS, "\," "\:" "\\" escape a comma, colon,
// backslash, and commas inside double quotes do not split. Paths are made absolute (see
// Options). On failure returns nullopt and sets `error` to a one-line message naming the bad
// input.
std::optional<Options> parse_options(int argc, char** argv, std::string& error);

// Checks the directories exist and are usable: each lowerdir/upperdir/workdir a directory,
// workdir on the same filesystem as upperdir and neither inside the other, both writable
// unless read-only, the mountpoint a directory and not already a mount point (per
// /proc/self/mountinfo). Returns "" or a one-line error.
std::string validate_options(const Options& opts);

// The --help text (every option) and the --version line, each ending in a newline.
std::string usage_text(std::string_view program = "strata-fs");
std::string version_text();

// realpath(path) when it resolves; otherwise path joined to the cwd (if relative) and
// lexically normalised. "" stays "".
std::string make_absolute(const std::string& path);

// The mount-point field (5th) of every line of a /proc/PID/mountinfo text, with the kernel's
// octal escapes (\040 space, \011 tab, \012 newline, \134 backslash) decoded.
std::vector<std::string> mountinfo_mount_points(std::string_view mountinfo);

// The -o string handed to libfuse for the mount: fuse-overlayfs's defaults, then the caller's
// fuse_options in order. Always default_permissions (the kernel checks permissions on the
// merged attributes) and noatime (unless the caller picks atime/relatime/strictatime/...).
// As root (`as_root`: the real uid is 0, also uid 0 of a user namespace, as fuse-overlayfs
// decides) also allow_other and suid, so a container's other users can reach its files and
// set-uid programs elevate; an explicit nosuid or allow_root overrides them. Rootless
// (fusermount3) neither: fusermount3 forces nosuid,nodev and refuses allow_other without
// user_allow_other in /etc/fuse.conf. dev/nodev are left to libfuse (nodev unless `dev`).
std::string fuse_mount_options(const Options& opts, bool as_root);

}  // namespace strata::fs

namespace strata::fs {
// The engine's share of the options (the rest is for libfuse and the kernel).
EngineConfig engine_config(const Options& opts);
}  // namespace strata::fs
