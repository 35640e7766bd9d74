#include "layerstore/store/image_db.hpp"

#include <dirent.h>

#include <chrono>
#include <ctime>
#include <nlohmann/json.hpp>

#include "layerstore/archive/digest.hpp"
#include "layerstore/archive/fs_util.hpp"
#include "layerstore/error.hpp"
#include "layerstore/store/short_names.hpp"
#include "layerstore/timestamp.hpp"

namespace strata {

using nlohmann::json;

Repositories Repositories::load(const StoreLayout& l) {
  Repositories r;
  if (!path_exists(l.repositories())) return r;
  auto j = json::parse(read_file(l.repositories()), nullptr, false);
  if (j.is_discarded() || !j.is_object()) throw Error(l.repositories() + ": malformed JSON");
  if (j.contains("Repositories") && j["Repositories"].is_object())
    for (auto& [name, refs] : j["Repositories"].items())
      for (auto& [ref, id] : refs.items()) r.repos_[name][ref] = id.get<std::string>();
  return r;
}

void Repositories::save(const StoreLayout& l) const {
  json j = json::object();
  j["Repositories"] = json::object();
  for (const auto& [name, refs] : repos_) {
    if (refs.empty()) continue;
    j["Repositories"][name] = refs;
  }
  write_file_atomic(l.repositories(), j.dump(), 0600);
}

std::optional<std::string> Repositories::lookup(const Reference& r) const {
  auto it = repos_.find(r.name);
  if (it == repos_.end()) return std::nullopt;
  auto jt = it->second.find(r.str());
  if (jt == it->second.end()) return std::nullopt;
  return jt->second;
}

void Repositories::set(const Reference& r, const std::string& image_id) { repos_[r.name][r.str()] = image_id; }

bool Repositories::erase(const Reference& r) {
  auto it = repos_.find(r.name);
  if (it == repos_.end() || !it->second.erase(r.str())) return false;
  if (it->second.empty()) repos_.erase(it);
  return true;
}

std::vector<std::string> Repositories::refs_of(const std::string& image_id) const {
  std::vector<std::string> out;
  for (const auto& [name, refs] : repos_)
    for (const auto& [ref, id] : refs)
      if (id == image_id) out.push_back(ref);
  return out;
}

void Repositories::erase_image(const std::string& image_id) {
  for (auto it = repos_.begin(); it != repos_.end();) {
    for (auto jt = it->second.begin(); jt != it->second.end();)
      jt = jt->second == image_id ? it->second.erase(jt) : std::next(jt);
    it = it->second.empty() ? repos_.erase(it) : std::next(it);
  }
}

std::vector<std::string> ImageDb::ids() const {
  std::vector<std::string> out;
  DIR* d = opendir(l_.imagedb_content().c_str());
  if (!d) return out;
  while (auto* e = readdir(d)) {
    std::string n = e->d_name;
    if (is_valid_digest("sha256:" + n)) out.push_back("sha256:" + n);
  }
  closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

bool ImageDb::has(const std::string& id) const {
  return path_exists(l_.imagedb_content() + "/" + digest_hex(id));
}

std::string ImageDb::config(const std::string& id) const {
  std::string bytes = read_file(l_.imagedb_content() + "/" + digest_hex(id));
  if (sha256_digest(bytes) != id) throw Error("image " + id.substr(7, 12) + ": config does not match its id");
  return bytes;
}

void ImageDb::put(const std::string& id, const std::string& config_bytes) const {
  std::string hex = digest_hex(id);
  if (!has(id)) write_file_atomic(l_.imagedb_content() + "/" + hex, config_bytes, 0600);
  mkdirs(l_.imagedb_metadata() + "/" + hex, 0700);
  write_file_atomic(l_.imagedb_metadata() + "/" + hex + "/lastUpdated", rfc3339_now(), 0600);
}

void ImageDb::remove(const std::string& id) const {
  std::string hex = digest_hex(id);
  remove_tree(l_.imagedb_metadata() + "/" + hex);
  remove_tree(l_.imagedb_content() + "/" + hex);
}

std::string ImageDb::last_updated(const std::string& id) const {
  std::string p = l_.imagedb_metadata() + "/" + digest_hex(id) + "/lastUpdated";
  return path_exists(p) ? read_file(p) : "";
}

std::string ImageDb::parent(const std::string& id) const {
  std::string p = l_.imagedb_metadata() + "/" + digest_hex(id) + "/parent";
  return path_exists(p) ? read_file(p) : "";
}

void ImageDb::record_distribution(const std::string& digest, const std::string& diff_id,
                                  const std::string& source_repo) const {
  write_file_atomic(l_.diffid_by_digest() + "/" + digest_hex(digest), diff_id, 0600);
  if (source_repo.empty()) return;
  std::string p = l_.v2metadata_by_diffid() + "/" + digest_hex(diff_id);
  json arr = json::array();
  if (path_exists(p)) {
    auto j = json::parse(read_file(p), nullptr, false);
    if (j.is_array()) arr = j;
  }
  for (const auto& e : arr)
    if (e.value("Digest", "") == digest && e.value("SourceRepository", "") == source_repo) return;
  json entry = json::object();
  entry["Digest"] = digest;
  entry["SourceRepository"] = source_repo;
  entry["HMAC"] = "";
  arr.push_back(entry);
  write_file_atomic(p, arr.dump(), 0600);
}

std::string ImageDb::resolve(const std::string& image, const Repositories& repos) const {
  std::string s = image;
  bool hexish = !s.empty();
  std::string prefix = s.rfind("sha256:", 0) == 0 ? s.substr(7) : s;
  for (char c : prefix)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) hexish = false;
  if (s.rfind("sha256:", 0) != 0) {
    if (auto ref = parse_reference(s)) {
      if (auto id = repos.lookup(*ref)) return *id;
    }
  }
  if (hexish && !prefix.empty()) {
    std::string found;
    for (const auto& id : ids()) {
      if (id.compare(7, prefix.size(), prefix) == 0) {
        if (!found.empty()) throw Error("image ID prefix \"" + image + "\" is ambiguous");
        found = id;
      }
    }
    if (!found.empty()) return found;
  }
  // A short name ("debian:12" for localhost/debian:12), after names and ID prefixes as Docker has them.
  if (s.rfind("sha256:", 0) != 0)
    if (auto ref = stored_reference(s, repos)) return *repos.lookup(*ref);
  throw Error("no such image: " + image + close_names_hint(image, repos));
}

std::vector<std::string> config_diff_ids(const std::string& config_bytes) {
  auto j = json::parse(config_bytes, nullptr, false);
  if (j.is_discarded() || !j.is_object()) throw Error("malformed JSON in image config");
  if (!j.contains("rootfs") || !j["rootfs"].is_object() || !j["rootfs"].contains("diff_ids") ||
      !j["rootfs"]["diff_ids"].is_array())
    throw Error("image config has no rootfs.diff_ids");
  if (j["rootfs"].value("type", "") != "layers") throw Error("image config rootfs.type is not \"layers\"");
  std::vector<std::string> out;
  for (const auto& d : j["rootfs"]["diff_ids"]) {
    if (!d.is_string()) throw Error("image config: diff_id is not a string");
    require_valid_digest(d.get<std::string>(), "image config diff_id");
    out.push_back(d.get<std::string>());
  }
  return out;
}

}  // namespace strata
