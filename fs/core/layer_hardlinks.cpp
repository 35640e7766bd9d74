#include "fs/core/layer_hardlinks.hpp"

#include <dirent.h>
#include <sys/stat.h>

namespace strata::fs {

namespace {

void walk(const LayerSource& src, const LayerDir& dir, const std::string& prefix, dev_t dev,
          std::unordered_map<ino_t, std::vector<std::string>>& out) {
  std::vector<std::string> subdirs;
  src.list(dir, [&](std::string_view name, ino_t, unsigned char type) {
    if (name == "." || name == "..") return true;
    if (type != DT_DIR && type != DT_REG && type != DT_UNKNOWN && type != DT_LNK && type != DT_CHR &&
        type != DT_BLK && type != DT_FIFO && type != DT_SOCK)
      return true;
    struct stat st {};
    if (src.stat(dir, name, st) != 0) return true;
    std::string path = prefix.empty() ? std::string(name) : prefix + "/" + std::string(name);
    if (S_ISDIR(st.st_mode)) {
      if (st.st_dev == dev) subdirs.push_back(std::string(name));  // not another filesystem mounted inside
    } else if (st.st_nlink > 1) {
      out[st.st_ino].push_back(std::move(path));
    }
    return true;
  });
  for (const auto& name : subdirs) {
    if (LayerDirRef sub = src.open_dir(dir, name))
      walk(src, *sub, prefix.empty() ? name : prefix + "/" + name, dev, out);
  }
}

}  // namespace

std::vector<std::string> LayerHardlinks::names_of(const LayerSource& src, dev_t dev, ino_t ino) {
  std::lock_guard lock(mutex_);
  if (!names_) {
    names_.emplace();
    walk(src, *src.root(), "", dev, *names_);
  }
  auto it = names_->find(ino);
  return it == names_->end() ? std::vector<std::string>{} : it->second;
}

}  // namespace strata::fs
