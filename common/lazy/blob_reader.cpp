#include "common/lazy/blob_reader.hpp"

#include <unistd.h>
#include <isa-l/igzip_lib.h>
#include <zstd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace strata::lazy {

namespace {
constexpr size_t kInBuf = 128 * 1024;
constexpr size_t kMaxCursors = 4;
// Whole chunks a decoder passes on its way to a read (out-of-order reads, which readahead on
// several FUSE workers makes) are cached, up to this many before the read.
constexpr uint64_t kKeptOnTheWay = 8;
}  // namespace

// A decoder at uncompressed offset `out`, reading the blob from compressed offset `in_pos`.
class BlobReader::Cursor {
 public:
  Cursor(const BlobIndex& ix, int fd, uint64_t base, const Checkpoint& p)
      : ix_(ix), fd_(fd), base_(base), in_pos_(p.in), out_(p.out), buf_(kInBuf) {
    ok_ = start(p);
  }
  ~Cursor() {
    if (zs_) ZSTD_freeDStream(zs_);
  }
  uint64_t out() const { return out_; }
  bool ok() const { return ok_; }

  // Produces the next `n` bytes into `dst` (nullptr: discard). Returns how many (fewer only
  // at the end of the stream) or -1 when the blob is corrupt or cannot be read.
  ssize_t produce(uint8_t* dst, size_t n) {
    if (!ok_) return -1;
    size_t done = 0;
    std::vector<uint8_t> scratch;
    while (done < n && !eof_) {
      uint8_t* to = dst;
      size_t want = n - done;
      if (!dst) {
        scratch.resize(std::min<size_t>(want, 256 * 1024));
        to = scratch.data();
        want = scratch.size();
      } else {
        to = dst + done;
      }
      ssize_t got = step(to, want);
      if (got < 0) {
        ok_ = false;
        return -1;
      }
      if (got == 0 && avail_ == 0) {
        // The decoder needs input: more of the blob, or the blob is over.
        if (!refill() || (avail_ == 0 && !eof_)) {
          ok_ = false;
          return -1;
        }
      }
      done += size_t(got);
      out_ += uint64_t(got);
    }
    return ssize_t(done);
  }

 private:
  bool start(const Checkpoint& p) {
    switch (ix_.compression) {
      case BlobCompression::Plain:
        return true;
      case BlobCompression::Zstd:
        zs_ = ZSTD_createDStream();
        return zs_ && !ZSTD_isError(ZSTD_initDStream(zs_));
      case BlobCompression::Gzip:
        break;
    }
    // ISA-L's inflate (several times zlib's speed). From a block checkpoint it starts raw,
    // with the window as its dictionary and the block's first bits of the byte before `in`
    // placed in its bit buffer (read_in / read_in_length: ISA-L has no inflatePrime).
    st_ = std::make_unique<inflate_state>();
    isal_inflate_init(st_.get());
    if (p.kind == Checkpoint::Kind::StreamStart) {
      st_->crc_flag = ISAL_GZIP;
      return true;
    }
    st_->crc_flag = ISAL_DEFLATE;
    raw_ = true;
    if (!p.window.empty() &&
        isal_inflate_set_dict(st_.get(), reinterpret_cast<uint8_t*>(const_cast<char*>(p.window.data())),
                              uint32_t(p.window.size())) != COMP_OK)
      return false;
    if (p.bits) {
      uint8_t byte;
      if (::pread(fd_, &byte, 1, off_t(base_ + p.in - 1)) != 1) return false;
      st_->read_in = byte >> (8 - p.bits);
      st_->read_in_length = p.bits;
    }
    return true;
  }

  bool refill() {
    uint64_t left = ix_.compressed_size - in_pos_;
    if (left == 0) {
      // Plain and zstd streams end cleanly here; gzip only after a member's end.
      if (ix_.compression == BlobCompression::Plain || at_boundary_) eof_ = true;
      return true;
    }
    size_t want = size_t(std::min<uint64_t>(left, buf_.size()));
    ssize_t n = ::pread(fd_, buf_.data(), want, off_t(base_ + in_pos_));
    if (n <= 0) return false;
    next_ = buf_.data();
    avail_ = size_t(n);
    in_pos_ += uint64_t(n);
    return true;
  }

  ssize_t step(uint8_t* to, size_t want) {
    switch (ix_.compression) {
      case BlobCompression::Plain: {
        size_t k = std::min(want, avail_);
        std::memcpy(to, next_, k);
        next_ += k;
        avail_ -= k;
        return ssize_t(k);
      }
      case BlobCompression::Zstd: {
        if (at_boundary_ && avail_ == 0) return 0;
        ZSTD_inBuffer ib{next_, avail_, 0};
        ZSTD_outBuffer ob{to, want, 0};
        size_t r = ZSTD_decompressStream(zs_, &ob, &ib);
        if (ZSTD_isError(r)) return -1;
        next_ += ib.pos;
        avail_ -= ib.pos;
        at_boundary_ = r == 0;
        return ssize_t(ob.pos);
      }
      case BlobCompression::Gzip:
        break;
    }
    if (trailer_left_) {
      // A raw decoder stops before the member's CRC32 and ISIZE; the next member's header
      // follows them.
      size_t k = std::min(trailer_left_, avail_);
      next_ += k;
      avail_ -= k;
      trailer_left_ -= k;
      if (trailer_left_ == 0) at_boundary_ = true;
      return 0;
    }
    if (at_boundary_) {
      if (avail_ == 0) return 0;  // the blob may end here
      isal_inflate_init(st_.get());
      st_->crc_flag = ISAL_GZIP;
      at_boundary_ = false;
    }
    size_t room = std::min<size_t>(want, 1u << 30);
    st_->next_in = next_;
    st_->avail_in = uint32_t(avail_);
    st_->next_out = to;
    st_->avail_out = uint32_t(room);
    if (isal_inflate(st_.get()) != ISAL_DECOMP_OK) return -1;
    size_t produced = room - st_->avail_out;
    next_ = st_->next_in;
    avail_ = st_->avail_in;
    if (st_->block_state == ISAL_BLOCK_FINISH) {
      // ISA-L may have read up to 8 bytes past the member's end into its bit buffer: go
      // back to the first byte it did not use, and read on from there.
      uint64_t used_end = in_pos_ - avail_ - uint64_t(st_->read_in_length / 8);
      in_pos_ = used_end;
      avail_ = 0;
      if (raw_) {
        raw_ = false;
        trailer_left_ = 8;
      } else {
        at_boundary_ = true;  // another member may follow
      }
    }
    return ssize_t(produced);
  }

  const BlobIndex& ix_;
  int fd_;
  uint64_t base_;
  uint64_t in_pos_;
  uint64_t out_;
  std::vector<uint8_t> buf_;
  uint8_t* next_ = nullptr;
  size_t avail_ = 0;
  bool ok_ = false;
  bool eof_ = false;
  bool at_boundary_ = false;  // between gzip members or zstd frames
  bool raw_ = false;
  size_t trailer_left_ = 0;
  std::unique_ptr<inflate_state> st_;
  ZSTD_DStream* zs_ = nullptr;
};

BlobReader::BlobReader(std::shared_ptr<const BlobIndex> index, int fd, uint64_t offset, size_t cache_bytes)
    : index_(std::move(index)), fd_(fd), offset_(offset), max_chunks_(std::max<size_t>(2, cache_bytes / kChunk)) {}

BlobReader::~BlobReader() = default;

// Produces the chunk [start, start + len) with a decoder at or before `start`: a live one
// (waiting for it if a reader is using it) when it is past the checkpoint, else a new one.
BlobReader::ChunkRef BlobReader::decode(uint64_t start, size_t len, int& err) {
  const Checkpoint& p = index_->point_before(start);
  std::unique_ptr<Cursor> c;
  std::unique_lock lock(mu_);
  for (;;) {
    if (auto it = chunks_.find(start / kChunk); it != chunks_.end()) return it->second->second;
    auto best = cursors_.end();
    bool producing_it = false;  // another reader is decoding this very chunk
    for (auto it = cursors_.begin(); it != cursors_.end(); ++it) {
      producing_it = producing_it || (!it->cursor && it->from <= start && start < it->at &&
                                      it->at - start <= (kKeptOnTheWay + 1) * kChunk);
      if (it->at <= start && it->at >= p.out && (best == cursors_.end() || it->at > best->at)) best = it;
    }
    if (producing_it) {
      returned_.wait(lock);
      continue;
    }
    if (best == cursors_.end()) break;  // none: a new one from the checkpoint
    if (best->cursor) {
      c = std::move(best->cursor);
      cursors_.erase(best);
      break;
    }
    returned_.wait(lock);  // busy: it is producing what comes before this chunk
  }
  if (cursors_.size() >= kMaxCursors) {
    // Make room for the one this read will return: the least recently used idle one goes.
    for (auto it = cursors_.begin(); it != cursors_.end(); ++it)
      if (it->cursor) {
        cursors_.erase(it);
        break;
      }
  }
  cursors_.push_back(Pooled{nullptr, c ? c->out() : p.out, start + len});
  auto mine = std::prev(cursors_.end());
  lock.unlock();

  auto data = std::make_shared<std::vector<uint8_t>>(len);
  bool ok = true;
  if (!c) {
    c = std::make_unique<Cursor>(*index_, fd_, offset_, p);
    ok = c->ok();
  }
  while (ok && c->out() < start) {
    uint64_t at = c->out();
    if (at % kChunk == 0 && start - at <= kKeptOnTheWay * kChunk) {
      auto passed = std::make_shared<std::vector<uint8_t>>(kChunk);
      ssize_t got = c->produce(passed->data(), kChunk);
      ok = got == ssize_t(kChunk);
      if (ok) {
        std::lock_guard hold(mu_);
        insert_locked(at / kChunk, passed);
      }
    } else {
      // Discarded up to the next chunk start (or the read), to cache the chunks after it.
      uint64_t to = std::min(start, (at / kChunk + 1) * kChunk);
      if (start - to > kKeptOnTheWay * kChunk) to = start - kKeptOnTheWay * kChunk;
      ssize_t got = c->produce(nullptr, size_t(to - at));
      ok = got >= 0 && uint64_t(got) == to - at;
    }
  }
  if (ok) {
    ssize_t got = c->produce(data->data(), len);
    ok = got >= 0 && size_t(got) == len;
  }

  lock.lock();
  if (ok) {
    mine->cursor = std::move(c);
    insert_locked(start / kChunk, data);
  } else {
    cursors_.erase(mine);
  }
  returned_.notify_all();
  if (!ok) {
    err = EIO;
    return nullptr;
  }
  return data;
}

void BlobReader::insert_locked(uint64_t number, const ChunkRef& data) {
  if (chunks_.count(number)) return;  // another reader's, just as good
  if (lru_.size() >= max_chunks_) {
    chunks_.erase(lru_.back().first);
    lru_.pop_back();
  }
  lru_.emplace_front(number, data);
  chunks_[number] = lru_.begin();
}

BlobReader::ChunkRef BlobReader::chunk(uint64_t number, int& err) {
  {
    std::lock_guard lock(mu_);
    if (auto it = chunks_.find(number); it != chunks_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second);
      return it->second->second;
    }
  }
  uint64_t start = number * kChunk;
  size_t len = size_t(std::min<uint64_t>(kChunk, index_->uncompressed_size - start));
  ChunkRef data;
  if (index_->compression == BlobCompression::Plain) {
    auto bytes = std::make_shared<std::vector<uint8_t>>(len);
    for (size_t done = 0; done < len;) {
      ssize_t n = ::pread(fd_, bytes->data() + done, len - done, off_t(offset_ + start + done));
      if (n <= 0) {
        err = n < 0 ? errno : EIO;
        return nullptr;
      }
      done += size_t(n);
    }
    data = std::move(bytes);
    std::lock_guard lock(mu_);
    insert_locked(number, data);
    return data;
  }
  return decode(start, len, err);  // caches what it decodes
}

ssize_t BlobReader::read_at(void* buf, size_t len, uint64_t pos) {
  if (pos >= index_->uncompressed_size) return 0;
  len = size_t(std::min<uint64_t>(len, index_->uncompressed_size - pos));
  auto* out = static_cast<uint8_t*>(buf);
  size_t done = 0;
  while (done < len) {
    uint64_t at = pos + done;
    int err = 0;
    ChunkRef c = chunk(at / kChunk, err);
    if (!c) return -err;
    size_t in_chunk = size_t(at % kChunk);
    size_t k = std::min(len - done, c->size() - in_chunk);
    std::memcpy(out + done, c->data() + in_chunk, k);
    done += k;
  }
  return ssize_t(done);
}

}  // namespace strata::lazy
