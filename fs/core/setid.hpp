// Set-id bits after a write, truncation or O_TRUNC open. strata-fs asks the kernel for
// FUSE_HANDLE_KILLPRIV_V2, so dropping them is ours; and the daemon writes with
// CAP_FSETID, so the backing filesystem would keep bits the caller could not have kept.
#pragma once

#include <sys/stat.h>

namespace strata::fs {

// The VFS's rule for a writer without CAP_FSETID: S_ISUID goes; S_ISGID goes where
// group-execute makes it a set-gid program, or where the writer is not in the file's group.
// in_group(stored_gid) answers the last question.
template <class InGroup>
void drop_setid_bits(int fd, InGroup&& in_group) {
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) return;
  mode_t kill = st.st_mode & S_ISUID;
  if ((st.st_mode & S_ISGID) && ((st.st_mode & S_IXGRP) || !in_group(st.st_gid))) kill |= S_ISGID;
  if (kill) ::fchmod(fd, st.st_mode & 07777 & ~kill);
}

}  // namespace strata::fs
