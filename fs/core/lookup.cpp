// Lookup: find a name top-down through the layers where its parent directory is merged.
// A whiteout (char 0/0 or .wh.NAME) stops the descent; a non-directory hides everything
// below it; an opaque directory merges nothing from below.
#include <fcntl.h>
#include <sys/stat.h>

#include <cstring>

#include "fs/core/overlay.hpp"

namespace strata::fs {

Result<Overlay::Resolved> Overlay::resolve(Node* parent, const std::string& parent_path,
                                           std::string_view name) {
  std::vector<int> parent_layers;
  {
    std::shared_lock lock(tree_);
    parent_layers = parent->dir_layers;
  }
  return resolve_in(parent_layers, parent_path, name, parent);
}

bool Overlay::may_hold_whiteout_file(Node* dir, int layer, const std::string& dir_path) {
  bool lower = layer > 0 || !layers_.has_upper();
  if (!dir || !lower || layer >= 64) return true;
  uint64_t bit = uint64_t(1) << layer;
  if (!(dir->whiteouts_scanned.load(std::memory_order_acquire) & bit)) {
    if (!dir_has_whiteout_files(layers_[size_t(layer)].root.get(), dir_path)) dir->whiteout_free.fetch_or(bit);
    dir->whiteouts_scanned.fetch_or(bit, std::memory_order_release);
  }
  return !(dir->whiteout_free.load() & bit);
}

Result<Overlay::Resolved> Overlay::resolve_in(const std::vector<int>& parent_layers,
                                              const std::string& parent_path, std::string_view name,
                                              Node* dir) {
  if (is_marker_name(name)) return Errno{ENOENT};
  Resolved found;
  std::string path = join_path(parent_path, name);
  std::string wh_path;
  for (int layer : parent_layers) {
    int fd = layers_[size_t(layer)].root.get();
    struct stat st {};
    if (::fstatat(fd, path.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno != ENOENT && errno != ENOTDIR) {
        if (found.top >= 0) break;  // a lower we cannot read only stops the merge
        return last_errno();
      }
      if (!may_hold_whiteout_file(dir, layer, parent_path)) continue;
      if (wh_path.empty()) wh_path = join_path(parent_path, std::string(kWhiteoutPrefix) + std::string(name));
      struct stat wst {};
      if (::fstatat(fd, wh_path.c_str(), &wst, AT_SYMLINK_NOFOLLOW) == 0) break;
      continue;
    }
    if (is_whiteout_device(st)) break;
    if (found.top < 0 || st.st_mtim.tv_sec > found.newest_mtime.tv_sec ||
        (st.st_mtim.tv_sec == found.newest_mtime.tv_sec && st.st_mtim.tv_nsec > found.newest_mtime.tv_nsec))
      found.newest_mtime = st.st_mtim;
    if (found.top < 0) {
      found.top = layer;
      found.st = st;
      if (!S_ISDIR(st.st_mode)) break;
    } else if (!S_ISDIR(st.st_mode)) {
      break;
    }
    found.dir_layers.push_back(layer);
    if (is_opaque_dir(fd, path, abs_path(layer, path))) {
      found.opaque = found.dir_layers.size() == 1;
      break;
    }
  }
  if (found.top < 0) return Errno{ENOENT};
  return found;
}

Entry Overlay::attach(Node* parent, std::string_view name, const Resolved& found) {
  Entry entry;
  std::unique_lock lock(tree_);
  Node* node = nullptr;
  auto it = parent->children.find(std::string(name));
  if (it != parent->children.end()) {
    node = it->second;
    if ((node->type & S_IFMT) != (found.st.st_mode & S_IFMT)) {
      // Replaced behind our back (a layer changed directly): the old node becomes an orphan.
      parent->children.erase(it);
      node->parent = nullptr;
      release_if_unused(node);
      node = nullptr;
    }
  }
  if (!node) {
    node = new Node;
    node->type = found.st.st_mode & S_IFMT;
    node->ino = ino_for(found.top, found.st);
    node->top = found.top;
    insert_child(parent, name, node);
  } else if (found.top < node->top) {
    node->top = found.top;  // something appeared above (copy-up by another name, or directly)
  }
  node->dir_layers = found.dir_layers;
  node->opaque = found.opaque;
  node->nlookup++;
  entry.node = node;
  entry.st = found.st;
  return entry;
}

Result<Entry> Overlay::lookup(Node* parent, std::string_view name) {
  auto parent_path = path_of(parent);
  if (!parent_path) return Errno{parent_path.error()};
  auto found = resolve(parent, *parent_path, name);
  if (!found) return Errno{found.error()};
  std::string path = join_path(*parent_path, name);

  Entry entry = attach(parent, name, *found);
  entry.st = present(found->st, path, found->top, entry.node);
  show_newest_mtime(entry.st, *found);
  return entry;
}

}  // namespace strata::fs

namespace strata::fs {

Result<Entry> Overlay::lookup_listed(Node* dir, const DirEntry& listed) {
  auto dir_path = path_of(dir);
  if (!dir_path) return Errno{dir_path.error()};
  std::vector<int> below;
  {
    std::shared_lock lock(tree_);
    for (int layer : dir->dir_layers)
      if (layer >= listed.layer) below.push_back(layer);
  }
  auto found = resolve_in(below, *dir_path, listed.name, dir);
  if (!found || found->top != listed.layer) return lookup(dir, listed.name);  // changed since listed
  Entry entry = attach(dir, listed.name, *found);
  entry.st = present(found->st, join_path(*dir_path, listed.name), found->top, entry.node);
  show_newest_mtime(entry.st, *found);
  return entry;
}

}  // namespace strata::fs
