#pragma once
// A blob is a byte range of an open file: a whole file in an OCI layout or registry dir,
// or a member of a (seekable) tar archive. The fd is shared by all blobs of one input.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "layerstore/archive/unique_fd.hpp"

namespace strata {

struct BlobRef {
  std::shared_ptr<UniqueFd> file;
  uint64_t offset = 0;
  uint64_t length = 0;
  std::string name;  // for messages: "blobs/sha256/ab12…" or "<v1id>/layer.tar"

  // Reads the whole blob (manifests, configs); throws if it is larger than `limit`.
  std::string read_all(uint64_t limit = 16 << 20) const;
};

// A blob that arrives as a stream (a registry download, a tar rebuilt from a layer): the
// stream is called once and hands every byte of the blob to `write`, in order; what it
// throws (or what `write` throws) fails the consumer.
using BlobWriter = std::function<void(const uint8_t*, size_t)>;
using BlobStream = std::function<void(const BlobWriter& write)>;

}  // namespace strata
