// docker-archive (`docker save`): manifest.json lists each image's config and layer tars;
// old form "<v1id>/layer.tar", new (Docker >= 25) form "blobs/sha256/<diff_id>".
#include <nlohmann/json.hpp>

#include "layerstore/archive/digest.hpp"
#include "layerstore/error.hpp"
#include "layerstore/sources/image_source.hpp"
#include "layerstore/store/image_db.hpp"

namespace strata {

using nlohmann::json;

// "blobs/sha256/<hex>" or "<hex>.json"/"<hex>.tar": the digest the name promises, if any.
static std::string digest_from_name(const std::string& path) {
  std::string base = path.substr(path.rfind('/') == std::string::npos ? 0 : path.rfind('/') + 1);
  if (path.rfind("blobs/sha256/", 0) == 0 && is_valid_digest("sha256:" + base)) return "sha256:" + base;
  if (base.size() == 69 && base.substr(64) == ".json" && is_valid_digest("sha256:" + base.substr(0, 64)))
    return "sha256:" + base.substr(0, 64);
  return "";
}

std::vector<ImageToLoad> read_docker_archive(const InputFiles& files, const std::string& label) {
  auto manifest = json::parse(files.blob("manifest.json").read_all(), nullptr, false);
  if (manifest.is_discarded()) throw Error("manifest.json: malformed JSON");
  if (!manifest.is_array() || manifest.empty()) throw Error("manifest.json: not a non-empty array");
  std::vector<ImageToLoad> out;
  int n = 0;
  for (const auto& m : manifest) {
    n++;
    std::string what = "manifest.json entry " + std::to_string(n);
    if (!m.is_object() || !m.contains("Config") || !m["Config"].is_string() || !m.contains("Layers") ||
        !m["Layers"].is_array())
      throw Error(what + ": needs Config and Layers");
    ImageToLoad img;
    std::string cpath = m["Config"].get<std::string>();
    BlobRef cb = files.blob(cpath);
    img.config = cb.read_all();
    img.image_id = sha256_digest(img.config);
    if (std::string want = digest_from_name(cpath); !want.empty() && want != img.image_id)
      throw Error(cpath + ": config digest mismatch (want " + want + ", got " + img.image_id + ")");
    try {
      img.diff_ids = config_diff_ids(img.config);
    } catch (const Error& e) {
      throw Error(cpath + ": " + e.what());
    }
    for (const auto& l : m["Layers"]) {
      if (!l.is_string()) throw Error(what + ": layer is not a string");
      LayerToLoad layer;
      layer.blob = files.blob(l.get<std::string>());
      std::string want = digest_from_name(l.get<std::string>());
      if (!want.empty() && l.get<std::string>().rfind("blobs/", 0) == 0) layer.digest = want;
      img.layers.push_back(std::move(layer));
    }
    if (img.layers.size() != img.diff_ids.size())
      throw Error(what + ": " + std::to_string(img.layers.size()) + " layers but the config has " +
                  std::to_string(img.diff_ids.size()) + " diff_ids");
    if (m.contains("RepoTags") && m["RepoTags"].is_array())
      for (const auto& t : m["RepoTags"]) {
        if (!t.is_string()) continue;
        auto r = parse_reference(t.get<std::string>());
        if (!r) throw Error(what + ": invalid tag \"" + t.get<std::string>() + "\"");
        img.tags.push_back(*r);
      }
    out.push_back(std::move(img));
  }
  return out;
}

}  // namespace strata
