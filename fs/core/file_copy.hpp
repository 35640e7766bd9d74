// Copies file data between fds the cheapest way the filesystems allow: reflink, then
// copy_file_range over the data extents only (holes stay holes), then read/write.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <atomic>

#include "fs/core/layer_source.hpp"
#include "fs/core/result.hpp"

namespace strata::fs {

// `src_st`: the source's stat. `no_reflink`, when given, is set once the destination's
// filesystem refuses reflinks (EOPNOTSUPP: it has none), and then no reflink is tried.
Status copy_file_data(int src_fd, int dst_fd, const struct stat& src_st, std::atomic<bool>* no_reflink = nullptr);

// Copies a file whose data is read through its layer source (a blob) into `dst_fd`, 1 MiB at a
// time (memory stays bounded whatever the size); 4 KiB blocks of zeros stay holes.
Status copy_layer_data(const LayerFileData& src, int dst_fd);

}  // namespace strata::fs
