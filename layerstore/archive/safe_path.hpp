#pragma once
// Path handling for untrusted tar entries: names are cleaned and checked lexically, then
// resolved with openat2(RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS) so that no symlink
// (absolute, "../..", or /proc magic link) can carry a write outside the layer dir.
#include <string>
#include <string_view>

#include "layerstore/archive/unique_fd.hpp"

namespace strata {

// "./a//b/" -> "a/b"; "." or "" -> "" (the root). Throws strata::Error naming the entry for
// absolute names, ".." components and NUL bytes.
std::string clean_entry_path(std::string_view name);

// openat2 beneath `dirfd`. Returns -errno in `err` (and an invalid fd) instead of throwing,
// so callers can tell ENOENT (create parents) from EXDEV (escape attempt).
UniqueFd open_beneath(int dirfd, const std::string& path, int flags, int mode, int& err);

// Splits "a/b/c" into ("a/b", "c"); ("", "c") for a top-level name.
std::pair<std::string, std::string> split_parent(const std::string& path);

}  // namespace strata
