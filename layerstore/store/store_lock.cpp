#include "layerstore/store/store_lock.hpp"

#include <fcntl.h>

#include <cerrno>
#include <functional>

#include "layerstore/error.hpp"

namespace strata {

RangeLock::RangeLock(const std::string& lock_file, long long offset, bool exclusive)
    : RangeLock(UniqueFd(::open(lock_file.c_str(), O_RDWR | O_CLOEXEC)), lock_file, offset, exclusive) {}

RangeLock::RangeLock(UniqueFd fd, const std::string& lock_file, long long offset, bool exclusive)
    : fd_(std::move(fd)) {
  if (!fd_) throw_errno("open " + lock_file);
  struct flock fl {};
  fl.l_type = exclusive ? F_WRLCK : F_RDLCK;
  fl.l_whence = SEEK_SET;
  fl.l_start = offset;
  fl.l_len = 1;
  while (fcntl(fd_.get(), F_OFD_SETLKW, &fl) != 0) {
    if (errno != EINTR) throw_errno("lock " + lock_file);
  }
}

RangeLock lock_store(const std::string& f, bool exclusive) { return RangeLock(f, 0, exclusive); }
RangeLock lock_index(const std::string& f) { return RangeLock(f, 1, true); }
RangeLock lock_chain(const std::string& f, const std::string& chain_id) {
  return RangeLock(f, 2 + static_cast<long long>(std::hash<std::string>{}(chain_id) % (1ull << 40)), true);
}

RangeLock read_lock_store(const StoreLayout& l) {
  // One open decides: no check-then-open window in which the file could appear or vanish.
  UniqueFd fd(::open(l.lock_file().c_str(), O_RDWR | O_CLOEXEC));
  if (!fd && errno == ENOENT) return RangeLock();
  return RangeLock(std::move(fd), l.lock_file(), 0, false);
}

RangeLock write_lock_store(const StoreLayout& l, bool exclusive) {
  l.ensure_skeleton();
  return lock_store(l.lock_file(), exclusive);
}

}  // namespace strata
