#include "layerstore/container/security_options.hpp"

#include "layerstore/error.hpp"

namespace strata {

namespace {

std::vector<std::string> strings(const nlohmann::json& j, const char* key) {
  std::vector<std::string> out;
  if (j.contains(key) && j[key].is_array())
    for (const auto& x : j[key])
      if (x.is_string()) out.push_back(x.get<std::string>());
  return out;
}

}  // namespace

Confinement resolve_confinement(const SecurityRequest& r) {
  Confinement c;
  c.privileged = r.privileged;
  for (const auto& opt : r.security_opt) {
    if (opt == "seccomp=unconfined" || opt == "seccomp:unconfined") {
      c.seccomp = false;
    } else if (opt == "no-new-privileges" || opt == "no-new-privileges=true" || opt == "no-new-privileges:true") {
      c.no_new_privileges = true;
    } else if (opt == "no-new-privileges=false" || opt == "no-new-privileges:false") {
      c.no_new_privileges = false;
    } else if (opt.rfind("seccomp", 0) == 0) {
      throw Error("--security-opt " + opt + ": only seccomp=unconfined is supported (Docker's default profile is built in)");
    } else {
      throw Error("unknown --security-opt \"" + opt + "\" (seccomp=unconfined or no-new-privileges)");
    }
  }
  // Names are checked even with --privileged, so a typo fails the same way everywhere.
  c.capabilities = resolve_capabilities(r.cap_add, r.cap_drop);
  if (c.privileged) {
    c.capabilities = all_capabilities();
    c.seccomp = false;
  }
  return c;
}

nlohmann::json host_config_json(const SecurityRequest& r) {
  resolve_confinement(r);
  return {{"Privileged", r.privileged}, {"CapAdd", r.cap_add}, {"CapDrop", r.cap_drop}, {"SecurityOpt", r.security_opt}};
}

Confinement confinement_of(const nlohmann::json& container_cfg) {
  SecurityRequest r;
  if (container_cfg.contains("HostConfig") && container_cfg["HostConfig"].is_object()) {
    const auto& h = container_cfg["HostConfig"];
    r.privileged = h.value("Privileged", false);
    r.cap_add = strings(h, "CapAdd");
    r.cap_drop = strings(h, "CapDrop");
    r.security_opt = strings(h, "SecurityOpt");
  }
  return resolve_confinement(r);
}

}  // namespace strata
