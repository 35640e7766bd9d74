#include "fs/fuse/init_flags.hpp"

#include <fcntl.h>
#include <linux/fuse.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstring>

#include <spdlog/spdlog.h>

#include "fs/fuse/kill_suidgid.hpp"
#include "fs/fuse/request_counts.hpp"
#include "fs/fuse/uring.hpp"

namespace strata::fs::fuse {

static_assert(kInitHandleKillprivV2 == FUSE_HANDLE_KILLPRIV_V2);

namespace {

// One FUSE session per process, so the wrappers keep their state here rather than in
// libfuse's userdata (which is the Context the ops use).
std::atomic<uint32_t> wanted{0};
std::atomic<uint32_t> offered{0};
std::atomic<uint32_t> offered2{0};
std::atomic<bool> want_passthrough{false};
std::atomic<bool> passthrough_on{false};
thread_local int32_t t_reply_backing_id = 0;

// Kernel ABI newer than Debian 12's headers: INIT flags2 bit 5 is FUSE_PASSTHROUGH (protocol
// 7.40); it needs FUSE_INIT_EXT in flags and a stack depth at byte 36 of the reply.
constexpr uint32_t kInitExt = 1u << 30;
constexpr uint32_t kInit2Passthrough = 1u << 5;
constexpr size_t kInitInFlags2 = 16;
constexpr size_t kInitOutFlags2 = 32;
constexpr size_t kInitOutMaxStackDepth = 36;
constexpr size_t kInitOutMaxWrite = 20;
constexpr size_t kInitOutMaxPages = 28;  // u16
constexpr uint32_t kFopenPassthrough = 1u << 7;

uint32_t load_u32(const void* base, size_t off) {
  uint32_t v;
  std::memcpy(&v, static_cast<const char*>(base) + off, sizeof v);
  return v;
}
void store_u32(void* base, size_t off, uint32_t v) { std::memcpy(static_cast<char*>(base) + off, &v, sizeof v); }
std::atomic<uint64_t> init_unique{0};
std::atomic<bool> init_pending{true};

ssize_t read_request(int fd, void* buf, size_t len, void*) {
  ssize_t n = ::read(fd, buf, len);
  if (n > 0) {
    note_request(buf, size_t(n));
    count_request(buf, size_t(n));
  }
  // INIT is the first request and nothing else arrives until it is answered.
  if (init_pending.load(std::memory_order_relaxed) && n >= ssize_t(sizeof(fuse_in_header))) {
    fuse_in_header in;
    std::memcpy(&in, buf, sizeof in);
    if (in.opcode == FUSE_INIT && size_t(n) >= sizeof in + offsetof(fuse_init_in, flags) + sizeof(uint32_t)) {
      fuse_init_in init;
      std::memset(&init, 0, sizeof init);
      std::memcpy(&init, static_cast<char*>(buf) + sizeof in, std::min(sizeof init, size_t(n) - sizeof in));
      offered = init.flags;
      if (size_t(n) >= sizeof in + kInitInFlags2 + sizeof(uint32_t))
        offered2 = load_u32(static_cast<char*>(buf) + sizeof in, kInitInFlags2);
      init_unique = in.unique;
    }
  }
  return n;
}

// A reply to a request served from an io_uring queue goes back through that queue.
ssize_t send_reply(int fd, iovec* iov, int count) {
  ssize_t sent;
  if (uring::reply_to_ring(iov, count, &sent)) return sent;
  return ::writev(fd, iov, count);
}

// An open or create reply that hands the kernel a backing file: fuse_open_out ends the
// argument ({u64 fh; u32 open_flags; i32 backing_id}, the id where libfuse 3.14 has padding).
ssize_t write_open_reply(int fd, iovec* iov, int count) {
  constexpr size_t kOpenOut = 16;
  char arg[256];
  if (count != 2 || iov[1].iov_len < kOpenOut || iov[1].iov_len > sizeof arg) return send_reply(fd, iov, count);
  std::memcpy(arg, iov[1].iov_base, iov[1].iov_len);
  size_t at = iov[1].iov_len - kOpenOut;
  store_u32(arg, at + 8, load_u32(arg, at + 8) | kFopenPassthrough);
  store_u32(arg, at + 12, uint32_t(t_reply_backing_id));
  iov[1].iov_base = arg;  // libfuse builds the vector for this one call
  return send_reply(fd, iov, count);
}

ssize_t write_reply(int fd, iovec* iov, int count, void*) {
  if (t_reply_backing_id != 0) return write_open_reply(fd, iov, count);
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
      set_killpriv_v2_negotiated(init.flags & FUSE_HANDLE_KILLPRIV_V2);
      unsigned char raw[64] = {};
      std::memcpy(raw, &init, std::min(len, sizeof raw));
      if (want_passthrough.load() && (offered.load() & kInitExt) && (offered2.load() & kInit2Passthrough) &&
          !(init.flags & FUSE_WRITEBACK_CACHE) && len >= kInitOutMaxStackDepth + sizeof(uint32_t)) {
        store_u32(raw, offsetof(fuse_init_out, flags), init.flags | kInitExt);
        store_u32(raw, kInitOutFlags2, load_u32(raw, kInitOutFlags2) | kInit2Passthrough);
        // Backing files on a filesystem of stack depth 0 (ext4, xfs...); the mount itself can
        // still be a lower of kernel overlayfs.
        store_u32(raw, kInitOutMaxStackDepth, 1);
        passthrough_on = true;
        spdlog::debug("FUSE passthrough negotiated");
      }
      // FUSE over io_uring (uring.hpp) when its rings are ready; else they close first.
      bool ring = uring::wants_negotiation(offered2.load()) && (offered.load() & kInitExt) &&
                  len >= kInitOutFlags2 + sizeof(uint32_t);
      if (ring) {
        store_u32(raw, offsetof(fuse_init_out, flags), load_u32(raw, offsetof(fuse_init_out, flags)) | kInitExt);
        store_u32(raw, kInitOutFlags2, load_u32(raw, kInitOutFlags2) | uring::kInit2OverIoUring);
      } else {
        uring::init_answered(false, 0, 0);
      }
      iov[1] = {raw, len};  // libfuse builds the vector for this one call
      ssize_t n = ::writev(fd, iov, count);
      if (ring) uring::init_answered(n >= 0, load_u32(raw, kInitOutMaxWrite), load_u32(raw, kInitOutMaxPages) & 0xffff);
      return n;
    }
  }
  return send_reply(fd, iov, count);
}

ssize_t splice_in(int fdin, off_t* offin, int fdout, off_t* offout, size_t len, unsigned flags, void*) {
  return ::splice(fdin, offin, fdout, offout, len, flags);
}

// A request spliced from /dev/fuse is not read here: its flags stay unknown (op_init turns
// splice reads off for that reason).
ssize_t splice_request(int fdin, off_t* offin, int fdout, off_t* offout, size_t len, unsigned flags, void*) {
  forget_request();
  return ::splice(fdin, offin, fdout, offout, len, flags);
}

}  // namespace

bool passthrough_negotiated() { return passthrough_on.load(); }

ReplyWithBacking::ReplyWithBacking(int32_t id) { t_reply_backing_id = id; }
ReplyWithBacking::~ReplyWithBacking() { t_reply_backing_id = 0; }

int add_init_flags(fuse_session* se, uint32_t flags, bool passthrough) {
  wanted = flags;
  want_passthrough = passthrough;
  static const fuse_custom_io io = {write_reply, read_request, splice_request, splice_in};
  return fuse_session_custom_io(se, &io, fuse_session_fd(se));
}

}  // namespace strata::fs::fuse
