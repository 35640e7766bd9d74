#pragma once
// `strata commit`: the container's rw layer becomes a new image layer, stored exactly like a
// loaded one (cache-id, link, lower, layerdb chain with tar-split), and a new image config
// with the diff_id and a history entry appended.
#include <string>
#include <vector>

#include "layerstore/container/container.hpp"

namespace strata {

class Progress;

struct CommitResult {
  std::string image_id;
  std::string diff_id, gzip_digest, chain_id;
  bool layer_reused = false;
};

// `changes`: Dockerfile instructions for the new config (--change, see config_change.hpp);
// `progress`: bars while the layer is exported and unpacked (nullptr: none).
CommitResult commit_container(const StoreLayout& l, const Container& c, const std::string& tag,
                              const std::string& comment, const std::vector<std::string>& changes = {},
                              Progress* progress = nullptr);

}  // namespace strata
