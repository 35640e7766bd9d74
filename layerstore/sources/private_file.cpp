#include "layerstore/sources/private_file.hpp"

#include <fcntl.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>

#include "layerstore/archive/unique_fd.hpp"
#include "layerstore/error.hpp"

namespace strata {
namespace {

std::pair<std::string, std::string> split_path(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return {".", path};
  return {slash == 0 ? "/" : path.substr(0, slash), path.substr(slash + 1)};
}

std::string random_suffix() {
  unsigned char r[8];
  if (getrandom(r, sizeof r, 0) != static_cast<ssize_t>(sizeof r)) throw_errno("getrandom");
  char hex[2 * sizeof r + 1];
  for (size_t i = 0; i < sizeof r; i++) std::snprintf(hex + 2 * i, 3, "%02x", r[i]);
  return hex;
}

void write_all(int fd, const std::string& bytes, const std::string& what) {
  size_t off = 0;
  while (off < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + off, bytes.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno("write " + what);
    }
    off += n;
  }
}

// Unlinks the temp name unless the rename made it the real file.
struct TempName {
  int dirfd;
  std::string name;
  bool committed = false;
  ~TempName() {
    if (!committed && !name.empty()) unlinkat(dirfd, name.c_str(), 0);
  }
};

}  // namespace

std::optional<std::string> read_private_file(const std::string& path) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT) return std::nullopt;
    if (errno == ELOOP) throw Error(path + " is a symbolic link; it is not followed (replace it with the file itself)");
    throw_errno("read " + path);
  }
  struct stat st;
  if (fstat(fd.get(), &st) != 0) throw_errno("read " + path);
  if (!S_ISREG(st.st_mode)) throw Error(path + " is not a regular file");
  std::string out;
  char buf[65536];
  ssize_t n;
  while ((n = ::read(fd.get(), buf, sizeof buf)) != 0) {
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno("read " + path);
    }
    out.append(buf, n);
  }
  return out;
}

void replace_private_file(const std::string& path, const std::string& bytes) {
  auto [dir, base] = split_path(path);
  if (base.empty()) throw Error(path + ": not a file name");
  UniqueFd dirfd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dirfd) throw_errno("open " + dir);
  TempName tmp{dirfd.get(), ""};
  UniqueFd fd;
  // A random name no one can have planted a symlink at in advance, and O_EXCL|O_NOFOLLOW
  // in case someone did anyway.
  for (int attempt = 0; !fd && attempt < 16; attempt++) {
    std::string name = "." + base + ".tmp-" + random_suffix();
    fd = UniqueFd(openat(dirfd.get(), name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    if (fd) tmp.name = name;
    else if (errno != EEXIST) throw_errno("create a temp file in " + dir);
  }
  if (!fd) throw Error("create a temp file in " + dir + ": every name tried exists");
  if (fchmod(fd.get(), 0600) != 0) throw_errno("chmod " + path);  // whatever the umask
  write_all(fd.get(), bytes, path);
  if (fsync(fd.get()) != 0) throw_errno("fsync " + path);
  if (renameat(dirfd.get(), tmp.name.c_str(), dirfd.get(), base.c_str()) != 0) throw_errno("rename to " + path);
  tmp.committed = true;
  fsync(dirfd.get());  // the rename's durability; the file is complete either way
}

}  // namespace strata
