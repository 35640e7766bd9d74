#include "layerstore/lazy_layer_stage.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "common/lazy/blob_index.hpp"
#include "layerstore/archive/fs_util.hpp"
#include "layerstore/archive/layer_index_build.hpp"
#include "layerstore/error.hpp"
#include "layerstore/store/lazy_layer.hpp"

namespace strata {

namespace {

void write_fully(int fd, const uint8_t* p, size_t n, const std::string& what) {
  while (n) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) throw_errno("write " + what);
    p += w;
    n -= size_t(w);
  }
}

// The blob's byte range into `out`: copy_file_range (a reflink or an in-kernel copy where
// the filesystem can), else read and write.
void copy_blob(const BlobRef& blob, int out, const std::string& what) {
  loff_t in_off = loff_t(blob.offset);
  uint64_t left = blob.length;
  while (left) {
    ssize_t n = copy_file_range(blob.file->get(), &in_off, out, nullptr, size_t(std::min<uint64_t>(left, 1ull << 30)), 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP)) break;
    if (n < 0) throw_errno("copy " + blob.name + " to " + what);
    if (n == 0) throw Error(blob.name + ": unexpected end of file");
    left -= uint64_t(n);
  }
  std::vector<uint8_t> buf(1 << 20);
  while (left) {
    ssize_t n = pread(blob.file->get(), buf.data(), size_t(std::min<uint64_t>(left, buf.size())), off_t(in_off));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_errno("read " + blob.name);
    if (n == 0) throw Error(blob.name + ": unexpected end of file");
    write_fully(out, buf.data(), size_t(n), what);
    in_off += n;
    left -= uint64_t(n);
  }
}

const char* compression_label(lazy::BlobCompression c) {
  return c == lazy::BlobCompression::Gzip ? "gzip" : c == lazy::BlobCompression::Zstd ? "zstd" : "none";
}

}  // namespace

LazyStageResult stage_lazy_layer(const std::string& staging_dir, const LayerToLoad& layer,
                                 const WarnFn& warn, const ProgressFn& progress, const UnpackLimits& limits,
                                 const std::function<void()>& poll) {
  LazyLayerPaths p = lazy_layer_paths_in(staging_dir);
  auto file = std::make_shared<UniqueFd>(::open(p.blob.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  if (!*file) throw_errno("create " + p.blob);
  if (layer.fetch) {
    layer.fetch([&](const uint8_t* d, size_t n) {
      if (poll) poll();
      write_fully(file->get(), d, n, p.blob);
    });
  } else {
    copy_blob(layer.blob, file->get(), p.blob);
  }
  if (fsync(file->get()) != 0) throw_errno("fsync " + p.blob);
  struct stat st;
  if (fstat(file->get(), &st) != 0) throw_errno("stat " + p.blob);
  BlobRef stored{file, 0, uint64_t(st.st_size), layer.blob.name};

  IndexBuildOptions o;
  o.limits = limits;
  if (layer.size >= 0) o.limits.compressed_size = layer.size;
  lazy::BlobIndex ix = build_blob_index(stored, warn, progress, o);

  LazyStageResult r;
  r.digest = ix.digest;
  r.diff_id = ix.diff_id;
  r.compressed_bytes = ix.compressed_size;
  r.uncompressed_bytes = ix.uncompressed_size;
  r.compression = compression_label(ix.compression);
  for (const auto& i : ix.inodes)
    if (S_ISREG(i.mode)) r.content_bytes += i.size;
  r.media_type = layer.media_type.empty() ? lazy_media_type_for(uint32_t(ix.compression)) : layer.media_type;
  write_file_atomic(p.index, ix.serialize(), 0644);
  write_lazy_layer_files(staging_dir, LazyBlobInfo{r.digest, r.media_type});
  return r;
}

}  // namespace strata
