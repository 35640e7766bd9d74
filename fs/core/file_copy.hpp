// Copies file data between fds the cheapest way the filesystems allow: reflink, then
// copy_file_range over the data extents only (holes stay holes), then read/write.
#pragma once

#include <sys/types.h>

#include "fs/core/layer_source.hpp"
#include "fs/core/result.hpp"

namespace strata::fs {

Status copy_file_data(int src_fd, int dst_fd, off_t size);

// Copies a file whose data is read through its layer source (a blob) into `dst_fd`, 1 MiB at a
// time (memory stays bounded whatever the size); 4 KiB blocks of zeros stay holes.
Status copy_layer_data(const LayerFileData& src, int dst_fd);

}  // namespace strata::fs
