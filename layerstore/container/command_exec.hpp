#pragma once
// The last step of every process a container runs (run's command, exec's): confinement
// (no_new_privs, seccomp, bounding set), the user switch, the working dir, then execve with
// the container's PATH. Called in a forked child already inside the container's namespaces
// and root; it never returns and never throws (child_exit.hpp's die on failure).
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "layerstore/container/security_options.hpp"

namespace strata {

struct ContainerCommand {
  std::vector<std::string> argv;
  std::vector<std::string> env;  // K=V; PATH, HOSTNAME and HOME are added when missing
  std::string user;              // USER[:GROUP] from the container's /etc/passwd; "" is root
  std::string workdir;           // "" is "/"
  bool create_workdir = true;    // run makes a missing WorkingDir as Docker does; exec wants it there
  int not_found_status = 127;    // a command not found: 127 as docker run, 126 as docker exec (runc's)
  std::string hostname;
};

// The container's own command as config.v2.json records it (Path, Args, Config).
ContainerCommand container_command(const nlohmann::json& cfg);

// `env` with each K=V of `over` replacing the same K (or added).
std::vector<std::string> env_with(std::vector<std::string> env, const std::vector<std::string>& over);

[[noreturn]] void exec_container_command(const ContainerCommand& cmd, const Confinement& conf);

}  // namespace strata
