#pragma once
// Containers as Docker stores them: a `<mount-id>-init` layer (Docker's init content) and a
// rw layer `<mount-id>` in overlay2/, layerdb/mounts/<container-id>/{mount-id,init-id,parent}
// and containers/<container-id>/{config.v2.json,hostname,hosts,resolv.conf}.
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "layerstore/container/security_options.hpp"
#include "layerstore/store/store_layout.hpp"

namespace strata {

struct ContainerSpec {
  std::string image;                                   // IMAGE as the user wrote it
  std::string name;                                    // empty: generated
  std::string hostname;                                // empty: first 12 chars of the id
  std::optional<std::vector<std::string>> entrypoint;  // overrides the image's
  std::vector<std::string> cmd;                        // empty: the image's Cmd
  std::vector<std::string> env;                        // K=V, over the image's Env
  std::string workdir, user;
  std::vector<std::string> volumes;                    // HOST:CTR[:ro]
  SecurityRequest security;                            // --privileged, --cap-add/drop, --security-opt
};

struct Container {
  std::string id;        // 64 hex
  std::string name;      // without Docker's leading "/"
  std::string image_id;  // "sha256:..."
  std::string mount_id;  // overlay2 dir of the rw layer
  nlohmann::json cfg;    // config.v2.json

  std::string dir(const StoreLayout& l) const { return l.root + "/containers/" + id; }
  std::string rw_dir(const StoreLayout& l) const { return l.overlay2() + "/" + mount_id; }
  std::string init_dir(const StoreLayout& l) const { return rw_dir(l) + "-init"; }
  std::string merged(const StoreLayout& l) const { return rw_dir(l) + "/merged"; }
  // "Created", "Up", "Exited (N)", or "Exited (unknown: ...)" when strata run died without
  // recording the exit. "Up" only while the recorded init (pid and start time) still runs.
  std::string status() const;
};

std::string containers_root(const StoreLayout& l);

Container create_container(const StoreLayout& l, const ContainerSpec& spec);
std::vector<Container> list_containers(const StoreLayout& l);
// By full id, unique id prefix or name.
Container find_container(const StoreLayout& l, const std::string& ref);
void save_container(const StoreLayout& l, const Container& c);

// Lowers of the container's rw view, relative to overlay2/ (a lazy layer's descriptor file,
// absolute): init layer then image layers.
std::vector<std::string> container_lowers(const StoreLayout& l, const Container& c);
// The image layers' diff dirs (a lazy layer's descriptor file) under the rw layer (init
// first, then top-most image layer first).
std::vector<std::string> container_lower_dirs(const StoreLayout& l, const Container& c);

// Unmounts (host-side mount) and deletes rw and init layers, the mounts entry and the
// container dir. Refuses a running container unless `force`, which kills its init (the
// recorded pid, only if its start time matches) and so everything in it.
void remove_container(const StoreLayout& l, const Container& c, bool force);

// Image ids used by containers (rmi refuses these without -f).
std::vector<std::string> images_used_by_containers(const StoreLayout& l);

}  // namespace strata
