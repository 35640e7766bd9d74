#pragma once
// Mounting layers with strata-fs (started as a program: layerstore never links FUSE),
// finding mounts in /proc/self/mountinfo, telling a live mount from a stale one (daemon
// gone: ENOTCONN), and unmounting.
#include <string>
#include <vector>

#include "layerstore/store/store_layout.hpp"

namespace strata {

// strata-fs next to the running `strata` (or in ../fs/ in the build tree), else
// $STRATA_FS, else PATH. Throws naming the places searched.
std::string find_strata_fs();

struct OverlayMountSpec {
  std::vector<std::string> lowers;  // relative to overlay2/ ("l/LINKID"), top-most first
  std::string upper, work;          // absolute; empty for a read-only mount
  std::string target;               // absolute mount point
  bool rootless = false;            // owners/modes from xattrs (xattr_permissions=2)
  bool allow_other = false;
  bool suid = false;                // set-uid/set-gid programs elevate (strata-fs's default as root)
  bool foreground = false;          // -f: caller waits for the mount itself
};

// The strata-fs argv for a spec (run with the cwd at overlay2/ so short links resolve).
std::vector<std::string> strata_fs_argv(const std::string& exe, const OverlayMountSpec& s);

// Runs strata-fs (it detaches once mounted) and waits for it; throws with its stderr.
void mount_overlay(const StoreLayout& l, const OverlayMountSpec& s);
// The same with strata-fs started in `cwd` (lowers given as absolute paths).
void mount_overlay_in(const std::string& cwd, const OverlayMountSpec& s);

enum class MountState { NotMounted, Mounted, Stale };
MountState mount_state(const std::string& path);

// True when the top mount at `path` is one strata made: strata-fs (fuse.strata-fs) with the
// source name strata gives its mounts.
bool is_strata_mount(const std::string& path);

// fusermount3 -u (rootless) or umount2; `lazy` detaches a stale or busy mount.
void unmount_path(const std::string& path, bool lazy = false);

// Lowers ("l/LINKID" top-most first) of a layer: its own link then its lower file.
std::vector<std::string> layer_lowers(const StoreLayout& l, const std::string& cache_id);
// What strata-fs is given for such lowers: the link itself for an unpacked layer, the
// layer's descriptor file (absolute) for a lazy one, whose l/ link points at no diff/.
std::vector<std::string> mount_lowers(const StoreLayout& l, const std::vector<std::string>& lowers);

// Removes a tree even where a rootless run left directories without permissions.
void remove_tree_forced(const std::string& path);

}  // namespace strata
