#include "fs/core/layer_hardlinks.hpp"

#include <dirent.h>
#include <sys/stat.h>

namespace strata::fs {

namespace {

// A lower tree deeper than this is not searched below it for other names of a hardlink: each
// level holds one open directory while its subdirectories are walked, and the process may hold
// 20000 fds. Real images stay far below it (a path of PATH_MAX has at most ~2000 levels).
constexpr int kMaxDepth = 512;

void walk(const LayerSource& src, const LayerDir& dir, const std::string& prefix, dev_t dev, int depth,
          std::unordered_map<ino_t, std::vector<std::string>>& out) {
  std::vector<std::string> subdirs;
  src.list(dir, [&](std::string_view name, ino_t, unsigned char type) {
    if (name == "." || name == "..") return true;
    struct stat st {};
    if (type == DT_DIR) {
      subdirs.emplace_back(name);
      return true;
    }
    if (src.stat(dir, name, st) != 0) return true;
    if (S_ISDIR(st.st_mode)) subdirs.emplace_back(name);
    else if (st.st_nlink > 1) out[st.st_ino].push_back(prefix.empty() ? std::string(name) : prefix + "/" + std::string(name));
    return true;
  });
  if (depth >= kMaxDepth) return;
  for (const auto& name : subdirs) {
    LayerDirRef sub = src.open_dir(dir, name);
    struct stat st {};
    // Not into another filesystem mounted inside the layer.
    if (!sub || src.stat(*sub, "", st) != 0 || st.st_dev != dev) continue;
    walk(src, *sub, prefix.empty() ? name : prefix + "/" + name, dev, depth + 1, out);
  }
}

}  // namespace

std::vector<std::string> LayerHardlinks::names_of(const LayerSource& src, dev_t dev, ino_t ino) {
  std::lock_guard lock(mutex_);
  if (!names_) {
    names_.emplace();
    walk(src, *src.root(), "", dev, 0, *names_);
  }
  auto it = names_->find(ino);
  return it == names_->end() ? std::vector<std::string>{} : it->second;
}

}  // namespace strata::fs
