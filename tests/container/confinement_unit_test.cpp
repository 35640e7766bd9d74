// Capability resolution (Docker's --cap-add/--cap-drop rules), --security-opt parsing, and
// the seccomp profile loaded for real in a child process: what it refuses, with which errno.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <vector>

#include "layerstore/container/capabilities.hpp"
#include "layerstore/container/enosys_stub.hpp"
#include "layerstore/container/seccomp_profile.hpp"
#include "layerstore/container/security_options.hpp"
#include "layerstore/error.hpp"

namespace strata {
namespace {

CapabilityMask bit(int cap) { return CapabilityMask{1} << cap; }

TEST(Capabilities, DockerDefaultMask) { EXPECT_EQ(docker_default_capabilities(), 0xa80425fbULL); }

TEST(Capabilities, NamesWithOrWithoutPrefixAnyCase) {
  EXPECT_EQ(capability_from_name("CHOWN"), CAP_CHOWN);
  EXPECT_EQ(capability_from_name("cap_sys_admin"), CAP_SYS_ADMIN);
  EXPECT_EQ(capability_from_name("CAP_NET_ADMIN"), CAP_NET_ADMIN);
  EXPECT_THROW(capability_from_name("NO_SUCH"), Error);
  EXPECT_THROW(capability_from_name("12"), Error);
}

TEST(Capabilities, DockerAddDropRules) {
  CapabilityMask def = docker_default_capabilities();
  EXPECT_EQ(resolve_capabilities({}, {}), def);
  EXPECT_EQ(resolve_capabilities({"SYS_ADMIN"}, {"CHOWN"}), (def & ~bit(CAP_CHOWN)) | bit(CAP_SYS_ADMIN));
  EXPECT_EQ(resolve_capabilities({"ALL"}, {"MKNOD"}), all_capabilities() & ~bit(CAP_MKNOD));
  EXPECT_EQ(resolve_capabilities({"NET_BIND_SERVICE"}, {"ALL"}), bit(CAP_NET_BIND_SERVICE));
  EXPECT_THROW(resolve_capabilities({"BOGUS"}, {}), Error);
}

TEST(SecurityOptions, Parse) {
  Confinement c = resolve_confinement({});
  EXPECT_TRUE(c.seccomp);
  EXPECT_FALSE(c.no_new_privileges);
  EXPECT_FALSE(c.privileged);
  SecurityRequest r;
  r.security_opt = {"seccomp=unconfined", "no-new-privileges:true"};
  c = resolve_confinement(r);
  EXPECT_FALSE(c.seccomp);
  EXPECT_TRUE(c.no_new_privileges);
  r.security_opt = {"seccomp=/some/profile.json"};
  EXPECT_THROW(resolve_confinement(r), Error);
  r.security_opt = {"apparmor=unconfined"};
  EXPECT_THROW(resolve_confinement(r), Error);
  r = {};
  r.privileged = true;
  c = resolve_confinement(r);
  EXPECT_EQ(c.capabilities, all_capabilities());
  EXPECT_FALSE(c.seccomp);
}

TEST(SecurityOptions, KeptInHostConfig) {
  SecurityRequest r;
  r.cap_add = {"SYS_PTRACE"};
  r.security_opt = {"no-new-privileges"};
  nlohmann::json cfg = {{"HostConfig", host_config_json(r)}};
  Confinement c = confinement_of(cfg);
  EXPECT_TRUE(c.no_new_privileges);
  EXPECT_EQ(c.capabilities, docker_default_capabilities() | bit(CAP_SYS_PTRACE));
  EXPECT_EQ(confinement_of(nlohmann::json::object()).capabilities, docker_default_capabilities());
}

// Runs `probe` in a child under the profile built for `caps`; the child's exit code is the
// errno the probe saw (0: the call went through).
int errno_under_profile(CapabilityMask caps, const std::function<long()>& probe) {
  pid_t pid = fork();
  if (pid == 0) {
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);  // so an unprivileged test run can load it too
    try {
      load_docker_seccomp_profile(caps);
    } catch (const Error&) {
      _exit(200);
    }
    errno = 0;
    _exit(probe() < 0 ? errno : 0);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

TEST(SeccompProfile, RefusesWhatDockerRefuses) {
  CapabilityMask def = docker_default_capabilities();
  EXPECT_EQ(errno_under_profile(def, [] { return syscall(SYS_getpid); }), 0);
  EXPECT_EQ(errno_under_profile(def, [] { return syscall(SYS_open_by_handle_at, -1, nullptr, 0); }), EPERM);
  EXPECT_EQ(errno_under_profile(def, [] { return syscall(SYS_unshare, CLONE_NEWUTS); }), EPERM);
  EXPECT_EQ(errno_under_profile(def, [] { return syscall(SYS_name_to_handle_at, -1, "", nullptr, nullptr, 0); }),
            EPERM);
  EXPECT_EQ(errno_under_profile(def, [] { return syscall(SYS_process_vm_readv, 0, nullptr, 0, nullptr, 0, 0); }),
            EPERM);
  EXPECT_EQ(errno_under_profile(def, [] { return syscall(SYS_keyctl, 0, 0, 0, 0, 0); }), EPERM);
  EXPECT_EQ(errno_under_profile(def, [] { return syscall(SYS_kexec_load, 0, 0, nullptr, 0); }), EPERM);
  EXPECT_EQ(errno_under_profile(def, [] { return syscall(SYS_mount, "none", "/", "tmpfs", 0, nullptr); }), EPERM);
  EXPECT_EQ(errno_under_profile(def, [] { return syscall(SYS_clone3, nullptr, 0); }), ENOSYS);
  EXPECT_EQ(errno_under_profile(def, [] { return syscall(SYS_socket, 40 /* AF_VSOCK */, 1, 0); }), EPERM);
  EXPECT_EQ(errno_under_profile(def, [] { return syscall(SYS_personality, 0xffffffffUL); }), 0);
  EXPECT_EQ(errno_under_profile(def, [] { return syscall(SYS_personality, PER_BSD); }), EPERM);
  // clone with a namespace flag is refused, a plain fork goes through.
  EXPECT_EQ(errno_under_profile(def, [] { return syscall(SYS_clone, CLONE_NEWNS | SIGCHLD, nullptr, nullptr, nullptr, 0); }),
            EPERM);
  EXPECT_EQ(errno_under_profile(def, [] {
              pid_t p = fork();
              if (p == 0) _exit(0);
              return static_cast<long>(p);
            }),
            0);
}

TEST(SeccompProfile, NewerSyscallsLookAbsent) {
  // As runc's ENOSYS stub: past the highest number the profile names (per ABI) a syscall fails
  // with ENOSYS, so libc falls back (glibc's fchmodat2, 452, to fchmodat); the profile's EPERM
  // below it. Failed before: EPERM for all.
  CapabilityMask def = docker_default_capabilities();
  EXPECT_EQ(errno_under_profile(def, [] { return syscall(452 /* fchmodat2 */, AT_FDCWD, "/", 0755, 0); }), ENOSYS);
  EXPECT_EQ(errno_under_profile(def, [] { return syscall(1000); }), ENOSYS);
  EXPECT_EQ(errno_under_profile(def, [] { return syscall(0x40000000 | 1000); }), ENOSYS);  // x32
  EXPECT_EQ(errno_under_profile(def, [] { return syscall(SYS_kexec_load, 0, 0, nullptr, 0); }), EPERM);
}

TEST(SeccompProfile, EnosysStubChecksEachAbi) {
  // x86_64 and x32 share an AUDIT_ARCH; bit 30 picks the limit.
  std::vector<EnosysLimit> limits = {{AUDIT_ARCH_X86_64, false, 449}, {AUDIT_ARCH_X86_64, true, 0x40000000 | 547},
                                     {AUDIT_ARCH_I386, false, 449}};
  std::vector<sock_filter> stub = enosys_stub(limits);
  sock_filter allow = BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW);
  stub.push_back(allow);
  auto run = [&](uint32_t arch, uint32_t nr) {
    seccomp_data d{};
    d.nr = int(nr);
    d.arch = arch;
    // A minimal classic-BPF interpreter for the stub's instructions (ld abs, jmp, ret).
    uint32_t a = 0;
    for (size_t pc = 0; pc < stub.size(); ++pc) {
      const sock_filter& i = stub[pc];
      switch (BPF_CLASS(i.code)) {
        case BPF_LD: std::memcpy(&a, reinterpret_cast<const char*>(&d) + i.k, 4); break;
        case BPF_RET: return i.k;
        case BPF_JMP: {
          bool t = BPF_OP(i.code) == BPF_JA   ? true
                   : BPF_OP(i.code) == BPF_JEQ ? a == i.k
                   : BPF_OP(i.code) == BPF_JGT ? a > i.k
                   : BPF_OP(i.code) == BPF_JSET ? (a & i.k) != 0
                                                : false;
          pc += BPF_OP(i.code) == BPF_JA ? i.k : (t ? i.jt : i.jf);
          break;
        }
      }
    }
    return uint32_t(0xdead);
  };
  const uint32_t enosys = SECCOMP_RET_ERRNO | ENOSYS;
  EXPECT_EQ(run(AUDIT_ARCH_X86_64, 449), SECCOMP_RET_ALLOW);
  EXPECT_EQ(run(AUDIT_ARCH_X86_64, 450), enosys);
  EXPECT_EQ(run(AUDIT_ARCH_X86_64, 0x40000000 | 500), SECCOMP_RET_ALLOW);
  EXPECT_EQ(run(AUDIT_ARCH_X86_64, 0x40000000 | 548), enosys);
  EXPECT_EQ(run(AUDIT_ARCH_I386, 452), enosys);
  EXPECT_EQ(run(AUDIT_ARCH_I386, 20), SECCOMP_RET_ALLOW);
  EXPECT_EQ(run(AUDIT_ARCH_AARCH64, 5000), SECCOMP_RET_ALLOW);  // no limit: the filter decides
}

TEST(SeccompProfile, CapabilityRulesFollowTheSet) {
  // With CAP_DAC_READ_SEARCH the filter lets open_by_handle_at through to the kernel, which
  // then judges the arguments (EFAULT for a null handle) instead of the filter answering EPERM.
  // Only root passes the kernel's own capability check to get that far.
  if (geteuid() != 0) GTEST_SKIP() << "needs root";
  CapabilityMask caps = docker_default_capabilities() | bit(CAP_DAC_READ_SEARCH);
  EXPECT_EQ(errno_under_profile(caps, [] { return syscall(SYS_open_by_handle_at, -1, nullptr, 0); }), EFAULT);
  caps = docker_default_capabilities() | bit(CAP_SYS_ADMIN);
  EXPECT_NE(errno_under_profile(caps, [] { return syscall(SYS_clone3, nullptr, 0); }), ENOSYS);
}

}  // namespace
}  // namespace strata
