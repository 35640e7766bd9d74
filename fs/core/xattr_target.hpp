// Where an xattr call goes. A name below a held directory fd is "/proc/self/fd/N/name", and
// the l* calls act on that entry itself (never following a symlink there). A file held only
// by its own fd (the root, a file whose names are gone) is the bare "/proc/self/fd/N", a
// /proc magic link that only the following calls pass through to the file.
#pragma once

#include <sys/types.h>
#include <sys/xattr.h>

#include <string>

namespace strata::fs {

struct XattrTarget {
  std::string path;
  bool follow = false;

  ssize_t get(const char* name, void* value, size_t size) const {
    return follow ? ::getxattr(path.c_str(), name, value, size) : ::lgetxattr(path.c_str(), name, value, size);
  }
  ssize_t list(char* names, size_t size) const {
    return follow ? ::listxattr(path.c_str(), names, size) : ::llistxattr(path.c_str(), names, size);
  }
  int set(const char* name, const void* value, size_t size, int flags) const {
    return follow ? ::setxattr(path.c_str(), name, value, size, flags)
                  : ::lsetxattr(path.c_str(), name, value, size, flags);
  }
  int remove(const char* name) const {
    return follow ? ::removexattr(path.c_str(), name) : ::lremovexattr(path.c_str(), name);
  }
};

}  // namespace strata::fs
