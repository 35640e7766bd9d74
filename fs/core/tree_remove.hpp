// Recursive removal below a directory fd, without following symlinks.
#pragma once

#include <string>

#include "fs/core/result.hpp"

namespace strata::fs {

// Removes everything inside dirfd/path (path itself stays).
Status remove_dir_contents(int dirfd, const std::string& path);
// Removes dirfd/path and, when it is a directory, everything below it.
Status remove_tree(int dirfd, const std::string& path);

}  // namespace strata::fs
