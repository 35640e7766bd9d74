#pragma once
// `strata unpack IMAGE`: turns each lazy layer of an image (store/lazy_layer.hpp) into an
// ordinary unpacked one, as `load` would have left it: the blob extracted by the normal
// extractor (same refusals, digest and diff_id checked again), tar-split written, then
// diff/ renamed into place in one step and the lazy files removed. A crash leaves the layer
// lazy (diff/ not there yet) or unpacked (diff/ complete; leftover lazy files are removed
// by the next unpack), never half of it. Afterwards dockerd can use the image.
#include <cstdint>
#include <string>

#include "layerstore/archive/layer_unpack.hpp"
#include "layerstore/progress.hpp"
#include "layerstore/store/store_layout.hpp"

namespace strata {

struct UnpackImageSummary {
  int layers_unpacked = 0;
  int layers_already = 0;  // were unpacked before
  uint64_t bytes_unpacked = 0;
};

// Throws strata::Error naming the layer and the reason; the layers unpacked before it stay
// unpacked, the failing one stays lazy.
UnpackImageSummary unpack_lazy_image(const StoreLayout& l, const std::string& image, Progress& progress,
                                     uint64_t max_expansion = kDefaultMaxExpansion);

}  // namespace strata
