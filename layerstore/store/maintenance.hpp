#pragma once
// Store-wide operations: verify (re-hash every layer against its diff_id and check every
// index), prune (drop unreferenced layers and leftovers), rmi and tag.
#include <string>
#include <vector>

#include "layerstore/store/store_layout.hpp"

namespace strata {

struct VerifyReport {
  std::vector<std::string> problems;  // one line each
  int images_checked = 0;
  int layers_checked = 0;
};

// All images when `image` is empty.
VerifyReport verify_store(const StoreLayout& l, const std::string& image);

struct PruneReport {
  std::vector<std::string> removed;  // one line per removed thing
};
PruneReport prune_store(const StoreLayout& l);

// Chain-ids used by any image (all of each image's chain) or container mount.
std::vector<std::string> referenced_chains(const StoreLayout& l);

struct RmiReport {
  std::vector<std::string> lines;  // "Untagged: ...", "Deleted: ..."
};
RmiReport remove_images(const StoreLayout& l, const std::vector<std::string>& images, bool force);
void tag_image(const StoreLayout& l, const std::string& src, const std::string& dst);

}  // namespace strata
