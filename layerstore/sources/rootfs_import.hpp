#pragma once
// `strata import`: a root filesystem tarball (plain, gzip or zstd) as an image of one layer,
// as `docker import`. The tar is unpacked by the same verify-and-unpack pass as a loaded layer
// (tar_agreement, safe extraction, expansion cap), so it meets the same hostile-input rules; a
// refused tar leaves the store as it was.
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "layerstore/archive/layer_unpack.hpp"
#include "layerstore/progress.hpp"
#include "layerstore/sources/input_files.hpp"
#include "layerstore/store/reference.hpp"
#include "layerstore/store/store_layout.hpp"

namespace strata {

struct ImportOptions {
  std::string input;                          // file or "-" (stdin, spooled)
  std::optional<Reference> tag;
  nlohmann::json config = nlohmann::json::object();  // the image config's "config" (--change)
  std::string message;                        // history comment (-m); default "Imported from INPUT"
  uint64_t max_stdin_bytes = kDefaultMaxStdinBytes;
  uint64_t max_expansion = kDefaultMaxExpansion;
};

// Stores the image and returns its id ("sha256:..."). Throws Error ending in "; nothing was
// imported" when the input is refused.
std::string import_rootfs(const StoreLayout& l, const ImportOptions& o, Progress& progress);

}  // namespace strata
