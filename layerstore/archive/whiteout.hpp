#pragma once
// Whiteout and opaque markers: the tar form (".wh.NAME", ".wh..wh..opq") and the on-disk
// forms kernel overlayfs and strata-fs read. Which on-disk form is written depends on what
// the process may do.
#include <string>
#include <string_view>

namespace strata {

constexpr std::string_view kWhiteoutPrefix = ".wh.";
constexpr std::string_view kWhiteoutMetaPrefix = ".wh..wh.";
constexpr std::string_view kOpaqueMarker = ".wh..wh..opq";

enum class WhiteoutKind { None, Whiteout, Opaque, AufsMeta };

struct WhiteoutName {
  WhiteoutKind kind = WhiteoutKind::None;
  std::string target;  // the name being deleted, for Whiteout
};

// Classifies a base name; throws strata::Error for invalid whiteouts (".wh.", ".wh..",
// ".wh...").
WhiteoutName classify_whiteout(std::string_view base);

// How markers are written into a layer's diff dir.
struct WhiteoutStyle {
  bool char_device = true;                          // 0/0 char devices (else ".wh." files)
  std::string opaque_xattr = "trusted.overlay.opaque";
  bool override_stat = false;                       // rootless: owners/modes in an xattr
};

// Root: char 0/0 + trusted.overlay.opaque. Otherwise: probe whether mknod 0/0 works in
// `probe_dirfd`, use user.overlay.opaque and user.containers.override_stat.
WhiteoutStyle detect_whiteout_style(int probe_dirfd);

}  // namespace strata
