// Fuzz target 1: the two tar readers of a layer load, side by side, as layer_unpack.cpp runs
// them: TarSplitRecorder (Go's archive/tar rules, tar-split) and libarchive (extraction),
// compared entry by entry (tar_agreement.hpp). The oracle: no crash or sanitizer report, and
// whenever the load would accept the tar, tar-split's record plus the file data libarchive
// read rebuild the input byte for byte (what `strata save` relies on).
#include <archive.h>
#include <archive_entry.h>

#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

#include "layerstore/archive/tar_agreement.hpp"
#include "layerstore/archive/tar_split.hpp"
#include "layerstore/error.hpp"

using namespace strata;

namespace {

struct Archive {
  archive* a = archive_read_new();
  ~Archive() { archive_read_free(a); }
};

// What the load accepts: nullopt when either reader (or their comparison) refuses; else the
// data libarchive read for each regular file.
std::optional<std::map<std::string, std::string>> load_would_accept(const uint8_t* data, size_t size,
                                                                    std::string& json) {
  TarEntryQueue entries;
  TarSplitRecorder rec({1000, 1 << 20}, [&](TarEntryView&& v) { entries.push(std::move(v)); });
  try {
    rec.feed(data, size);
    rec.finish();
  } catch (const Error&) {
    return std::nullopt;
  }
  json = rec.json();
  // layer_unpack.cpp's read callback adds the padding and end blocks a tar may lack.
  std::string input(reinterpret_cast<const char*>(data), size);
  input.append(tar_padding(static_cast<int64_t>(size)) + 2 * kTarBlock, '\0');
  Archive ar;
  archive_read_support_format_tar(ar.a);
  archive_read_support_format_gnutar(ar.a);
  if (archive_read_open_memory(ar.a, input.data(), input.size()) != ARCHIVE_OK) return std::nullopt;
  std::map<std::string, std::string> files;
  uint64_t n = 0;
  try {
    archive_entry* e;
    for (;;) {
      int r = archive_read_next_header(ar.a, &e);
      if (r == ARCHIVE_EOF) break;
      if (r < ARCHIVE_WARN) return std::nullopt;
      check_same_entry(entries.pop(), e, ++n);
      std::string name = archive_entry_pathname(e);
      std::string body;
      const void* block;
      size_t len;
      la_int64_t offset;
      for (;;) {
        int d = archive_read_data_block(ar.a, &block, &len, &offset);
        if (d == ARCHIVE_EOF) break;
        if (d < ARCHIVE_WARN) return std::nullopt;
        if (offset < 0 || static_cast<uint64_t>(offset) > (1u << 24)) return std::nullopt;
        if (body.size() < static_cast<size_t>(offset) + len) body.resize(offset + len, '\0');
        body.replace(offset, len, static_cast<const char*>(block), len);
      }
      // The extractor refuses a second entry of the same name (directories aside).
      if (archive_entry_filetype(e) == AE_IFREG && !archive_entry_hardlink(e) && !files.emplace(name, body).second)
        return std::nullopt;
    }
    check_no_entry_left(entries.pop());
  } catch (const Error&) {
    return std::nullopt;
  }
  return files;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string json;
  auto files = load_would_accept(data, size, json);
  if (!files) return 0;
  std::string rebuilt;
  try {
    assemble_tar_split_json(
        json,
        [&](const std::string& name, int64_t want, const TarByteSink& emit) {
          auto it = files->find(name);
          if (it == files->end()) throw Error("no data for " + name);
          emit(reinterpret_cast<const uint8_t*>(it->second.data()), std::min<size_t>(it->second.size(), want));
        },
        [&](const uint8_t* p, size_t n) { rebuilt.append(reinterpret_cast<const char*>(p), n); });
  } catch (const Error& e) {
    std::fprintf(stderr, "accepted tar does not reassemble: %s\n", e.what());
    std::abort();
  }
  if (rebuilt != std::string(reinterpret_cast<const char*>(data), size)) {
    std::fprintf(stderr, "accepted tar reassembles to different bytes (%zu vs %zu)\n", rebuilt.size(), size);
    std::abort();
  }
  // How much of a corpus exercises the rebuild: STRATA_FUZZ_VERBOSE=1 fuzz_tar -runs=0 DIR.
  static const bool verbose = std::getenv("STRATA_FUZZ_VERBOSE");
  if (verbose) std::fprintf(stderr, "accepted: %zu bytes, %zu files\n", size, files->size());
  return 0;
}
