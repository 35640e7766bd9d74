// Whether the writer behind a request may keep a file's set-id bits, as the kernel says.
//
// strata-fs asks for FUSE_HANDLE_KILLPRIV_V2 (init_flags.hpp), so dropping set-id bits after a
// write is the daemon's job; and the daemon writes with CAP_FSETID itself, so the backing
// filesystem would keep them. Only the kernel knows the writer's capabilities, and under
// KILLPRIV_V2 it says "this writer lacks CAP_FSETID" with a flag in these requests (Linux
// fs/fuse, checked on 6.18 by the mount test killpriv-no-fsetid):
//   WRITE    FUSE_WRITE_KILL_SUIDGID in write_flags
//   SETATTR  FATTR_KILL_SUIDGID in valid, with FATTR_SIZE (truncate, ftruncate)
//   OPEN     FUSE_OPEN_KILL_SUIDGID in open_flags, with O_TRUNC
//   CREATE   FUSE_OPEN_KILL_SUIDGID in open_flags, with O_TRUNC and without O_EXCL
// FALLOCATE and COPY_FILE_RANGE carry no such flag: the kernel's file_modified() sends a
// SETATTR before them whose attributes are all stripped under KILLPRIV_V2 (valid is 0), and it
// sends the same empty SETATTR when it only removed security.capability for a writer that has
// CAP_FSETID, so it cannot tell the two apart. For those two ops task_has_fsetid() asks the
// calling thread's capabilities in /proc instead.
//
// libfuse 3.14 drops these flags before the ops see them, so the session's read wrapper hands
// each raw request to note_request() and the op, served by the same thread right after the
// read, asks writer_has_fsetid(). Requests that reach the daemon another way (spliced from
// /dev/fuse, or from an io_uring entry) must be noted too, or the op sees "unknown".
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <optional>

namespace strata::fs::fuse {

// Records what the raw request (fuse_in_header and its argument, `len` bytes) says, for the
// calling thread. Any request replaces what the previous one said.
void note_request(const void* request, size_t len);

// Forgets the calling thread's last request (it is about to serve one it cannot read).
void forget_request();

// Set once the INIT reply carried FUSE_HANDLE_KILLPRIV_V2.
void set_killpriv_v2_negotiated(bool on);

// For the request this thread serves: true when the kernel says its writer has CAP_FSETID,
// false when it says the writer lacks it, nullopt when the kernel says nothing (KILLPRIV_V2
// not negotiated, or an op or a case the kernel never flags).
std::optional<bool> writer_has_fsetid();

// Whether thread `tid` (the pid of a FUSE request: the calling thread, blocked in the call, so
// its credentials cannot change meanwhile) has CAP_FSETID in the initial user namespace, as
// the kernel's capable(CAP_FSETID) asks. nullopt when /proc cannot say (tid 0: a caller in
// another pid namespace).
std::optional<bool> task_has_fsetid(pid_t tid);

}  // namespace strata::fs::fuse
