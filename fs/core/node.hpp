// One name in the merged tree, as the kernel knows it (a FUSE inode).
// Structure (parent, name, children) is guarded by the InodeTable's tree lock; data-changing
// work on one node (copy-up) by the node's own mutex.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace strata::fs {

struct Node {
  Node* parent = nullptr;  // nullptr for the root and for unlinked nodes
  std::string name;
  std::unordered_map<std::string, Node*> children;  // looked-up children (dirs only)

  uint64_t nlookup = 0;  // the kernel's lookup count (tree lock)
  uint64_t ino = 0;      // st_ino presented; fixed for the node's life
  mode_t type = 0;       // S_IFMT bits

  // Layer holding the visible entry: 0 is the upper when the mount has one. Changes only
  // from a lower index to 0 (copy-up), so readers may load it without a lock.
  std::atomic<int> top{0};
  // For directories, the layers (top-most first) whose directory of this path is merged.
  std::vector<int> dir_layers;  // tree lock
  bool opaque = false;          // the top directory hides every layer below it (tree lock)
  // Lower layers (bit = layer index, below 64) whose directory of this path was scanned, and
  // those of them holding no .wh.NAME file: a name missing there needs no whiteout probe.
  // Lower layers do not change under a mount (as with kernel overlayfs).
  std::atomic<uint64_t> whiteouts_scanned{0};
  std::atomic<uint64_t> whiteout_free{0};

  std::atomic<uint32_t> copyups{0};  // bumped on copy-up: open lower fds reopen the upper file
  std::mutex mutex;

  bool is_dir() const { return (type & S_IFMT) == S_IFDIR; }
  // A merged directory: present in more than one layer.
  bool merged() const { return dir_layers.size() > 1; }
};

}  // namespace strata::fs
