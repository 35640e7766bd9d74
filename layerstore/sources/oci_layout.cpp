// OCI image layout (a directory or a tar of one): oci-layout, index.json, blobs/sha256/.
#include <nlohmann/json.hpp>

#include "layerstore/archive/digest.hpp"
#include "layerstore/error.hpp"
#include "layerstore/sources/image_source.hpp"

namespace strata {

using nlohmann::json;

static BlobByDigest layout_blobs(const InputFiles& files) {
  return [&files](const std::string& digest) {
    require_valid_digest(digest, "descriptor");
    return files.blob("blobs/sha256/" + digest_hex(digest));
  };
}

std::vector<ImageToLoad> read_oci_layout(const InputFiles& files, const std::string& label, const Platform& p) {
  if (!files.exists("oci-layout")) throw Error("oci-layout: missing (not an OCI image layout)");
  auto layout = json::parse(files.blob("oci-layout").read_all(), nullptr, false);
  if (layout.is_discarded() || !layout.is_object()) throw Error("oci-layout: malformed JSON");
  if (layout.value("imageLayoutVersion", "") != "1.0.0") throw Error("oci-layout: unsupported imageLayoutVersion");
  std::string index_bytes = files.blob("index.json").read_all();
  auto index = json::parse(index_bytes, nullptr, false);
  if (index.is_discarded() || !index.is_object()) throw Error("index.json: malformed JSON");
  if (!index.contains("manifests") || !index["manifests"].is_array()) throw Error("index.json: no manifests");
  auto blobs = layout_blobs(files);
  std::vector<ImageToLoad> out;
  // An index.json whose entries carry platforms is itself a multi-arch index: pick one.
  bool multi_platform = false;
  for (const auto& d : index["manifests"])
    if (d.is_object() && d.contains("platform")) multi_platform = true;
  std::vector<json> chosen;
  if (multi_platform) {
    std::string digest = *pick_from_index(index_bytes, "index.json", p);
    for (const auto& d : index["manifests"])
      if (d.value("digest", "") == digest) chosen.push_back(d);
  } else {
    for (const auto& d : index["manifests"]) chosen.push_back(d);
  }
  std::vector<std::string> seen;
  for (const auto& d : chosen) {
    if (!d.is_object() || !d.contains("digest") || !d["digest"].is_string()) throw Error("index.json: malformed descriptor");
    std::string digest = d["digest"].get<std::string>();
    require_valid_digest(digest, "index.json");
    BlobRef mb = blobs(digest);
    std::string bytes = mb.read_all();
    std::string got = sha256_digest(bytes);
    if (got != digest) throw Error(mb.name + ": manifest digest mismatch (want " + digest + ", got " + got + ")");
    ImageToLoad img = image_from_manifest(bytes, mb.name, blobs, p);
    std::string ref, containerd_name;
    if (d.contains("annotations") && d["annotations"].is_object()) {
      ref = d["annotations"].value("org.opencontainers.image.ref.name", "");
      containerd_name = d["annotations"].value("io.containerd.image.name", "");
    }
    // A bare tag ("latest", as umoci and skopeo's oci: write) names no repository; then the
    // full name containerd's annotation gives (docker save and strata save write it beside
    // the bare tag) is the image's name, as docker load takes it.
    bool bare = ref.find(':') == std::string::npos && ref.find('/') == std::string::npos;
    if (bare) ref = containerd_name;
    if (ref.find(':') != std::string::npos || ref.find('/') != std::string::npos)
      if (auto r = parse_reference(ref)) img.tags.push_back(*r);
    bool merged = false;
    for (auto& prev : out)
      if (prev.image_id == img.image_id) {
        prev.tags.insert(prev.tags.end(), img.tags.begin(), img.tags.end());
        merged = true;
      }
    if (!merged) out.push_back(std::move(img));
  }
  if (out.empty()) throw Error(label + ": no images in index.json");
  return out;
}

std::vector<ImageToLoad> read_any_archive(const InputFiles& files, const std::string& label, const Platform& p) {
  if (files.exists("manifest.json")) return read_docker_archive(files, label);
  if (files.exists("index.json")) return read_oci_layout(files, label, p);
  throw Error("neither manifest.json (docker-archive) nor index.json (OCI layout) found");
}

}  // namespace strata
