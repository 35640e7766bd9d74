#include "layerstore/sources/rootfs_import.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <memory>
#include <vector>

#include "layerstore/archive/decompress.hpp"
#include "layerstore/archive/digest.hpp"
#include "layerstore/error.hpp"
#include "layerstore/loader.hpp"
#include "layerstore/timestamp.hpp"

namespace strata {

namespace {

// GOARCH of this machine, as docker import records it.
std::string host_arch() {
  utsname u{};
  uname(&u);
  std::string m = u.machine;
  if (m == "x86_64") return "amd64";
  if (m == "aarch64") return "arm64";
  if (m == "i686" || m == "i386") return "386";
  if (m.rfind("arm", 0) == 0) return "arm";
  return m;  // ppc64le, s390x, riscv64 are already Go's names
}

struct Layer {
  std::shared_ptr<UniqueFd> file;
  uint64_t size = 0;
  std::string diff_id;
};

// Reads the input once: its diff_id (the sha256 of the decompressed tar) and, for stdin, a
// spool in the store's tmp dir to unpack from. The expansion cap of the unpack applies here
// too, so a bomb is stopped before it is read twice.
Layer read_input(const StoreLayout& l, const ImportOptions& o) {
  bool stdin_input = o.input == "-";
  UniqueFd in(stdin_input ? dup(0) : open(o.input.c_str(), O_RDONLY | O_CLOEXEC));
  if (!in) throw_errno(stdin_input ? "stdin" : o.input);
  struct stat st {};
  if (fstat(in.get(), &st) != 0) throw_errno(o.input);
  if (!stdin_input && !S_ISREG(st.st_mode)) throw Error("not a file (import takes a rootfs tarball)");
  UniqueFd spool;
  if (stdin_input) {
    spool = UniqueFd(open(l.layerdb_tmp().c_str(), O_TMPFILE | O_RDWR | O_CLOEXEC, 0600));
    if (!spool) throw_errno("temp file in " + l.layerdb_tmp());
  }
  std::vector<uint8_t> buf(1 << 20);
  std::unique_ptr<Decompressor> dec;
  Sha256 hash;
  uint64_t read_bytes = 0, out_bytes = 0;
  auto sink = [&](const uint8_t* p, size_t n) {
    out_bytes += n;
    if (o.max_expansion && out_bytes > o.max_expansion * read_bytes + kExpansionSlack)
      throw Error("decompresses to more than " + std::to_string(o.max_expansion) +
                  "x its size (a decompression bomb?); --max-expansion raises the cap");
    hash.update(p, n);
  };
  for (;;) {
    ssize_t n = read(in.get(), buf.data(), buf.size());
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw_errno(o.input);
    if (n == 0) break;
    read_bytes += n;
    if (stdin_input) {
      if (read_bytes > o.max_stdin_bytes)
        throw Error("stdin: more than " + std::to_string(o.max_stdin_bytes) + " bytes (--max-stdin-size)");
      for (ssize_t done = 0; done < n;) {
        ssize_t w = write(spool.get(), buf.data() + done, n - done);
        if (w < 0) throw_errno("spool stdin");
        done += w;
      }
    }
    if (!dec) dec = make_decompressor(detect_compression(buf.data(), n));
    dec->feed(buf.data(), n, sink);
  }
  if (!dec) throw Error("empty input (import takes a rootfs tarball)");
  dec->finish();
  Layer layer;
  layer.file = std::make_shared<UniqueFd>(stdin_input ? std::move(spool) : std::move(in));
  layer.size = read_bytes;
  layer.diff_id = hash.finish();
  return layer;
}

}  // namespace

std::string import_rootfs(const StoreLayout& l, const ImportOptions& o, Progress& progress) {
  l.ensure_skeleton();
  Layer layer;
  try {
    layer = read_input(l, o);
  } catch (const Error& e) {
    throw Error(std::string(e.what()) + "; nothing was imported");
  }
  std::string created = rfc3339_now();
  std::string comment = o.message.empty() ? "Imported from " + o.input : o.message;
  nlohmann::json cfg = {{"architecture", host_arch()},
                        {"os", "linux"},
                        {"created", created},
                        {"comment", comment},
                        {"config", o.config},
                        {"rootfs", {{"type", "layers"}, {"diff_ids", {layer.diff_id}}}},
                        {"history", {{{"created", created}, {"comment", comment}}}}};
  ImageToLoad img;
  img.config = cfg.dump();
  img.image_id = sha256_digest(img.config);
  img.diff_ids = {layer.diff_id};
  LayerToLoad lt;
  lt.blob.file = layer.file;
  lt.blob.offset = 0;
  lt.blob.length = layer.size;
  lt.blob.name = o.input == "-" ? "stdin" : o.input;
  img.layers.push_back(lt);
  if (o.tag) img.tags.push_back(*o.tag);
  LoadSummary sum;
  store_image(l, img, progress, sum, 1, o.max_expansion);
  return img.image_id;
}

}  // namespace strata
