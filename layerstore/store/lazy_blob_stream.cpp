#include "layerstore/store/lazy_blob_stream.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <vector>

#include "common/lazy/blob_index.hpp"
#include "layerstore/archive/decompress.hpp"
#include "layerstore/archive/digest.hpp"
#include "layerstore/archive/unique_fd.hpp"
#include "layerstore/error.hpp"

namespace strata {

namespace {

constexpr const char* kDockerGzip = "application/vnd.docker.image.rootfs.diff.tar.gzip";
constexpr const char* kDockerTar = "application/vnd.docker.image.rootfs.diff.tar";
constexpr const char* kOciGzip = "application/vnd.oci.image.layer.v1.tar+gzip";
constexpr const char* kOciTar = "application/vnd.oci.image.layer.v1.tar";

// Reads the blob file in 1 MiB pieces.
void read_blob(const LazyLayerPaths& p, const std::function<void(const uint8_t*, size_t)>& piece) {
  UniqueFd fd(open(p.blob.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) throw_errno("open " + p.blob);
  std::vector<uint8_t> buf(1 << 20);
  for (;;) {
    ssize_t n = read(fd.get(), buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_errno("read " + p.blob);
    if (n == 0) break;
    piece(buf.data(), static_cast<size_t>(n));
  }
}

// The blob decompressed (its format told from its first bytes), piece by piece to `out`.
void decode_blob(const LazyLayerPaths& p, const ByteSink& out) {
  std::unique_ptr<Decompressor> dec;
  std::string head;  // the first bytes, until the format can be told
  read_blob(p, [&](const uint8_t* b, size_t n) {
    if (!dec) {
      head.append(reinterpret_cast<const char*>(b), n);
      if (head.size() < 4) return;
      auto hb = reinterpret_cast<const uint8_t*>(head.data());
      dec = make_decompressor(detect_compression(hb, head.size()));
      dec->feed(hb, head.size(), out);
      return;
    }
    dec->feed(b, n, out);
  });
  if (!dec) {
    auto hb = reinterpret_cast<const uint8_t*>(head.data());
    dec = make_decompressor(detect_compression(hb, head.size()));
    dec->feed(hb, head.size(), out);
  }
  dec->finish();
}

}  // namespace

uint64_t lazy_blob_size(const LazyLayerPaths& p) {
  struct stat st;
  if (stat(p.blob.c_str(), &st) != 0) throw_errno("stat " + p.blob);
  return static_cast<uint64_t>(st.st_size);
}

uint64_t lazy_tar_size(const LazyLayerPaths& p) {
  std::string err;
  auto ix = lazy::load_index_file(p.index, err);
  if (!ix) throw Error(p.index + ": " + err + ": run `strata verify`");
  return ix->uncompressed_size;
}

void stream_lazy_blob(const LazyLayerPaths& p, const std::string& digest, const LazyByteSink& sink) {
  Sha256 h;
  read_blob(p, [&](const uint8_t* b, size_t n) {
    h.update(b, n);
    sink(b, n);
  });
  std::string got = h.finish();
  if (got != digest) throw Error("lazy layer blob " + p.blob + " hashes to " + got + ", not " + digest + ": run `strata verify`");
}

void stream_lazy_tar(const LazyLayerPaths& p, const std::string& diff_id, const LazyByteSink& sink) {
  Sha256 h;
  bool sink_failed = false;  // its errors (the output's) are not the blob's
  auto out = [&](const uint8_t* b, size_t n) {
    h.update(b, n);
    try {
      sink(b, n);
    } catch (...) {
      sink_failed = true;
      throw;
    }
  };
  try {
    decode_blob(p, out);
  } catch (const Error& e) {
    if (sink_failed) throw;
    // The decompressor's own words ("corrupt gzip data") say nothing of which file is bad.
    throw Error("lazy layer blob " + p.blob + ": " + e.what() + ": run `strata verify`");
  }
  std::string got = h.finish();
  if (got != diff_id)
    throw Error("lazy layer blob " + p.blob + " decompresses to " + got + ", not " + diff_id + ": run `strata verify`");
}

std::string oci_layer_media_type(const std::string& media_type) {
  if (media_type == kDockerGzip) return kOciGzip;
  if (media_type == kDockerTar) return kOciTar;
  return media_type;
}

std::string docker_layer_media_type(const std::string& media_type) {
  if (media_type == kOciGzip || media_type == kDockerGzip) return kDockerGzip;
  if (media_type == kOciTar || media_type == kDockerTar) return kDockerTar;
  return "";
}

}  // namespace strata
