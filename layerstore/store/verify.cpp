// `strata verify`: for each image, the config still hashes to its id, every layer's chain is
// indexed, its overlay2 dir, link and lower files agree with the layerdb, and the layer tar
// rebuilt from tar-split + diff dir hashes to the diff_id (so any changed byte is found). A
// lazy layer's blob is hashed instead: its sha256 must be the digest it was stored under and
// its decompressed stream must hash to the diff_id; its index must describe that blob.
#include <fcntl.h>
#include <sys/stat.h>

#include <set>

#include "layerstore/archive/digest.hpp"
#include "common/lazy/blob_index.hpp"
#include "layerstore/archive/fs_util.hpp"
#include "layerstore/archive/layer_unpack.hpp"
#include "layerstore/archive/tar_split.hpp"
#include "layerstore/error.hpp"
#include "layerstore/store/image_db.hpp"
#include "layerstore/store/layer_db.hpp"
#include "layerstore/store/lazy_layer.hpp"
#include "layerstore/store/maintenance.hpp"
#include "layerstore/store/store_lock.hpp"

namespace strata {

// The blob (digest, diff_id), the index and the descriptor of a lazy layer.
static void check_lazy_content(const LazyLayerPaths& p, const std::string& diff_id, const std::string& tag,
                               VerifyReport& rep) {
  try {
    LazyBlobInfo info = read_lazy_blob_info(p);
    auto file = std::make_shared<UniqueFd>(::open(p.blob.c_str(), O_RDONLY | O_CLOEXEC));
    if (!*file) throw_errno("open " + p.blob);
    struct stat st;
    if (fstat(file->get(), &st) != 0) throw_errno("stat " + p.blob);
    BlobRef blob{file, 0, uint64_t(st.st_size), p.blob};
    BlobHashes h;
    try {
      h = hash_layer_blob(blob, {});
    } catch (const Error& e) {
      rep.problems.push_back(tag + ": lazy-blob: " + e.what());
      return;
    }
    if (h.digest != info.digest) rep.problems.push_back(tag + ": lazy-blob hashes to " + h.digest + ", want " + info.digest);
    if (h.diff_id != diff_id) rep.problems.push_back(tag + ": lazy-blob content hashes to " + h.diff_id + ", want " + diff_id);
    std::string err;
    auto ix = lazy::load_index_file(p.index, err);
    if (!ix) rep.problems.push_back(tag + ": lazy-index: " + err);
    else if (ix->digest != info.digest || ix->diff_id != diff_id || ix->compressed_size != blob.length)
      rep.problems.push_back(tag + ": lazy-index describes another blob (" + ix->digest + ")");
    // Relative names (or, as load --lazy wrote them before, this store's absolute paths).
    std::string desc = read_file(p.descriptor);
    std::string absolute = "strata-lazy-layer 1\nindex=" + p.index + "\nblob=" + p.blob + "\noffset=0\n";
    if (desc != lazy_descriptor_text() && desc != absolute)
      rep.problems.push_back(tag + ": " + p.descriptor + " does not name its lazy-blob and lazy-index");
  } catch (const Error& e) {
    rep.problems.push_back(tag + ": " + e.what());
  }
}

static void check_layer(const StoreLayout& l, const LayerDb& db, const std::string& chain, const std::string& diff_id,
                        const std::string& parent_chain, VerifyReport& rep) {
  std::string tag = "layer " + chain.substr(7, 12);
  auto rec = db.get(chain);
  if (!rec) {
    rep.problems.push_back(tag + ": missing from layerdb");
    return;
  }
  rep.layers_checked++;
  if (rec->diff_id != diff_id) rep.problems.push_back(tag + ": layerdb diff is " + rec->diff_id + ", want " + diff_id);
  if (rec->parent != parent_chain) rep.problems.push_back(tag + ": layerdb parent is \"" + rec->parent + "\"");
  std::string odir = l.overlay2() + "/" + rec->cache_id;
  // Not `committed`: Docker writes that only into a layer something was created on.
  auto lazy = lazy_layer(l, rec->cache_id);
  if (!lazy && !db.unpacked(*rec)) {
    rep.problems.push_back(tag + ": overlay2/" + rec->cache_id + "/diff is missing");
    return;
  }
  std::string link = read_file(odir + "/link");
  char target[4096];
  ssize_t n = readlink((l.links() + "/" + link).c_str(), target, sizeof target - 1);
  if (n < 0 || std::string(target, n) != "../" + rec->cache_id + "/diff")
    rep.problems.push_back(tag + ": overlay2/l/" + link + " does not point at ../" + rec->cache_id + "/diff");
  std::string want_lower;
  if (!parent_chain.empty()) {
    if (auto p = db.get(parent_chain)) {
      std::string plink = db.link_id(p->cache_id);
      std::string plower = path_exists(l.overlay2() + "/" + p->cache_id + "/lower")
                               ? read_file(l.overlay2() + "/" + p->cache_id + "/lower") : "";
      want_lower = "l/" + plink + (plower.empty() ? "" : ":" + plower);
    }
  }
  std::string lower = path_exists(odir + "/lower") ? read_file(odir + "/lower") : "";
  if (lower != want_lower) rep.problems.push_back(tag + ": overlay2/" + rec->cache_id + "/lower is \"" + lower + "\", want \"" + want_lower + "\"");
  if (lazy) {
    check_lazy_content(*lazy, diff_id, tag, rep);
    return;
  }
  Sha256 h;
  uint64_t bytes = 0;
  try {
    UniqueFd diff = open_dir(odir + "/diff");
    assemble_tar_split(db.tar_split_path(chain), diff.get(), [&](const uint8_t* p, size_t len) {
      h.update(p, len);
      bytes += len;
    });
    std::string got = h.finish();
    if (got != diff_id) rep.problems.push_back(tag + ": content hashes to " + got + ", want " + diff_id);
  } catch (const Error& e) {
    rep.problems.push_back(tag + ": " + e.what());
  }
}

VerifyReport verify_store(const StoreLayout& l, const std::string& image) {
  VerifyReport rep;
  if (!store_exists(l)) throw Error("no store at " + l.root);
  RangeLock lock = read_lock_store(l);
  ImageDb idb(l);
  LayerDb db(l);
  Repositories repos = Repositories::load(l);
  std::vector<std::string> ids;
  if (image.empty()) ids = idb.ids();
  else ids.push_back(idb.resolve(image, repos));
  for (const auto& [name, refs] : repos.all())
    for (const auto& [ref, id] : refs)
      if (image.empty() && !idb.has(id)) rep.problems.push_back("repositories.json: " + ref + " points at missing image " + id);
  std::set<std::string> done;
  for (const auto& id : ids) {
    rep.images_checked++;
    std::string cfg;
    try {
      cfg = idb.config(id);
    } catch (const Error& e) {
      rep.problems.push_back(e.what());
      continue;
    }
    std::vector<std::string> diffs = config_diff_ids(cfg);
    std::vector<std::string> chains = chain_ids(diffs);
    for (size_t i = 0; i < chains.size(); i++) {
      if (!done.insert(chains[i]).second) continue;
      check_layer(l, db, chains[i], diffs[i], i ? chains[i - 1] : "", rep);
    }
  }
  return rep;
}

}  // namespace strata
