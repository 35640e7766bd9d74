// Set-id bits after a write or truncation. libfuse hands this to the filesystem
// (FUSE_CAP_HANDLE_KILLPRIV), and the daemon writes with CAP_FSETID, so the backing
// filesystem would keep bits the caller could not have kept.
#pragma once

#include <sys/stat.h>

namespace strata::fs {

// Drops S_ISUID, and S_ISGID where group-execute makes it a set-gid program, from the file.
inline void drop_setid_bits(int fd) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return;
  mode_t kill = S_ISUID | ((st.st_mode & S_IXGRP) ? S_ISGID : 0);
  if (st.st_mode & kill) ::fchmod(fd, st.st_mode & 07777 & ~kill);
}

}  // namespace strata::fs
