#pragma once
// The gzip side of a lazy layer's index pass: inflates the blob (one or more members) with
// ISA-L and finds the checkpoints a reader resumes from (common/lazy/blob_reader.cpp): each
// member's start and, at least `span` bytes of output apart, deflate block boundaries with the
// bit offset and the 32 KiB of output before them.
//
// ISA-L is several times zlib's inflate here, but it does not stop at block ends as zlib's
// Z_BLOCK does. It does show one: when its input ends inside a block header, it has finished
// the block before and waits for the header's rest (block_state ISAL_BLOCK_HDR, the bits after
// the boundary in read_in and tmp_in_buffer, all public in igzip_lib.h). So once a checkpoint
// is due, the input goes in in slices from a saved copy of the state; a slice during which a
// block ended is cut in halves until one ends inside the next header. A block whose header
// cannot be split that way (a fixed-Huffman header is 3 bits) is passed and the next one taken;
// a search that finds none within its budget gives that checkpoint up.
#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "common/lazy/blob_index.hpp"

struct inflate_state;

namespace strata {

// Stream starts (gzip members, zstd frames) cost no window; still, one every few bytes (a
// member per file, as eStargz writes) would make the index large for nothing.
constexpr uint64_t kMinStreamStartGap = 64 * 1024;

class GzipIndexInflate {
 public:
  // Output in order: `len` bytes at `data`, decoded from the blob's first `compressed_so_far` bytes.
  using Sink = std::function<void(const uint8_t* data, size_t len, uint64_t compressed_so_far)>;

  // Where to inflate to next: the sink's own buffer, so output handed to it at that address
  // needs no copy (PipelinedTar in layer_index_build.cpp). Asked again after every sink call.
  using OutputSpace = std::function<std::span<uint8_t>()>;

  // Appends checkpoints to `points` (which holds the stream start at 0 already). Without
  // `space`, output goes to a buffer of this inflater's.
  GzipIndexInflate(uint64_t span, std::vector<lazy::Checkpoint>& points, OutputSpace space = {});
  ~GzipIndexInflate();
  GzipIndexInflate(const GzipIndexInflate&) = delete;
  GzipIndexInflate& operator=(const GzipIndexInflate&) = delete;

  // The next `n` bytes of the blob, which start at blob offset `at`. Throws strata::Error.
  void feed(const uint8_t* p, size_t n, uint64_t at, const Sink& sink);
  // Throws when the blob ended inside a member (or held none).
  void finish();

 private:
  struct Probe {
    bool ok;          // decoded the whole slice, and all its output fit
    bool failed;      // ISA-L refused it (see careful_step)
    size_t produced;  // bytes in probe_out_
  };
  void start_member(uint64_t at);
  size_t normal_step(const uint8_t* p, size_t n, uint64_t at, const Sink& sink);
  size_t careful_step(const uint8_t* p, size_t n, uint64_t at, const Sink& sink);
  Probe probe(const uint8_t* p, size_t n);  // from the saved state
  bool crossed(size_t produced) const;      // a block ended since the saved state
  bool checkpoint_due() const;
  void deliver(const uint8_t* data, size_t len, uint64_t compressed_so_far, const Sink& sink);
  void record(uint64_t at);  // a block boundary, the state waiting for its header; `at`: input used
  void check(int ret) const;

  uint64_t span_;
  std::vector<lazy::Checkpoint>& points_;
  OutputSpace space_;
  std::unique_ptr<inflate_state> st_, saved_;
  std::vector<uint8_t> out_, probe_out_;
  std::string tail_;  // the member's last 32 KiB of output
  uint64_t out_total_ = 0;
  uint64_t searched_ = 0;    // input sliced since the checkpoint fell due
  uint64_t gave_up_at_ = 0;  // output when a search last ran out of budget
  bool in_member_ = false;
  bool any_member_ = false;
};

}  // namespace strata
