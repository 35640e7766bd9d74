// Random reads of a layer's uncompressed tar straight from its compressed blob, through the
// blob's index: a read starts decompressing at the checkpoint before it (or continues a
// decoder left where an earlier read stopped, which sequential reads and the inside of a
// single big zstd frame need), and decompressed chunks are kept in a bounded cache.
// Readers decompress in parallel: the lock covers only the cache and the pool of decoders. A
// reader whose best decoder is busy producing the chunks just before its own waits for it
// rather than starting a second one from a checkpoint (the kernel's readahead sends the next
// chunk's read while the previous one is decoded).
#pragma once

#include <sys/types.h>

#include <condition_variable>
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
  using ChunkRef = std::shared_ptr<const std::vector<uint8_t>>;
  struct Pooled {
    std::unique_ptr<Cursor> cursor;  // null while a reader has it
    uint64_t from;                   // where its reader took it (or started it)
    uint64_t at;                     // where it is, or will be once its reader is done
  };
  ChunkRef chunk(uint64_t number, int& err);
  ChunkRef decode(uint64_t start, size_t len, int& err);
  void insert_locked(uint64_t number, const ChunkRef& data);  // mu_ held

  std::shared_ptr<const BlobIndex> index_;
  int fd_;
  uint64_t offset_;
  size_t max_chunks_;
  std::mutex mu_;
  std::condition_variable returned_;  // a busy decoder came back to the pool
  std::list<std::pair<uint64_t, ChunkRef>> lru_;  // most recent first
  std::unordered_map<uint64_t, decltype(lru_)::iterator> chunks_;
  std::list<Pooled> cursors_;  // most recently used last
};

}  // namespace strata::lazy
