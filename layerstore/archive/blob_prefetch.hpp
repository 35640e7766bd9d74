#pragma once
// Reads a blob in order on a thread of its own, a few MiB ahead of the lazy index pass that
// consumes it, so hashing and inflating never wait for the disk.
//
// With `around_page_cache`, a blob whose bytes are not in the page cache is read with
// O_DIRECT into this reader's own buffers: the index pass reads each byte once, and a
// buffered read fills the page cache only to copy every page out of it again. On the shared
// 2-core VM this runs on, that copy from freshly filled page cache pages costs 0.1-0.6 s of
// system time for the four 144 MB blobs of the bench image while the CPUs are busy (the pass
// keeps both busy), against 0.01-0.03 s with O_DIRECT. A blob already cached (just written,
// just read) is read through the cache; a filesystem that refuses O_DIRECT gets the same.
#include <cstdint>
#include <memory>
#include <span>

#include "layerstore/archive/blob_ref.hpp"
#include "layerstore/archive/index_pass_times.hpp"

namespace strata {

class BlobPrefetch {
 public:
  BlobPrefetch(const BlobRef& blob, bool around_page_cache, IndexPassTimes& times);
  ~BlobPrefetch();  // stops the reading thread
  BlobPrefetch(const BlobPrefetch&) = delete;
  BlobPrefetch& operator=(const BlobPrefetch&) = delete;

  // The blob's next bytes, in order; empty once all were handed out. Valid until the next
  // call. Throws strata::Error for what the reading met (a read error, a short file).
  std::span<const uint8_t> next();
  // Whether the bytes came with O_DIRECT (the first read decides), for tests.
  bool read_direct() const;

 private:
  struct State;
  std::unique_ptr<State> s_;
};

}  // namespace strata
