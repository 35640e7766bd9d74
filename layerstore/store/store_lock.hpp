#pragma once
// Inter-process locking on one file, <root>/strata.lock, with open-file-description range
// locks (per fd, so also safe between threads), so locking never adds files to the store:
//   byte 0  store lock: shared for loads and reads, exclusive for rmi, tag and prune;
//   byte 1  index lock: exclusive while layerdb/imagedb/repositories.json change;
//   byte 2+ one byte per chain-id (hashed): held while a layer is unpacked and committed,
//           so two loads of images sharing a base unpack it once and both use it.
// A data-root that dockerd wrote has no strata.lock: commands that only read use it without
// one (read_lock_store), the first command that writes creates it (write_lock_store).
#include <string>

#include "layerstore/archive/unique_fd.hpp"
#include "layerstore/store/store_layout.hpp"

namespace strata {

class RangeLock {
 public:
  RangeLock() = default;  // holds nothing
  RangeLock(const std::string& lock_file, long long offset, bool exclusive);
  RangeLock(RangeLock&&) noexcept = default;
  RangeLock& operator=(RangeLock&&) noexcept = default;
  ~RangeLock() = default;  // closing the fd releases the lock

  // The lock on an already open lock file.
  RangeLock(UniqueFd fd, const std::string& lock_file, long long offset, bool exclusive);

 private:
  UniqueFd fd_;
};

RangeLock lock_store(const std::string& lock_file, bool exclusive);
RangeLock lock_index(const std::string& lock_file);
RangeLock lock_chain(const std::string& lock_file, const std::string& chain_id);

// For commands that only read (images, inspect, verify, save, mount): the shared store lock
// when strata's lock file exists, else no lock and nothing created, so a read leaves a
// Docker-written root byte for byte as it was. dockerd must be stopped: it does not take
// strata's lock. A strata writer that creates the lock file while such a reader runs does
// not wait for it — only the first write to a Docker root can race a read that way.
RangeLock read_lock_store(const StoreLayout& l);

// For commands that write (create/run, commit, rmi, tag, prune): the store's skeleton and
// lock file, created if missing (a Docker root lacks overlay2/.staging and strata.lock), then
// the store lock, shared or exclusive.
RangeLock write_lock_store(const StoreLayout& l, bool exclusive);

}  // namespace strata
