#pragma once
// The capabilities a container's command keeps: Docker's default set, changed by
// --cap-add/--cap-drop, applied to the bounding, permitted and effective sets (ambient and
// inheritable empty). Names are read with libcap.
#include <cstdint>
#include <string>
#include <vector>

namespace strata {

// One bit per capability number (CAP_CHOWN = bit 0); the kernel has about 41.
using CapabilityMask = std::uint64_t;

// CHOWN DAC_OVERRIDE FSETID FOWNER MKNOD NET_RAW SETGID SETUID SETFCAP SETPCAP
// NET_BIND_SERVICE SYS_CHROOT KILL AUDIT_WRITE (moby's oci/caps defaults): 0xa80425fb.
CapabilityMask docker_default_capabilities();

// Every capability this kernel knows.
CapabilityMask all_capabilities();

// Docker's rules: ALL in `add` gives every capability but the dropped ones; ALL in `drop`
// leaves only the added ones; otherwise the defaults minus `drop` plus `add`. Names with or
// without CAP_, any case. Throws Error naming an unknown capability.
CapabilityMask resolve_capabilities(const std::vector<std::string>& add, const std::vector<std::string>& drop);

// The capability number of a name ("chown", "CAP_CHOWN"); throws Error when unknown.
int capability_from_name(const std::string& name);

// Drops every capability not in `keep` from the bounding set (needs CAP_SETPCAP, so before
// the user switch gives it up). A capability this process never had stays out.
void drop_bounding_set(CapabilityMask keep);

// Sets permitted and effective to `keep` (within what the process still has), inheritable and
// ambient to nothing. After the user switch (with PR_SET_KEEPCAPS) and before exec.
void set_process_capabilities(CapabilityMask keep);

}  // namespace strata
