// OCI / Docker schema2 manifests and indexes (manifest lists): media types, platform choice,
// and the checks that make a bad manifest fail before anything is unpacked.
#include <nlohmann/json.hpp>

#include "layerstore/archive/digest.hpp"
#include "layerstore/error.hpp"
#include "layerstore/sources/image_source.hpp"
#include "layerstore/store/image_db.hpp"

namespace strata {

using nlohmann::json;

namespace mt {
const char* kOciManifest = "application/vnd.oci.image.manifest.v1+json";
const char* kOciIndex = "application/vnd.oci.image.index.v1+json";
const char* kDockerManifest = "application/vnd.docker.distribution.manifest.v2+json";
const char* kDockerList = "application/vnd.docker.distribution.manifest.list.v2+json";
const char* kOciConfig = "application/vnd.oci.image.config.v1+json";
const char* kDockerConfig = "application/vnd.docker.container.image.v1+json";
}  // namespace mt

static bool is_layer_type(const std::string& t) {
  return t == "application/vnd.oci.image.layer.v1.tar" || t == "application/vnd.oci.image.layer.v1.tar+gzip" ||
         t == "application/vnd.oci.image.layer.v1.tar+zstd" ||
         t == "application/vnd.docker.image.rootfs.diff.tar.gzip" ||
         t == "application/vnd.docker.image.rootfs.diff.tar" || t == "application/vnd.docker.image.rootfs.diff.tar.zstd";
}

Platform parse_platform(const std::string& s) {
  Platform p;
  size_t a = s.find('/');
  if (a == std::string::npos || a == 0) throw Error("invalid platform \"" + s + "\" (want os/arch[/variant])");
  p.os = s.substr(0, a);
  std::string rest = s.substr(a + 1);
  size_t b = rest.find('/');
  p.arch = rest.substr(0, b);
  if (b != std::string::npos) p.variant = rest.substr(b + 1);
  if (p.arch.empty()) throw Error("invalid platform \"" + s + "\"");
  return p;
}

static json parse_json(const std::string& bytes, const std::string& name) {
  auto j = json::parse(bytes, nullptr, false);
  if (j.is_discarded()) throw Error(name + ": malformed JSON");
  if (!j.is_object()) throw Error(name + ": not a JSON object");
  return j;
}

static std::string str_field(const json& j, const char* key, const std::string& name) {
  if (!j.contains(key) || !j[key].is_string()) throw Error(name + ": missing \"" + key + "\"");
  return j[key].get<std::string>();
}

// An optional string field: "" when absent; present with another type, refused (json's
// value() would throw its own type_error, which is no strata::Error).
static std::string opt_str_field(const json& j, const char* key, const std::string& name) {
  if (!j.contains(key)) return "";
  if (!j[key].is_string()) throw Error(name + ": \"" + key + "\" is not a string");
  return j[key].get<std::string>();
}

static bool is_index(const json& j, const std::string& name) {
  std::string t = opt_str_field(j, "mediaType", name);
  if (t == mt::kOciIndex || t == mt::kDockerList) return true;
  return t.empty() && j.contains("manifests") && !j.contains("layers");
}

std::optional<std::string> pick_from_index(const std::string& bytes, const std::string& name, const Platform& p) {
  json j = parse_json(bytes, name);
  if (!is_index(j, name)) return std::nullopt;
  if (!j.contains("manifests") || !j["manifests"].is_array()) throw Error(name + ": index without manifests");
  std::string fallback;
  for (const auto& d : j["manifests"]) {
    if (!d.is_object()) throw Error(name + ": malformed descriptor");
    std::string digest = str_field(d, "digest", name);
    require_valid_digest(digest, name);
    if (!d.contains("platform") || !d["platform"].is_object()) continue;
    const auto& pl = d["platform"];
    if (opt_str_field(pl, "os", name) != p.os || opt_str_field(pl, "architecture", name) != p.arch) continue;
    std::string v = opt_str_field(pl, "variant", name);
    if (v == p.variant) return digest;
    if (p.variant.empty() && fallback.empty()) fallback = digest;
  }
  if (!fallback.empty()) return fallback;
  throw Error(name + ": no manifest for platform " + p.os + "/" + p.arch +
              (p.variant.empty() ? "" : "/" + p.variant));
}

ImageToLoad image_from_manifest(const std::string& manifest_bytes, const std::string& manifest_name,
                                const BlobByDigest& blobs, const Platform& platform) {
  std::string bytes = manifest_bytes, name = manifest_name;
  for (int depth = 0; depth < 4; depth++) {
    auto child = pick_from_index(bytes, name, platform);
    if (!child) break;
    BlobRef b = blobs(*child);
    bytes = b.read_all();
    if (sha256_digest(bytes) != *child) throw Error(b.name + ": manifest digest mismatch");
    name = b.name;
  }
  json j = parse_json(bytes, name);
  std::string type = opt_str_field(j, "mediaType", name);
  if (!type.empty() && type != mt::kOciManifest && type != mt::kDockerManifest)
    throw Error(name + ": unsupported manifest media type \"" + type + "\"");
  if (!j.contains("schemaVersion") || j["schemaVersion"] != 2) throw Error(name + ": unsupported manifest schemaVersion");
  if (!j.contains("config") || !j["config"].is_object()) throw Error(name + ": manifest has no config");
  if (!j.contains("layers") || !j["layers"].is_array()) throw Error(name + ": manifest has no layers");
  const json& cfg = j["config"];
  std::string ctype = str_field(cfg, "mediaType", name);
  if (ctype != mt::kOciConfig && ctype != mt::kDockerConfig)
    throw Error(name + ": wrong config media type \"" + ctype + "\"");
  std::string cdigest = str_field(cfg, "digest", name);
  require_valid_digest(cdigest, name + " config");
  ImageToLoad img;
  BlobRef cblob = blobs(cdigest);
  if (cfg.contains("size") && cfg["size"].is_number_integer() && cfg["size"].get<int64_t>() != static_cast<int64_t>(cblob.length))
    throw Error(cblob.name + ": config size mismatch (want " + std::to_string(cfg["size"].get<int64_t>()) +
                ", got " + std::to_string(cblob.length) + ")");
  img.config = cblob.read_all();
  img.image_id = sha256_digest(img.config);
  if (img.image_id != cdigest)
    throw Error(cblob.name + ": config digest mismatch (want " + cdigest + ", got " + img.image_id + ")");
  try {
    img.diff_ids = config_diff_ids(img.config);
  } catch (const Error& e) {
    throw Error(cblob.name + ": " + e.what());
  }
  int idx = 0;
  for (const auto& d : j["layers"]) {
    idx++;
    if (!d.is_object()) throw Error(name + ": malformed layer descriptor");
    LayerToLoad l;
    l.media_type = str_field(d, "mediaType", name);
    if (!is_layer_type(l.media_type))
      throw Error(name + ": layer " + std::to_string(idx) + " has unsupported media type \"" + l.media_type + "\"");
    l.digest = str_field(d, "digest", name);
    require_valid_digest(l.digest, name + " layer " + std::to_string(idx));
    if (!d.contains("size") || !d["size"].is_number_integer() || d["size"].get<int64_t>() < 0)
      throw Error(name + ": layer " + std::to_string(idx) + " has no valid size");
    l.size = d["size"].get<int64_t>();
    l.blob = blobs(l.digest);
    img.layers.push_back(std::move(l));
  }
  if (img.layers.size() != img.diff_ids.size())
    throw Error(name + ": manifest lists " + std::to_string(img.layers.size()) + " layers but the config has " +
                std::to_string(img.diff_ids.size()) + " diff_ids");
  return img;
}

}  // namespace strata
