#include "fs/core/dir_fd_cache.hpp"

#include <vector>

namespace strata::fs {

LayerDirRef DirFdCache::get(uint64_t inode_id, int layer) {
  std::lock_guard lock(mutex_);
  auto it = index_.find(Key{inode_id, layer});
  if (it == index_.end()) return nullptr;
  lru_.splice(lru_.begin(), lru_, it->second);
  return it->second->second;
}

LayerDirRef DirFdCache::put(uint64_t inode_id, int layer, LayerDirRef shared) {
  std::vector<LayerDirRef> evicted;  // closed after the lock is dropped
  std::lock_guard lock(mutex_);
  Key key{inode_id, layer};
  if (auto it = index_.find(key); it != index_.end()) {
    // Another thread opened it meanwhile: keep theirs.
    lru_.splice(lru_.begin(), lru_, it->second);
    return it->second->second;
  }
  lru_.emplace_front(key, shared);
  index_.emplace(key, lru_.begin());
  while (lru_.size() > capacity_) {
    evicted.push_back(std::move(lru_.back().second));
    index_.erase(lru_.back().first);
    lru_.pop_back();
  }
  return shared;
}

void DirFdCache::forget(uint64_t inode_id, size_t nlayers) {
  std::vector<LayerDirRef> evicted;
  std::lock_guard lock(mutex_);
  for (size_t layer = 0; layer < nlayers; ++layer) {
    auto it = index_.find(Key{inode_id, int(layer)});
    if (it == index_.end()) continue;
    evicted.push_back(std::move(it->second->second));
    lru_.erase(it->second);
    index_.erase(it);
  }
}

size_t DirFdCache::size() const {
  std::lock_guard lock(mutex_);
  return lru_.size();
}

}  // namespace strata::fs
