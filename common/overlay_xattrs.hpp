// The overlay's on-disk contract in extended attributes, shared by strata-fs and the layer
// store: the names that mark opaque directories and record owners, and which names are the
// overlay's own (never shown through a mount, never taken from an image, never exported).
#pragma once

#include <string_view>

namespace strata {

inline constexpr const char* kTrustedOpaque = "trusted.overlay.opaque";
inline constexpr const char* kUserOpaque = "user.overlay.opaque";
inline constexpr const char* kFuseOverlayfsOpaque = "user.fuseoverlayfs.opaque";

// containers/storage's rootless ownership record "uid:gid:mode[:type]", in the forms
// fuse-overlayfs reads: xattr_permissions=2 writes the first, =1 the last.
inline constexpr const char* kOverrideStat = "user.containers.override_stat";
inline constexpr const char* kFuseOverlayfsOverrideStat = "user.fuseoverlayfs.override_stat";
inline constexpr const char* kPrivilegedOverrideStat = "security.fuseoverlayfs.override_stat";

inline bool is_override_stat_xattr(std::string_view name) {
  return name == kOverrideStat || name == kFuseOverlayfsOverrideStat || name == kPrivilegedOverrideStat;
}

// Names the overlay keeps for itself. An image that carries them could forge redirects,
// opaque directories or owners in a mount, so extraction drops them too (as Docker does).
inline bool is_private_xattr(std::string_view name) {
  for (std::string_view prefix : {"trusted.overlay.", "user.overlay.", "user.fuseoverlayfs.", "user.containers.",
                                  "security.fuseoverlayfs.", "trusted.strata.", "user.strata."})
    if (name.substr(0, prefix.size()) == prefix) return true;
  return false;
}

}  // namespace strata
