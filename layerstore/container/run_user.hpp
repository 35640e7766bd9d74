#pragma once
// Who runs: /etc/subuid ranges for the user namespace, and the image's USER resolved
// against the container's own /etc/passwd and /etc/group (never the host's).
#include <sys/types.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace strata {

// First "NAME:START:COUNT" (or "UID:START:COUNT") line for `uid` in `file`.
std::optional<std::pair<unsigned long, unsigned long>> subordinate_range(const std::string& file, uid_t uid);

// Writes the id maps of process `pid`'s new user namespace (the caller is its root):
// newuidmap/newgidmap with the caller's /etc/subuid and /etc/subgid ranges when it has them,
// else the caller alone. Returns "newuidmap" or "single". Throws Error.
std::string map_user_namespace(pid_t pid);

struct ExecUser {
  uid_t uid = 0;
  gid_t gid = 0;
  std::string home = "/root";
  std::vector<gid_t> groups;  // supplementary
};

// "", "name", "uid", "name:group", "uid:gid". Throws for unknown names.
ExecUser resolve_exec_user(const std::string& spec, const std::string& passwd, const std::string& group);

}  // namespace strata
