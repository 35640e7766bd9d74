/* Calls each syscall the seccomp profile decides on, with arguments that change nothing, and
 * prints "NAME errno" (or "NAME ok") per line: run under dockerd and under strata run, the two
 * listings must be equal (tests/container/seccomp_vs_docker.py). Built static. */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define T(nr, ...)                                                                   \
  do {                                                                               \
    errno = 0;                                                                       \
    long r = syscall(nr, ##__VA_ARGS__);                                             \
    printf("%s %s\n", #nr + 4, r < 0 ? strerrorname_np(errno) : "ok");               \
  } while (0)

/* A syscall by number only, all arguments 0: numbers past the newest the profile names. */
static void by_number(const char* abi, long nr) {
  errno = 0;
  long r = syscall(nr, 0, 0, 0, 0, 0, 0);
  printf("%s %ld %s\n", abi, nr & ~0x40000000L, r < 0 ? strerrorname_np(errno) : "ok");
}

#if defined(__x86_64__)
/* The i386 ABI from a 64-bit process (int $0x80): seccomp sees AUDIT_ARCH_I386. */
static long i386_call(long nr, long b, long c) {
  long r;
  __asm__ volatile("int $0x80" : "=a"(r) : "a"(nr), "b"(b), "c"(c), "d"(0), "S"(0), "D"(0) : "memory");
  return r;
}

static void i386_number(long nr) {
  long r = i386_call(nr, 0, 0);
  printf("i386 %ld %s\n", nr, r < 0 && r > -4096 ? strerrorname_np((int)-r) : "ok");
}

/* A syscall the profile refuses, through the i386 ABI (its own numbers): the filter must
 * refuse it there too, not only on x86_64. */
static void i386_named(const char* name, long nr, long b, long c) {
  long r = i386_call(nr, b, c);
  printf("i386 %s %s\n", name, r < 0 && r > -4096 ? strerrorname_np((int)-r) : "ok");
}
#endif

int main(void) {
  T(SYS_open_by_handle_at, -1, 0, 0);
  T(SYS_name_to_handle_at, -1, "", 0, 0, 0);
  T(SYS_kexec_load, 0, 0, 0, 0);
  T(SYS_kexec_file_load, -1, -1, 0, "", 0);
  T(SYS_init_module, 0, 0, "");
  T(SYS_finit_module, -1, "", 0);
  T(SYS_delete_module, "no-such-module", 0);
  T(SYS_mount, "none", "/no-such-dir", "tmpfs", 0, 0);
  T(SYS_umount2, "/no-such-dir", 0);
  T(SYS_pivot_root, "/no-such-dir", "/no-such-dir");
  T(SYS_swapon, "/no-such-file", 0);
  T(SYS_swapoff, "/no-such-file");
  T(SYS_reboot, 0, 0, 0, 0);
  T(SYS_bpf, 0, 0, 0);
  T(SYS_perf_event_open, 0, 0, -1, -1, 0);
  T(SYS_keyctl, 0, 0, 0, 0, 0);
  T(SYS_add_key, 0, 0, 0, 0, 0);
  T(SYS_request_key, 0, 0, 0, 0);
  T(SYS_unshare, CLONE_NEWUTS);
  T(SYS_setns, -1, 0);
  T(SYS_clone, CLONE_NEWNS | SIGCHLD, 0, 0, 0, 0);
  T(SYS_clone3, 0, 0);
  T(SYS_userfaultfd, 0x12345678);
  T(SYS_acct, 0);
  T(SYS_settimeofday, 0, 0);
  T(SYS_clock_settime, 99, 0);
  T(SYS_quotactl, 0, 0, 0, 0);
  T(SYS_syslog, 3, 0, 0);
  T(SYS_vhangup);
  T(SYS_personality, 0xffffffff);
  T(SYS_personality, 0x0004);
  T(SYS_iopl, 0);
  T(SYS_ioperm, 0, 0, 0);
  T(SYS_lookup_dcookie, 0, 0, 0);
  T(SYS_open_tree, -1, "", 0);
  T(SYS_move_mount, -1, "", -1, "", 0);
  T(SYS_fsopen, "", 0);
  T(SYS_fsmount, -1, 0, 0);
  T(SYS_fspick, -1, "", 0);
  T(SYS_mount_setattr, -1, "", 0, 0, 0);
  T(SYS_chroot, "/no-such-dir");
  T(SYS_ptrace, 99, 0, 0, 0);
  T(SYS_process_vm_readv, 0, 0, 0, 0, 0, 0);
  T(SYS_kcmp, 0, 0, 0, 0, 0);
  T(SYS_pidfd_getfd, -1, 0, 0);
  T(SYS_get_mempolicy, 0, 0, 0, 0, 0);
  T(SYS_setdomainname, 0, 0);
  T(SYS_sethostname, 0, 0);
  T(SYS_fanotify_init, 0, 0);
  T(SYS_sysfs, 3);
  T(SYS_ustat, 0, 0);
  T(SYS_uselib, 0);
  T(SYS_modify_ldt, 0, 0, 0);
  T(SYS_arch_prctl, 0, 0);
  T(SYS_getpid);
  T(SYS_close_range, 1000, 1000, 0);
  fflush(stdout);
  /* Syscalls newer than the profile: runc answers ENOSYS past the highest number the profile
   * names (per ABI), so libc falls back (glibc's fchmodat2, 452, needs ENOSYS); below it, the
   * profile's default EPERM. */
  for (long nr = 449; nr <= 470; nr++) by_number("native", nr);
  by_number("native", 500);
  by_number("native", 1000);
#if defined(__x86_64__)
  /* x32: the same numbers with bit 30 set; i386 through int $0x80 (its own table). */
  const long probes[] = {39, 452, 470, 500, 1000};
  for (unsigned i = 0; i < sizeof probes / sizeof *probes; i++) by_number("x32", 0x40000000L | probes[i]);
  const long probes32[] = {20, 452, 470, 500, 1000};
  for (unsigned i = 0; i < sizeof probes32 / sizeof *probes32; i++) i386_number(probes32[i]);
  /* i386 numbers of refused syscalls (arch/x86/entry/syscalls/syscall_32.tbl); x32 ones too
   * (bit 30 with x32's numbers: keyctl 250, add_key 248, unshare 272, kexec_load 528). */
  i386_named("keyctl", 288, 0, 0);
  i386_named("add_key", 286, 0, 0);
  i386_named("request_key", 287, 0, 0);
  i386_named("unshare", 310, CLONE_NEWUSER, 0);
  i386_named("setns", 346, -1, 0);
  i386_named("mount", 21, 0, 0);
  i386_named("kexec_load", 283, 0, 0);
  i386_named("init_module", 128, 0, 0);
  i386_named("bpf", 357, 0, 0);
  i386_named("perf_event_open", 336, 0, 0);
  i386_named("open_by_handle_at", 342, -1, 0);
  i386_named("fsopen", 430, 0, 0);
  const long x32_refused[] = {250, 248, 272, 528};
  for (unsigned i = 0; i < sizeof x32_refused / sizeof *x32_refused; i++) by_number("x32", 0x40000000L | x32_refused[i]);
#endif
  return 0;
}
