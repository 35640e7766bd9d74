#pragma once
// Images: imagedb/content/sha256/<id> (the config bytes; id = their sha256),
// imagedb/metadata/sha256/<id>/{lastUpdated,parent}, repositories.json (tags and digests -> id),
// and distribution/ (which compressed blob digest gave which diff_id).
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "layerstore/store/reference.hpp"
#include "layerstore/store/store_layout.hpp"

namespace strata {

// repositories.json: {"Repositories":{"<name>":{"<name>:<tag>":"sha256:<id>", ...}}}
class Repositories {
 public:
  static Repositories load(const StoreLayout& l);
  void save(const StoreLayout& l) const;

  std::optional<std::string> lookup(const Reference& r) const;
  void set(const Reference& r, const std::string& image_id);
  bool erase(const Reference& r);
  // Every "name:tag" / "name@digest" pointing at the image.
  std::vector<std::string> refs_of(const std::string& image_id) const;
  void erase_image(const std::string& image_id);
  const std::map<std::string, std::map<std::string, std::string>>& all() const { return repos_; }

 private:
  std::map<std::string, std::map<std::string, std::string>> repos_;
};

class ImageDb {
 public:
  explicit ImageDb(StoreLayout layout) : l_(std::move(layout)) {}

  std::vector<std::string> ids() const;  // "sha256:<hex>", sorted
  bool has(const std::string& id) const;
  // The config bytes; throws if they no longer hash to the id.
  std::string config(const std::string& id) const;
  void put(const std::string& id, const std::string& config_bytes) const;
  void remove(const std::string& id) const;
  std::string last_updated(const std::string& id) const;
  // imagedb/metadata/sha256/<id>/parent: the image a build step or commit started from;
  // empty when there is none.
  std::string parent(const std::string& id) const;

  void record_distribution(const std::string& digest, const std::string& diff_id,
                           const std::string& source_repo) const;

  // IMAGE as Docker resolves it: name[:tag], name@digest, full or unique prefix of an id.
  std::string resolve(const std::string& image, const Repositories& repos) const;

 private:
  StoreLayout l_;
};

// The diff_ids listed in a config's rootfs (throws on malformed config).
std::vector<std::string> config_diff_ids(const std::string& config_bytes);

}  // namespace strata
