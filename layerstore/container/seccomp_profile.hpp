#pragma once
// Docker's default seccomp profile, built with libseccomp for the container's command.
#include "layerstore/container/capabilities.hpp"

namespace strata {

// Loads the filter into the calling process (and so into everything it execs). Rules that
// Docker keys on a capability follow `caps` (the set the command will have), as Docker
// builds its filter. Does not set no_new_privs (that is --security-opt no-new-privileges);
// without it the kernel wants CAP_SYS_ADMIN, so call this before the capabilities drop.
// Throws Error.
void load_docker_seccomp_profile(CapabilityMask caps);

}  // namespace strata
