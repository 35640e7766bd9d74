#include "fs/core/file_copy.hpp"

#include <linux/fs.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>

namespace strata::fs {

namespace {

Status copy_range_rw(int src, int dst, off_t off, off_t end) {
  constexpr size_t kChunk = 1 << 20;
  std::unique_ptr<char[]> buf(new char[kChunk]);
  while (off < end) {
    size_t want = size_t(std::min<off_t>(end - off, off_t(kChunk)));
    ssize_t n = ::pread(src, buf.get(), want, off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (n == 0) break;
    for (ssize_t done = 0; done < n;) {
      ssize_t w = ::pwrite(dst, buf.get() + done, size_t(n - done), off + done);
      if (w < 0) {
        if (errno == EINTR) continue;
        return errno;
      }
      done += w;
    }
    off += n;
  }
  return 0;
}

// Copies [off, end); switches to read/write for good once copy_file_range is refused.
Status copy_range(int src, int dst, off_t off, off_t end, bool& use_cfr) {
  while (use_cfr && off < end) {
    loff_t in = off, out = off;
    ssize_t n = ::copy_file_range(src, &in, dst, &out, size_t(end - off), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP) {
        use_cfr = false;
        break;
      }
      return errno;
    }
    if (n == 0) return 0;  // source shrank under us
    off += n;
  }
  return off < end ? copy_range_rw(src, dst, off, end) : 0;
}

}  // namespace

Status copy_file_data(int src_fd, int dst_fd, const struct stat& src_st, std::atomic<bool>* no_reflink) {
  const off_t size = src_st.st_size;
  if (size == 0) return 0;
  if (!no_reflink || !no_reflink->load(std::memory_order_relaxed)) {
    if (::ioctl(dst_fd, FICLONE, src_fd) == 0) return 0;
    // The destination's filesystem has no reflinks (ext4): it never will during this mount.
    if (errno == EOPNOTSUPP && no_reflink) no_reflink->store(true, std::memory_order_relaxed);
  }
  bool use_cfr = true;
  if (src_st.st_blocks > 0 && size <= off_t(src_st.st_blksize)) {
    // One block, allocated: no hole to keep, no need to look for one (the common small file).
    // A file with no blocks may still hold inline data, so it takes the general path.
    if (Status st = copy_range(src_fd, dst_fd, 0, size, use_cfr); st != 0) return st;
    return ::ftruncate(dst_fd, size) == 0 ? 0 : errno;
  }
  off_t off = 0;
  while (off < size) {
    off_t data = ::lseek(src_fd, off, SEEK_DATA);
    if (data < 0) {
      if (errno == ENXIO) break;  // only a hole remains
      // No SEEK_DATA support: copy everything.
      if (Status st = copy_range(src_fd, dst_fd, off, size, use_cfr); st != 0) return st;
      break;
    }
    off_t hole = ::lseek(src_fd, data, SEEK_HOLE);
    if (hole < 0) hole = size;
    if (Status st = copy_range(src_fd, dst_fd, data, std::min(hole, size), use_cfr); st != 0) return st;
    off = hole;
  }
  return ::ftruncate(dst_fd, size) == 0 ? 0 : errno;
}

Status copy_layer_data(const LayerFileData& src, int dst_fd) {
  constexpr size_t kChunk = 1 << 20, kBlock = 4096;
  static const char zeros[kBlock] = {};
  std::unique_ptr<char[]> buf(new char[kChunk]);
  off_t size = src.size();
  for (off_t off = 0; off < size;) {
    // Holes the layer knows of are skipped without reading them (a sparse file's).
    off_t data = src.seek_data(off, false);
    if (data < 0) break;  // only a hole remains
    off_t hole = src.seek_data(data, true);
    if (hole < 0) hole = size;
    if (data > off) {
      off = data;
      continue;
    }
    size_t want = size_t(std::min<off_t>(hole - off, off_t(kChunk)));
    ssize_t n = src.read_at(buf.get(), want, off);
    if (n < 0) return int(-n);
    if (size_t(n) != want) return EIO;  // the index promised these bytes
    for (size_t at = 0; at < want;) {
      size_t k = std::min(kBlock, want - at);
      if (std::memcmp(buf.get() + at, zeros, k) == 0) {
        at += k;
        continue;
      }
      size_t end = at + k;  // one write for each run of blocks with data
      while (end < want && std::memcmp(buf.get() + end, zeros, std::min(kBlock, want - end)) != 0)
        end += std::min(kBlock, want - end);
      for (size_t done = at; done < end;) {
        ssize_t w = ::pwrite(dst_fd, buf.get() + done, end - done, off + off_t(done));
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return errno;
        done += size_t(w);
      }
      at = end;
    }
    off += off_t(want);
  }
  // A trailing hole still counts in the size.
  return ::ftruncate(dst_fd, size) == 0 ? 0 : errno;
}

}  // namespace strata::fs
