#pragma once
// One streaming pass over a layer blob: read -> sha256 (digest) -> decompress -> sha256
// (diff_id) + tar-split recording on a producer thread, and libarchive + safe extraction
// on the calling thread, so decompression, hashing and writing overlap.
#include <cstdint>
#include <functional>
#include <string>

#include "layerstore/archive/blob_ref.hpp"
#include "layerstore/archive/decompress.hpp"
#include "layerstore/archive/extract.hpp"

namespace strata {

struct UnpackLimits {
  uint64_t max_uncompressed = 1ull << 40;  // 1 TiB: a decompression bomb stops here
};

struct UnpackResult {
  std::string digest;   // of the blob as stored
  std::string diff_id;  // of the uncompressed tar
  Compression compression = Compression::Plain;
  uint64_t compressed_bytes = 0;
  uint64_t uncompressed_bytes = 0;
  std::string tar_split_json;
  ExtractStats stats;
};

// Called from the producer thread with the blob bytes read so far.
using ProgressFn = std::function<void(uint64_t done)>;

UnpackResult unpack_layer(const BlobRef& blob, int diff_dirfd, const WhiteoutStyle& style,
                          const WarnFn& warn, const ProgressFn& progress, UnpackLimits limits = {});

// The same pass over a blob that arrives as a stream (blob_ref.hpp); `stream` runs on the
// producer thread.
UnpackResult unpack_layer_stream(const BlobStream& stream, int diff_dirfd, const WhiteoutStyle& style,
                                 const WarnFn& warn, const ProgressFn& progress, UnpackLimits limits = {});
// A BlobStream over a BlobRef (pread in 1 MiB chunks); `blob` must outlive it.
BlobStream blob_file_stream(const BlobRef& blob);

// Digest and diff_id of a blob without extracting it: for layers already in the store,
// so a manifest that lies about them still fails the load.
struct BlobHashes {
  std::string digest, diff_id;
};
BlobHashes hash_layer_blob(const BlobRef& blob, const ProgressFn& progress);

}  // namespace strata
