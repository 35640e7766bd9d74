// Whether a file or directory that decides what a lazy layer serves can be changed by a user
// other than the caller (root aside, who can change anything anyway).
//
// A lazy layer is served from files read long after they were checked: the blob, read in
// place (a writer of it changes what the mount shows, set-uid files included, after the digest
// was verified), the index and its descriptor (they say which file holds which bytes, with
// which owner and mode), the cache that vouches for both. Such a file is trusted only if
// nobody but the caller or root can write it: owned by one of them, and not writable by its
// group or others. A group write bit is fine for the caller's own user-private group (Debian's
// umask 002 scheme: the group named like the user, with no other members), as OpenSSH's
// Debian build accepts for ~/.ssh.
#pragma once

#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>

namespace strata::lazy {

inline bool is_users_private_group(gid_t gid, uid_t uid) {
  const struct group* g = getgrgid(gid);
  if (!g || (g->gr_mem && g->gr_mem[0])) return false;
  std::string group = g->gr_name;
  const struct passwd* p = getpwuid(uid);
  return p && group == p->pw_name && p->pw_gid == gid;
}

// Empty if only `uid` (the caller) or root can write the file `st` describes; else who else
// can, for an error message. With `sticky_ok`, a sticky directory writable by all (/tmp, on
// the way to a file) is fine: others can add names to it, not take ours away.
inline std::string other_writers(const struct stat& st, uid_t uid, bool sticky_ok = false) {
  if (st.st_uid != uid && st.st_uid != 0) return "owned by uid " + std::to_string(st.st_uid);
  if (sticky_ok && S_ISDIR(st.st_mode) && (st.st_mode & S_ISVTX)) return "";
  if (st.st_mode & S_IWOTH) return "writable by all users";
  if ((st.st_mode & S_IWGRP) && !is_users_private_group(st.st_gid, st.st_uid))
    return "writable by group " + std::to_string(st.st_gid);
  return "";
}

}  // namespace strata::lazy
