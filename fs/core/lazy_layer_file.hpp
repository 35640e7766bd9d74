// A lazy layer descriptor: how a lower that is a regular file names the blob and index it is
// served from (fs/core/blob_layer_source.hpp). Apart from the layer source so that option
// parsing (and its fuzzer) can tell such a lower from a directory without linking the reader.
//
// A lower that strata-fs is given as a regular file is a lazy layer descriptor:
//   strata-lazy-layer 1
//   index=PATH-OF-THE-INDEX
//   blob=PATH-OF-A-FILE-HOLDING-THE-BLOB
//   offset=BYTE-OFFSET-OF-THE-BLOB-IN-THAT-FILE
//   verified=DEV:INO:SIZE:MTIME_NS:CTIME_NS    (optional)
// With verified=, the blob was verified against its digest in that file as it was then
// (common/lazy/blob_file_identity.hpp), and a blob file that is not that one any more is
// refused: a lazy mount of an archive names it; a store's own blobs do not need it.
// A relative PATH is relative to the descriptor's directory (a store's layers name the files
// beside them that way, so that the store can be moved); an absolute one is used as it is.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/lazy/blob_file_identity.hpp"

namespace strata::fs {

inline constexpr std::string_view kLazyLayerHeader = "strata-lazy-layer 1";

struct LazyLayerDescriptor {
  std::string index, blob;
  uint64_t offset = 0;
  std::optional<lazy::BlobFileIdentity> verified;
};

// True if `path` is a regular file that starts like a lazy layer descriptor.
bool is_lazy_layer_file(const std::string& path);
// Parses the descriptor; nullopt with `error` set.
std::optional<LazyLayerDescriptor> read_lazy_layer_file(const std::string& path, std::string& error);

}  // namespace strata::fs
