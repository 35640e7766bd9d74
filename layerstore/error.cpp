#include "layerstore/error.hpp"

#include <cerrno>
#include <cstring>

namespace strata {

SysError::SysError(const std::string& what, int err)
    : Error(what + ": " + std::strerror(err)), code_(err) {}

void throw_errno(const std::string& what) { throw SysError(what, errno); }

}  // namespace strata
