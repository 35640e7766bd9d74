#include "fs/core/layer_hardlinks.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>

namespace strata::fs {

namespace {

void walk(int dirfd, const std::string& prefix, dev_t dev,
          std::unordered_map<ino_t, std::vector<std::string>>& out) {
  DIR* dir = ::fdopendir(dirfd);
  if (!dir) {
    ::close(dirfd);
    return;
  }
  while (struct dirent* de = ::readdir(dir)) {
    if (!std::strcmp(de->d_name, ".") || !std::strcmp(de->d_name, "..")) continue;
    std::string path = prefix.empty() ? de->d_name : prefix + "/" + de->d_name;
    if (de->d_type == DT_DIR || de->d_type == DT_UNKNOWN) {
      struct stat st {};
      if (::fstatat(::dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
      if (S_ISDIR(st.st_mode)) {
        if (st.st_dev != dev) continue;  // another filesystem mounted inside the layer
        int sub = ::openat(::dirfd(dir), de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (sub >= 0) walk(sub, path, dev, out);
        continue;
      }
      if (st.st_nlink > 1) out[st.st_ino].push_back(path);
      continue;
    }
    struct stat st {};
    if (::fstatat(::dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_nlink > 1)
      out[st.st_ino].push_back(path);
  }
  ::closedir(dir);
}

}  // namespace

std::vector<std::string> LayerHardlinks::names_of(int root_fd, dev_t dev, ino_t ino) {
  std::lock_guard lock(mutex_);
  if (!names_) {
    names_.emplace();
    int fd = ::openat(root_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) walk(fd, "", dev, *names_);
  }
  auto it = names_->find(ino);
  return it == names_->end() ? std::vector<std::string>{} : it->second;
}

}  // namespace strata::fs
