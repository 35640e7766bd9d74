// Which file, in which state, a lazy layer's blob was verified in.
//
// A lazy mount of an archive reads the blob in place, from a file that is not the store's.
// Its digest is verified once, in the pass that builds the index; later mounts reuse the
// cached index and must not take the same digest, claimed by another file or by this file
// rewritten since, as verified. So the verification is bound to the file's identity: device,
// inode, size, and modification and change times to the nanosecond. Any write, truncate,
// rename over or replacement changes at least one of them (the change time cannot be set
// back by the file's owner), the way git's index and ccache tell an unchanged file. strata
// records the identity it verified; strata-fs compares it with the file it opened, so a
// file swapped in between the two is refused too.
#pragma once

#include <sys/stat.h>

#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <string>

namespace strata::lazy {

struct BlobFileIdentity {
  uint64_t dev = 0, ino = 0, size = 0;
  int64_t mtime_ns = 0, ctime_ns = 0;

  static BlobFileIdentity of(const struct stat& st) {
    auto ns = [](const struct timespec& t) { return int64_t(t.tv_sec) * 1000000000 + t.tv_nsec; };
    return {uint64_t(st.st_dev), uint64_t(st.st_ino), uint64_t(st.st_size), ns(st.st_mtim), ns(st.st_ctim)};
  }
  // "DEV:INO:SIZE:MTIME_NS:CTIME_NS", as lazy layer descriptors carry it.
  std::string str() const {
    char b[128];
    std::snprintf(b, sizeof b, "%" PRIu64 ":%" PRIu64 ":%" PRIu64 ":%" PRId64 ":%" PRId64, dev, ino, size, mtime_ns,
                  ctime_ns);
    return b;
  }
  static std::optional<BlobFileIdentity> parse(const std::string& s) {
    BlobFileIdentity id;
    int used = 0;
    if (std::sscanf(s.c_str(), "%" SCNu64 ":%" SCNu64 ":%" SCNu64 ":%" SCNd64 ":%" SCNd64 "%n", &id.dev, &id.ino,
                    &id.size, &id.mtime_ns, &id.ctime_ns, &used) != 5 ||
        size_t(used) != s.size())
      return std::nullopt;
    return id;
  }
  bool operator==(const BlobFileIdentity&) const = default;
};

}  // namespace strata::lazy
