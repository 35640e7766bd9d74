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

// A decompression bomb stops at the first of two caps. Real layers expand 3-10x (text
// and binaries); sparse-looking files of zeros much more, hence a flag to raise the ratio.
// 100x is ten times the worst real ratio, and the 64 MiB slack lets small layers of
// empty files and tar headers (which compress over 1000x) through whatever their ratio.
constexpr uint64_t kDefaultMaxExpansion = 100;
constexpr uint64_t kExpansionSlack = 64ull << 20;

struct UnpackLimits {
  uint64_t max_uncompressed = 1ull << 40;           // 1 TiB whatever the ratio
  uint64_t max_expansion = kDefaultMaxExpansion;  // x the compressed size + slack; 0: off
  // The compressed size when known before reading (the blob file, a manifest's size);
  // the cap follows the bytes read so far when that is larger or the size is unknown.
  int64_t compressed_size = -1;
};

// "--max-expansion N": N as a whole number (0: no ratio cap); throws strata::Error.
uint64_t parse_max_expansion(const std::string& text);

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
// A BlobStream over a BlobRef (blob_prefetch.hpp: read ahead, around a cold page cache);
// `blob` must outlive it.
BlobStream blob_file_stream(const BlobRef& blob);

// Digest and diff_id of a blob without extracting it: for layers already in the store,
// so a manifest that lies about them still fails the load.
struct BlobHashes {
  std::string digest, diff_id;
};
BlobHashes hash_layer_blob(const BlobRef& blob, const ProgressFn& progress);

}  // namespace strata
