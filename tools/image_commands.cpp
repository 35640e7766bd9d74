#include <dirent.h>

#include <cstdio>
#include <map>
#include <set>
#include <nlohmann/json.hpp>

#include "layerstore/archive/digest.hpp"
#include "layerstore/archive/fs_util.hpp"
#include "layerstore/error.hpp"
#include "layerstore/progress.hpp"
#include "layerstore/store/image_db.hpp"
#include "layerstore/store/layer_db.hpp"
#include "layerstore/store/lazy_layer.hpp"
#include "layerstore/container/mounts.hpp"
#include "layerstore/store/maintenance.hpp"
#include "layerstore/store/reference.hpp"
#include "layerstore/store/store_layout.hpp"
#include "tools/commands.hpp"

namespace strata::cli {

using nlohmann::json;

namespace {

uint64_t image_size(const LayerDb& db, const std::vector<std::string>& diffs) {
  uint64_t total = 0;
  for (const auto& c : chain_ids(diffs))
    if (auto r = db.get(c)) total += r->size;
  return total;
}

// How many of the image's layers are lazy (blob + index, no diff/: dockerd cannot use them).
int lazy_layer_count(const StoreLayout& l, const LayerDb& db, const std::vector<std::string>& diffs) {
  int n = 0;
  for (const auto& c : chain_ids(diffs))
    if (auto r = db.get(c); r && lazy_layer(l, r->cache_id)) n++;
  return n;
}

// The blob digests that produced a diff_id (distribution/diffid-by-digest), for inspect.
std::map<std::string, std::string> digests_by_diff_id(const StoreLayout& l) {
  std::map<std::string, std::string> out;
  DIR* d = opendir(l.diffid_by_digest().c_str());
  if (!d) return out;
  while (auto* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    out[read_file(l.diffid_by_digest() + "/" + e->d_name)] = std::string("sha256:") + e->d_name;
  }
  closedir(d);
  return out;
}

}  // namespace

int cmd_images(const StoreLayout& l, const std::string& format, bool all) {
  if (!format.empty() && format != "json") throw Error("unknown --format \"" + format + "\" (only json)");
  ImageDb idb(l);
  LayerDb db(l);
  Repositories repos = Repositories::load(l);
  std::vector<std::string> ids = idb.ids();
  // `docker images` hides an image no tag or digest names while another image names it as
  // its parent (imagedb/metadata/.../parent: a build step's or commit's base): these are
  // intermediate images, shown with -a. An unnamed image without children is dangling and
  // shows as <none>.
  std::set<std::string> parents;
  for (const auto& id : ids)
    if (std::string p = idb.parent(id); !p.empty()) parents.insert(p);
  json rows = json::array();
  bool any_lazy = false;
  for (const auto& id : ids) {
    auto refs = repos.refs_of(id);
    if (refs.empty() && !all && parents.count(id)) continue;
    std::string cfg_bytes = idb.config(id);
    auto cfg = json::parse(cfg_bytes, nullptr, false);
    std::string created = cfg.is_object() ? cfg.value("created", "") : "";
    std::vector<std::string> diffs = config_diff_ids(cfg_bytes);
    uint64_t size = image_size(db, diffs);
    int lazy = lazy_layer_count(l, db, diffs);
    any_lazy = any_lazy || lazy;
    bool tagged = false;
    for (const auto& r : refs) {
      auto ref = parse_reference(r);
      if (!ref || !ref->digest.empty()) continue;
      tagged = true;
      rows.push_back({{"Repository", ref->name}, {"Tag", ref->tag}, {"ID", id}, {"Created", created}, {"Size", size},
                      {"LazyLayers", lazy}, {"Layers", diffs.size()}});
    }
    if (!tagged)
      rows.push_back({{"Repository", "<none>"}, {"Tag", "<none>"}, {"ID", id}, {"Created", created}, {"Size", size},
                      {"LazyLayers", lazy}, {"Layers", diffs.size()}});
  }
  if (format == "json") {
    std::printf("%s\n", rows.dump(2).c_str());
    return 0;
  }
  // LAZY: how many of the image's layers are kept as blob + index ("-": none).
  const char* row_format = any_lazy ? "%-30s %-16s %-14s %-22s %-10s %s\n" : "%-30s %-16s %-14s %-22s %s%s\n";
  std::printf(row_format, "REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE", any_lazy ? "LAZY" : "");
  for (const auto& r : rows) {
    int lazy = r["LazyLayers"].get<int>();
    std::string mark = !any_lazy ? "" : lazy ? std::to_string(lazy) + "/" + std::to_string(r["Layers"].get<size_t>()) + " layers" : "-";
    std::printf(row_format, r["Repository"].get<std::string>().c_str(), r["Tag"].get<std::string>().c_str(),
                r["ID"].get<std::string>().substr(7, 12).c_str(), r["Created"].get<std::string>().substr(0, 19).c_str(),
                human_bytes(static_cast<double>(r["Size"].get<uint64_t>())).c_str(), mark.c_str());
  }
  if (any_lazy)
    std::fprintf(stderr, "note: images with lazy layers (LAZY) are not usable by dockerd until `strata unpack IMAGE`\n");
  return 0;
}

int cmd_inspect(const StoreLayout& l, const std::vector<std::string>& images) {
  ImageDb idb(l);
  LayerDb db(l);
  Repositories repos = Repositories::load(l);
  auto digests = digests_by_diff_id(l);
  json out = json::array();
  for (const auto& image : images) {
    std::string id = idb.resolve(image, repos);
    std::string cfg_bytes = idb.config(id);
    json cfg = json::parse(cfg_bytes);
    json tags = json::array(), rdigests = json::array();
    for (const auto& r : repos.refs_of(id)) (r.find('@') == std::string::npos ? tags : rdigests).push_back(r);
    json layers = json::array();
    auto diffs = config_diff_ids(cfg_bytes);
    auto chains = chain_ids(diffs);
    for (size_t i = 0; i < diffs.size(); i++) {
      json layer = {{"diff_id", diffs[i]}, {"chain_id", chains[i]}};
      auto d = digests.find(diffs[i]);
      layer["digest"] = d != digests.end() ? d->second : diffs[i];
      if (auto rec = db.get(chains[i])) {
        layer["cache_id"] = rec->cache_id;
        layer["size"] = rec->size;
      }
      layers.push_back(layer);
    }
    out.push_back({{"Id", id},
                   {"RepoTags", tags},
                   {"RepoDigests", rdigests},
                   {"Created", cfg.value("created", "")},
                   {"Architecture", cfg.value("architecture", "")},
                   {"Os", cfg.value("os", "")},
                   {"Size", image_size(db, diffs)},
                   {"LastUpdated", idb.last_updated(id)},
                   {"Config", cfg},
                   {"Layers", layers}});
  }
  std::printf("%s\n", out.dump(2).c_str());
  return 0;
}

int cmd_history(const StoreLayout& l, const std::string& image) {
  ImageDb idb(l);
  LayerDb db(l);
  std::string id = idb.resolve(image, Repositories::load(l));
  std::string cfg_bytes = idb.config(id);
  json cfg = json::parse(cfg_bytes);
  auto chains = chain_ids(config_diff_ids(cfg_bytes));
  std::printf("%-22s %-60s %-10s %s\n", "CREATED", "CREATED BY", "SIZE", "COMMENT");
  if (!cfg.contains("history") || !cfg["history"].is_array()) return 0;
  // History is oldest first; entries with empty_layer have no layer of their own.
  std::vector<std::string> rows;
  size_t layer = 0;
  for (const auto& h : cfg["history"]) {
    std::string size = "0 B";
    if (!h.value("empty_layer", false) && layer < chains.size()) {
      if (auto rec = db.get(chains[layer])) size = human_bytes(static_cast<double>(rec->size));
      layer++;
    }
    std::string by = h.value("created_by", "");
    if (by.size() > 60) by = by.substr(0, 57) + "...";
    char line[512];
    std::snprintf(line, sizeof line, "%-22s %-60s %-10s %s", h.value("created", "").substr(0, 19).c_str(), by.c_str(),
                  size.c_str(), h.value("comment", "").c_str());
    rows.push_back(line);
  }
  for (auto it = rows.rbegin(); it != rows.rend(); ++it) std::printf("%s\n", it->c_str());
  return 0;
}

int cmd_tag(const StoreLayout& l, const std::string& src, const std::string& dst) {
  tag_image(l, src, dst);
  return 0;
}

int cmd_rmi(const StoreLayout& l, const std::vector<std::string>& images, bool force) {
  // A mounted image is in use: refuse, or with -f unmount it first (the layers would go from
  // under the daemon). Removing one of several tags only untags: no mount is in the way then.
  if (store_exists(l)) {
    ImageDb idb(l);
    Repositories repos = Repositories::load(l);
    for (const auto& name : images) {
      std::string id = idb.resolve(name, repos);
      auto ref = parse_reference(name);
      if (ref && repos.lookup(*ref) == id && repos.refs_of(id).size() > 1) continue;
      release_image_mounts(l, id, name, force);
    }
  }
  auto rep = remove_images(l, images, force);
  for (const auto& line : rep.lines) std::printf("%s\n", line.c_str());
  return 0;
}

int cmd_prune(const StoreLayout& l) {
  auto rep = prune_store(l);
  for (const auto& line : rep.removed) std::printf("%s\n", line.c_str());
  std::printf("Pruned %zu item(s)\n", rep.removed.size());
  return 0;
}

int cmd_verify(const StoreLayout& l, const std::string& image) {
  auto rep = verify_store(l, image);
  for (const auto& p : rep.problems) std::printf("%s\n", p.c_str());
  if (!rep.problems.empty()) {
    std::fprintf(stderr, "strata: verify: %zu problem(s) in %d image(s), %d layer(s)\n", rep.problems.size(),
                 rep.images_checked, rep.layers_checked);
    return 1;
  }
  std::printf("OK: %d image(s), %d layer(s) verified\n", rep.images_checked, rep.layers_checked);
  return 0;
}

}  // namespace strata::cli
