#include "layerstore/archive/blob_prefetch.hpp"

#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "layerstore/error.hpp"

namespace strata {

namespace {

constexpr size_t kChunk = 2 << 20;
constexpr size_t kBuffers = 4;  // three chunks read ahead while the consumer has the fourth
// O_DIRECT's alignment of offsets, lengths and memory: the largest logical block size in use.
constexpr uint64_t kAlign = 4096;

struct FreeBuffer {
  void operator()(uint8_t* p) const { std::free(p); }
};
using Buffer = std::unique_ptr<uint8_t, FreeBuffer>;

// Whether the byte at `at` is in the page cache: a read told not to wait for the disk.
bool in_page_cache(int fd, uint64_t at) {
  uint8_t b;
  iovec v{&b, 1};
  return preadv2(fd, &v, 1, off_t(at), RWF_NOWAIT) == 1;
}

}  // namespace

struct BlobPrefetch::State {
  State(const BlobRef& b, IndexPassTimes& t) : blob(b), times(t) {}
  struct Chunk {
    Buffer buf;
    size_t skip = 0, len = 0;  // the blob's bytes in buf
  };

  BlobRef blob;
  IndexPassTimes& times;
  UniqueFd direct_fd;  // the blob's file opened again with O_DIRECT
  std::mutex mu;
  std::condition_variable changed;
  bool direct = false;  // guarded by mu once the thread runs
  std::vector<Buffer> spare;
  size_t allocated = 0;
  std::deque<Chunk> filled;
  Chunk current;  // the consumer's
  bool done = false, stop = false;
  std::exception_ptr error;
  std::thread thread;

  // A buffer to read into: a spare one, or a new one while fewer than kBuffers exist;
  // null when told to stop.
  Buffer take_buffer() {
    std::unique_lock lock(mu);
    changed.wait(lock, [&] { return stop || !spare.empty() || allocated < kBuffers; });
    if (stop) return nullptr;
    if (!spare.empty()) {
      Buffer b = std::move(spare.back());
      spare.pop_back();
      return b;
    }
    allocated++;
    lock.unlock();
    Buffer b(static_cast<uint8_t*>(std::aligned_alloc(kAlign, kChunk)));
    if (!b) throw Error("out of memory for the blob's read buffers");
    return b;
  }

  // Fills `buf` from `pos` until `want` bytes or the end of the file; returns the bytes read.
  size_t read_into(uint8_t* buf, uint64_t pos, size_t want) {
    size_t got = 0;
    while (got < want) {
      ssize_t n;
      {
        StageTimer t(times, IndexStage::Read);
        n = pread(direct ? direct_fd.get() : blob.file->get(), buf + got, want - got, off_t(pos + got));
      }
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && errno == EINVAL && direct && pos + got == (blob.offset & ~(kAlign - 1))) {
        // The filesystem took O_DIRECT at open but not these reads (an alignment it wants
        // larger): read through the page cache after all.
        std::lock_guard lock(mu);
        direct = false;
        return SIZE_MAX;
      }
      if (n < 0) throw_errno("read " + blob.name);
      if (n == 0) break;
      got += size_t(n);
    }
    return got;
  }

  void run() {
    try {
      const uint64_t begin = blob.offset, end = blob.offset + blob.length;
      if (!direct) posix_fadvise(blob.file->get(), off_t(begin), off_t(blob.length), POSIX_FADV_SEQUENTIAL);
      uint64_t pos = direct ? begin & ~(kAlign - 1) : begin;
      while (pos < end) {
        Buffer buf = take_buffer();
        if (!buf) return;
        size_t want = size_t(std::min<uint64_t>(kChunk, end - pos));
        if (direct) want = size_t(std::min<uint64_t>(kChunk, (want + kAlign - 1) & ~(kAlign - 1)));
        size_t got = read_into(buf.get(), pos, want);
        if (got == SIZE_MAX) {  // fell back to buffered reads
          pos = begin;
          std::lock_guard lock(mu);
          spare.push_back(std::move(buf));
          continue;
        }
        size_t skip = pos < begin ? size_t(begin - pos) : 0;
        size_t usable = size_t(std::min<uint64_t>(got, end - pos));
        if (usable < std::min<uint64_t>(want, end - pos) || usable <= skip)
          throw Error("unexpected end of file (" + std::to_string(std::max(pos + usable, begin) - begin) + " of " +
                      std::to_string(blob.length) + " bytes)");
        std::lock_guard lock(mu);
        filled.push_back(Chunk{std::move(buf), skip, usable - skip});
        changed.notify_all();
        pos += usable;
      }
      std::lock_guard lock(mu);
      done = true;
      changed.notify_all();
    } catch (...) {
      std::lock_guard lock(mu);
      error = std::current_exception();
      changed.notify_all();
    }
  }
};

BlobPrefetch::BlobPrefetch(const BlobRef& blob, bool around_page_cache, IndexPassTimes& times)
    : s_(std::make_unique<State>(blob, times)) {
  if (around_page_cache && blob.length && !in_page_cache(blob.file->get(), blob.offset + blob.length / 2)) {
    std::string self = "/proc/self/fd/" + std::to_string(blob.file->get());
    s_->direct_fd.reset(::open(self.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC));
    s_->direct = s_->direct_fd.valid();  // else a filesystem without O_DIRECT: the page cache
  }
  s_->thread = std::thread([this] { s_->run(); });
}

BlobPrefetch::~BlobPrefetch() {
  {
    std::lock_guard lock(s_->mu);
    s_->stop = true;
    s_->changed.notify_all();
  }
  s_->thread.join();
}

std::span<const uint8_t> BlobPrefetch::next() {
  State& s = *s_;
  std::unique_lock lock(s.mu);
  if (s.current.buf) {
    s.spare.push_back(std::move(s.current.buf));
    s.changed.notify_all();
  }
  s.changed.wait(lock, [&] { return !s.filled.empty() || s.done || s.error; });
  if (s.filled.empty()) {
    if (s.error) std::rethrow_exception(s.error);
    return {};
  }
  s.current = std::move(s.filled.front());
  s.filled.pop_front();
  return {s.current.buf.get() + s.current.skip, s.current.len};
}

bool BlobPrefetch::read_direct() const {
  std::lock_guard lock(s_->mu);
  return s_->direct;
}

}  // namespace strata
