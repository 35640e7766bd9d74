// Link counts of copied-up lower hardlinks, as kernel overlayfs (index=on) shows them.
//
// The kernel counts every name a hardlinked lower file has, also names the merged view hides
// (whited out, or under an upper file or opaque dir), and keeps that count through copy-up
// and later link/unlink/rename. strata links every visible name to the one upper inode at
// copy-up; for each hidden name it adds one more link in <workdir>/strata-index, so the upper
// file's own st_nlink is the kernel's count with no bookkeeping on the hot path, and stays so
// after a remount and when kernel overlayfs reads the upper. An index link whose file has no
// other name left is removed at the next mount (the kernel cleans its index the same way).
#pragma once

#include <sys/types.h>

#include <string>

#include "fs/core/result.hpp"
#include "fs/core/unique_fd.hpp"

namespace strata::fs {

class HiddenLinks {
 public:
  // Opens (creating) <workdir>/strata-index and drops links whose file has no name left.
  Status open(const std::string& workdir);
  // Adds `count` links to the file `name` below `dir_fd` (upper inode `ino`).
  void add(int dir_fd, const std::string& name, ino_t ino, unsigned count);

 private:
  UniqueFd dir_;
};

}  // namespace strata::fs
