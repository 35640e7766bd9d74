// Extended attributes pass through to the layer holding the entry; setting or removing one
// copies the entry up first. The overlay's own names are invisible and untouchable.
#include <sys/xattr.h>

#include <cstring>

#include "fs/core/overlay.hpp"
#include "fs/core/xattr_names.hpp"

namespace strata::fs {

Result<std::string> Overlay::xattr_source(Node* node, int& layer) {
  auto path = path_of(node);
  if (!path) return Errno{path.error()};
  layer = node->top.load();
  return abs_path(layer, *path);
}

Result<std::string> Overlay::getxattr(Node* node, const std::string& name) {
  if (opts_.noxattrs) return Errno{ENOTSUP};
  if (is_private_xattr(name)) return Errno{ENODATA};
  int layer;
  auto abs = xattr_source(node, layer);
  if (!abs) return abs;
  std::string value(256, '\0');
  for (;;) {
    ssize_t n = ::lgetxattr(abs->c_str(), name.c_str(), value.data(), value.size());
    if (n >= 0) {
      value.resize(size_t(n));
      return value;
    }
    if (errno != ERANGE) return last_errno();
    ssize_t need = ::lgetxattr(abs->c_str(), name.c_str(), nullptr, 0);
    if (need < 0) return last_errno();
    value.resize(size_t(need) + 1);
  }
}

Result<std::string> Overlay::listxattr(Node* node) {
  if (opts_.noxattrs) return std::string();
  int layer;
  auto abs = xattr_source(node, layer);
  if (!abs) return abs;
  std::string names;
  for (;;) {
    ssize_t need = ::llistxattr(abs->c_str(), nullptr, 0);
    if (need < 0) return last_errno();
    names.resize(size_t(need));
    ssize_t n = ::llistxattr(abs->c_str(), names.data(), names.size());
    if (n >= 0) {
      names.resize(size_t(n));
      break;
    }
    if (errno != ERANGE) return last_errno();
  }
  std::string shown;
  for (size_t off = 0; off < names.size();) {
    const char* name = names.data() + off;
    size_t len = std::strlen(name);
    if (!is_private_xattr(std::string_view(name, len))) shown.append(name, len + 1);
    off += len + 1;
  }
  return shown;
}

Status Overlay::setxattr(Node* node, const std::string& name, std::string_view value, int flags) {
  if (opts_.noxattrs) return ENOTSUP;
  if (read_only_) return EROFS;
  if (is_private_xattr(name)) return EPERM;
  if (Status s = copy_up(node); s != 0) return s;
  int layer;
  auto abs = xattr_source(node, layer);
  if (!abs) return abs.error();
  return ::lsetxattr(abs->c_str(), name.c_str(), value.data(), value.size(), flags) == 0 ? 0 : errno;
}

Status Overlay::removexattr(Node* node, const std::string& name) {
  if (opts_.noxattrs) return ENOTSUP;
  if (read_only_) return EROFS;
  if (is_private_xattr(name)) return EPERM;
  int layer;
  if (node->top.load() != 0) {
    // Removing what is not there must not copy the file up.
    auto lower = xattr_source(node, layer);
    if (!lower) return lower.error();
    if (::lgetxattr(lower->c_str(), name.c_str(), nullptr, 0) < 0) return errno;
  }
  if (Status s = copy_up(node); s != 0) return s;
  auto abs = xattr_source(node, layer);
  if (!abs) return abs.error();
  return ::lremovexattr(abs->c_str(), name.c_str()) == 0 ? 0 : errno;
}

}  // namespace strata::fs
