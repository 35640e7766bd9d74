#pragma once
// How the processes `strata run` forks (setup, init, command) fail: one line on stderr and
// exit status 125. They never throw: an exception would unwind into the copy of the parent's
// stack that fork left them.
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace strata {

// The command named in the line: "run", or "exec"/"cp" for the processes they fork.
inline std::string& child_command_name() {
  static std::string name = "run";
  return name;
}

[[noreturn]] inline void die(const std::string& what) {
  std::string msg = "strata: " + child_command_name() + ": " + what + "\n";
  (void)!write(2, msg.data(), msg.size());
  _exit(125);
}

[[noreturn]] inline void die_errno(const std::string& what) { die(what + ": " + std::strerror(errno)); }

}  // namespace strata
