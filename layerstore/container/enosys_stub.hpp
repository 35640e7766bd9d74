// runc's "-ENOSYS stub" (libcontainer/seccomp/patchbpf in runc, which Docker and podman run):
// BPF put in front of the seccomp filter so that a syscall numbered above the highest one the
// profile names, per ABI, fails with ENOSYS rather than the profile's default EPERM. A syscall
// newer than the profile then looks absent, and libc falls back to an older one (glibc 2.39's
// fchmodat2 falls back only on ENOSYS). Below that number an unnamed syscall still gets EPERM.
// The rule is by number, not a list of new syscalls: as runc, the highest number counts every
// name the profile's rules name (whatever their action) that libseccomp knows on that ABI.
//
// x32 shares AUDIT_ARCH_X86_64 and sets bit 30 of the number: its limit is the highest x32
// number (with the bit), checked only for calls with the bit; x86_64's only for those without.
// On s390 an unknown number arrives as syscall 0, which also gets ENOSYS.
#pragma once

#include <linux/filter.h>
#include <seccomp.h>

#include <cstdint>
#include <vector>

namespace strata {

// The highest syscall number the profile names on one ABI.
struct EnosysLimit {
  uint32_t audit_arch = 0;  // AUDIT_ARCH_* as seccomp_data.arch holds it
  bool x32 = false;         // x32 calls (bit 30 set) on AUDIT_ARCH_X86_64
  uint32_t last = 0;
};

// The limits for the filter's architectures (SCMP_ARCH_*) given every name its rules name.
// An architecture on which none of the names resolves gets no limit (runc skips it too).
std::vector<EnosysLimit> enosys_limits(const std::vector<uint32_t>& scmp_arches, const std::vector<const char*>& names);

// The stub: its last instruction is followed by the filter it guards.
std::vector<sock_filter> enosys_stub(const std::vector<EnosysLimit>& limits);

// Loads `filter` (libseccomp's program, exported) behind the stub, into this thread, with the
// filter's attributes as seccomp_load would apply them when no_new_privs, TSYNC and logging
// are off (the only way this file builds filters). Throws Error.
void load_with_enosys_stub(scmp_filter_ctx filter, const std::vector<EnosysLimit>& limits);

}  // namespace strata
