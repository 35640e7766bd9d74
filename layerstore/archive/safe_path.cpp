#include "layerstore/archive/safe_path.hpp"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>

#include <cerrno>

#include "layerstore/error.hpp"

namespace strata {

std::string clean_entry_path(std::string_view name) {
  if (name.find('\0') != std::string_view::npos) throw Error("entry name contains a NUL byte");
  // "/" alone names the layer root (umoci insert writes it); any other absolute name is refused.
  if (!name.empty() && name.find_first_not_of('/') == std::string_view::npos) return "";
  if (!name.empty() && name[0] == '/')
    throw Error("absolute path \"" + std::string(name) + "\" in layer");
  std::string out;
  size_t i = 0;
  while (i <= name.size()) {
    size_t j = name.find('/', i);
    if (j == std::string_view::npos) j = name.size();
    std::string_view comp = name.substr(i, j - i);
    if (comp == "..") throw Error("path \"" + std::string(name) + "\" escapes the layer (\"..\")");
    if (!comp.empty() && comp != ".") {
      if (!out.empty()) out += '/';
      out.append(comp);
    }
    i = j + 1;
  }
  return out;
}

UniqueFd open_beneath(int dirfd, const std::string& path, int flags, int mode, int& err) {
  struct open_how how {};
  how.flags = static_cast<uint64_t>(flags) | O_CLOEXEC;
  how.mode = (flags & O_CREAT) ? static_cast<uint64_t>(mode) : 0;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  const char* p = path.empty() ? "." : path.c_str();
  long fd;
  do {
    fd = syscall(SYS_openat2, dirfd, p, &how, sizeof how);
  } while (fd < 0 && errno == EAGAIN);
  if (fd < 0) {
    err = errno;
    return UniqueFd();
  }
  err = 0;
  return UniqueFd(static_cast<int>(fd));
}

std::pair<std::string, std::string> split_parent(const std::string& path) {
  size_t slash = path.rfind('/');
  if (slash == std::string::npos) return {"", path};
  return {path.substr(0, slash), path.substr(slash + 1)};
}

}  // namespace strata
