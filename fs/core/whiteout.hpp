// How a layer says "this name is deleted" and "this directory hides what is below it".
// Readers accept every form in use (kernel overlayfs, fuse-overlayfs, OCI tars unpacked
// as-is); the writer picks the strongest form the environment allows.
#pragma once

#include <sys/stat.h>

#include <string>
#include <string_view>

#include "fs/core/layer_source.hpp"
#include "fs/core/result.hpp"

namespace strata::fs {

inline constexpr std::string_view kWhiteoutPrefix = ".wh.";
inline constexpr std::string_view kOpaqueMarkerFile = ".wh..wh..opq";

// A character device 0/0: the kernel overlayfs whiteout.
inline bool is_whiteout_device(const struct stat& st) {
  return S_ISCHR(st.st_mode) && st.st_rdev == 0;
}

// ".wh.NAME" → true (and NAME in `hidden`). The opaque marker is not a whiteout.
bool parse_whiteout_name(std::string_view name, std::string_view& hidden);

// Names that never show in the merged view: whiteout files and the opaque marker.
inline bool is_marker_name(std::string_view name) {
  return name.size() >= kWhiteoutPrefix.size() && name.substr(0, kWhiteoutPrefix.size()) == kWhiteoutPrefix;
}

// Does directory `name` of `layer` (one name below `parent`) hide the layers below it?
bool is_opaque_dir(const LayerSource& layer, const LayerDir& parent, std::string_view name);

// Does directory `dir` of `layer` hold any .wh.NAME whiteout file? One pass over its
// entries; true when it cannot be read (so callers keep probing).
bool dir_has_whiteout_files(const LayerSource& layer, const LayerDir& dir);

// Which marker forms this mount writes. Decided by probing the upper on first need.
struct WhiteoutStyle {
  bool device = true;             // mknod c 0 0 works
  bool trusted_xattrs = true;     // trusted.overlay.opaque (root); else user.overlay.opaque
  bool user_xattrs = true;        // the upper supports user.* xattrs at all
};

WhiteoutStyle probe_whiteout_style(int upper_fd, int work_fd);

// Each of these acts on `name`, one component below the upper directory fd `dir_fd`.
// Creates a whiteout for `name`. `wrote_file` (if given) is set when it became a .wh.NAME
// file because the device could not be made.
Status make_whiteout(int dir_fd, std::string_view name, const WhiteoutStyle& style, bool* wrote_file = nullptr);
// Marks directory `name` opaque.
Status mark_opaque(int dir_fd, std::string_view name, const WhiteoutStyle& style);
// "/proc/self/fd/FD/NAME" (or "/proc/self/fd/FD" for an empty name): the path form that
// xattr and chmod calls need, resolved through the held fd and never through a path string.
std::string fd_path(int fd, std::string_view name = {});

}  // namespace strata::fs
