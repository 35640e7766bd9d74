#include "layerstore/archive/layer_unpack.hpp"

#include <archive.h>
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "layerstore/archive/archive_error.hpp"
#include "layerstore/archive/blob_prefetch.hpp"
#include "layerstore/archive/digest.hpp"
#include "layerstore/archive/tar_agreement.hpp"
#include "layerstore/archive/tar_split.hpp"
#include "layerstore/error.hpp"

namespace strata {

std::string BlobRef::read_all(uint64_t limit) const {
  if (length > limit) throw Error(name + ": too large (" + std::to_string(length) + " bytes)");
  std::string out(length, '\0');
  uint64_t done = 0;
  while (done < length) {
    ssize_t n = pread(file->get(), out.data() + done, length - done, offset + done);
    if (n < 0) throw_errno("read " + name);
    if (n == 0) throw Error(name + ": unexpected end of file");
    done += n;
  }
  return out;
}

namespace {

constexpr size_t kQueueDepth = 16;

// Decompressed chunks from the producer to libarchive; bounded so memory stays flat.
class ChunkQueue {
 public:
  void push(std::vector<uint8_t>&& chunk) {
    std::unique_lock lk(mu_);
    not_full_.wait(lk, [&] { return q_.size() < kQueueDepth || cancelled_; });
    if (cancelled_) throw Cancelled();
    q_.push_back(std::move(chunk));
    not_empty_.notify_one();
  }
  // Empty vector with `eof` set once the producer is done (or failed).
  bool pop(std::vector<uint8_t>& out) {
    std::unique_lock lk(mu_);
    not_empty_.wait(lk, [&] { return !q_.empty() || done_; });
    if (q_.empty()) return false;
    out = std::move(q_.front());
    q_.pop_front();
    not_full_.notify_one();
    return true;
  }
  void close() {
    std::lock_guard lk(mu_);
    done_ = true;
    not_empty_.notify_all();
  }
  void cancel() {
    std::lock_guard lk(mu_);
    cancelled_ = true;
    not_full_.notify_all();
  }
  struct Cancelled {};

 private:
  std::mutex mu_;
  std::condition_variable not_full_, not_empty_;
  std::deque<std::vector<uint8_t>> q_;
  bool done_ = false, cancelled_ = false;
};

uint64_t saturating_cap(uint64_t compressed, uint64_t ratio) {
  if (compressed && ratio > (UINT64_MAX - kExpansionSlack) / compressed) return UINT64_MAX;
  return compressed * ratio + kExpansionSlack;
}

struct Producer {
  const BlobStream& stream;
  const ProgressFn& progress;
  UnpackLimits limits;
  ChunkQueue queue;
  UnpackResult result;
  TarEntryQueue entries;  // what Go's archive/tar reads, for the extraction thread to compare
  TarSplitRecorder recorder{{}, [this](TarEntryView&& v) { entries.push(std::move(v)); }};
  std::exception_ptr error;

  void check_expansion(uint64_t compressed_so_far) {
    uint64_t out = result.uncompressed_bytes;
    if (out > limits.max_uncompressed)
      throw Error("layer is larger than " + std::to_string(limits.max_uncompressed) + " bytes uncompressed");
    if (!limits.max_expansion || result.compression == Compression::Plain) return;
    uint64_t compressed = std::max<uint64_t>(compressed_so_far, limits.compressed_size > 0 ? limits.compressed_size : 0);
    if (out > saturating_cap(compressed, limits.max_expansion))
      throw Error("decompresses to more than " + std::to_string(limits.max_expansion) + "x its compressed size + " +
                  std::to_string(kExpansionSlack >> 20) + " MiB (" + std::to_string(out) + " bytes from " +
                  std::to_string(compressed) + "); --max-expansion N allows more");
  }

  void run() {
    try {
      Sha256 digest, diff;
      std::unique_ptr<Decompressor> dec;
      uint64_t pos = 0;
      auto sink = [&](const uint8_t* p, size_t n) {
        result.uncompressed_bytes += n;
        check_expansion(pos);
        diff.update(p, n);
        recorder.feed(p, n);
        queue.push(std::vector<uint8_t>(p, p + n));
      };
      // The first bytes decide the compression; a stream may deliver fewer than 4 at once.
      std::vector<uint8_t> head;
      auto feed = [&](const uint8_t* p, size_t n) {
        if (!n) return;
        digest.update(p, n);
        pos += n;
        if (!dec) {
          head.insert(head.end(), p, p + n);
          if (head.size() < 4) return;
          result.compression = detect_compression(head.data(), head.size());
          dec = make_decompressor(result.compression);
          dec->feed(head.data(), head.size(), sink);
          head.clear();
        } else {
          dec->feed(p, n, sink);
        }
        if (progress) progress(pos);
      };
      stream(feed);
      if (!dec && !head.empty()) {
        dec = make_decompressor(detect_compression(head.data(), head.size()));
        dec->feed(head.data(), head.size(), sink);
      }
      if (!dec) throw Error("empty layer blob");
      dec->finish();
      recorder.finish();
      result.compressed_bytes = pos;
      result.digest = digest.finish();
      result.diff_id = diff.finish();
      result.tar_split_json = recorder.json();
    } catch (ChunkQueue::Cancelled&) {
    } catch (...) {
      error = std::current_exception();
    }
    queue.close();
  }
};

struct ReaderState {
  ChunkQueue* queue;
  const uint64_t* stream_bytes;  // valid once the queue is closed
  std::vector<uint8_t> current;
  bool end_supplied = false;
};

la_ssize_t read_callback(archive*, void* client, const void** buf) {
  auto* st = static_cast<ReaderState*>(client);
  if (!st->queue->pop(st->current)) {
    // Tars that stop right after the last file's data (no padding, no end blocks: umoci
    // insert writes these, Go's reader accepts them) make libarchive report truncation.
    // Give it the missing padding and end blocks; they are not part of the digest.
    if (st->end_supplied) return 0;
    st->end_supplied = true;
    st->current.assign(tar_padding(static_cast<int64_t>(*st->stream_bytes)) + 2 * kTarBlock, 0);
  }
  *buf = st->current.data();
  return static_cast<la_ssize_t>(st->current.size());
}

}  // namespace

uint64_t parse_max_expansion(const std::string& text) {
  uint64_t n = 0;
  bool ok = !text.empty() && text.size() <= 12;
  for (char c : text) {
    if (c < '0' || c > '9') ok = false;
    else n = n * 10 + (c - '0');
  }
  if (!ok) throw Error("invalid --max-expansion \"" + text + "\" (want a whole number N: a layer may expand to N x its compressed size + 64 MiB; 0: no ratio cap)");
  return n;
}

// The blob read as the lazy index pass reads it (blob_prefetch.hpp): ahead of the
// decompressor on a thread of its own, and around the page cache when it is not there yet,
// since extraction reads each byte once.
BlobStream blob_file_stream(const BlobRef& blob) {
  return [&blob](const BlobWriter& write) {
    IndexPassTimes unused;
    BlobPrefetch reader(blob, true, unused);
    for (auto chunk = reader.next(); !chunk.empty(); chunk = reader.next()) write(chunk.data(), chunk.size());
  };
}

UnpackResult unpack_layer(const BlobRef& blob, int diff_dirfd, const WhiteoutStyle& style,
                          const WarnFn& warn, const ProgressFn& progress, UnpackLimits limits) {
  if (limits.compressed_size < 0) limits.compressed_size = static_cast<int64_t>(blob.length);
  return unpack_layer_stream(blob_file_stream(blob), diff_dirfd, style, warn, progress, limits);
}

UnpackResult unpack_layer_stream(const BlobStream& stream, int diff_dirfd, const WhiteoutStyle& style,
                                 const WarnFn& warn, const ProgressFn& progress, UnpackLimits limits) {
  Producer prod{stream, progress, limits};
  std::thread producer([&] { prod.run(); });
  ReaderState rs{&prod.queue, &prod.result.uncompressed_bytes, {}, false};
  std::exception_ptr extract_error;
  ExtractStats stats;
  archive* a = archive_read_new();
  try {
    archive_read_support_format_tar(a);
    archive_read_support_format_gnutar(a);
    if (archive_read_open(a, &rs, nullptr, read_callback, nullptr) != ARCHIVE_OK)
      throw Error("not a tar archive: " + archive_error_text(a));
    LayerExtractor ex(diff_dirfd, style, warn);
    uint64_t n = 0;
    ex.extract_all(a, [&](archive_entry* e) { check_same_entry(prod.entries.pop(), e, ++n); });
    stats = ex.stats();
    // libarchive stops at the end blocks; the rest of the stream still counts for diff_id.
    std::vector<uint8_t> rest;
    while (prod.queue.pop(rest)) {
    }
    // The queue is closed: the producer has read the whole stream (or failed, see below).
    if (!prod.error) check_no_entry_left(prod.entries.pop());
  } catch (...) {
    extract_error = std::current_exception();
    prod.queue.cancel();
    std::vector<uint8_t> rest;
    while (prod.queue.pop(rest)) {
    }
  }
  archive_read_free(a);
  producer.join();
  // A stream error (corrupt gzip, truncation) explains an extraction failure better.
  if (prod.error) std::rethrow_exception(prod.error);
  if (extract_error) std::rethrow_exception(extract_error);
  prod.result.stats = stats;
  return std::move(prod.result);
}

BlobHashes hash_layer_blob(const BlobRef& blob, const ProgressFn& progress) {
  Sha256 digest, diff;
  std::unique_ptr<Decompressor> dec;
  TarSplitRecorder tar;  // also proves the stream is a complete tar
  auto sink = [&](const uint8_t* p, size_t n) {
    diff.update(p, n);
    tar.feed(p, n);
  };
  uint64_t pos = 0;
  blob_file_stream(blob)([&](const uint8_t* p, size_t n) {
    if (!dec) dec = make_decompressor(detect_compression(p, n));
    digest.update(p, n);
    dec->feed(p, n, sink);
    pos += n;
    if (progress) progress(pos);
  });
  if (!dec) throw Error("empty layer blob");
  dec->finish();
  tar.finish();
  return {digest.finish(), diff.finish()};
}

}  // namespace strata
