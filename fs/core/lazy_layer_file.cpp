#include "fs/core/lazy_layer_file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "common/lazy/trusted_file.hpp"
#include "fs/core/unique_fd.hpp"

namespace strata::fs {

bool is_lazy_layer_file(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) return false;
  std::ifstream in(path);
  std::string first;
  return std::getline(in, first) && first == kLazyLayerHeader;
}

namespace {

// A descriptor makes strata-fs read the files it names with the daemon's rights (root's, as
// podman's or a root user's mount program), and an index says which owners and modes, set-uid
// bits too, their bytes show with: unlike a directory layer, which shows only files its owner
// could reach, as that owner's. So a descriptor is taken only from a file, and with relative
// names a directory, that nobody but the daemon's user or root can write
// (common/lazy/trusted_file.hpp); another user's is refused.
std::string untrusted(const struct stat& st, const std::string& what) {
  std::string who = lazy::other_writers(st, geteuid());
  return who.empty() ? "" : what + ": " + who + ": a lazy layer descriptor is taken only from this user or root";
}

}  // namespace

std::optional<LazyLayerDescriptor> read_lazy_layer_file(const std::string& path, std::string& error) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  struct stat st {};
  if (!fd || ::fstat(fd.get(), &st) != 0) {
    error = path + ": " + std::strerror(errno);
    return std::nullopt;
  }
  if (error = untrusted(st, path); !error.empty()) return std::nullopt;
  std::string text;
  char buf[4096];
  for (ssize_t n; (n = ::read(fd.get(), buf, sizeof buf)) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 || text.size() > (1 << 20)) {
      error = path + ": " + (n < 0 ? std::strerror(errno) : "too long for a lazy layer descriptor");
      return std::nullopt;
    }
    text.append(buf, size_t(n));
  }
  std::istringstream in(text);
  std::string line;
  if (!std::getline(in, line) || line != kLazyLayerHeader) {
    error = path + ": not a lazy layer descriptor";
    return std::nullopt;
  }
  LazyLayerDescriptor d;
  bool has_offset = false;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    size_t eq = line.find('=');
    std::string key = line.substr(0, eq), value = eq == std::string::npos ? "" : line.substr(eq + 1);
    if (key == "index") {
      d.index = value;
    } else if (key == "blob") {
      d.blob = value;
    } else if (key == "offset") {
      char* end = nullptr;
      errno = 0;
      d.offset = std::strtoull(value.c_str(), &end, 10);
      has_offset = !value.empty() && *end == '\0' && errno == 0;
    } else if (key == "verified") {
      d.verified = lazy::BlobFileIdentity::parse(value);
      if (!d.verified) {
        error = path + ": verified= is not DEV:INO:SIZE:MTIME_NS:CTIME_NS";
        return std::nullopt;
      }
    } else {
      error = path + ": unknown key \"" + key + "\"";
      return std::nullopt;
    }
  }
  if (d.index.empty() || d.blob.empty() || !has_offset) {
    error = path + ": a lazy layer descriptor needs index=, blob= and offset=";
    return std::nullopt;
  }
  // A relative name is beside the descriptor: a store's lazy layers keep working when the
  // store is moved or copied (as its l/ links, relative too).
  size_t slash = path.rfind('/');
  std::string dir = slash == std::string::npos ? "." : path.substr(0, slash);  // "" for "/x": "/" + name
  if (d.index[0] != '/' || d.blob[0] != '/') {
    struct stat dst {};
    if (::stat(dir.empty() ? "/" : dir.c_str(), &dst) != 0) {
      error = dir + ": " + std::strerror(errno);
      return std::nullopt;
    }
    if (error = untrusted(dst, "the directory of " + path); !error.empty()) return std::nullopt;
  }
  for (std::string* name : {&d.index, &d.blob})
    if ((*name)[0] != '/') *name = dir + "/" + *name;
  return d;
}

}  // namespace strata::fs
