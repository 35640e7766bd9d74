// How many requests of each kind the kernel sent this mount: the measure of what an operation
// costs over FUSE (every request is a round trip), free of the machine's timing noise.
// `kill -USR1 <daemon>` writes them to the daemon's stderr (run it with -f to keep stderr);
// with -d they are also written when the mount ends.
#pragma once

#include <cstddef>
#include <cstdint>

namespace strata::fs::fuse {

// Counts one request by its opcode (a relaxed atomic increment: cheap on every path).
void count_request(const void* request, size_t len);

// Writes one line, "strata-fs: requests: LOOKUP 12 GETATTR 3 ... total 15", of the non-zero
// counts to `fd`. Async-signal-safe.
void write_request_counts(int fd);

// SIGUSR1 writes the counts to stderr.
void install_request_count_signal();

}  // namespace strata::fs::fuse
