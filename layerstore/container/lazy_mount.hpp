#pragma once
// `strata mount --lazy ARCHIVE|DIR [DIR]`: a read-only view of an image straight from a
// docker-archive or OCI layout, with no store: each layer is served from its compressed blob
// through an index (common/lazy/blob_index.hpp) that is built once, in the pass that
// verifies the blob, and cached by the blob's digest.
#include <string>

#include "layerstore/archive/layer_unpack.hpp"
#include "layerstore/container/mounts.hpp"
#include "layerstore/sources/image_source.hpp"

namespace strata {

// Where indexes are cached: <root>/lazy when a store root was named (--root,
// $STRATA_ROOT), else $XDG_CACHE_HOME/strata/lazy (~/.cache/strata/lazy).
std::string lazy_cache_dir(const std::string& explicit_root);

struct LazyMountOptions {
  std::string input;     // an archive file or a directory
  std::string target;    // mount point; empty: <cache>/mnt/<image-id hex>
  std::string cache;     // lazy_cache_dir()
  Platform platform;
  uint64_t max_expansion = kDefaultMaxExpansion;  // as load's --max-expansion
};

// Verifies (first time) or looks up (cached) every layer's index, mounts, returns the mount
// point. Throws strata::Error naming the layer and the reason; nothing is mounted then.
std::string mount_lazy(const LazyMountOptions& opts, const NoteFn& note);

}  // namespace strata
