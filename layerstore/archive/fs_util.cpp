#include "layerstore/archive/fs_util.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <vector>

#include "layerstore/error.hpp"

namespace strata {

void remove_tree_at(int parent_fd, const std::string& name, const std::string& what) {
  if (unlinkat(parent_fd, name.c_str(), 0) == 0 || errno == ENOENT) return;
  if (errno != EISDIR && errno != EPERM) throw_errno("remove \"" + what + "\"");
  int fd = openat(parent_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) throw_errno("remove \"" + what + "\"");
  DIR* d = fdopendir(fd);
  if (!d) {
    ::close(fd);
    throw_errno("remove \"" + what + "\"");
  }
  std::vector<std::string> names;
  while (auto* ent = readdir(d)) {
    std::string n = ent->d_name;
    if (n != "." && n != "..") names.push_back(n);
  }
  for (const auto& n : names) remove_tree_at(::dirfd(d), n, what + "/" + n);
  closedir(d);
  if (unlinkat(parent_fd, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) throw_errno("remove \"" + what + "\"");
}

void remove_tree(const std::string& path) { remove_tree_at(AT_FDCWD, path, path); }

UniqueFd open_dir(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) throw_errno("open " + path);
  return fd;
}

void mkdirs(const std::string& path, int mode) {
  size_t pos = 0;
  while (pos != std::string::npos) {
    pos = path.find('/', pos + 1);
    std::string p = path.substr(0, pos);
    if (p.empty()) continue;
    if (mkdir(p.c_str(), mode) != 0 && errno != EEXIST) throw_errno("mkdir " + p);
  }
}

bool path_exists(const std::string& path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

std::string read_file(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) throw_errno("read " + path);
  std::string out;
  char buf[65536];
  ssize_t n;
  while ((n = ::read(fd.get(), buf, sizeof buf)) > 0) out.append(buf, n);
  if (n < 0) throw_errno("read " + path);
  return out;
}

static void write_all(int fd, const std::string& bytes, const std::string& what) {
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + off, bytes.size() - off);
    if (n < 0) throw_errno("write " + what);
    off += n;
  }
}

void write_file_atomic(const std::string& path, const std::string& bytes, int mode) {
  // The thread's id, not the process's: two threads of one process may write the same path
  // (two layers of an image naming one blob write its index), each through a name of its own.
  std::string tmp = path + ".tmp-" + std::to_string(gettid());
  {
    UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode));
    if (!fd) throw_errno("write " + path);
    try {
      write_all(fd.get(), bytes, path);
      if (fsync(fd.get()) != 0) throw_errno("fsync " + path);
    } catch (...) {
      unlink(tmp.c_str());
      throw;
    }
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    int e = errno;
    unlink(tmp.c_str());
    throw SysError("rename " + path, e);
  }
}

void write_file_at(int dirfd, const std::string& name, const std::string& bytes, int mode) {
  UniqueFd fd(openat(dirfd, name.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode));
  if (!fd) throw_errno("write " + name);
  write_all(fd.get(), bytes, name);
}

void fsync_dir(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (fd) fsync(fd.get());
}

}  // namespace strata
