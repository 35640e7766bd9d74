#include "fs/core/tree_remove.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "fs/core/unique_fd.hpp"

namespace strata::fs {

Status remove_dir_contents(int dirfd, const std::string& path) {
  int fd = ::openat(dirfd, path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return errno;
  DIR* dir = ::fdopendir(fd);
  if (!dir) {
    int err = errno;
    ::close(fd);
    return err;
  }
  std::vector<std::pair<std::string, bool>> names;
  while (struct dirent* de = ::readdir(dir)) {
    if (!std::strcmp(de->d_name, ".") || !std::strcmp(de->d_name, "..")) continue;
    bool is_dir = de->d_type == DT_DIR;
    if (de->d_type == DT_UNKNOWN) {
      struct stat st {};
      is_dir = ::fstatat(fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode);
    }
    names.emplace_back(de->d_name, is_dir);
  }
  Status result = 0;
  for (auto& [name, is_dir] : names) {
    if (is_dir) {
      if (Status st = remove_dir_contents(fd, name); st != 0 && st != ENOENT) result = st;
    }
    if (::unlinkat(fd, name.c_str(), is_dir ? AT_REMOVEDIR : 0) != 0 && errno != ENOENT)
      result = errno;
  }
  ::closedir(dir);
  return result;
}

Status remove_tree(int dirfd, const std::string& path) {
  struct stat st {};
  if (::fstatat(dirfd, path.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return errno;
  if (S_ISDIR(st.st_mode)) {
    if (Status s = remove_dir_contents(dirfd, path); s != 0) return s;
    return ::unlinkat(dirfd, path.c_str(), AT_REMOVEDIR) == 0 ? 0 : errno;
  }
  return ::unlinkat(dirfd, path.c_str(), 0) == 0 ? 0 : errno;
}

}  // namespace strata::fs
