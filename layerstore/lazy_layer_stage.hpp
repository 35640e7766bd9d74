#pragma once
// `load --lazy` / `pull --lazy`: one layer kept as blob + index (store/lazy_layer.hpp) in its
// staging dir. The blob is copied (or downloaded) into the store exactly as received, then
// indexed in the one pass that computes its digest and diff_id over the stored bytes, so
// what the store keeps is what was verified.
#include <cstdint>
#include <functional>
#include <string>

#include "layerstore/archive/layer_unpack.hpp"
#include "layerstore/sources/image_source.hpp"

namespace strata {

struct LazyStageResult {
  std::string digest;            // of the stored blob
  std::string diff_id;           // of its uncompressed tar
  std::string media_type;        // as the manifest said, else by compression
  std::string compression;       // "gzip", "zstd", "none"
  uint64_t compressed_bytes = 0;
  uint64_t uncompressed_bytes = 0;
  uint64_t content_bytes = 0;    // regular-file bytes, each inode once (layerdb "size")
};

// Fills `staging_dir` (an empty overlay2 staging dir, renamed to overlay2/<cache-id> on
// commit) with lazy-blob, lazy-index, lazy and lazy-digest. The caller checks digest and diff_id
// against the image; `poll` is called between chunks of a download (to stop it).
// Throws strata::Error (read/download errors, corrupt data, a tar `load` would refuse).
LazyStageResult stage_lazy_layer(const std::string& staging_dir, const LayerToLoad& layer,
                                 const WarnFn& warn, const ProgressFn& progress, const UnpackLimits& limits,
                                 const std::function<void()>& poll);

}  // namespace strata
