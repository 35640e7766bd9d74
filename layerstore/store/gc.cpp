// Removing things: rmi (untag, delete images and the untagged parents they leave, as dockerd,
// then their layers when nothing else uses them; never an image others name as parent), prune
// (unreferenced layers, orphan overlay2 dirs and links, stale staging), tag.
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <set>

#include "layerstore/archive/digest.hpp"
#include "layerstore/archive/fs_util.hpp"
#include "layerstore/container/container.hpp"
#include "layerstore/error.hpp"
#include "layerstore/store/image_db.hpp"
#include "layerstore/store/layer_db.hpp"
#include "layerstore/store/lazy_layer.hpp"
#include "layerstore/store/maintenance.hpp"
#include "layerstore/store/short_names.hpp"
#include "layerstore/store/store_lock.hpp"

namespace strata {

static std::vector<std::string> list_dir(const std::string& path) {
  std::vector<std::string> out;
  DIR* d = opendir(path.c_str());
  if (!d) return out;
  while (auto* e = readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") out.push_back(n);
  }
  closedir(d);
  return out;
}

std::vector<std::string> referenced_chains(const StoreLayout& l) {
  std::set<std::string> refs;
  ImageDb idb(l);
  LayerDb db(l);
  for (const auto& id : idb.ids()) {
    for (const auto& c : chain_ids(config_diff_ids(idb.config(id)))) refs.insert(c);
  }
  // Container layers (layerdb/mounts/<id>/parent) keep their image chain alive too.
  for (const auto& m : list_dir(l.layerdb_mounts())) {
    std::string p = l.layerdb_mounts() + "/" + m + "/parent";
    if (!path_exists(p)) continue;
    for (std::string c = read_file(p); !c.empty();) {
      refs.insert(c);
      auto rec = db.get(c);
      c = rec ? rec->parent : "";
    }
  }
  return {refs.begin(), refs.end()};
}

// Deletes layers nothing references, topmost first (a parent stays while a child exists).
static void remove_unreferenced_layers(const StoreLayout& l, std::vector<std::string>& out) {
  LayerDb db(l);
  auto refvec = referenced_chains(l);
  std::set<std::string> refs(refvec.begin(), refvec.end());
  for (bool again = true; again;) {
    again = false;
    auto layers = db.list();
    std::set<std::string> parents;
    for (const auto& r : layers) parents.insert(r.parent);
    for (const auto& r : layers) {
      if (refs.count(r.chain_id) || parents.count(r.chain_id)) continue;
      db.remove(r);
      out.push_back("Deleted layer: " + r.chain_id);
      again = true;
    }
  }
}

// `link` is overlay2/l/<short> -> ../<cache-id>/diff of a lazy layer.
static bool links_to_lazy_layer(const StoreLayout& l, const std::string& link) {
  char target[4096];
  ssize_t n = readlink(link.c_str(), target, sizeof target - 1);
  if (n < 0) return false;
  std::string t(target, size_t(n));
  if (!t.starts_with("../") || !t.ends_with("/diff")) return false;
  return lazy_layer(l, t.substr(3, t.size() - 3 - 5)).has_value();
}

PruneReport prune_store(const StoreLayout& l) {
  PruneReport rep;
  if (!store_exists(l)) return rep;
  RangeLock lock = write_lock_store(l, true);
  RangeLock index = lock_index(l.lock_file());
  remove_unreferenced_layers(l, rep.removed);
  // No load runs while we hold the store lock exclusively: all staging is stale.
  for (const auto& n : list_dir(l.layerdb_tmp())) {
    remove_tree(l.layerdb_tmp() + "/" + n);
    rep.removed.push_back("Deleted staging: layerdb/tmp/" + n);
  }
  for (const auto& n : list_dir(l.overlay_staging())) {
    remove_tree(l.overlay_staging() + "/" + n);
    rep.removed.push_back("Deleted staging: overlay2/.staging/" + n);
  }
  LayerDb db(l);
  std::set<std::string> cache_ids;
  for (const auto& r : db.list()) cache_ids.insert(r.cache_id);
  for (const auto& m : list_dir(l.layerdb_mounts())) {
    for (const char* f : {"/mount-id", "/init-id"}) {
      std::string p = l.layerdb_mounts() + "/" + m + f;
      if (path_exists(p)) cache_ids.insert(read_file(p));
    }
  }
  for (const auto& n : list_dir(l.overlay2())) {
    if (n == "l" || n == ".staging" || cache_ids.count(n)) continue;
    std::string dir = l.overlay2() + "/" + n;
    if (path_exists(dir + "/link")) unlink((l.links() + "/" + read_file(dir + "/link")).c_str());
    remove_tree(dir);
    rep.removed.push_back("Deleted orphan: overlay2/" + n);
  }
  for (const auto& n : list_dir(l.links())) {
    std::string p = l.links() + "/" + n;
    struct stat st;
    // A lazy layer's link dangles by design (its diff/ does not exist until `strata unpack`).
    if (stat(p.c_str(), &st) != 0 && !links_to_lazy_layer(l, p)) {  // dangling
      unlink(p.c_str());
      rep.removed.push_back("Deleted dangling link: overlay2/l/" + n);
    }
  }
  return rep;
}

// Images whose imagedb metadata names `id` as parent: build steps and commits made from it.
static bool has_children(const ImageDb& idb, const std::string& id, const std::set<std::string>& ignore) {
  for (const auto& other : idb.ids())
    if (!ignore.count(other) && idb.parent(other) == id) return true;
  return false;
}

// Docker's rmi then removes the parents the image leaves behind: each untagged, childless
// image no container uses, down the parent chain (the intermediate images of a build).
static void remove_orphaned_parents(const ImageDb& idb, const Repositories& repos, const std::vector<Container>& cs,
                                    std::string parent, std::vector<std::string>& out) {
  while (!parent.empty() && idb.has(parent) && repos.refs_of(parent).empty() && !has_children(idb, parent, {})) {
    if (std::any_of(cs.begin(), cs.end(), [&](const Container& c) { return c.image_id == parent; })) return;
    std::string next = idb.parent(parent);
    idb.remove(parent);
    out.push_back("Deleted: " + parent);
    parent = next;
  }
}

RmiReport remove_images(const StoreLayout& l, const std::vector<std::string>& images, bool force) {
  RmiReport rep;
  if (!store_exists(l)) throw Error("no such image: " + images.at(0));
  RangeLock lock = write_lock_store(l, true);
  RangeLock index = lock_index(l.lock_file());
  ImageDb idb(l);
  Repositories repos = Repositories::load(l);
  // Resolve everything first: one bad name removes nothing.
  std::vector<std::pair<std::string, std::string>> targets;
  for (const auto& img : images) targets.emplace_back(img, idb.resolve(img, repos));
  std::set<std::string> by_id;  // deleted whatever their tags; their children do not block each other
  for (const auto& [arg, id] : targets) {
    auto ref = stored_reference(arg, repos);
    if (!ref || repos.lookup(*ref) != id) by_id.insert(id);
  }
  // As dockerd: an image other images were built or committed on cannot be deleted, not even
  // with -f (their layers sit on its chain); naming it by a tag only untags it (below).
  for (const auto& id : by_id)
    if (has_children(idb, id, by_id))
      throw Error("conflict: unable to delete " + id.substr(7, 12) + " (cannot be forced) - image has dependent child images");
  const std::vector<Container> containers = list_containers(l);
  if (!force) {
    for (const auto& c : containers)
      for (const auto& [arg, id] : targets)
        if (c.image_id == id && !(parse_reference(arg) && repos.refs_of(id).size() > 1))
          throw Error("image " + arg + " is used by container " + c.name + " (" + c.id.substr(0, 12) +
                      "): remove the container first or use -f");
  }
  for (const auto& [arg, id] : targets) {
    auto ref = stored_reference(arg, repos);  // "debian:12" may name localhost/debian:12
    bool by_ref = ref && repos.lookup(*ref) == id;
    auto refs = repos.refs_of(id);
    if (by_ref && refs.size() > 1) {
      // Docker: rmi of one of several tags only untags.
      repos.erase(*ref);
      rep.lines.push_back("Untagged: " + ref->str());
      continue;
    }
    if (!by_ref && refs.size() > 1 && !force)
      throw Error("image " + id.substr(7, 12) + " is referenced by " + std::to_string(refs.size()) +
                  " tags; use -f or remove the tags");
    if (by_ref && has_children(idb, id, by_id)) {
      repos.erase(*ref);
      rep.lines.push_back("Untagged: " + ref->str());
      continue;
    }
    for (const auto& r : refs) rep.lines.push_back("Untagged: " + r);
    std::string parent = idb.parent(id);
    repos.erase_image(id);
    idb.remove(id);
    rep.lines.push_back("Deleted: " + id);
    remove_orphaned_parents(idb, repos, containers, parent, rep.lines);
  }
  repos.save(l);
  remove_unreferenced_layers(l, rep.lines);
  return rep;
}

void tag_image(const StoreLayout& l, const std::string& src, const std::string& dst) {
  if (!store_exists(l)) throw Error("no such image: " + src);
  RangeLock lock = write_lock_store(l, false);
  RangeLock index = lock_index(l.lock_file());
  ImageDb idb(l);
  Repositories repos = Repositories::load(l);
  std::string id = idb.resolve(src, repos);
  auto ref = parse_reference(dst);
  if (!ref || !ref->digest.empty()) throw Error("invalid target reference \"" + dst + "\"");
  repos.set(*ref, id);
  repos.save(l);
  idb.put(id, idb.config(id));
}

}  // namespace strata
