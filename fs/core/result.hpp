// Errors inside the overlay core are values: a Result holds either a T or a positive errno.
// The FUSE adapter turns the errno into the reply; nothing throws across a callback.
#pragma once

#include <cerrno>
#include <utility>
#include <variant>

namespace strata::fs {

struct Errno {
  int value;
};

inline Errno last_errno() { return Errno{errno}; }

template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT: implicit by design
  Result(Errno e) : v_(e) {}                 // NOLINT

  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  int error() const { return ok() ? 0 : std::get<1>(v_).value; }
  T& value() { return std::get<0>(v_); }
  const T& value() const { return std::get<0>(v_); }
  T& operator*() { return value(); }
  const T& operator*() const { return value(); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }

 private:
  std::variant<T, Errno> v_;
};

// For operations that return nothing but may fail: 0 or a positive errno.
using Status = int;

}  // namespace strata::fs
