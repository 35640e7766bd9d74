// Fuzz target 5: the lazy index loader (common/lazy/blob_index.hpp), which reads files from a
// cache dir or a store that anything may have written. The first byte picks the form: odd,
// the rest is a whole index file; even, the rest is an index body, stored zstd-compressed
// behind a header that names its true size, so mutations reach the body's parser instead of
// stopping at the compression. The oracle: no crash or sanitizer report, no allocation beyond
// what the input holds (libFuzzer's -rss_limit_mb and -malloc_limit_mb), and an index that
// parses is consistent: it serializes and parses back to the same bytes, every name is found
// under its parent, every file's data and sparse regions lie inside the tar.
#include <zstd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "common/lazy/blob_index.hpp"

using namespace strata::lazy;

namespace {

void put64(std::string& s, size_t at, uint64_t v) {
  for (int i = 0; i < 8; i++) s[at + i] = char(v >> (8 * i));
}

[[noreturn]] void fail(const char* why) {
  std::fprintf(stderr, "parsed index inconsistent: %s\n", why);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  std::string rest(reinterpret_cast<const char*>(data) + 1, size - 1), file;
  if (data[0] & 1) {
    file = rest;
  } else {
    std::string packed(ZSTD_compressBound(rest.size()), '\0');
    size_t n = ZSTD_compress(packed.data(), packed.size(), rest.data(), rest.size(), 1);
    if (ZSTD_isError(n)) return 0;
    packed.resize(n);
    file.assign(48, '\0');
    file.replace(0, 8, kIndexMagic, 8);
    file[8] = char(kIndexVersion);
    file[12] = 1;                 // gzip
    put64(file, 16, 1 << 20);     // compressed size
    put64(file, 24, 64 << 20);    // uncompressed size: room for the offsets in the body
    put64(file, 32, rest.size());
    put64(file, 40, packed.size());
    file += packed;
  }
  std::string err;
  auto ix = BlobIndex::parse(file, err);
  if (!ix) {
    if (err.empty()) fail("refused without a reason");
    return 0;
  }
  for (uint32_t k = 1; k < ix->names.size(); k++) {
    auto c = ix->child(ix->names[k].parent, ix->names[k].name);
    if (!c || *c != k) fail("a name is not found under its parent");
  }
  for (const auto& i : ix->inodes) {
    if (!i.sparse) continue;
    uint64_t end = 0;
    for (const auto& g : ix->segments_of(i)) {
      if (g.file_offset < end || g.file_offset + g.length > i.size || g.tar_offset + g.length > ix->uncompressed_size)
        fail("a sparse region out of order or outside the file or the tar");
      end = g.file_offset + g.length;
    }
  }
  (void)ix->point_before(ix->uncompressed_size);
  std::string again = ix->serialize();
  auto back = BlobIndex::parse(again, err);
  if (!back || back->serialize() != again) fail("does not parse back to itself");
  return 0;
}
