#pragma once
// The container's mount namespace, built by its init before pivot_root: /proc, /dev, /sys,
// the kernel paths masked or made read-only, the container's hostname/hosts/resolv.conf,
// volumes, then pivot_root into the strata-fs mount.
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "layerstore/container/container.hpp"
#include "layerstore/container/security_options.hpp"

namespace strata {

struct Volume {
  std::string host, ctr;
  bool ro = false;
};

// The config's "Volumes" (HOST:CTR[:ro|rw]); throws Error for a malformed one or a missing
// source.
std::vector<Volume> parse_volumes(const nlohmann::json& v);

// In a fresh mount namespace: mounts everything under `rootfs` and pivots into it. Dies
// (child_exit.hpp) on any error.
void setup_rootfs(const std::string& rootfs, const Container& c, const StoreLayout& l, const std::vector<Volume>& vols,
                  const Confinement& conf);

}  // namespace strata
