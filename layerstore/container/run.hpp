#pragma once
// `strata run`: the container's rootfs through strata-fs inside new user (when not root),
// mount, pid, uts and ipc namespaces, /proc, a minimal /dev, pivot_root, then the image
// config's Entrypoint/Cmd/Env/WorkingDir/User. No setuid helper is needed: the caller is
// mapped to root (newuidmap/newgidmap add the /etc/subuid ranges when present). The
// network namespace is the host's.
#include <functional>
#include <string>

#include "layerstore/container/container.hpp"
#include "layerstore/container/mounts.hpp"

namespace strata {

struct RunOptions {
  // -t: the command gets a new pty of the container's own devpts as its controlling terminal;
  // this process relays the pty's output to its stdout and (with keep_stdin) its stdin into the
  // pty, with the window size of its terminal (kept up to date on SIGWINCH).
  bool tty = false;
  // -i: the command's stdin is this process's; without it, /dev/null (as docker run).
  bool keep_stdin = false;
  std::function<void()> on_started;  // once State says Running (the init runs)
  std::function<void()> on_exited;   // after the container is gone, before its exit is recorded
};

// Runs the container with this process as its monitor; returns the command's exit status
// (128+N when killed by signal N; 125 when the container could not be set up, 126/127 when
// the command could not be executed). SIGINT/SIGTERM/SIGHUP/SIGQUIT/SIGUSR1/SIGUSR2 are passed
// on to it. The container's state (init pid and start time, this monitor's pid and start time,
// exit code) is config.v2.json's State: see lifecycle.hpp.
int run_container(const StoreLayout& l, Container& c, const NoteFn& note, const RunOptions& opt = {});

}  // namespace strata
