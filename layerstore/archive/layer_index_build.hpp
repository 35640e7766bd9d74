#pragma once
// A lazy layer's index, built in one pass over the blob that also computes its digest and
// diff_id (so a blob that fails verification never gets an index): the checkpoints that let
// a read start near any offset, and the table of contents (toc_builder.hpp), the tar read by
// the same TarSplitRecorder (Go's archive/tar rules and refusals) as `load`.
#include <cstdint>

#include "common/lazy/blob_index.hpp"
#include "layerstore/archive/blob_ref.hpp"
#include "layerstore/archive/extract.hpp"
#include "layerstore/archive/layer_unpack.hpp"

namespace strata {

// Uncompressed bytes between gzip checkpoints: each holds a 32 KiB window, so 2 MiB keeps the
// windows at 1.6% of the layer (before the index is compressed) while a random read inflates
// 1 MiB on average.
constexpr uint64_t kDefaultCheckpointSpan = 2 << 20;

struct IndexBuildOptions {
  uint64_t span = kDefaultCheckpointSpan;
  UnpackLimits limits;
  // Read a blob that is not in the page cache with O_DIRECT (blob_prefetch.hpp): for a blob
  // read once in place, as `mount --lazy` reads an archive.
  bool around_page_cache = false;
};

// Throws strata::Error (corrupt or truncated data, a tar the load would refuse, a bomb).
lazy::BlobIndex build_blob_index(const BlobRef& blob, const WarnFn& warn, const ProgressFn& progress,
                                 IndexBuildOptions options = {});

}  // namespace strata
