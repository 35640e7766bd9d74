#pragma once
// One exception type for the layer store: its message is the user-facing reason
// ("layer 2 digest mismatch (want ..., got ...)"); the CLI prefixes the command and input.
#include <stdexcept>
#include <string>

namespace strata {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Error from a failed syscall: "<what>: <strerror(errno)>"; keeps errno for callers that care.
class SysError : public Error {
 public:
  SysError(const std::string& what, int err);
  int code() const { return code_; }

 private:
  int code_;
};

[[noreturn]] void throw_errno(const std::string& what);

}  // namespace strata
