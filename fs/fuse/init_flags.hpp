// INIT flags newer than the libfuse we build against. Debian 12's libfuse 3.14 only sends
// the kernel the INIT flags it has names for; FUSE_HANDLE_KILLPRIV_V2 (protocol 7.33) is
// not among them. Without it the kernel asks for security.capability (a GETXATTR round
// trip) before every write(2), and refreshes attributes (a GETATTR) before every chown.
#pragma once

#include <cstdint>

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

namespace strata::fs::fuse {

// FUSE_HANDLE_KILLPRIV_V2 of <linux/fuse.h> (not included here: libfuse has its own copy).
inline constexpr uint32_t kInitHandleKillprivV2 = 1u << 28;

// Routes the session's /dev/fuse I/O through thin wrappers that add `flags` (those the
// kernel offers in its INIT request) to the INIT reply, and FUSE passthrough (passthrough.hpp)
// when `passthrough` and the kernel offers it. Call after fuse_session_mount().
// Returns 0 or -errno.
int add_init_flags(fuse_session* se, uint32_t flags, bool passthrough);

// True once the INIT reply turned passthrough on.
bool passthrough_negotiated();

// While alive, the open/create reply this thread sends hands the kernel backing file `id`.
class ReplyWithBacking {
 public:
  explicit ReplyWithBacking(int32_t id);
  ~ReplyWithBacking();
  ReplyWithBacking(const ReplyWithBacking&) = delete;
  ReplyWithBacking& operator=(const ReplyWithBacking&) = delete;
};

}  // namespace strata::fs::fuse
