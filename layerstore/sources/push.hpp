#pragma once
// `strata push IMAGE REF`: every layer the registry lacks is rebuilt byte for byte from the
// store (tar-split + diff dir), gzip-compressed on the fly and streamed up in one PATCH,
// then committed with PUT ?digest=; blobs the registry has (HEAD) are skipped and blobs
// known from another repository on the same registry are mounted. Then the config and a
// Docker schema-2 manifest whose config and diff_ids are the local image's.
#include <cstddef>
#include <string>

#include "layerstore/progress.hpp"
#include "layerstore/sources/registry_client.hpp"
#include "layerstore/store/store_layout.hpp"

namespace strata {

struct PushOptions {
  std::string image;  // local IMAGE
  std::string ref;    // [registry/]name[:tag]
  RegistryOptions registry;
  int jobs = 3;
};

struct PushSummary {
  std::string remote_ref, manifest_digest;
  size_t manifest_size = 0;
  int uploaded = 0, existing = 0, mounted = 0;
  uint64_t bytes_uploaded = 0;
  double seconds = 0;
};

PushSummary push_image(const StoreLayout& layout, const PushOptions& opts, Progress& progress);

}  // namespace strata
