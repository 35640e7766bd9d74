#pragma once
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

}  // namespace strata
