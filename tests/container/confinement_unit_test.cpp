// Capability resolution (Docker's --cap-add/--cap-drop rules), --security-opt parsing, and
// the seccomp profile loaded for real in a child process: what it refuses, with which errno.
#include <gtest/gtest.h>
#include <linux/capability.h>
#include <sched.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <functional>

#include "layerstore/container/capabilities.hpp"
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
