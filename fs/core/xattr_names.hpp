// Extended attribute names the overlay keeps for itself and never shows through the mount.
#pragma once

#include <string_view>

namespace strata::fs {

inline constexpr const char* kTrustedOpaque = "trusted.overlay.opaque";
inline constexpr const char* kUserOpaque = "user.overlay.opaque";
inline constexpr const char* kFuseOverlayfsOpaque = "user.fuseoverlayfs.opaque";
inline constexpr const char* kOverrideStat = "user.containers.override_stat";

inline bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

inline bool is_private_xattr(std::string_view name) {
  return starts_with(name, "trusted.overlay.") || starts_with(name, "user.overlay.") ||
         starts_with(name, "user.fuseoverlayfs.") || starts_with(name, "user.containers.") ||
         starts_with(name, "trusted.strata.") || starts_with(name, "user.strata.");
}

}  // namespace strata::fs
