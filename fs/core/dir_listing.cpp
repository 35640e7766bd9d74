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
  for (int layer : dir_layers) {
    SharedFd fd = dir_fd(node, layer);
    if (!fd) {
      if (first) return last_errno();
      continue;
    }
    DirStream dir(fd->get(), ".");
    if (!dir.ok()) {
      if (first) return last_errno();
      continue;
    }
    first = false;
    bool single = dir_layers.size() == 1;
    std::vector<std::string> hidden_here;
    while (struct dirent* de = dir.next()) {
      std::string_view name = de->d_name;
      if (name == "." || name == "..") continue;
      std::string_view hidden;
      if (parse_whiteout_name(name, hidden)) {
        hidden_here.emplace_back(hidden);
        continue;
      }
      if (name == kOpaqueMarkerFile) continue;
      if (!single) {
        auto [it, inserted] = decided.emplace(name);
        if (!inserted) continue;
      }
      unsigned char type = de->d_type;
      uint64_t ino = de->d_ino;
      if (type == DT_CHR || type == DT_UNKNOWN) {
        struct stat st {};
        if (::fstatat(dir.fd(), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
        if (is_whiteout_device(st)) continue;
        type = IFTODT(st.st_mode);
      }
      struct stat key {};
      key.st_dev = layers_[size_t(layer)].dev;
      key.st_ino = ino;
      out.push_back({std::string(name), ino_for(layer, key), type, layer});
    }
    // A .wh.NAME hides NAME only in the layers below its own.
    for (auto& h : hidden_here) decided.insert(std::move(h));
  }
  return out;
}

Result<std::vector<DirEntry>> Overlay::list_dir(Inode* dir) {
  std::shared_lock lock(tree_);
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
