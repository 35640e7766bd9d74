#include "fs/fuse/request_counts.hpp"

#include <linux/fuse.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstddef>
#include <csignal>
#include <cstring>

namespace strata::fs::fuse {

namespace {

constexpr uint32_t kOpcodes = 64;  // the kernel's opcodes are below this (CUSE_INIT is not ours)
std::atomic<uint64_t> counts[kOpcodes + 1];  // the last one counts anything else

// Opcode names as <linux/fuse.h> spells them (without FUSE_), newer ones included.
const char* name_of(uint32_t op) {
  static const char* const names[kOpcodes] = {
      nullptr,      "LOOKUP",     "FORGET",     "GETATTR",      "SETATTR",      "READLINK",   "SYMLINK",
      nullptr,      "MKNOD",      "MKDIR",      "UNLINK",       "RMDIR",        "RENAME",     "LINK",
      "OPEN",       "READ",       "WRITE",      "STATFS",       "RELEASE",      nullptr,      "FSYNC",
      "SETXATTR",   "GETXATTR",   "LISTXATTR",  "REMOVEXATTR",  "FLUSH",        "INIT",       "OPENDIR",
      "READDIR",    "RELEASEDIR", "FSYNCDIR",   "GETLK",        "SETLK",        "SETLKW",     "ACCESS",
      "CREATE",     "INTERRUPT",  "BMAP",       "DESTROY",      "IOCTL",        "POLL",       "NOTIFY_REPLY",
      "BATCH_FORGET", "FALLOCATE", "READDIRPLUS", "RENAME2",    "LSEEK",        "COPY_FILE_RANGE",
      "SETUPMAPPING", "REMOVEMAPPING", "SYNCFS", "TMPFILE",    "STATX",        "COPY_FILE_RANGE_64"};
  return op < kOpcodes ? names[op] : nullptr;
}

// Appends to a fixed buffer without allocating (the signal handler uses it).
struct Line {
  char buf[2048];
  size_t len = 0;
  void add(const char* s) {
    size_t n = std::strlen(s);
    if (n > sizeof buf - len) n = sizeof buf - len;
    std::memcpy(buf + len, s, n);
    len += n;
  }
  void add(uint64_t v) {
    char digits[24];
    size_t n = 0;
    do {
      digits[n++] = char('0' + v % 10);
      v /= 10;
    } while (v != 0);
    char s[24];
    for (size_t i = 0; i < n; ++i) s[i] = digits[n - 1 - i];
    s[n] = '\0';
    add(s);
  }
};

void on_usr1(int) {
  int saved = errno;
  write_request_counts(STDERR_FILENO);
  errno = saved;
}

}  // namespace

void count_request(const void* request, size_t len) {
  if (len < sizeof(fuse_in_header)) return;
  uint32_t op;
  std::memcpy(&op, static_cast<const char*>(request) + offsetof(fuse_in_header, opcode), sizeof op);
  counts[op < kOpcodes ? op : kOpcodes].fetch_add(1, std::memory_order_relaxed);
}

void write_request_counts(int fd) {
  Line line;
  line.add("strata-fs: requests:");
  uint64_t total = 0;
  for (uint32_t op = 0; op <= kOpcodes; ++op) {
    uint64_t n = counts[op].load(std::memory_order_relaxed);
    if (n == 0) continue;
    total += n;
    const char* name = name_of(op);
    line.add(" ");
    if (name) {
      line.add(name);
    } else {
      line.add("op");
      line.add(uint64_t(op));
    }
    line.add(" ");
    line.add(n);
  }
  line.add(" total ");
  line.add(total);
  line.add("\n");
  ssize_t r = ::write(fd, line.buf, line.len);
  (void)r;
}

void install_request_count_signal() {
  struct sigaction sa {};
  sa.sa_handler = on_usr1;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGUSR1, &sa, nullptr);
}

}  // namespace strata::fs::fuse
