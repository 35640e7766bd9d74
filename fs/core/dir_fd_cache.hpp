// A bounded LRU of open layer directories (O_PATH fds for directory layers), one per
// (directory Inode, layer). Every name the
// engine passes to an *at call is one component below such an fd, so a lookup costs the same
// at any depth, paths longer than PATH_MAX work, and a rename of an ancestor cannot redirect
// an operation. The process may hold at most 20000 fds (a hard limit here), so the cache
// evicts; an fd in use stays open until its user drops it (shared ownership).
//
// Leaf lock: nothing else is taken while `mutex_` is held, and no syscall but close(2).
#pragma once

#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <unordered_map>

#include "fs/core/layer_source.hpp"

namespace strata::fs {

class DirFdCache {
 public:
  explicit DirFdCache(size_t capacity) : capacity_(capacity ? capacity : 1) {}

  LayerDirRef get(uint64_t inode_id, int layer);
  LayerDirRef put(uint64_t inode_id, int layer, LayerDirRef dir);
  // Drops every fd of a directory (freed, removed, or no longer at the place its fds name).
  void forget(uint64_t inode_id, size_t nlayers);
  size_t size() const;

 private:
  struct Key {
    uint64_t id;
    int layer;
    bool operator==(const Key&) const = default;
  };
  struct KeyHash {
    size_t operator()(const Key& k) const { return std::hash<uint64_t>()(k.id * 1031 + uint64_t(k.layer)); }
  };
  using Lru = std::list<std::pair<Key, LayerDirRef>>;

  size_t capacity_;
  mutable std::mutex mutex_;
  Lru lru_;  // most recent first
  std::unordered_map<Key, Lru::iterator, KeyHash> index_;
};

}  // namespace strata::fs
