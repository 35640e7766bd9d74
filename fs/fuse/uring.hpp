// FUSE over io_uring (Linux 6.14+, CONFIG_FUSE_IO_URING, off until root writes Y to
// /sys/module/fuse/parameters/enable_uring): requests arrive and replies leave through one
// io_uring per CPU instead of read(2)/write(2) on /dev/fuse. The kernel queues a request on
// the ring of the CPU its caller runs on, and that ring's thread (pinned to the CPU) serves it
// there: no wake-up of a thread on another CPU per request.
//
// libfuse 3.14 knows nothing of it. strata-fs adds FUSE_OVER_IO_URING to the INIT reply on its
// way out (init_flags.cpp), builds each request from the ring entry into one buffer and hands
// it to fuse_session_process_buf(); the reply libfuse then writes is caught in the session's
// writev wrapper and committed to the ring entry instead (reply_to_ring). FORGET and INTERRUPT
// keep arriving on /dev/fuse (the kernel sends them there), so libfuse's /dev/fuse loop keeps
// running beside the rings; notifications go to /dev/fuse too.
//
// Lifecycle: prepare() before the loop creates the rings (so a kernel or a process that cannot
// have io_uring is known before INIT is answered, and the mount falls back to /dev/fuse); the
// INIT reply negotiates; init_answered() then registers the ring entries (the kernel holds
// every request until each CPU's ring has one) or, without negotiation, closes the rings. An
// unmount ends every entry with ENOTCONN and the threads return; stop() ends them otherwise.
#pragma once

#include <sys/uio.h>
#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

namespace strata::fs::fuse::uring {

// FUSE_OVER_IO_URING: bit 41 of the INIT flags, i.e. bit 9 of flags2 (protocol 7.42).
inline constexpr uint32_t kInit2OverIoUring = 1u << 9;

class Transport;

// Why this kernel offers no FUSE over io_uring, or "" when its switch is on.
std::string kernel_switch_off_reason();

// The rings, one per possible CPU (the kernel's queue count), each with its thread. Returns null
// with `why` when they cannot be had (io_uring disabled, no memory, ...).
std::unique_ptr<Transport> prepare(fuse_session* se, std::string& why);

// True between prepare() and the INIT reply (op_init then turns splicing of replies off: a
// ring reply is copied into the ring entry).
bool prepared();

// Hooks for the /dev/fuse I/O wrappers (init_flags.cpp); all no-ops without a prepared
// transport. True when the INIT reply should ask for io_uring (prepared and `offered2` has it).
bool wants_negotiation(uint32_t offered2);
// After the INIT reply (its max_write and max_pages size the payload buffers): `negotiated`
// starts the rings, otherwise they are closed before this returns.
void init_answered(bool negotiated, uint32_t max_write, uint32_t max_pages);
// True when this reply belongs to the request the calling ring thread is serving: it is then
// staged in the ring entry (committed when the handler returns) and `*sent` is its size.
bool reply_to_ring(const iovec* iov, int count, ssize_t* sent);

// The reply buffer of the ring entry the calling thread serves, or {nullptr, 0} on any other
// thread: a READ can be read straight into it (a reply that starts there is not copied).
struct ReplyBuffer {
  char* data;
  size_t size;
};
ReplyBuffer reply_buffer();

class Transport {
 public:
  ~Transport();  // stop()
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;

  // Ends every ring thread and closes the rings. Idempotent.
  void stop();
  size_t queues() const;

  struct Impl;
  explicit Transport(std::unique_ptr<Impl> impl);

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace strata::fs::fuse::uring
