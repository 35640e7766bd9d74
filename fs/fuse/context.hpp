// Shared pieces of the FUSE adapter: the per-mount context and request → core translation.
#pragma once

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

#include <algorithm>
#include <new>

#include "fs/core/overlay.hpp"
#include "fs/fuse/kill_suidgid.hpp"
#include "fs/fuse/passthrough.hpp"
#include "fs/options.hpp"

namespace strata::fs::fuse {

inline constexpr double kLowerFileTimeout = 86400;

struct Context {
  Overlay* overlay = nullptr;
  const Options* options = nullptr;
  fuse_session* session = nullptr;
  double timeout = 1.0;  // entry and attribute cache validity, seconds
  BackingFiles* backing = nullptr;  // FUSE passthrough, when asked for (used once negotiated)
  bool writeback = false;  // the kernel's writeback cache is on (set at INIT)
};

inline Context& context(fuse_req_t req) { return *static_cast<Context*>(fuse_req_userdata(req)); }
inline Overlay& overlay(fuse_req_t req) { return *context(req).overlay; }

inline Inode* node_of(fuse_req_t req, fuse_ino_t ino) {
  return ino == FUSE_ROOT_ID ? overlay(req).root() : reinterpret_cast<Inode*>(ino);
}

inline Caller caller_of(fuse_req_t req) {
  const fuse_ctx* ctx = fuse_req_ctx(req);
  Caller caller{ctx->uid, ctx->gid, ctx->umask, {}, writer_has_fsetid()};
  caller.in_supplementary_group = [req](gid_t gid) {
    gid_t groups[256];
    int n = fuse_req_getgroups(req, 256, groups);
    for (int i = 0; i < std::min(n, 256); ++i)
      if (groups[i] == gid) return true;
    return false;
  };
  return caller;
}

inline OpenFile& file_of(fuse_file_info* fi) { return *reinterpret_cast<OpenFile*>(fi->fh); }

// How long the kernel may trust attributes. Files served by a lower layer cannot change
// except through this mount (lowers are read-only; a copy-up replies with the new attributes),
// so the kernel keeps them for long; upper files and directories (whose listing may gain
// files added directly to a layer) only for the configured timeout. Every name of a
// hardlinked file is one inode to the kernel, so its cached link count stays right.
inline double attr_timeout(const Context& ctx, const Inode* node, const struct stat& st) {
  if (node->top.load() != 0 && !S_ISDIR(st.st_mode)) return kLowerFileTimeout;
  return ctx.timeout;
}

// The kernel's view of a looked-up entry.
fuse_entry_param entry_param(const Context& ctx, const Entry& entry);

// Replies with the entry, or the error. Exactly one reply per request.
void reply_entry(fuse_req_t req, const Result<Entry>& entry);

// Wraps an operation so that no exception crosses into libfuse: an allocation failure or
// any other escape becomes an error reply (operations throw only before they reply).
template <auto Fn>
struct Guard;
template <typename... Args, void (*Fn)(fuse_req_t, Args...)>
struct Guard<Fn> {
  static void call(fuse_req_t req, Args... args) noexcept {
    try {
      Fn(req, args...);
    } catch (const std::bad_alloc&) {
      fuse_reply_err(req, ENOMEM);
    } catch (...) {
      fuse_reply_err(req, EIO);
    }
  }
};
template <auto Fn>
constexpr auto guarded = &Guard<Fn>::call;

// Tables of the operations, by concern; operations.cpp joins them.
void add_entry_ops(fuse_lowlevel_ops& ops);
void add_file_ops(fuse_lowlevel_ops& ops);
void add_dir_ops(fuse_lowlevel_ops& ops);
void add_xattr_ops(fuse_lowlevel_ops& ops);

}  // namespace strata::fs::fuse
