#pragma once
// `strata save`: images out as a docker-archive (docker save ≤ 24 layout), an OCI layout
// tar (oci-archive) or an OCI layout dir (oci-dir). Layer tars are rebuilt byte for byte
// from tar-split + the diff dirs and stored uncompressed, so every layer's digest is its
// diff_id; each is re-hashed while written and the output is discarded on any mismatch.
#include <string>
#include <vector>

#include "layerstore/store/store_layout.hpp"

namespace strata {

class Progress;

enum class SaveFormat { DockerArchive, OciArchive, OciDir };
SaveFormat parse_save_format(const std::string& s);

struct SaveResult {
  int images = 0;
  int layers = 0;
  unsigned long long bytes = 0;
};

// `progress`: a bar per layer written (nullptr: none).
SaveResult save_images(const StoreLayout& l, const std::vector<std::string>& images, const std::string& output,
                       SaveFormat format, Progress* progress = nullptr);

}  // namespace strata
