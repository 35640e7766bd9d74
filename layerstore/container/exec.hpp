#pragma once
// `strata exec`: a new process in a running container, as `docker exec`: the container's
// namespaces and root, the same confinement as its command (capabilities, seccomp,
// no-new-privileges from HostConfig), its Env plus -e, its User and WorkingDir unless -u/-w.
#include <string>
#include <vector>

#include "layerstore/container/container.hpp"

namespace strata {

struct ExecRequest {
  std::vector<std::string> argv;
  std::vector<std::string> env;  // -e K=V over the container's Env
  std::string user;              // -u; "" is the container's User
  std::string workdir;           // -w; "" is the container's WorkingDir
  bool keep_stdin = false;       // -i: the caller's stdin; else /dev/null
  bool tty = false;              // -t: a pty of the container's devpts, relayed to this process's terminal
};

// Runs the command and returns its exit status (128+N when killed by signal N; 126/127 when it
// could not be executed; 125 when the container could not be entered). Throws Error when the
// container is not running. SIGINT/SIGTERM/SIGHUP/SIGQUIT/SIGUSR1/SIGUSR2 are passed on to it.
int exec_in_container(const Container& c, const ExecRequest& r);

}  // namespace strata
