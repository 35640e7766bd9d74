#include "layerstore/archive/layer_index_build.hpp"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <unistd.h>
#include <zstd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <mutex>
#include <span>
#include <thread>
#include <vector>

#include "layerstore/archive/archive_error.hpp"
#include "layerstore/archive/blob_prefetch.hpp"
#include "layerstore/archive/decompress.hpp"
#include "layerstore/archive/digest.hpp"
#include "layerstore/archive/gzip_index_inflate.hpp"
#include "layerstore/archive/index_pass_times.hpp"
#include "layerstore/archive/tar_agreement.hpp"
#include "layerstore/archive/tar_header.hpp"
#include "layerstore/archive/tar_split.hpp"
#include "layerstore/archive/toc_builder.hpp"
#include "layerstore/error.hpp"

namespace strata {

namespace {

// A tar header's numeric field as Go's parseNumeric: base-256 when the top bit is set, else
// octal between spaces and NULs.
uint64_t header_number(const uint8_t* f, size_t n) {
  if (f[0] & 0x80) {
    uint64_t v = f[0] & 0x7f;
    for (size_t i = 1; i < n; i++) v = (v << 8) | f[i];
    return v;
  }
  uint64_t v = 0;
  for (size_t i = 0; i < n; i++) {
    if (f[i] >= '0' && f[i] <= '7') v = v * 8 + uint64_t(f[i] - '0');
    else if (f[i] == 0 && v) break;
  }
  return v;
}

// The uncompressed side: diff_id, the tar reader and the TOC. The tar reader gets the
// stream one 512-byte block at a time, so when it reports an entry its header block has
// just ended and the entry's data starts at the current offset.
class TarSide {
 public:
  TarSide(const WarnFn& warn, const UnpackLimits& limits, IndexPassTimes& times)
      : times_(times), toc_(warn), limits_(limits),
        recorder_(check_only(), [this](TarEntryView&& v) {
          uint64_t rdev = 0;
          if (v.type == '3' || v.type == '4') {
            rdev = makedev_u(header_number(header_ + 329, 8), header_number(header_ + 337, 8));
          }
          toc_.add(v, offset_, rdev);
          entries_.push(std::move(v));
        }) {
    recorder_.on_sparse_map([this](const std::vector<SparseRegion>& regions, int64_t map_bytes) {
      toc_.sparse_map(regions, uint64_t(map_bytes));
    });
  }

  void feed(const uint8_t* p, size_t n, uint64_t compressed_so_far, bool compressed) {
    total_ += n;
    check_expansion(compressed_so_far, compressed);
    {
      StageTimer t(times_, IndexStage::TarHash);
      diff_.update(p, n);
    }
    StageTimer t(times_, IndexStage::TarParse);
    while (n) {
      size_t in_block = size_t(offset_ % kTarBlock);
      size_t k = std::min(n, kTarBlock - in_block);
      if (k == kTarBlock) {
        header_ = p;  // a whole block in place: no copy (most of the tar)
      } else {
        std::memcpy(block_ + in_block, p, k);
        header_ = block_;
      }
      offset_ += k;
      recorder_.feed(p, k);
      p += k;
      n -= k;
    }
  }
  // The end of the stream: throws if the tar ended early (Go's reading of it).
  void end_of_stream() { recorder_.finish(); }
  // The entries Go's reader found, in order, for libarchive's reading to be checked against.
  TarEntryQueue& entries() { return entries_; }
  uint64_t total() const { return total_; }
  void finish(lazy::BlobIndex& ix) {
    ix.uncompressed_size = total_;
    ix.diff_id = diff_.finish();
    toc_.finish(ix);
  }

 private:
  static TarSplitLimits check_only() {
    TarSplitLimits l;
    l.keep_record = false;
    return l;
  }
  static uint64_t makedev_u(uint64_t major, uint64_t minor) {
    return (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & ~0xffull) << 12) | ((major & ~0xfffull) << 32);
  }
  void check_expansion(uint64_t compressed_so_far, bool compressed) {
    if (total_ > limits_.max_uncompressed)
      throw Error("layer is larger than " + std::to_string(limits_.max_uncompressed) + " bytes uncompressed");
    if (!limits_.max_expansion || !compressed) return;
    uint64_t c = std::max<uint64_t>(compressed_so_far, limits_.compressed_size > 0 ? uint64_t(limits_.compressed_size) : 0);
    uint64_t cap = c && limits_.max_expansion > (UINT64_MAX - kExpansionSlack) / c ? UINT64_MAX
                                                                                 : c * limits_.max_expansion + kExpansionSlack;
    if (total_ > cap)
      throw Error("decompresses to more than " + std::to_string(limits_.max_expansion) + "x its compressed size + " +
                  std::to_string(kExpansionSlack >> 20) + " MiB (" + std::to_string(total_) + " bytes from " +
                  std::to_string(c) + "); --max-expansion N allows more");
  }

  IndexPassTimes& times_;
  TocBuilder toc_;
  UnpackLimits limits_;
  uint8_t block_[kTarBlock] = {};
  const uint8_t* header_ = block_;  // the block just fed: block_, or in place when it came whole
  uint64_t offset_ = 0, total_ = 0;
  Sha256 diff_;
  TarEntryQueue entries_;
  TarSplitRecorder recorder_;
};

// The uncompressed side on a thread of its own, so hashing and reading the tar overlap with
// decompression (the two are about equal work). That thread also reads the tar with
// libarchive, as extraction does, and checks each entry against Go's reading
// (tar_agreement.hpp): a tar the two read differently is refused here as `load` refuses it,
// so a lazy layer is always one `strata unpack` can extract. A bounded queue keeps the decompressor at
// most a few MiB ahead, so the expansion cap still stops a bomb early; the first error on
// either side ends the pass. Chunk buffers are reused: a fresh 256 KiB vector each time is an
// mmap, 64 page faults and a munmap. A decompressor writes straight into one of them
// (space()), so its output crosses to the tar thread without a copy.
class PipelinedTar {
 public:
  PipelinedTar(const WarnFn& warn, const UnpackLimits& limits, IndexPassTimes& times)
      : times_(times), tar_(warn, limits, times), worker_([this] { run(); }) {}
  ~PipelinedTar() { stop(); }

  // A buffer to decompress into; `n` bytes written at its start are then fed without a copy.
  std::span<uint8_t> space() {
    if (space_.empty()) {
      std::lock_guard lock(mu_);
      space_ = spare_buffer();
    }
    if (space_.size() < kSpace) space_.resize(kSpace);
    return space_;
  }
  void feed(const uint8_t* p, size_t n, uint64_t compressed_so_far, bool compressed) {
    StageTimer t(times_, IndexStage::Handoff);
    std::unique_lock lock(mu_);
    not_full_.wait(lock, [&] { return q_.size() < kDepth || error_; });
    if (error_) std::rethrow_exception(error_);
    std::vector<uint8_t> data;
    if (n && p == space_.data()) {
      data = std::move(space_);  // written in place
      space_.clear();
    } else {
      data = spare_buffer();
      lock.unlock();
      if (data.size() < n) data.resize(n);
      std::memcpy(data.data(), p, n);
      lock.lock();
    }
    q_.push_back(Chunk{std::move(data), n, compressed_so_far, compressed});
    not_empty_.notify_one();
  }
  IndexPassTimes& times() { return times_; }
  // Waits for the tar side to take everything, then fills the index's TOC and diff_id.
  void finish(lazy::BlobIndex& ix) {
    stop();
    if (error_) std::rethrow_exception(error_);
    tar_.finish(ix);
  }

 private:
  static constexpr size_t kDepth = 16;
  static constexpr size_t kSpace = 256 * 1024;
  struct Chunk {
    std::vector<uint8_t> data;  // its first `len` bytes (buffers are reused, never shrunk)
    size_t len;
    uint64_t compressed_so_far;
    bool compressed;
  };
  // Under mu_.
  std::vector<uint8_t> spare_buffer() {
    if (free_.empty()) return {};
    std::vector<uint8_t> b = std::move(free_.back());
    free_.pop_back();
    return b;
  }
  // libarchive's input: the next chunk, after the Go-side reader, the hash and the TOC have
  // taken it (so every entry libarchive reads is already queued by Go's reader). A chunk
  // stays valid until the next call, as libarchive requires.
  static la_ssize_t read_chunk(archive* a, void* self, const void** buf) {
    auto* me = static_cast<PipelinedTar*>(self);
    try {
      return me->next_chunk(buf);
    } catch (...) {
      me->feed_error_ = std::current_exception();
      archive_set_error(a, EIO, "the layer stream failed");
      return -1;
    }
  }
  la_ssize_t next_chunk(const void** buf) {
    Chunk c;
    {
      std::unique_lock lock(mu_);
      if (!current_.empty()) free_.push_back(std::move(current_));
      current_.clear();
      not_empty_.wait(lock, [&] { return !q_.empty() || closed_; });
      if (q_.empty()) {
        lock.unlock();
        if (!stream_ended_) {
          stream_ended_ = true;
          tar_.end_of_stream();
          // Tars that stop right after the last file's data (umoci insert writes them, Go
          // reads them): libarchive gets the padding and end blocks load gives it too.
          current_.assign(size_t(tar_padding(int64_t(tar_.total())) + 2 * kTarBlock), 0);
          *buf = current_.data();
          return la_ssize_t(current_.size());  // the end: this buffer is not reused
        }
        return 0;
      }
      c = std::move(q_.front());
      q_.pop_front();
      not_full_.notify_one();
    }
    tar_.feed(c.data.data(), c.len, c.compressed_so_far, c.compressed);
    current_ = std::move(c.data);
    *buf = current_.data();
    return la_ssize_t(c.len);
  }
  void drain() {
    const void* buf;
    while (next_chunk(&buf) > 0 || !stream_ended_) {
    }
  }
  void read_with_libarchive() {
    archive* a = archive_read_new();
    struct Free {
      archive* a;
      ~Free() { archive_read_free(a); }
    } free_archive{a};
    archive_read_support_format_tar(a);
    archive_read_support_format_gnutar(a);
    auto failed = [&](const std::string& what) {
      // The stream's own error (corrupt data, the expansion cap, Go's refusal) explains it better.
      if (feed_error_) std::rethrow_exception(feed_error_);
      throw Error(what + archive_error_text(a));
    };
    if (archive_read_open(a, this, nullptr, read_chunk, nullptr) != ARCHIVE_OK) failed("not a tar archive: ");
    archive_entry* e;
    const void* block;
    size_t size;
    la_int64_t offset;
    for (uint64_t n = 1;; n++) {
      int r = archive_read_next_header(a, &e);
      if (r == ARCHIVE_EOF) break;
      if (r < ARCHIVE_WARN) failed("invalid tar: ");
      check_same_entry(tar_.entries().pop(), e, n);
      if (archive_entry_filetype(e) != AE_IFREG) continue;
      std::string entry = archive_entry_pathname(e) ? archive_entry_pathname(e) : "";
      for (;;) {  // read as extraction reads: its data errors are refusals too
        r = archive_read_data_block(a, &block, &size, &offset);
        if (r == ARCHIVE_EOF) break;
        if (r < ARCHIVE_WARN) failed("read \"" + entry + "\": ");
      }
    }
    if (feed_error_) std::rethrow_exception(feed_error_);
    // libarchive stops at the end blocks; the rest of the stream still counts for diff_id.
    drain();
    check_no_entry_left(tar_.entries().pop());
  }
  void run() {
    try {
      read_with_libarchive();
    } catch (...) {
      std::lock_guard lock(mu_);
      error_ = std::current_exception();
      q_.clear();
      not_full_.notify_all();
    }
  }
  void stop() {
    {
      std::lock_guard lock(mu_);
      closed_ = true;
      not_empty_.notify_all();
    }
    if (worker_.joinable()) worker_.join();
  }

  IndexPassTimes& times_;
  TarSide tar_;
  std::mutex mu_;
  std::condition_variable not_full_, not_empty_;
  std::deque<Chunk> q_;
  std::vector<std::vector<uint8_t>> free_;
  std::vector<uint8_t> current_;  // the chunk libarchive is reading
  std::vector<uint8_t> space_;    // the decompressor's, see space()
  bool closed_ = false, stream_ended_ = false;
  std::exception_ptr error_, feed_error_;
  std::thread worker_;
};

// Reads the blob in order (blob_prefetch.hpp), handing every chunk to `each(data, len, offset)`.
template <typename F>
void read_blob(const BlobRef& blob, bool around_page_cache, const ProgressFn& progress, Sha256& digest,
               IndexPassTimes& times, F each) {
  BlobPrefetch reader(blob, around_page_cache, times);
  uint64_t pos = 0;
  for (auto chunk = reader.next(); !chunk.empty(); chunk = reader.next()) {
    {
      StageTimer t(times, IndexStage::BlobHash);
      digest.update(chunk.data(), chunk.size());
    }
    {
      StageTimer t(times, IndexStage::Inflate);  // less the handoff inside it, subtracted when printed
      each(chunk.data(), chunk.size(), pos);
    }
    pos += chunk.size();
    if (progress) progress(pos);
  }
}

void index_plain(const BlobRef& blob, bool around_page_cache, const ProgressFn& progress, Sha256& digest, PipelinedTar& tar,
                 lazy::BlobIndex& ix) {
  ix.points.push_back({});
  read_blob(blob, around_page_cache, progress, digest, tar.times(), [&](const uint8_t* p, size_t n, uint64_t at) { tar.feed(p, n, at + n, false); });
}

// ISA-L, which finds the block boundaries too (gzip_index_inflate.hpp).
void index_gzip(const BlobRef& blob, bool around_page_cache, const ProgressFn& progress, Sha256& digest, PipelinedTar& tar, lazy::BlobIndex& ix,
                uint64_t span) {
  ix.points.push_back({});
  GzipIndexInflate inflater(span, ix.points, [&tar] { return tar.space(); });
  auto sink = [&](const uint8_t* data, size_t len, uint64_t compressed_so_far) {
    tar.feed(data, len, compressed_so_far, true);
  };
  read_blob(blob, around_page_cache, progress, digest, tar.times(), [&](const uint8_t* p, size_t n, uint64_t at) { inflater.feed(p, n, at, sink); });
  inflater.finish();
}

void index_zstd(const BlobRef& blob, bool around_page_cache, const ProgressFn& progress, Sha256& digest, PipelinedTar& tar, lazy::BlobIndex& ix) {
  ZSTD_DStream* ds = ZSTD_createDStream();
  if (!ds) throw Error("zstd: out of memory");
  struct End {
    ZSTD_DStream* d;
    ~End() { ZSTD_freeDStream(d); }
  } end{ds};
  ZSTD_initDStream(ds);
  uint64_t out_total = 0;
  size_t last = 1;
  bool any = false;
  ix.points.push_back({});
  read_blob(blob, around_page_cache, progress, digest, tar.times(), [&](const uint8_t* p, size_t n, uint64_t at) {
    ZSTD_inBuffer ib{p, n, 0};
    while (ib.pos < ib.size || last != 0) {
      if (last == 0 && ib.pos < ib.size && out_total - ix.points.back().out >= kMinStreamStartGap) {
        // A frame ended here and another starts: frames decode independently.
        lazy::Checkpoint cp;
        cp.in = at + ib.pos;
        cp.out = out_total;
        ix.points.push_back(std::move(cp));
      }
      std::span<uint8_t> out = tar.space();  // zstd keeps its window itself: any buffer will do
      ZSTD_outBuffer ob{out.data(), out.size(), 0};
      size_t r = ZSTD_decompressStream(ds, &ob, &ib);
      if (ZSTD_isError(r)) throw Error(std::string("corrupt zstd data (") + ZSTD_getErrorName(r) + ")");
      last = r;
      any = true;
      out_total += ob.pos;
      if (ob.pos) tar.feed(out.data(), ob.pos, at + ib.pos, true);
      if (ob.pos < ob.size && ib.pos == ib.size) break;
    }
  });
  if (!any || last != 0) throw Error("truncated zstd data (unexpected end of stream)");
}

}  // namespace

lazy::BlobIndex build_blob_index(const BlobRef& blob, const WarnFn& warn, const ProgressFn& progress,
                                 IndexBuildOptions options) {
  if (blob.length == 0) throw Error("empty layer blob");
  if (options.limits.compressed_size < 0) options.limits.compressed_size = int64_t(blob.length);
  uint8_t head[4] = {};
  ssize_t got = pread(blob.file->get(), head, std::min<uint64_t>(4, blob.length), off_t(blob.offset));
  if (got < 0) throw_errno("read " + blob.name);
  Compression c = detect_compression(head, size_t(got));
  lazy::BlobIndex ix;
  ix.compression = c == Compression::Gzip ? lazy::BlobCompression::Gzip
                   : c == Compression::Zstd ? lazy::BlobCompression::Zstd
                                            : lazy::BlobCompression::Plain;
  ix.compressed_size = blob.length;
  Sha256 digest;
  IndexPassTimes times;
  auto wall = std::chrono::steady_clock::now();
  PipelinedTar tar(warn, options.limits, times);
  switch (c) {
    case Compression::Gzip: index_gzip(blob, options.around_page_cache, progress, digest, tar, ix, options.span); break;
    case Compression::Zstd: index_zstd(blob, options.around_page_cache, progress, digest, tar, ix); break;
    default: index_plain(blob, options.around_page_cache, progress, digest, tar, ix); break;
  }
  tar.finish(ix);
  ix.digest = digest.finish();
  times.print(blob.name, uint64_t(std::chrono::nanoseconds(std::chrono::steady_clock::now() - wall).count()),
              ix.points.size());
  return ix;
}

}  // namespace strata
