// A directory of a layer opened for reading its entries, closed on scope exit.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <string>

namespace strata::fs {

class DirStream {
 public:
  DirStream(int root, const std::string& path) {
    int fd = ::openat(root, path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd >= 0) {
      dir_ = ::fdopendir(fd);
      if (!dir_) ::close(fd);
    }
  }
  ~DirStream() {
    if (dir_) ::closedir(dir_);
  }
  DirStream(const DirStream&) = delete;
  DirStream& operator=(const DirStream&) = delete;
  bool ok() const { return dir_ != nullptr; }
  int fd() const { return ::dirfd(dir_); }
  struct dirent* next() { return ::readdir(dir_); }

 private:
  DIR* dir_ = nullptr;
};

}  // namespace strata::fs
