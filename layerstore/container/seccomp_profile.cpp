#include "layerstore/container/seccomp_profile.hpp"

#include <linux/capability.h>
#include <sched.h>
#include <seccomp.h>

#include <cerrno>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <vector>

#include "layerstore/container/enosys_stub.hpp"
#include "layerstore/error.hpp"

// What this filter is, rule by rule: moby's profiles/seccomp/default.json (the profile
// `docker run` applies unless --security-opt seccomp=unconfined or --privileged). Where moby
// releases differ we take the stricter answer: name_to_handle_at needs CAP_SYS_ADMIN and
// process_vm_readv/writev CAP_SYS_PTRACE (as Docker 20.10, Debian 12's docker.io), AF_VSOCK
// sockets are refused (as moby since 25). tests/container/seccomp_vs_docker.py runs the same
// syscalls under dockerd and strata and compares every errno.
//
// - Default action: fail with EPERM. Everything not listed below is refused: among others
//   open_by_handle_at (without CAP_DAC_READ_SEARCH), kexec_load/kexec_file_load,
//   init_module/finit_module/delete_module, mount/umount2/pivot_root/fsopen/fsmount/fspick/
//   open_tree/move_mount/mount_setattr (without CAP_SYS_ADMIN), swapon/swapoff, reboot
//   (without CAP_SYS_BOOT), bpf, perf_event_open, keyctl/add_key/request_key, unshare and
//   setns (without CAP_SYS_ADMIN), userfaultfd, acct, settimeofday/clock_settime (without
//   CAP_SYS_TIME), quotactl, syslog, vhangup, iopl/ioperm, lookup_dcookie, nfsservctl,
//   uselib, ustat, sysfs, _sysctl, create_module, get_kernel_syms, query_module, ...
// - A syscall numbered above the highest one these rules name, per ABI, fails with ENOSYS
//   (runc's stub, enosys_stub.hpp): newer syscalls look absent and libc falls back.
// - An allow list of ordinary syscalls (kAllowed below, the profile's first rule; ptrace is
//   allowed as the profile does on kernels >= 4.8).
// - socket: any family but AF_VSOCK (40).
// - personality: only 0 (PER_LINUX), 8 (PER_LINUX32), 0x20000 (ADDR_NO_RANDOMIZE), 0x20008
//   (both) and 0xffffffff (a query).
// - clone: without CAP_SYS_ADMIN only when no namespace flag (CLONE_NEWNS|NEWUTS|NEWIPC|
//   NEWUSER|NEWPID|NEWNET|NEWCGROUP = 0x7e020000) is set; clone3 (whose flags a filter cannot
//   read) fails with ENOSYS so libc falls back to clone.
// - Per-architecture: arch_prctl, modify_ldt on x86; the arm, s390, ppc64le and riscv extras
//   on those machines.
// - Per capability, as Docker: CAP_DAC_READ_SEARCH open_by_handle_at; CAP_SYS_ADMIN bpf,
//   clone, clone3, fanotify_init, fsconfig, fsmount, fsopen, fspick, lookup_dcookie, mount,
//   mount_setattr, move_mount, name_to_handle_at, open_tree, perf_event_open, quotactl,
//   quotactl_fd, setdomainname, sethostname, setns, syslog, umount, umount2, unshare;
//   CAP_SYS_BOOT reboot; CAP_SYS_CHROOT chroot; CAP_SYS_MODULE init/finit/delete_module;
//   CAP_SYS_PACCT acct; CAP_SYS_PTRACE kcmp, pidfd_getfd, process_madvise, process_vm_readv,
//   process_vm_writev; CAP_SYS_RAWIO
//   iopl, ioperm; CAP_SYS_TIME settimeofday, stime, clock_settime(64); CAP_SYS_TTY_CONFIG
//   vhangup; CAP_SYS_NICE get/set_mempolicy, mbind, set_mempolicy_home_node; CAP_SYSLOG
//   syslog; CAP_BPF bpf; CAP_PERFMON perf_event_open.
// - Architectures: the native one plus its compat ABIs (x86_64: x86 and x32; aarch64: arm),
//   so a 32-bit binary meets the same rules. Names libseccomp does not know on an
//   architecture are skipped there, as runc does.

namespace strata {

namespace {

constexpr const char* kAllowed[] = {
    "accept", "accept4", "access", "adjtimex", "alarm", "bind", "brk", "capget", "capset", "chdir", "chmod",
    "chown", "chown32", "clock_adjtime", "clock_adjtime64", "clock_getres", "clock_getres_time64",
    "clock_gettime", "clock_gettime64", "clock_nanosleep", "clock_nanosleep_time64", "close", "close_range",
    "connect", "copy_file_range", "creat", "dup", "dup2", "dup3", "epoll_create", "epoll_create1", "epoll_ctl",
    "epoll_ctl_old", "epoll_pwait", "epoll_pwait2", "epoll_wait", "epoll_wait_old", "eventfd", "eventfd2",
    "execve", "execveat", "exit", "exit_group", "faccessat", "faccessat2", "fadvise64", "fadvise64_64",
    "fallocate", "fanotify_mark", "fchdir", "fchmod", "fchmodat", "fchown", "fchown32", "fchownat", "fcntl",
    "fcntl64", "fdatasync", "fgetxattr", "flistxattr", "flock", "fork", "fremovexattr", "fsetxattr", "fstat",
    "fstat64", "fstatat64", "fstatfs", "fstatfs64", "fsync", "ftruncate", "ftruncate64", "futex",
    "futex_time64", "futex_waitv", "futimesat", "getcpu", "getcwd", "getdents", "getdents64", "getegid",
    "getegid32", "geteuid", "geteuid32", "getgid", "getgid32", "getgroups", "getgroups32", "getitimer",
    "getpeername", "getpgid", "getpgrp", "getpid", "getppid", "getpriority", "getrandom", "getresgid",
    "getresgid32", "getresuid", "getresuid32", "getrlimit", "get_robust_list", "getrusage", "getsid",
    "getsockname", "getsockopt", "get_thread_area", "gettid", "gettimeofday", "getuid", "getuid32", "getxattr",
    "inotify_add_watch", "inotify_init", "inotify_init1", "inotify_rm_watch", "io_cancel", "ioctl",
    "io_destroy", "io_getevents", "io_pgetevents", "io_pgetevents_time64", "ioprio_get", "ioprio_set",
    "io_setup", "io_submit", "io_uring_enter", "io_uring_register", "io_uring_setup", "ipc", "kill",
    "landlock_add_rule", "landlock_create_ruleset", "landlock_restrict_self", "lchown", "lchown32",
    "lgetxattr", "link", "linkat", "listen", "listxattr", "llistxattr", "_llseek", "lremovexattr", "lseek",
    "lsetxattr", "lstat", "lstat64", "madvise", "membarrier", "memfd_create", "memfd_secret", "mincore",
    "mkdir", "mkdirat", "mknod", "mknodat", "mlock", "mlock2", "mlockall", "mmap", "mmap2", "mprotect",
    "mq_getsetattr", "mq_notify", "mq_open", "mq_timedreceive", "mq_timedreceive_time64", "mq_timedsend",
    "mq_timedsend_time64", "mq_unlink", "mremap", "msgctl", "msgget", "msgrcv", "msgsnd", "msync", "munlock",
    "munlockall", "munmap", "nanosleep", "newfstatat", "_newselect", "open", "openat",
    "openat2", "pause", "pidfd_open", "pidfd_send_signal", "pipe", "pipe2", "pkey_alloc", "pkey_free",
    "pkey_mprotect", "poll", "ppoll", "ppoll_time64", "prctl", "pread64", "preadv", "preadv2", "prlimit64",
    "process_mrelease", "pselect6", "pselect6_time64", "pwrite64", "pwritev", "pwritev2", "read", "readahead",
    "readlink", "readlinkat", "readv", "recv", "recvfrom", "recvmmsg", "recvmmsg_time64", "recvmsg",
    "remap_file_pages", "removexattr", "rename", "renameat", "renameat2", "restart_syscall", "rmdir", "rseq",
    "rt_sigaction", "rt_sigpending", "rt_sigprocmask", "rt_sigqueueinfo", "rt_sigreturn", "rt_sigsuspend",
    "rt_sigtimedwait", "rt_sigtimedwait_time64", "rt_tgsigqueueinfo", "sched_getaffinity", "sched_getattr",
    "sched_getparam", "sched_get_priority_max", "sched_get_priority_min", "sched_getscheduler",
    "sched_rr_get_interval", "sched_rr_get_interval_time64", "sched_setaffinity", "sched_setattr",
    "sched_setparam", "sched_setscheduler", "sched_yield", "seccomp", "select", "semctl", "semget", "semop",
    "semtimedop", "semtimedop_time64", "send", "sendfile", "sendfile64", "sendmmsg", "sendmsg", "sendto",
    "setfsgid", "setfsgid32", "setfsuid", "setfsuid32", "setgid", "setgid32", "setgroups", "setgroups32",
    "setitimer", "setpgid", "setpriority", "setregid", "setregid32", "setresgid", "setresgid32", "setresuid",
    "setresuid32", "setreuid", "setreuid32", "setrlimit", "set_robust_list", "setsid", "setsockopt",
    "set_thread_area", "set_tid_address", "setuid", "setuid32", "setxattr", "shmat", "shmctl", "shmdt",
    "shmget", "shutdown", "sigaltstack", "signalfd", "signalfd4", "sigprocmask", "sigreturn", "socketcall",
    "socketpair", "splice", "stat", "stat64", "statfs", "statfs64", "statx", "symlink", "symlinkat", "sync",
    "sync_file_range", "syncfs", "sysinfo", "tee", "tgkill", "time", "timer_create", "timer_delete",
    "timer_getoverrun", "timer_gettime", "timer_gettime64", "timer_settime", "timer_settime64",
    "timerfd_create", "timerfd_gettime", "timerfd_gettime64", "timerfd_settime", "timerfd_settime64", "times",
    "tkill", "truncate", "truncate64", "ugetrlimit", "umask", "uname", "unlink", "unlinkat", "utime",
    "utimensat", "utimensat_time64", "utimes", "vfork", "vmsplice", "wait4", "waitid", "waitpid", "write",
    "writev",
    // allowed by the profile on kernels >= 4.8 (older ones let ptrace bypass the filter)
    "ptrace"};

struct CapRule {
  int cap;
  std::initializer_list<const char*> names;
};

const CapRule kByCapability[] = {
    {CAP_DAC_READ_SEARCH, {"open_by_handle_at"}},
    {CAP_SYS_ADMIN, {"bpf", "clone", "clone3", "fanotify_init", "fsconfig", "fsmount", "fsopen", "fspick",
                     "lookup_dcookie", "mount", "mount_setattr", "move_mount", "name_to_handle_at", "open_tree",
                     "perf_event_open",
                     "quotactl", "quotactl_fd", "setdomainname", "sethostname", "setns", "syslog", "umount",
                     "umount2", "unshare"}},
    {CAP_SYS_BOOT, {"reboot"}},
    {CAP_SYS_CHROOT, {"chroot"}},
    {CAP_SYS_MODULE, {"delete_module", "init_module", "finit_module"}},
    {CAP_SYS_PACCT, {"acct"}},
    {CAP_SYS_PTRACE, {"kcmp", "pidfd_getfd", "process_madvise", "process_vm_readv", "process_vm_writev"}},
    {CAP_SYS_RAWIO, {"iopl", "ioperm"}},
    {CAP_SYS_TIME, {"settimeofday", "stime", "clock_settime", "clock_settime64"}},
    {CAP_SYS_TTY_CONFIG, {"vhangup"}},
    {CAP_SYS_NICE, {"get_mempolicy", "mbind", "set_mempolicy", "set_mempolicy_home_node"}},
    {CAP_SYSLOG, {"syslog"}},
    {CAP_BPF, {"bpf"}},
    {CAP_PERFMON, {"perf_event_open"}},
};

// The namespace flags clone may not carry without CAP_SYS_ADMIN.
constexpr scmp_datum_t kNamespaceFlags = CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER | CLONE_NEWPID |
                                         CLONE_NEWNET | CLONE_NEWCGROUP;

struct FilterFree {
  void operator()(scmp_filter_ctx f) const { seccomp_release(f); }
};
using Filter = std::unique_ptr<void, FilterFree>;

void check(int rc, const std::string& what) {
  if (rc < 0) throw Error("seccomp: " + what + ": " + std::strerror(-rc));
}

// Argument `index` compared with `op`; for SCMP_CMP_MASKED_EQ `a` is the mask, `b` the value.
scmp_arg_cmp arg(unsigned index, scmp_compare op, scmp_datum_t a, scmp_datum_t b = 0) { return {index, op, a, b}; }

// The filter being built and every syscall name its rules name (enosys_stub.hpp needs them).
struct Profile {
  Filter f;
  std::vector<const char*> names;

  // Adds `action` for `name` (with optional argument comparisons, all of which must hold) on
  // every architecture of the filter that has the syscall; a name libseccomp does not know at
  // all is skipped.
  void add(uint32_t action, const char* name, std::initializer_list<scmp_arg_cmp> cmps = {}) {
    int nr = seccomp_syscall_resolve_name(name);
    if (nr == __NR_SCMP_ERROR) return;
    names.push_back(name);
    std::vector<scmp_arg_cmp> args(cmps);
    check(seccomp_rule_add_array(f.get(), action, nr, args.size(), args.empty() ? nullptr : args.data()),
          std::string("rule for ") + name);
  }
};

bool has(CapabilityMask caps, int cap) { return cap < 64 && (caps >> cap) & 1; }

}  // namespace

void load_docker_seccomp_profile(CapabilityMask caps) {
  Profile p{Filter(seccomp_init(SCMP_ACT_ERRNO(EPERM))), {}};
  const Filter& f = p.f;
  if (!f) throw Error("seccomp: cannot create a filter");
  // libseccomp sets no_new_privs on load by default; Docker only does with the option, and
  // set-uid programs (su, ping) must keep working without it.
  check(seccomp_attr_set(f.get(), SCMP_FLTATR_CTL_NNP, 0), "keep no_new_privs off");
  uint32_t native = seccomp_arch_native();
  auto add_arch = [&](uint32_t arch) {
    int rc = seccomp_arch_add(f.get(), arch);
    if (rc != -EEXIST) check(rc, "add architecture");
  };
  if (native == SCMP_ARCH_X86_64) {
    add_arch(SCMP_ARCH_X86);
    add_arch(SCMP_ARCH_X32);
  } else if (native == SCMP_ARCH_AARCH64) {
    add_arch(SCMP_ARCH_ARM);
  }

  for (const char* name : kAllowed) p.add(SCMP_ACT_ALLOW, name);
  p.add(SCMP_ACT_ALLOW, "socket", {arg(0, SCMP_CMP_NE, 40)});  // AF_VSOCK reaches the host
  for (scmp_datum_t persona : {0x0ULL, 0x8ULL, 0x20000ULL, 0x20008ULL, 0xffffffffULL})
    p.add(SCMP_ACT_ALLOW, "personality", {arg(0, SCMP_CMP_EQ, persona)});

  if (native == SCMP_ARCH_X86_64 || native == SCMP_ARCH_X86 || native == SCMP_ARCH_X32) {
    p.add(SCMP_ACT_ALLOW, "arch_prctl");
    p.add(SCMP_ACT_ALLOW, "modify_ldt");
  } else if (native == SCMP_ARCH_AARCH64 || native == SCMP_ARCH_ARM) {
    for (const char* n : {"arm_fadvise64_64", "arm_sync_file_range", "sync_file_range2", "breakpoint", "cacheflush",
                          "set_tls"})
      p.add(SCMP_ACT_ALLOW, n);
  } else if (native == SCMP_ARCH_PPC64LE) {
    for (const char* n : {"sync_file_range2", "swapcontext"}) p.add(SCMP_ACT_ALLOW, n);
  } else if (native == SCMP_ARCH_S390X || native == SCMP_ARCH_S390) {
    for (const char* n : {"s390_pci_mmio_read", "s390_pci_mmio_write", "s390_runtime_instr"})
      p.add(SCMP_ACT_ALLOW, n);
  } else if (native == SCMP_ARCH_RISCV64) {
    p.add(SCMP_ACT_ALLOW, "riscv_flush_icache");
  }

  for (const auto& rule : kByCapability)
    if (has(caps, rule.cap))
      for (const char* n : rule.names) p.add(SCMP_ACT_ALLOW, n);
  if (!has(caps, CAP_SYS_ADMIN)) {
    // s390 passes clone's flags second.
    bool s390 = native == SCMP_ARCH_S390X || native == SCMP_ARCH_S390;
    p.add(SCMP_ACT_ALLOW, "clone", {arg(s390 ? 1 : 0, SCMP_CMP_MASKED_EQ, kNamespaceFlags, 0)});
    p.add(SCMP_ACT_ERRNO(ENOSYS), "clone3");
  }
  std::vector<uint32_t> arches = {native};
  if (native == SCMP_ARCH_X86_64) arches = {native, SCMP_ARCH_X86, SCMP_ARCH_X32};
  if (native == SCMP_ARCH_AARCH64) arches = {native, SCMP_ARCH_ARM};
  load_with_enosys_stub(f.get(), enosys_limits(arches, p.names));
}

}  // namespace strata
