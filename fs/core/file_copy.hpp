// Copies file data between fds the cheapest way the filesystems allow: reflink, then
// copy_file_range over the data extents only (holes stay holes), then read/write.
#pragma once

#include <sys/types.h>

#include "fs/core/result.hpp"

namespace strata::fs {

Status copy_file_data(int src_fd, int dst_fd, off_t size);

}  // namespace strata::fs
