// containers/storage's rootless ownership record: "uid:gid:mode[:type]" in an xattr, used
// where the real owner or mode could not be applied (xattr_permissions=1|2).
#pragma once

#include <sys/stat.h>

#include <optional>
#include <string>
#include <string_view>

namespace strata::fs {

struct OverrideStat {
  uid_t uid = 0;
  gid_t gid = 0;
  mode_t mode = 0;                // permission bits (07777)
  std::optional<mode_t> type;     // S_IFMT bits when the 4th field names a type
  dev_t rdev = 0;
};

std::optional<OverrideStat> parse_override_stat(std::string_view value);
std::string format_override_stat(const OverrideStat& o);

}  // namespace strata::fs
