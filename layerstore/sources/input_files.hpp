#pragma once
// The files of an input: a directory, or a tar archive indexed once (member -> byte range)
// so blobs are read straight out of it with pread, never copied. Compressed archives and
// stdin are first spooled to an unlinked temp file (O_TMPFILE) so a failed load leaves
// nothing behind. A tar needs random access (docker-archive's manifest.json may come last),
// so stdin cannot be streamed: its spool stops at a cap instead of filling the disk.
#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "layerstore/archive/blob_ref.hpp"

namespace strata {

class InputFiles {
 public:
  virtual ~InputFiles() = default;
  virtual bool exists(const std::string& rel) const = 0;
  // Throws strata::Error "<rel>: missing from <input>" when absent.
  virtual BlobRef blob(const std::string& rel) const = 0;
  virtual bool is_dir() const = 0;
};

constexpr uint64_t kDefaultMaxStdinBytes = uint64_t{32} << 30;

// `path` may be "-" (stdin). `spool_dir` is where O_TMPFILE spools go (the store's tmp dir).
// Stdin's spool (the archive after decompression) may hold at most `max_stdin_bytes`; a pipe
// given by name is spooled as stdin is. 0: no spool (a lazy mount reads blobs in place), so a
// stream is refused.
std::unique_ptr<InputFiles> open_input_files(const std::string& path, const std::string& spool_dir,
                                             uint64_t max_stdin_bytes = kDefaultMaxStdinBytes);
std::unique_ptr<InputFiles> open_dir_files(const std::string& dir);

}  // namespace strata
