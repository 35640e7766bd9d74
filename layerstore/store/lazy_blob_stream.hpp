#pragma once
// What save and push send for a lazy layer (layerstore/store/lazy_layer.hpp): the blob as it
// was received, byte for byte (a registry or an OCI layout gets the same digest back), or its
// tar decompressed as it streams (a docker-archive holds plain layer tars). Each checks what
// it sent against the digest it must have, so a blob changed on disk fails instead of being
// passed on.
#include <cstdint>
#include <functional>
#include <string>

#include "layerstore/store/lazy_layer.hpp"

namespace strata {

using LazyByteSink = std::function<void(const uint8_t*, size_t)>;

// The blob's size in bytes.
uint64_t lazy_blob_size(const LazyLayerPaths& p);
// The size of the layer's uncompressed tar (from its index).
uint64_t lazy_tar_size(const LazyLayerPaths& p);

// Hands every byte of the blob to `sink`; throws if it does not hash to `digest`.
void stream_lazy_blob(const LazyLayerPaths& p, const std::string& digest, const LazyByteSink& sink);
// Hands the decompressed tar to `sink`; throws if it does not hash to `diff_id`.
void stream_lazy_tar(const LazyLayerPaths& p, const std::string& diff_id, const LazyByteSink& sink);

// A layer media type in the OCI vocabulary (Docker's gzip and plain tar types mapped to the
// OCI ones), for an OCI manifest; and in Docker's (schema 2) where it has one, else "".
std::string oci_layer_media_type(const std::string& media_type);
std::string docker_layer_media_type(const std::string& media_type);

}  // namespace strata
