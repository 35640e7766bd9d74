#include "layerstore/archive/gzip_index_inflate.hpp"

#include <isa-l/igzip_lib.h>

#include <algorithm>
#include <cstring>

#include "layerstore/error.hpp"

namespace strata {

namespace {

constexpr size_t kOutChunk = 256 * 1024;
constexpr size_t kWindow = 32768;
// Input per slice once a checkpoint is due: a dynamic block's header (usually 50-100 bytes)
// is found in about 13 halvings of it. Its output (deflate expands at most 1032x, usually
// 2-10x) fits the probe buffer; a slice whose output does not is simply passed.
constexpr size_t kSlice = 8 * 1024;
constexpr size_t kProbeOut = 4 << 20;
// Input searched for a boundary before this checkpoint is given up (the next is tried a span
// later). A slice costs more than its plain inflate, and a block end goes unseen when the
// next block has the same Huffman codes (fixed-Huffman blocks, or one header reused for every
// block): without a budget a stream of such blocks was searched from end to end.
constexpr uint64_t kSearchBudget = 256 * 1024;

bool mid_member(const inflate_state& s) {
  return s.block_state == ISAL_BLOCK_NEW_HDR || s.block_state == ISAL_BLOCK_HDR ||
         s.block_state == ISAL_BLOCK_TYPE0 || s.block_state == ISAL_BLOCK_CODED;
}

}  // namespace

GzipIndexInflate::GzipIndexInflate(uint64_t span, std::vector<lazy::Checkpoint>& points, OutputSpace space)
    : span_(span), points_(points), space_(std::move(space)), st_(std::make_unique<inflate_state>()),
      saved_(std::make_unique<inflate_state>()) {
  if (!space_) out_.resize(kOutChunk);
}

GzipIndexInflate::~GzipIndexInflate() = default;

void GzipIndexInflate::check(int ret) const {
  if (ret == ISAL_DECOMP_OK) return;
  const char* why = ret == ISAL_INVALID_BLOCK      ? "invalid deflate block"
                    : ret == ISAL_INVALID_SYMBOL   ? "invalid deflate symbol"
                    : ret == ISAL_INVALID_LOOKBACK ? "invalid lookback distance"
                    : ret == ISAL_INVALID_WRAPPER  ? "invalid gzip header"
                    : ret == ISAL_UNSUPPORTED_METHOD ? "unsupported compression method"
                    : ret == ISAL_INCORRECT_CHECKSUM ? "CRC32 mismatch"
                                                     : "inflate error";
  throw Error(std::string("corrupt gzip data (") + why + ")");
}

// ISA-L checks each member's CRC32 and ISIZE itself (ISAL_GZIP).
void GzipIndexInflate::start_member(uint64_t at) {
  isal_inflate_init(st_.get());
  st_->crc_flag = ISAL_GZIP;
  in_member_ = true;
  any_member_ = true;
  tail_.clear();  // nothing in a member refers to the one before
  if (out_total_ - points_.back().out >= kMinStreamStartGap) {
    lazy::Checkpoint cp;
    cp.in = at;
    cp.out = out_total_;
    points_.push_back(std::move(cp));
  }
}

void GzipIndexInflate::feed(const uint8_t* p, size_t n, uint64_t at, const Sink& sink) {
  size_t off = 0;
  while (off < n) {
    if (!in_member_) start_member(at + off);  // another member follows (Go's reader, and so Docker, reads them as one stream)
    bool careful = checkpoint_due();
    off += careful ? careful_step(p + off, n - off, at + off, sink) : normal_step(p + off, n - off, at + off, sink);
  }
}

void GzipIndexInflate::finish() {
  if (in_member_ || !any_member_) throw Error("truncated gzip data (unexpected end of stream)");
}

bool GzipIndexInflate::checkpoint_due() const {
  uint64_t last = std::max(points_.back().out, gave_up_at_);
  return in_member_ && mid_member(*st_) && out_total_ - last >= std::max<uint64_t>(span_, 1);
}

void GzipIndexInflate::deliver(const uint8_t* data, size_t len, uint64_t compressed_so_far, const Sink& sink) {
  if (!len) return;
  out_total_ += len;
  if (len >= kWindow) {
    tail_.assign(reinterpret_cast<const char*>(data + len - kWindow), kWindow);
  } else {
    tail_.append(reinterpret_cast<const char*>(data), len);
    if (tail_.size() > kWindow) tail_.erase(0, tail_.size() - kWindow);
  }
  sink(data, len, compressed_so_far);
}

// Inflates until the input is used up, the member ends or a checkpoint falls due; returns the
// input used.
size_t GzipIndexInflate::normal_step(const uint8_t* p, size_t n, uint64_t at, const Sink& sink) {
  st_->next_in = const_cast<uint8_t*>(p);
  st_->avail_in = uint32_t(n);
  for (;;) {
    // ISA-L keeps the history it needs itself, so each call may write somewhere else.
    std::span<uint8_t> out = space_ ? space_() : std::span<uint8_t>(out_);
    st_->next_out = out.data();
    st_->avail_out = uint32_t(out.size());
    check(isal_inflate(st_.get()));
    size_t used = n - st_->avail_in;
    deliver(out.data(), out.size() - st_->avail_out, at + used, sink);
    if (st_->block_state == ISAL_BLOCK_FINISH) {
      in_member_ = false;
      // Bytes ISA-L holds in its bit buffer past the trailer belong to the next member.
      return used - size_t(st_->read_in_length / 8);
    }
    if (st_->block_state == ISAL_BLOCK_HDR && checkpoint_due()) {
      record(at + used);
      return used;
    }
    if (st_->avail_in == 0 && st_->avail_out != 0) return n;  // needs more input
    if (checkpoint_due()) return used;
  }
}

GzipIndexInflate::Probe GzipIndexInflate::probe(const uint8_t* p, size_t n) {
  std::memcpy(static_cast<void*>(st_.get()), saved_.get(), sizeof(inflate_state));
  if (probe_out_.empty()) probe_out_.resize(kProbeOut);
  st_->next_in = const_cast<uint8_t*>(p);
  st_->avail_in = uint32_t(n);
  st_->next_out = probe_out_.data();
  st_->avail_out = uint32_t(probe_out_.size());
  if (isal_inflate(st_.get()) != ISAL_DECOMP_OK) return {false, true, 0};
  bool ok = st_->avail_in == 0 && st_->avail_out != 0 && st_->tmp_out_valid == st_->tmp_out_processed &&
            st_->block_state != ISAL_BLOCK_FINISH;
  return {ok, false, probe_out_.size() - st_->avail_out};
}

// Whether a block ended between the saved state and now: another state, other Huffman codes,
// or another stored block. (Missing one, as when two blocks share their codes, only delays
// the checkpoint to a later block.)
bool GzipIndexInflate::crossed(size_t produced) const {
  if (st_->block_state != saved_->block_state) return true;
  if (st_->block_state == ISAL_BLOCK_CODED)
    return std::memcmp(&st_->lit_huff_code, &saved_->lit_huff_code, sizeof st_->lit_huff_code) != 0 ||
           std::memcmp(&st_->dist_huff_code, &saved_->dist_huff_code, sizeof st_->dist_huff_code) != 0;
  if (st_->block_state == ISAL_BLOCK_TYPE0) return int64_t(st_->type0_block_len) + int64_t(produced) > saved_->type0_block_len;
  return false;
}

// One slice once a checkpoint is due; returns the input used.
size_t GzipIndexInflate::careful_step(const uint8_t* p, size_t n, uint64_t at, const Sink& sink) {
  if (st_->block_state == ISAL_BLOCK_HDR) {
    record(at);
    return 0;
  }
  if (searched_ >= kSearchBudget) {
    gave_up_at_ = out_total_;
    searched_ = 0;
    return 0;
  }
  size_t len = std::min(n, kSlice);
  searched_ += len;
  std::memcpy(static_cast<void*>(saved_.get()), st_.get(), sizeof(inflate_state));
  Probe r = probe(p, len);
  if (r.ok && (st_->block_state == ISAL_BLOCK_HDR || !crossed(r.produced))) {
    deliver(probe_out_.data(), r.produced, at + len, sink);
    if (st_->block_state == ISAL_BLOCK_HDR) record(at + len);
    return len;
  }
  if (r.ok || r.failed) {
    // A block ended in this slice: the shortest prefix after which ISA-L waits for the next
    // block's header is the boundary. A prefix ISA-L refuses is taken as reaching past the
    // block's end too (input cut inside a header it does not wait for); a corrupt slice
    // fails every probe and then again below, for real.
    size_t lo = 0, hi = len;
    while (hi - lo > 1) {
      size_t mid = lo + (hi - lo) / 2;
      Probe m = probe(p, mid);
      if (m.failed) {
        hi = mid;  // the header's start: past the block's end
        continue;
      }
      if (!m.ok) break;
      if (st_->block_state == ISAL_BLOCK_HDR) {
        deliver(probe_out_.data(), m.produced, at + mid, sink);
        record(at + mid);
        return mid;
      }
      (crossed(m.produced) ? hi : lo) = mid;
    }
  }
  // No header caught: on as usual, a later block gives the checkpoint. (With all the input
  // there is, not the slice: the slice may end where ISA-L refuses a header.)
  std::memcpy(static_cast<void*>(st_.get()), saved_.get(), sizeof(inflate_state));
  return normal_step(p, n, at, sink);
}

// The state waits for a block header: the boundary is before the bits it holds (read_in) and
// the bytes it keeps for the header (tmp_in_buffer), `at` being the input given it so far.
void GzipIndexInflate::record(uint64_t at) {
  uint64_t bit = at * 8 - uint64_t(st_->tmp_in_size) * 8 - uint64_t(st_->read_in_length);
  lazy::Checkpoint cp;
  cp.kind = lazy::Checkpoint::Kind::DeflateBlock;
  cp.in = (bit + 7) / 8;
  cp.bits = uint8_t(cp.in * 8 - bit);
  cp.out = out_total_;
  cp.window = tail_;
  points_.push_back(std::move(cp));
  searched_ = 0;
}

}  // namespace strata
