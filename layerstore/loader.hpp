#pragma once
// `strata load`: brings every image of an input into the store. All layers of an image are
// staged and checked first; only then, under the index lock, are they renamed into place,
// indexed, and the image recorded. A failure at any point removes this load's staging, so
// the store is exactly as before ("nothing was imported").
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "layerstore/archive/layer_unpack.hpp"
#include "layerstore/progress.hpp"
#include "layerstore/sources/image_source.hpp"
#include "layerstore/store/store_layout.hpp"

namespace strata {

struct LoadOptions {
  std::string input;                // file, dir or "-"
  uint64_t max_stdin_bytes = kDefaultMaxStdinBytes;  // how much of stdin may be spooled
  std::string registry_dir;         // set for --registry-dir
  std::optional<Reference> registry_ref;
  std::optional<Reference> tag;     // --tag
  Platform platform;
  uint64_t max_expansion = kDefaultMaxExpansion;  // --max-expansion (layer_unpack.hpp)
  bool lazy = false;  // --lazy: keep each new layer as blob + index (store/lazy_layer.hpp)
  bool one_image = false;  // refuse, before storing anything, an input of more images (run --lazy)
};

struct LoadSummary {
  int images = 0;
  int layers_new = 0;
  int layers_reused = 0;
  int layers_local = 0;  // pull: rebuilt from a local layer with the same diff_id, not downloaded
  int layers_lazy = 0;   // of layers_new: kept as blob + index, not unpacked
  uint64_t bytes_read = 0;
  uint64_t bytes_unpacked = 0;
  uint64_t skipped_devices = 0;
  double seconds = 0;
  std::vector<std::string> loaded;  // "Loaded image: busybox:latest" lines
  std::vector<std::string> image_ids;  // of each image loaded, in order
};

LoadSummary load_images(const StoreLayout& layout, const LoadOptions& opts, Progress& progress);

// Stores one image that is already described (pull builds it from a registry): the same
// staging, unpack and commit as load, with up to `jobs` layers unpacked at once. A layer
// with `fetch` that fails (download or verification) is discarded and tried once more.
// `lazy`: new layers are kept as blob + index instead (store/lazy_layer.hpp).
// Throws strata::Error ending in "; nothing was imported" when the image was not stored.
void store_image(const StoreLayout& layout, const ImageToLoad& img, Progress& progress, LoadSummary& sum, int jobs,
                 uint64_t max_expansion = kDefaultMaxExpansion, bool lazy = false);

}  // namespace strata
