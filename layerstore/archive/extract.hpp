#pragma once
// Safe extraction of one layer tar (read by libarchive) into a layer's diff dir.
// Every entry is created relative to the diff dir's fd with openat2(RESOLVE_BENEATH), so
// "..", absolute names, symlinked parents and hardlinks pointing out all fail; whiteouts
// and opaque markers become the on-disk form overlayfs reads.
#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "layerstore/archive/unique_fd.hpp"
#include "layerstore/archive/whiteout.hpp"

struct archive;
struct archive_entry;

namespace strata {

struct ExtractStats {
  uint64_t entries = 0;
  uint64_t content_bytes = 0;     // regular-file bytes, each inode once (layerdb "size")
  uint64_t skipped_devices = 0;   // device nodes that could not be created (rootless)
  uint64_t skipped_whiteouts = 0; // whiteouts under a non-directory (umoci quirk)
};

using WarnFn = std::function<void(const std::string&)>;

class LayerExtractor {
 public:
  LayerExtractor(int diff_dirfd, WhiteoutStyle style, WarnFn warn);
  // Reads every entry of `a` and creates it. Throws strata::Error naming the entry.
  // `check` sees each entry first and may refuse it by throwing (tar_agreement.hpp).
  void extract_all(archive* a, const std::function<void(archive_entry*)>& check = {});
  const ExtractStats& stats() const { return stats_; }

 private:
  void extract_entry(archive* a, archive_entry* e);
  int parent_fd(const std::string& parent, const std::string& entry);
  void mark_root_owned(const std::string& path, const std::string& entry);
  void make_parents(const std::string& parent, const std::string& entry);
  void clear_existing(int pfd, const std::string& base, bool keep_dir, const std::string& entry);
  void write_file(archive* a, int pfd, const std::string& base, archive_entry* e, const std::string& entry);
  void apply_metadata(int pfd, const std::string& base, archive_entry* e, int fd, const std::string& entry);
  void apply_xattrs(int pfd, const std::string& base, archive_entry* e, int fd, const std::string& entry);
  void write_whiteout(int pfd, const std::string& parent, const std::string& target, const std::string& entry);
  void finish_directories();

  int root_;
  WhiteoutStyle style_;
  WarnFn warn_;
  ExtractStats stats_;
  std::string cached_parent_;
  UniqueFd cached_fd_;
  std::unordered_set<std::string> seen_;            // duplicate names are rejected (as tar-split does)
  std::unordered_set<std::string> dirs_;
  std::vector<std::pair<std::string, struct timespec>> dir_times_;
  std::vector<char> buf_;
};

}  // namespace strata
