#pragma once
// Writes a rw layer's diff dir as a layer tar: whiteouts (char 0/0 or ".wh." files) become
// ".wh.NAME" entries, opaque dirs get a ".wh..wh..opq" entry right after the dir, hardlinks
// point at the first name, mtimes are whole seconds, owners and modes come from
// user.containers.override_stat where a rootless writer kept them. diff_id (sha256 of the
// tar) and the gzip digest are computed while writing.
#include <cstdint>
#include <functional>
#include <string>

namespace strata {

struct ExportResult {
  std::string diff_id;      // sha256 of the tar
  std::string gzip_digest;  // sha256 of the same tar gzip-compressed (level 6, no name/mtime)
  uint64_t tar_bytes = 0;
  uint64_t gzip_bytes = 0;
};

// Writes the tar to out_fd; `progress` (if set) gets the tar bytes written so far.
ExportResult export_layer_tar(const std::string& diff_dir, int out_fd,
                              const std::function<void(uint64_t)>& progress = {});
// About the size of the tar of `diff_dir` (file sizes plus a header per entry), for a bar.
uint64_t estimate_tar_bytes(const std::string& diff_dir);

}  // namespace strata
