// Random reads of a layer's uncompressed tar straight from its compressed blob, through the
// blob's index: a read starts decompressing at the checkpoint before it (or continues a
// decoder left where an earlier read stopped, which sequential reads and the inside of a
// single big zstd frame need), and decompressed chunks are kept in a bounded cache.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "common/lazy/blob_index.hpp"

namespace strata::lazy {

class BlobReader {
 public:
  static constexpr size_t kChunk = 512 * 1024;
  static constexpr size_t kDefaultCacheBytes = 64 << 20;

  // The blob is the `index.compressed_size` bytes at `offset` of `fd` (a blob file, or a
  // member of an image archive); `fd` must stay open while the reader lives.
  BlobReader(std::shared_ptr<const BlobIndex> index, int fd, uint64_t offset,
             size_t cache_bytes = kDefaultCacheBytes);
  ~BlobReader();
  BlobReader(const BlobReader&) = delete;
  BlobReader& operator=(const BlobReader&) = delete;

  // Copies up to `len` bytes of the uncompressed tar at `pos` into `buf`: the count (short
  // only at the end of the tar) or -errno (EIO: the blob does not decompress as indexed).
  ssize_t read_at(void* buf, size_t len, uint64_t pos);

  const BlobIndex& index() const { return *index_; }

  class Cursor;  // a decoder positioned somewhere in the stream (blob_reader.cpp)

 private:
  const std::vector<uint8_t>* chunk(uint64_t number, int& err);
  Cursor* cursor_for(uint64_t out, int& err);

  std::shared_ptr<const BlobIndex> index_;
  int fd_;
  uint64_t offset_;
  size_t max_chunks_;
  std::mutex mu_;
  std::list<std::pair<uint64_t, std::vector<uint8_t>>> lru_;  // most recent first
  std::unordered_map<uint64_t, decltype(lru_)::iterator> chunks_;
  std::vector<std::unique_ptr<Cursor>> cursors_;  // most recent last
};

}  // namespace strata::lazy
