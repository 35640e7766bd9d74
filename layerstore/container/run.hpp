#pragma once
// `strata run`: the container's rootfs through strata-fs inside new user (when not root),
// mount, pid, uts and ipc namespaces, /proc, a minimal /dev, pivot_root, then the image
// config's Entrypoint/Cmd/Env/WorkingDir/User. No setuid helper is needed: the caller is
// mapped to root (newuidmap/newgidmap add the /etc/subuid ranges when present). The
// network namespace is the host's.
#include <string>

#include "layerstore/container/container.hpp"
#include "layerstore/container/mounts.hpp"

namespace strata {

// Runs the container in the foreground; returns the command's exit status (128+N when
// killed by signal N; 125 when the container could not be set up, 126/127 when the
// command could not be executed). SIGINT/SIGTERM/SIGHUP/SIGQUIT are passed on to it.
int run_container(const StoreLayout& l, Container& c, const NoteFn& note);

}  // namespace strata
