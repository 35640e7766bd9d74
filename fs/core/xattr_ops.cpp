// Extended attributes pass through to the layer holding the entry; setting or removing one
// copies the entry up first. The overlay's own names are invisible and untouchable.
#include <sys/xattr.h>

#include <cstring>

#include "fs/core/overlay.hpp"
#include "fs/core/xattr_names.hpp"

namespace strata::fs {

Result<std::string> Overlay::getxattr(Inode* node, const std::string& name) {
  if (config_.noxattrs) return Errno{ENOTSUP};
  if (is_private_xattr(name)) return Errno{ENODATA};
  // The kernel asks this of every file before its first write and before every chown
  // (file_remove_privs, notify_change): a file made here and given no xattr since has none.
  if (name == "security.capability" && node->created_without_caps.load(std::memory_order_acquire))
    return Errno{ENODATA};
  std::shared_lock lock(tree_);
  auto place = place_of(node, node->top.load());
  if (!place) return Errno{place.error()};
  std::string value(256, '\0');
  for (;;) {
    ssize_t n = getxattr_at(*place, name.c_str(), value.data(), value.size());
    if (n >= 0) {
      value.resize(size_t(n));
      return value;
    }
    if (errno != ERANGE) return last_errno();
    ssize_t need = getxattr_at(*place, name.c_str(), nullptr, 0);
    if (need < 0) return last_errno();
    value.resize(size_t(need) + 1);
  }
}

Result<std::string> Overlay::listxattr(Inode* node) {
  if (config_.noxattrs) return std::string();
  std::shared_lock lock(tree_);
  auto place = place_of(node, node->top.load());
  if (!place) return Errno{place.error()};
  std::string names;
  for (;;) {
    ssize_t need = listxattr_at(*place, nullptr, 0);
    if (need < 0) return last_errno();
    names.resize(size_t(need));
    ssize_t n = listxattr_at(*place, names.data(), names.size());
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

Status Overlay::setxattr(Inode* node, const std::string& name, std::string_view value, int flags) {
  if (config_.noxattrs) return ENOTSUP;
  if (read_only_) return EROFS;
  if (is_private_xattr(name)) return EPERM;
  if (Status s = copy_up(node); s != 0) return s;
  std::shared_lock lock(tree_);
  auto place = place_of(node, 0);
  if (!place) return place.error();
  // What is known of the node's xattrs is forgotten before the change, under the same hold:
  // a create (exclusive lock) asks again after it.
  node->created_without_caps.store(false, std::memory_order_release);
  node->default_acl.store(0, std::memory_order_release);
  return target_of(*place).set(name.c_str(), value.data(), value.size(), flags) == 0 ? 0 : errno;
}

Status Overlay::removexattr(Inode* node, const std::string& name) {
  if (config_.noxattrs) return ENOTSUP;
  if (read_only_) return EROFS;
  if (is_private_xattr(name)) return EPERM;
  if (node->top.load() != 0) {
    // Removing what is not there must not copy the file up.
    std::shared_lock lock(tree_);
    auto lower = place_of(node, node->top.load());
    if (!lower) return lower.error();
    if (getxattr_at(*lower, name.c_str(), nullptr, 0) < 0) return errno;
  }
  if (Status s = copy_up(node); s != 0) return s;
  std::shared_lock lock(tree_);
  auto place = place_of(node, 0);
  if (!place) return place.error();
  node->default_acl.store(0, std::memory_order_release);
  return target_of(*place).remove(name.c_str()) == 0 ? 0 : errno;
}

}  // namespace strata::fs
