#pragma once
// What confines a container's command: `run`/`create` --privileged, --cap-add, --cap-drop and
// --security-opt, checked once at create and kept in config.v2.json's "HostConfig" (Docker's
// field names) so a later start reads the same.
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "layerstore/container/capabilities.hpp"

namespace strata {

struct SecurityRequest {  // as the user wrote it
  bool privileged = false;
  std::vector<std::string> cap_add, cap_drop, security_opt;
};

struct Confinement {
  bool privileged = false;         // every capability, no seccomp, no masked paths, rw /sys
  bool seccomp = true;             // Docker's default profile
  bool no_new_privileges = false;  // PR_SET_NO_NEW_PRIVS before exec
  CapabilityMask capabilities = 0;
};

// Throws Error for an unknown capability or security option (only seccomp=unconfined and
// no-new-privileges[=true|:true] are known).
Confinement resolve_confinement(const SecurityRequest& r);

// {"Privileged", "CapAdd", "CapDrop", "SecurityOpt"}: the request, validated.
nlohmann::json host_config_json(const SecurityRequest& r);

// From a container's config.v2.json (no HostConfig: Docker's defaults).
Confinement confinement_of(const nlohmann::json& container_cfg);

}  // namespace strata
