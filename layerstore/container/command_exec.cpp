#include "layerstore/container/command_exec.hpp"

#include <grp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>
#include <sstream>

#include "layerstore/container/capabilities.hpp"
#include "layerstore/container/child_exit.hpp"
#include "layerstore/container/run_user.hpp"
#include "layerstore/container/seccomp_profile.hpp"
#include "layerstore/error.hpp"

namespace strata {

namespace {

std::string env_get(const std::vector<std::string>& env, const std::string& key) {
  for (const auto& e : env)
    if (e.compare(0, key.size() + 1, key + "=") == 0) return e.substr(key.size() + 1);
  return "";
}

}  // namespace

ContainerCommand container_command(const nlohmann::json& cfg) {
  ContainerCommand cmd;
  const auto& c = cfg["Config"];
  for (const auto& e : c.value("Env", nlohmann::json::array())) cmd.env.push_back(e.get<std::string>());
  cmd.user = c.value("User", std::string());
  cmd.workdir = c.value("WorkingDir", std::string());
  cmd.hostname = c.value("Hostname", std::string());
  cmd.argv.push_back(cfg.value("Path", std::string()));
  for (const auto& a : cfg.value("Args", nlohmann::json::array())) cmd.argv.push_back(a.get<std::string>());
  return cmd;
}

std::vector<std::string> env_with(std::vector<std::string> env, const std::vector<std::string>& over) {
  for (const auto& kv : over) {
    std::string key = kv.substr(0, kv.find('='));
    std::erase_if(env, [&](const std::string& e) { return e.substr(0, e.find('=')) == key; });
    env.push_back(kv.find('=') == std::string::npos ? kv + "=" : kv);
  }
  return env;
}

// The order is runc's: the filter while CAP_SYS_ADMIN still allows loading it without
// no_new_privs; the bounding set while CAP_SETPCAP is still there; the user switch keeping the
// permitted set (PR_SET_KEEPCAPS) so the command's set can then be chosen.
[[noreturn]] void exec_container_command(const ContainerCommand& cmd, const Confinement& conf) {
  std::vector<std::string> env = cmd.env;
  if (env_get(env, "PATH").empty()) env.push_back("PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  env.push_back("HOSTNAME=" + cmd.hostname);
  ExecUser u;
  try {
    u = resolve_exec_user(cmd.user, "/etc/passwd", "/etc/group");
  } catch (const Error& e) {
    die(e.what());
  }
  if (env_get(env, "HOME").empty()) env.push_back("HOME=" + u.home);
  std::string wd = cmd.workdir.empty() ? "/" : cmd.workdir;
  if (cmd.create_workdir && mkdir(wd.c_str(), 0755) != 0 && errno != EEXIST) die_errno("create working dir " + wd);
  if (conf.no_new_privileges && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) die_errno("PR_SET_NO_NEW_PRIVS");
  try {
    if (conf.seccomp) load_docker_seccomp_profile(conf.capabilities);
    if (!conf.privileged) drop_bounding_set(conf.capabilities);
  } catch (const Error& e) {
    die(e.what());
  }
  if (!conf.privileged && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0) die_errno("PR_SET_KEEPCAPS");
  if (setgroups(u.groups.size(), u.groups.data()) != 0 && !(errno == EPERM && u.groups.empty())) {
    if (errno != EPERM) die_errno("setgroups");
  }
  if (setresgid(u.gid, u.gid, u.gid) != 0) die_errno("set gid " + std::to_string(u.gid) + " (not mapped in this user namespace?)");
  if (setresuid(u.uid, u.uid, u.uid) != 0) die_errno("set uid " + std::to_string(u.uid) + " (not mapped in this user namespace?)");
  if (!conf.privileged) {
    try {
      // A non-root user keeps these only until exec (it has no file capabilities), as in Docker.
      set_process_capabilities(conf.capabilities);
    } catch (const Error& e) {
      die(e.what());
    }
  }
  if (chdir(wd.c_str()) != 0) die_errno("chdir " + wd);
  std::vector<std::string> argv = cmd.argv;
  std::vector<char*> av, ev;
  for (auto& s : argv) av.push_back(s.data());
  av.push_back(nullptr);
  for (auto& s : env) ev.push_back(s.data());
  ev.push_back(nullptr);
  for (int s : {SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGPIPE}) signal(s, SIG_DFL);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  // Every fd above stderr closed: nothing of the caller's crosses into the container.
  if (syscall(SYS_close_range, 3U, ~0U, 0U) != 0) die_errno("close_range");
  std::string prog = argv[0];
  std::vector<std::string> candidates;
  if (prog.find('/') != std::string::npos) {
    candidates.push_back(prog);
  } else {
    std::stringstream ss(env_get(env, "PATH"));
    for (std::string d; std::getline(ss, d, ':');) candidates.push_back((d.empty() ? "." : d) + "/" + prog);
  }
  int err = ENOENT;
  for (const auto& p : candidates) {
    execve(p.c_str(), av.data(), ev.data());
    if (errno != ENOENT) err = errno;
  }
  std::string msg = "strata: " + child_command_name() + ": exec " + prog + ": " + strerror(err) + "\n";
  (void)!write(2, msg.data(), msg.size());
  _exit(err == ENOENT ? cmd.not_found_status : 126);
}

}  // namespace strata
