// Lookup: find a name top-down through the layers where its parent directory is merged.
// A whiteout (char 0/0 or .wh.NAME) stops the descent; a non-directory hides everything
// below it; an opaque directory merges nothing from below.
#include <fcntl.h>
#include <sys/stat.h>

#include <cstring>

#include "fs/core/overlay.hpp"

namespace strata::fs {

bool Overlay::upper_gains_no_whiteout_files() const {
  if (read_only_) return true;
  // Not probed from a lookup (the probe writes in the workdir): the first entry made does it.
  if (!style_known_.load(std::memory_order_acquire)) return false;
  return style_.device && !wrote_whiteout_files_.load(std::memory_order_acquire);
}

bool Overlay::may_hold_whiteout_file(Inode* dir, int layer) {
  // Lowers never change under a mount. The upper changes only through it, which then adds no
  // .wh.NAME files as long as it writes whiteouts as devices: a scan of an upper directory
  // stays true as well, and every create and lookup in it probes one name, not two.
  bool lower = layer > 0 || !layers_.has_upper();
  if (!dir || (!lower && !upper_gains_no_whiteout_files())) return true;
  // Racing scans under the shared lock write the same answer; the array is made under the
  // exclusive lock when the directory is attached.
  if (!dir->whiteout_scan) return true;
  auto& slot = dir->whiteout_scan[size_t(layer)];
  uint8_t state = slot.load(std::memory_order_acquire);
  if (state == 0) {
    LayerDirRef here = layer_dir(dir, layer);
    state = here && !dir_has_whiteout_files(source(layer), *here) ? 2 : 1;
    slot.store(state, std::memory_order_release);
  }
  return state != 2;
}

Result<Overlay::Resolved> Overlay::resolve_in(Inode* parent, const std::vector<int>& parent_layers,
                                              std::string_view name, Absence* absence) {
  if (is_marker_name(name) || name == "." || name == ".." || name.find('/') != std::string_view::npos)
    return Errno{ENOENT};
  Resolved found;
  std::string n(name);
  std::string wh_name;
  for (int layer : parent_layers) {
    LayerDirRef dir = layer_dir(parent, layer);
    if (!dir) {
      if (found.top >= 0 || errno == ENOENT || errno == ENOTDIR) break;
      return last_errno();
    }
    const LayerSource& src = source(layer);
    const bool upper = layer == 0 && layers_.has_upper();
    if (upper && absence) absence->upper_probed = true;
    struct stat st {};
    if (Status err = src.stat(*dir, n, st); err != 0) {
      if (err != ENOENT && err != ENOTDIR) {
        if (found.top >= 0) break;  // a lower we cannot read only stops the merge
        return Errno{err};
      }
      if (!may_hold_whiteout_file(parent, layer)) continue;
      if (wh_name.empty()) wh_name = std::string(kWhiteoutPrefix) + n;
      struct stat wst {};
      if (src.stat(*dir, wh_name, wst) == 0) {
        if (upper && absence) absence->whiteout_file = true;
        break;
      }
      continue;
    }
    if (is_whiteout_device(st)) {
      if (upper && absence) absence->whiteout_device = true;
      break;
    }
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
    if (is_opaque_dir(src, *dir, n)) {
      found.opaque = found.dir_layers.size() == 1;
      break;
    }
  }
  if (found.top < 0) return Errno{ENOENT};
  return found;
}

Inode* Overlay::attach(Inode* parent, std::string_view name, const Resolved& found) {
  InodeKey key{found.st.st_dev, found.st.st_ino};
  mode_t type = found.st.st_mode & S_IFMT;
  Inode* node = nullptr;
  if (auto it = parent->children.find(std::string(name)); it != parent->children.end()) {
    Inode* bound = it->second;
    if (bound->keyed && bound->key == key && bound->type == type) {
      node = bound;
    } else {
      // Replaced behind our back (a layer changed directly): the name now means another file.
      remove_alias(bound, parent, name);
      release_if_unused(bound);
    }
  }
  if (!node) {
    if (auto it = table_.find(key); it != table_.end() && it->second->type == type) node = it->second;
  }
  if (!node) {
    node = new_inode(type, ino_for(found.top, found.st));
    node->top = found.top;
    set_key(node, key);
  }
  add_alias(node, parent, name);
  if (found.top < node->top.load()) node->top = found.top;  // copied up beside the mount
  if (node->is_dir()) {
    node->dir_layers = found.dir_layers;
    node->opaque = found.opaque;
    if (!node->whiteout_scan) node->whiteout_scan = std::make_unique<std::atomic<uint8_t>[]>(layers_.size());
  }
  return node;
}

Result<Entry> Overlay::lookup_in(Inode* parent, std::string_view name, const std::vector<int>* only_layers) {
  Resolved found;
  uint64_t seen;
  {
    std::shared_lock lock(tree_);
    seen = version_.load(std::memory_order_acquire);
    std::vector<int> layers = only_layers ? *only_layers : parent->dir_layers;
    Absence absence;
    auto r = resolve_in(parent, layers, name, &absence);
    if (!r) {
      // The kernel creates or renames onto most names it just failed to find: keep what the
      // probes saw for that request (only a lookup through every layer says "absent").
      if (r.error() == ENOENT && !only_layers && !read_only_) negatives_.remember(parent->id, name, seen, absence);
      return Errno{r.error()};
    }
    found = std::move(*r);
    // Most lookups find the name bound already, to the file it still is: then there is
    // nothing to change but the count, and no need to wait for the exclusive lock.
    if (auto it = parent->children.find(std::string(name)); it != parent->children.end()) {
      Inode* bound = it->second;
      if (bound->keyed && bound->key == InodeKey{found.st.st_dev, found.st.st_ino} &&
          bound->type == (found.st.st_mode & S_IFMT) && bound->top.load() == found.top &&
          (!bound->is_dir() || (bound->dir_layers == found.dir_layers && bound->opaque == found.opaque))) {
        bound->nlookup.fetch_add(1);
        return Entry{bound, shown_stat(bound, parent, name, found)};
      }
    }
  }
  std::unique_lock lock(tree_);
  if (version_.load(std::memory_order_acquire) != seen) {
    // The tree changed while we looked (a copy-up of the parent, a rename, a new entry): what
    // we found may be stale, so look again, now that nothing can change.
    auto r = resolve(parent, name);
    if (!r) return Errno{r.error()};
    found = std::move(*r);
  }
  Inode* node = attach(parent, name, found);
  node->nlookup++;
  return Entry{node, shown_stat(node, parent, name, found)};
}

Result<Entry> Overlay::lookup(Inode* parent, std::string_view name) { return lookup_in(parent, name, nullptr); }

Result<Overlay::Resolved> Overlay::resolve_for_change(Inode* parent, std::string_view name, Absence& absence) {
  absence = Absence{};
  if (!is_marker_name(name) && name != "." && name != ".." && name.find('/') == std::string_view::npos &&
      negatives_.recall(parent->id, name, version_.load(std::memory_order_acquire), absence))
    return Errno{ENOENT};
  absence = Absence{};
  return resolve_in(parent, parent->dir_layers, name, &absence);
}

Result<Entry> Overlay::lookup_listed(Inode* dir, const DirEntry& listed, uint64_t listed_version) {
  // Anything may have happened to the name since it was listed (removed, replaced, copied
  // up): the layers above its listed one must be looked at again.
  if (version_.load(std::memory_order_acquire) != listed_version) return lookup(dir, listed.name);
  std::vector<int> below;
  {
    std::shared_lock lock(tree_);
    for (int layer : dir->dir_layers)
      if (layer >= listed.layer) below.push_back(layer);
  }
  auto entry = lookup_in(dir, listed.name, &below);
  if (!entry || entry->node->top.load() != listed.layer) {
    // Changed since it was listed: a full lookup decides.
    if (entry) forget(entry->node, 1);
    return lookup(dir, listed.name);
  }
  return entry;
}

Result<std::pair<Inode*, Overlay::Resolved>> Overlay::walk_locked(const std::string& path, std::vector<Inode*>& temp) {
  Inode* cur = root_;
  Resolved found;
  size_t start = 0;
  for (;;) {
    size_t slash = path.find('/', start);
    std::string name = path.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    auto r = resolve(cur, name);
    if (!r) return Errno{r.error()};
    found = std::move(*r);
    Inode* next = attach(cur, name, found);
    next->pins++;
    temp.push_back(next);
    cur = next;
    if (slash == std::string::npos) break;
    if (!S_ISDIR(found.st.st_mode)) return Errno{ENOTDIR};
    start = slash + 1;
  }
  return std::make_pair(cur, found);
}

}  // namespace strata::fs
