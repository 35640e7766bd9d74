// Runs one strata-fs mount: builds the overlay, mounts it, detaches (unless foreground),
// serves requests on a thread pool until unmounted or signalled, then cleans up.
#pragma once

#include "fs/options.hpp"

namespace strata::fs::fuse {

// Returns the process exit status: 0 after a clean unmount or SIGTERM/SIGINT.
int run_filesystem(const Options& opts);

}  // namespace strata::fs::fuse
