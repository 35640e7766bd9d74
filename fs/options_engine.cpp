// Options → EngineConfig: the one place the command line reaches the overlay engine.
#include "fs/options.hpp"

namespace strata::fs {

EngineConfig engine_config(const Options& opts) {
  EngineConfig c;
  c.lowerdirs = opts.lowerdirs;
  c.upperdir = opts.upperdir;
  c.workdir = opts.workdir;
  c.read_only = opts.read_only;
  c.uid_mappings = opts.uid_mappings;
  c.gid_mappings = opts.gid_mappings;
  c.squash_to_uid = opts.squash_to_uid;
  c.squash_to_gid = opts.squash_to_gid;
  c.static_nlink = opts.static_nlink;
  c.noxattrs = opts.noxattrs;
  c.xattr_permissions = opts.xattr_permissions;
  c.fsync = opts.fsync;
  c.copyup_sync = opts.copyup_sync;
  c.ino32 = opts.ino32;
  c.writeback = opts.writeback;
  return c;
}

}  // namespace strata::fs
