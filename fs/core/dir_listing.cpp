// readdir: the union of a directory's layers, top-most first, each name once. Whiteouts
// (char 0/0 and .wh.NAME) hide the name in the layers below; markers never show.
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <string_view>
#include <unordered_set>

#include "fs/core/dir_stream.hpp"
#include "fs/core/overlay.hpp"

namespace strata::fs {

Result<std::vector<DirEntry>> Overlay::merged_entries(Inode* node, const std::vector<int>& dir_layers,
                                                      uint64_t self_ino, uint64_t parent_ino) {
  std::vector<DirEntry> out;
  out.push_back({".", self_ino, DT_DIR, dir_layers.empty() ? 0 : dir_layers.front()});
  out.push_back({"..", parent_ino, DT_DIR, dir_layers.empty() ? 0 : dir_layers.front()});
  // Names already decided (shown or hidden) by a higher layer. Owned copies: entries move
  // as `out` grows.
  std::unordered_set<std::string> decided;
  bool first = true;
  bool single = dir_layers.size() == 1;
  for (int layer : dir_layers) {
    LayerDirRef dir = layer_dir(node, layer);
    const LayerSource& src = source(layer);
    std::vector<std::string> hidden_here;
    Status listed = dir ? 0 : errno;
    if (dir) {
      listed = src.list(*dir, [&](std::string_view name, ino_t ino, unsigned char type) {
        if (name == "." || name == "..") return true;
        std::string_view hidden;
        if (parse_whiteout_name(name, hidden)) {
          hidden_here.emplace_back(hidden);
          return true;
        }
        if (name == kOpaqueMarkerFile) return true;
        if (!single) {
          auto [it, inserted] = decided.emplace(name);
          if (!inserted) return true;
        }
        if (type == DT_CHR || type == DT_UNKNOWN) {
          struct stat st {};
          if (src.stat(*dir, name, st) != 0 || is_whiteout_device(st)) return true;
          type = IFTODT(st.st_mode);
        }
        struct stat key {};
        key.st_dev = layers_[size_t(layer)].dev;
        key.st_ino = ino;
        out.push_back({std::string(name), ino_for(layer, key), type, layer});
        return true;
      });
    }
    if (listed != 0) {
      if (first) return Errno{listed};
      continue;
    }
    first = false;
    // A .wh.NAME hides NAME only in the layers below its own.
    for (auto& h : hidden_here) decided.insert(std::move(h));
  }
  return out;
}

Result<std::vector<DirEntry>> Overlay::list_dir(Inode* dir, uint64_t* version) {
  std::shared_lock lock(tree_);
  if (version) *version = version_.load(std::memory_order_acquire);
  const Alias* a = dir->first_alias();
  uint64_t parent_ino = a ? a->parent->ino : dir->ino;
  if (!a && dir != root_ && !dir->orphan) return Errno{ENOENT};
  return merged_entries(dir, dir->dir_layers, dir->ino, parent_ino);
}

Result<bool> Overlay::merged_dir_empty_locked(Inode* dir) {
  auto entries = merged_entries(dir, dir->dir_layers, 0, 0);
  if (!entries) return Errno{entries.error()};
  return entries->size() <= 2;
}

}  // namespace strata::fs
