#include "layerstore/archive/whiteout.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "layerstore/error.hpp"

namespace strata {

WhiteoutName classify_whiteout(std::string_view base) {
  WhiteoutName w;
  if (base.substr(0, kWhiteoutPrefix.size()) != kWhiteoutPrefix) return w;
  if (base == kOpaqueMarker) {
    w.kind = WhiteoutKind::Opaque;
    return w;
  }
  if (base.substr(0, kWhiteoutMetaPrefix.size()) == kWhiteoutMetaPrefix) {
    // aufs bookkeeping (.wh..wh.plnk, .wh..wh.aufs): Docker skips these, so do we.
    w.kind = WhiteoutKind::AufsMeta;
    return w;
  }
  std::string_view target = base.substr(kWhiteoutPrefix.size());
  if (target.empty() || target == "." || target == "..")
    throw Error("invalid whiteout name \"" + std::string(base) + "\"");
  w.kind = WhiteoutKind::Whiteout;
  w.target = std::string(target);
  return w;
}

WhiteoutStyle detect_whiteout_style(int probe_dirfd) {
  WhiteoutStyle s;
  if (geteuid() == 0) return s;
  s.opaque_xattr = "user.overlay.opaque";
  s.override_stat = true;
  const char* probe = ".strata-whiteout-probe";
  unlinkat(probe_dirfd, probe, 0);
  s.char_device = mknodat(probe_dirfd, probe, S_IFCHR | 0000, makedev(0, 0)) == 0;
  unlinkat(probe_dirfd, probe, 0);
  return s;
}

}  // namespace strata
