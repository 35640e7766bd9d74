// Owner translation between what is stored in the layers (host ids) and what the mount
// shows (container ids), with fuse-overlayfs's uidmapping=/gidmapping=/squash_* semantics.
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
  uint32_t to_shown(uint32_t stored) const {
    if (squash_) return *squash_;
    if (ranges_.empty()) return stored;
    for (const auto& r : ranges_)
      if (stored >= r.host && stored - r.host < r.count) return r.container + (stored - r.host);
    return kOverflowId;
  }
  // Shown (caller's) id → id to store. Unmapped callers store as themselves.
  uint32_t to_stored(uint32_t shown) const {
    for (const auto& r : ranges_)
      if (shown >= r.container && shown - r.container < r.count) return r.host + (shown - r.container);
    return shown;
  }
  bool identity() const { return ranges_.empty() && !squash_; }

  static constexpr uint32_t kOverflowId = 65534;

 private:
  std::vector<IdMapRange> ranges_;
  std::optional<uint32_t> squash_;
};

}  // namespace strata::fs
