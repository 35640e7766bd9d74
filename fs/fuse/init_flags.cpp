#include "fs/fuse/init_flags.hpp"

#include <fcntl.h>
#include <linux/fuse.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstring>

namespace strata::fs::fuse {

static_assert(kInitHandleKillprivV2 == FUSE_HANDLE_KILLPRIV_V2);

namespace {

// One FUSE session per process, so the wrappers keep their state here rather than in
// libfuse's userdata (which is the Context the ops use).
std::atomic<uint32_t> wanted{0};
std::atomic<uint32_t> offered{0};
std::atomic<uint64_t> init_unique{0};
std::atomic<bool> init_pending{true};

ssize_t read_request(int fd, void* buf, size_t len, void*) {
  ssize_t n = ::read(fd, buf, len);
  // INIT is the first request and nothing else arrives until it is answered.
  if (init_pending.load(std::memory_order_relaxed) && n >= ssize_t(sizeof(fuse_in_header))) {
    fuse_in_header in;
    std::memcpy(&in, buf, sizeof in);
    if (in.opcode == FUSE_INIT && size_t(n) >= sizeof in + offsetof(fuse_init_in, flags) + sizeof(uint32_t)) {
      fuse_init_in init;
      std::memset(&init, 0, sizeof init);
      std::memcpy(&init, static_cast<char*>(buf) + sizeof in, std::min(sizeof init, size_t(n) - sizeof in));
      offered = init.flags;
      init_unique = in.unique;
    }
  }
  return n;
}

ssize_t write_reply(int fd, iovec* iov, int count, void*) {
  if (init_pending.load(std::memory_order_relaxed) && count >= 2 && iov[0].iov_len >= sizeof(fuse_out_header)) {
    fuse_out_header out;
    std::memcpy(&out, iov[0].iov_base, sizeof out);
    if (out.unique == init_unique.load() && out.error == 0 &&
        iov[1].iov_len >= offsetof(fuse_init_out, flags) + sizeof(uint32_t)) {
      init_pending = false;
      fuse_init_out init;
      std::memset(&init, 0, sizeof init);
      size_t len = std::min(sizeof init, iov[1].iov_len);
      std::memcpy(&init, iov[1].iov_base, len);
      init.flags |= wanted.load() & offered.load();
      iov[1] = {&init, len};  // libfuse builds the vector for this one call
      return ::writev(fd, iov, count);
    }
  }
  return ::writev(fd, iov, count);
}

ssize_t splice_in(int fdin, off_t* offin, int fdout, off_t* offout, size_t len, unsigned flags, void*) {
  return ::splice(fdin, offin, fdout, offout, len, flags);
}

}  // namespace

int add_init_flags(fuse_session* se, uint32_t flags) {
  wanted = flags;
  static const fuse_custom_io io = {write_reply, read_request, splice_in, splice_in};
  return fuse_session_custom_io(se, &io, fuse_session_fd(se));
}

}  // namespace strata::fs::fuse
