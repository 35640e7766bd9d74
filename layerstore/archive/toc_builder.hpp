#pragma once
// The table of contents of a lazy layer: the tree that extracting the layer tar would leave,
// replayed in memory entry by entry with the extractor's rules (extract.cpp) — cleaned names,
// ".." and absolute names refused, duplicates refused, missing parents made 0755 root-owned,
// a later entry replacing an earlier one, hardlinks only to files already in the layer,
// overlay xattrs dropped, devices and xattrs it cannot set skipped when not root — and the
// tar's whiteout markers turned into what overlayfs reads in a lower layer (a char 0/0 device;
// an opaque flag on the directory).
#include <cstdint>
#include <map>
#include <string>
#include <unordered_set>
#include <vector>

#include "common/lazy/blob_index.hpp"
#include "layerstore/archive/extract.hpp"
#include "layerstore/archive/tar_header.hpp"

namespace strata {

class TocBuilder {
 public:
  explicit TocBuilder(WarnFn warn);
  // One entry as Go's archive/tar read it, its data at `data_offset` of the tar, and the
  // device numbers from its header block. Throws strata::Error naming the entry.
  void add(const TarEntryView& e, uint64_t data_offset, uint64_t rdev);
  // Moves the tree into `ix` (names ordered as BlobIndex wants them, link counts set).
  void finish(lazy::BlobIndex& ix);

 private:
  struct Node {
    uint32_t inode;
    std::map<std::string, uint32_t> kids;  // directories only
  };
  uint32_t new_inode(uint32_t mode, const TarEntryView& e);
  bool is_dir(uint32_t node) const;
  // The directory node for `parent`, made (0755, root) where missing; refuses a parent that
  // is a symlink or not a directory.
  uint32_t parent_dir(const std::string& parent, const std::string& entry);
  // The node for `path`, or -1 if some component is missing or not a directory.
  int64_t find(const std::string& path) const;
  void remove_child(uint32_t dir, const std::string& base);
  void set_child(uint32_t dir, const std::string& base, uint32_t inode);

  WarnFn warn_;
  std::vector<Node> nodes_;
  std::vector<lazy::TocInode> inodes_;
  std::unordered_set<std::string> seen_, dirs_;
};

}  // namespace strata
