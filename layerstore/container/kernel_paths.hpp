#pragma once
#include <sys/statvfs.h>
// Docker's masked and read-only paths of a container's /proc and /sys (moby oci/defaults.go):
// what would let a container read kernel memory, keys and timers, or write the host's kernel
// settings through the procfs and sysfs it was given.
namespace strata {

// Under the container's new root `root_fd` (its /proc and /sys already mounted):
// masked — /dev/null bound over files, an empty read-only tmpfs over directories:
//   /proc/asound /proc/acpi /proc/kcore /proc/keys /proc/latency_stats /proc/timer_list
//   /proc/timer_stats /proc/sched_debug /proc/scsi /sys/firmware /sys/devices/virtual/powercap
// read-only (bound on themselves, remounted ro):
//   /proc/bus /proc/fs /proc/irq /proc/sys /proc/sysrq-trigger
// Paths this kernel does not have are skipped. Throws Error.
void protect_kernel_paths(int root_fd);

// The MS_* flags a bind remount of a mount with these statvfs flags must repeat: the kernel
// refuses (in a user namespace) to drop the ones it locked on the source.
unsigned long locked_mount_flags(const struct statvfs& sv);

}  // namespace strata
