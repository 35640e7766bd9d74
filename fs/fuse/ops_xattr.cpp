// Extended attributes: the size-query protocol of getxattr/listxattr on top of the core.
#include <sys/xattr.h>

#include "fs/fuse/context.hpp"

namespace strata::fs::fuse {

namespace {

void reply_value(fuse_req_t req, const Result<std::string>& value, size_t size) {
  if (!value) fuse_reply_err(req, value.error());
  else if (size == 0) fuse_reply_xattr(req, value->size());
  else if (value->size() > size) fuse_reply_err(req, ERANGE);
  else fuse_reply_buf(req, value->data(), value->size());
}

void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  reply_value(req, overlay(req).getxattr(node_of(req, ino), name), size);
}

void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  reply_value(req, overlay(req).listxattr(node_of(req, ino)), size);
}

void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value, size_t size, int flags) {
  fuse_reply_err(req, overlay(req).setxattr(node_of(req, ino), name, std::string_view(value, size), flags));
}

void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
  fuse_reply_err(req, overlay(req).removexattr(node_of(req, ino), name));
}

}  // namespace

void add_xattr_ops(fuse_lowlevel_ops& ops) {
  ops.getxattr = guarded<op_getxattr>;
  ops.listxattr = guarded<op_listxattr>;
  ops.setxattr = guarded<op_setxattr>;
  ops.removexattr = guarded<op_removexattr>;
}

}  // namespace strata::fs::fuse
