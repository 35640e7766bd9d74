#pragma once
// What every input format boils down to: images, each a verified config plus layer blobs
// with the digests and media types their manifest promised.
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "layerstore/archive/blob_ref.hpp"
#include "layerstore/sources/input_files.hpp"
#include "layerstore/store/reference.hpp"

namespace strata {

struct LayerToLoad {
  BlobRef blob;
  std::string media_type;  // empty: docker-archive, any compression accepted
  std::string digest;      // expected blob digest; empty when the format has none
  int64_t size = -1;       // expected blob size; -1 when unknown
  // Remote layers (pull): streams the blob instead of `blob`, whose length stays 0; may be
  // called again to retry. Layers already in the store are then trusted by chain-id.
  BlobStream fetch;
};

struct ImageToLoad {
  std::string config;       // bytes, already checked against their digest
  std::string image_id;     // sha256 of config
  std::vector<std::string> diff_ids;
  std::vector<LayerToLoad> layers;
  std::vector<Reference> tags;
  std::string manifest_digest;  // for name@digest references (registry-dir)
  std::string source_repo;      // for distribution/v2metadata (registry-dir)
};

struct Platform {
  std::string os = "linux", arch = "amd64", variant;
};
// "linux/arm64/v8" -> Platform; throws on bad syntax.
Platform parse_platform(const std::string& s);

using BlobByDigest = std::function<BlobRef(const std::string& digest)>;

// Reads a manifest or an index (following it to the platform's manifest) and builds the
// image; checks media types, digests of manifest and config, and the diff_ids count.
ImageToLoad image_from_manifest(const std::string& manifest_bytes, const std::string& manifest_name,
                                const BlobByDigest& blobs, const Platform& platform);

// For an index: the descriptor (digest) of the platform's manifest; nullopt when the bytes
// are a plain manifest.
std::optional<std::string> pick_from_index(const std::string& bytes, const std::string& name,
                                           const Platform& platform);

// Format readers.
std::vector<ImageToLoad> read_oci_layout(const InputFiles& files, const std::string& label, const Platform& p);
std::vector<ImageToLoad> read_docker_archive(const InputFiles& files, const std::string& label);
ImageToLoad read_registry_dir(const std::string& dir, const Reference& ref, const Platform& p);
// Picks docker-archive (manifest.json) or OCI layout (index.json) by content.
std::vector<ImageToLoad> read_any_archive(const InputFiles& files, const std::string& label, const Platform& p);

}  // namespace strata
