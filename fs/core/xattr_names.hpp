// Extended attribute names the overlay keeps for itself: the shared contract in common/.
#pragma once

#include "common/overlay_xattrs.hpp"

namespace strata::fs {
using strata::is_override_stat_xattr;
using strata::is_private_xattr;
using strata::kFuseOverlayfsOpaque;
using strata::kFuseOverlayfsOverrideStat;
using strata::kOverrideStat;
using strata::kPrivilegedOverrideStat;
using strata::kTrustedOpaque;
using strata::kUserOpaque;
}  // namespace strata::fs
