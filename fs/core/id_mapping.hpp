// Owner translation between what is stored in the layers and what the mount shows, with
// fuse-overlayfs's semantics: uidmapping=UID:MAPPED:LEN shows a file stored with UID as
// MAPPED (storage shared by several user namespaces keeps unshifted ids), and squash_*.
#pragma once

#include <sys/types.h>

#include <optional>
#include <vector>

#include "fs/options.hpp"

namespace strata::fs {

class IdMapping {
 public:
  IdMapping() = default;
  IdMapping(std::vector<IdMapRange> ranges, std::optional<uint32_t> squash)
      : ranges_(std::move(ranges)), squash_(squash) {}

  // Stored id → shown id. Unmapped ids show as the overflow id 65534, as in a user namespace.
  // (IdMapRange::container is the stored side, IdMapRange::host the id the kernel sees.)
  uint32_t to_shown(uint32_t stored) const {
    if (squash_) return *squash_;
    if (ranges_.empty()) return stored;
    for (const auto& r : ranges_)
      if (stored >= r.container && stored - r.container < r.count) return r.host + (stored - r.container);
    return kOverflowId;
  }
  // Shown (caller's) id → id to store. Unmapped callers store as themselves.
  uint32_t to_stored(uint32_t shown) const {
    for (const auto& r : ranges_)
      if (shown >= r.host && shown - r.host < r.count) return r.container + (shown - r.host);
    return shown;
  }
  bool identity() const { return ranges_.empty() && !squash_; }

  static constexpr uint32_t kOverflowId = 65534;

 private:
  std::vector<IdMapRange> ranges_;
  std::optional<uint32_t> squash_;
};

}  // namespace strata::fs
