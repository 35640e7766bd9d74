#pragma once
// A lazy layer in the store: an ordinary layerdb entry whose overlay2/<cache-id>/ holds the
// layer's blob exactly as received and its index instead of an unpacked diff/. The one place
// that knows the file names; the loader writes them, everything else asks here.
//
//   overlay2/<cache-id>/lazy-blob    the blob, byte for byte (its sha256 is the blob digest)
//   overlay2/<cache-id>/lazy-index   its index (common/lazy/blob_index.hpp)
//   overlay2/<cache-id>/lazy         the strata-fs descriptor naming the two (relative to it,
//                                    so that the store can be moved or copied)
//   overlay2/<cache-id>/lazy-digest  "<blob digest> <media type>" (what save/push send)
//   overlay2/<cache-id>/link, l/<short> -> ../<cache-id>/diff   as for any layer (dangling:
//                                    dockerd cannot use the layer until `strata unpack`)
//
// A layer is lazy iff `lazy` exists and `diff/` does not.
#include <optional>
#include <string>

#include "layerstore/store/store_layout.hpp"

namespace strata {

inline constexpr const char* kLazyDescriptorName = "lazy";
inline constexpr const char* kLazyBlobName = "lazy-blob";
inline constexpr const char* kLazyIndexName = "lazy-index";
inline constexpr const char* kLazyDigestName = "lazy-digest";

struct LazyLayerPaths {
  std::string dir;         // overlay2/<cache-id>
  std::string descriptor;  // dir/lazy
  std::string blob;        // dir/lazy-blob
  std::string index;       // dir/lazy-index
  std::string digest;      // dir/lazy-digest
};

// The names in overlay2 dir `dir` (whether or not they exist).
LazyLayerPaths lazy_layer_paths_in(const std::string& dir);

// The layer's lazy files when the layer with `cache_id` is lazy, else nullopt.
std::optional<LazyLayerPaths> lazy_layer(const StoreLayout& l, const std::string& cache_id);

// What a lowerdir list names for the layer: its descriptor when lazy, else its diff/.
std::string lowerdir_entry(const StoreLayout& l, const std::string& cache_id);

// The blob's digest and media type from `lazy-digest`.
struct LazyBlobInfo {
  std::string digest;      // sha256:...
  std::string media_type;  // e.g. application/vnd.oci.image.layer.v1.tar+gzip
};
LazyBlobInfo read_lazy_blob_info(const LazyLayerPaths& p);

// The media type to record for a blob whose manifest gave none (docker-archive): Docker's
// for a plain tar, the OCI ones by compression (`compression` as lazy::BlobCompression).
std::string lazy_media_type_for(uint32_t compression);

// What a lazy layer's `lazy` descriptor holds: lazy-index and lazy-blob by relative name.
std::string lazy_descriptor_text();

// Writes `lazy` and `lazy-digest` into `dir`, which already holds lazy-blob and lazy-index.
void write_lazy_layer_files(const std::string& dir, const LazyBlobInfo& info);

}  // namespace strata
