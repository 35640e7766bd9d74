#pragma once
// Entering a running container from outside (exec, cp): its user (rootless), mount, uts, ipc
// and pid namespaces, taken from its init as recorded in config.v2.json.
#include <string>

#include "layerstore/archive/unique_fd.hpp"
#include "layerstore/container/container.hpp"
#include "layerstore/container/process_identity.hpp"

namespace strata {

struct ContainerNamespaces {
  UniqueFd user;  // empty when the container has no user namespace of its own (run as root)
  UniqueFd mnt, uts, ipc, pid;  // joining mnt puts us at the container's / (its init's pivot_root)
};

// The init recorded in config.v2.json's State (pid and start time); pid 0 when none.
ProcessRef recorded_container_init(const Container& c);

// Opens the namespaces of the container's init. A rootless init cannot be read by its own user
// (it is not dumpable and its memory belongs to the host's user namespace), so then those of the
// container's command (the init's first child) are taken, once it has executed (before, it is a
// copy of the init and as unreadable: right after `run -d` it is waited for, up to 10 s). The init
// is checked to be the recorded one (start time) after the opens, so a reused pid never lends
// its namespaces. Throws Error "container NAME is not running".
ContainerNamespaces open_container_namespaces(const Container& c);

// For a forked child (never throws; dies with one line on failure): joins the user namespace
// first (then becomes its root), the mount, uts and ipc namespaces and, when `pid_ns`, the pid
// namespace (for the children it forks after this); it is then at the container's root.
void join_container_namespaces(const ContainerNamespaces& ns, bool pid_ns);

}  // namespace strata
