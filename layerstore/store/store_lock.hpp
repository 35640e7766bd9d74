#pragma once
// Inter-process locking on one file, <root>/strata.lock, with open-file-description range
// locks (per fd, so also safe between threads), so locking never adds files to the store:
//   byte 0  store lock: shared for loads and reads, exclusive for rmi, tag and prune;
//   byte 1  index lock: exclusive while layerdb/imagedb/repositories.json change;
//   byte 2+ one byte per chain-id (hashed): held while a layer is unpacked and committed,
//           so two loads of images sharing a base unpack it once and both use it.
#include <string>

#include "layerstore/archive/unique_fd.hpp"

namespace strata {

class RangeLock {
 public:
  RangeLock() = default;
  RangeLock(const std::string& lock_file, long long offset, bool exclusive);
  RangeLock(RangeLock&&) noexcept = default;
  RangeLock& operator=(RangeLock&&) noexcept = default;
  ~RangeLock() = default;  // closing the fd releases the lock

 private:
  UniqueFd fd_;
};

RangeLock lock_store(const std::string& lock_file, bool exclusive);
RangeLock lock_index(const std::string& lock_file);
RangeLock lock_chain(const std::string& lock_file, const std::string& chain_id);

}  // namespace strata
