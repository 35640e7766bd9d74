#pragma once
// The table of contents of a lazy layer: the tree that extracting the layer tar would leave,
// replayed in memory entry by entry with the extractor's rules (extract.cpp) — cleaned names,
// ".." and absolute names refused, duplicates refused, missing parents made 0755 root-owned,
// a later entry replacing an earlier one, hardlinks only to files already in the layer,
// overlay xattrs dropped, devices and xattrs it cannot set skipped when not root, parents
// resolved through the layer's own symlinks as openat2(RESOLVE_BENEATH) resolves them, sparse
// files read as their regions and holes — and the tar's whiteout markers turned into what
// overlayfs reads in a lower layer (a char 0/0 device; an opaque flag on the directory).
#include <cstdint>
#include <map>
#include <string>
#include <unordered_set>
#include <vector>

#include "common/lazy/blob_index.hpp"
#include "layerstore/archive/extract.hpp"
#include "layerstore/archive/tar_header.hpp"
#include "layerstore/archive/tar_sparse.hpp"

namespace strata {

class TocBuilder {
 public:
  explicit TocBuilder(WarnFn warn);
  // One entry as Go's archive/tar read it, its data at `data_offset` of the tar, and the
  // device numbers from its header block. Throws strata::Error naming the entry.
  void add(const TarEntryView& e, uint64_t data_offset, uint64_t rdev);
  // The sparse map of the file just added (TarSplitRecorder::on_sparse_map): its data holds
  // `map_bytes` of map first, then each region's bytes in order.
  void sparse_map(const std::vector<SparseRegion>& regions, uint64_t map_bytes);
  // Moves the tree into `ix` (names ordered as BlobIndex wants them, link counts set).
  void finish(lazy::BlobIndex& ix);

 private:
  struct Node {
    uint32_t inode;
    std::map<std::string, uint32_t> kids;  // directories only
  };
  // Where openat2(root, path, O_DIRECTORY, RESOLVE_BENEATH) lands in the tree so far: the
  // directory node, or the errno it fails with (ENOENT, ENOTDIR, EXDEV for an escape, ELOOP).
  struct Walk {
    int err = 0;
    uint32_t node = 0;
  };
  Walk walk(const std::string& path, bool follow_last) const;
  uint32_t new_inode(uint32_t mode, const TarEntryView& e);
  bool is_dir(uint32_t node) const;
  // The directory node the extractor's parent_fd() would give for `parent`: resolved through
  // symlinks beneath the root, missing directories made (0755, root) as make_parents() makes
  // them; throws what it throws.
  uint32_t parent_dir(const std::string& parent, const std::string& entry);
  void make_parents(const std::string& parent, const std::string& entry);
  void remove_child(uint32_t dir, const std::string& base);
  void set_child(uint32_t dir, const std::string& base, uint32_t inode);

  WarnFn warn_;
  std::vector<Node> nodes_;
  std::vector<lazy::TocInode> inodes_;
  std::unordered_set<std::string> seen_, dirs_;
  // The extractor keeps the fd of the last parent it opened and reuses it while entries name
  // the same parent path; so does this, so even a parent an entry replaced meanwhile is the
  // same one.
  std::string cached_parent_;
  int64_t cached_node_ = -1;
  // Directory entries and their mtimes, set at the end by path, the last first, as the
  // extractor does (so the first entry of a directory wins).
  std::vector<std::pair<std::string, int64_t>> dir_times_;
  int64_t last_file_ = -1;  // the inode of the regular file the last entry made
  std::vector<lazy::SparseSegment> segments_;  // BlobIndex::segments
};

}  // namespace strata
