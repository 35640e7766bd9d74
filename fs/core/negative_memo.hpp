// What the last lookups that found nothing saw, for the create or rename that follows them.
//
// The kernel looks a name up before it creates it (cp, tar, dpkg: LOOKUP, then CREATE, MKDIR,
// SYMLINK or RENAME onto it), and both requests used to probe the name and its `.wh.` form in
// every layer. A negative lookup is remembered with the tree's version it saw; while the
// version is unchanged nothing was created, removed, renamed or copied up through the mount,
// so the name is still absent and what the upper held there (a whiteout, or nothing) is still
// there. A file put into a layer beside the mount in between is treated as the kernel treats
// it after a negative lookup it caches: as not there yet.
//
// Leaf lock: nothing else is taken while it is held, and no syscall.
#pragma once

#include <array>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>

namespace strata::fs {

// What a lookup that found nothing saw in the upper directory of the name's parent.
struct Absence {
  bool upper_probed = false;     // the parent had an upper directory and the name was looked at there
  bool whiteout_device = false;  // a char 0/0 whiteout stands at the name in the upper
  bool whiteout_file = false;    // a .wh.NAME whiteout file is beside it in the upper
};

class NegativeMemo {
 public:
  void remember(uint64_t dir_id, std::string_view name, uint64_t version, const Absence& absence);
  // True, with `absence` filled, when `name` in directory `dir_id` was found absent at `version`.
  bool recall(uint64_t dir_id, std::string_view name, uint64_t version, Absence& absence) const;

 private:
  struct Slot {
    uint64_t dir_id = 0;  // Inode ids start at 1: 0 is an empty slot
    uint64_t version = 0;
    std::string name;
    Absence absence;
  };
  // A few slots: requests of one workload thread follow each other, and a few workers serve
  // them at a time.
  mutable std::mutex mutex_;
  std::array<Slot, 8> slots_;
  size_t next_ = 0;
};

}  // namespace strata::fs
