#pragma once
// `strata pull`: manifest (index -> the platform's manifest), config, then every layer the
// store does not have, up to 3 at once, each download streamed straight into the same
// verify-and-unpack pass `strata load` uses; committed together, or nothing. A layer whose
// diff_id the store has under another chain is rebuilt from that layer instead of being
// downloaded (local_layer_source.hpp).
#include <string>
#include <vector>

#include "layerstore/loader.hpp"
#include "layerstore/sources/registry_client.hpp"

namespace strata {

struct PullOptions {
  std::string ref;
  Platform platform;
  RegistryOptions registry;
  int jobs = 3;
  uint64_t max_expansion = kDefaultMaxExpansion;  // --max-expansion (layer_unpack.hpp)
  bool lazy = false;  // --lazy: keep new layers as blob + index (store/lazy_layer.hpp)
};

struct PullSummary {
  LoadSummary load;
  std::string local_ref;        // "127.0.0.1:5000/team/app:1.0"
  std::string manifest_digest;  // what the tag points to (an index for multi-arch)
  std::string image_id;
};

PullSummary pull_image(const StoreLayout& layout, const PullOptions& opts, Progress& progress);

}  // namespace strata
