#include "layerstore/container/commit.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <memory>

#include "layerstore/archive/blob_ref.hpp"
#include "layerstore/archive/digest.hpp"
#include "layerstore/archive/fs_util.hpp"
#include "layerstore/archive/layer_unpack.hpp"
#include "layerstore/archive/tar_split.hpp"
#include "layerstore/container/config_change.hpp"
#include "layerstore/container/layer_export.hpp"
#include "layerstore/error.hpp"
#include "layerstore/progress.hpp"
#include "layerstore/store/image_db.hpp"
#include "layerstore/store/layer_db.hpp"
#include "layerstore/store/lazy_layer.hpp"
#include "layerstore/store/store_lock.hpp"
#include "layerstore/timestamp.hpp"

namespace strata {

using nlohmann::json;

namespace {

// Removes the temp tar and, unless committed, the layer's staging.
struct CommitStaging {
  const LayerDb& db;
  std::string tar, chain;
  bool committed = false;
  ~CommitStaging() {
    if (!tar.empty()) unlink(tar.c_str());
    if (!committed && !chain.empty()) {
      try {
        db.clear_stale(chain);
      } catch (...) {
      }
    }
  }
};

}  // namespace

CommitResult commit_container(const StoreLayout& l, const Container& c, const std::string& tag,
                              const std::string& comment, const std::vector<std::string>& changes,
                              Progress* progress) {
  json checked;  // a bad --change fails here, before anything is written
  apply_config_changes(checked, changes);
  std::optional<Reference> ref;
  if (!tag.empty()) {
    ref = parse_reference(tag);
    if (!ref || !ref->digest.empty()) throw Error("invalid reference \"" + tag + "\" (want NAME[:TAG])");
  }
  RangeLock store = write_lock_store(l, false);
  ImageDb idb(l);
  LayerDb db(l);
  std::string base_cfg_bytes = idb.config(c.image_id);
  std::vector<std::string> diffs = config_diff_ids(base_cfg_bytes);
  std::string parent_chain = chain_ids(diffs).back();
  auto parent = db.get(parent_chain);
  if (!parent) throw Error("image layer " + parent_chain + " is missing");

  CommitStaging st{db, l.layerdb_tmp() + "/commit-" + c.id + ".tar", "", false};
  UniqueFd tar(open(st.tar.c_str(), O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!tar) throw_errno("create " + st.tar);
  std::string rw_diff = c.rw_dir(l) + "/diff";
  LayerBar export_bar(progress, "layer of " + c.name, progress ? estimate_tar_bytes(rw_diff) : 0, "exporting");
  ExportResult ex = export_layer_tar(rw_diff, tar.get(), [&](uint64_t n) { export_bar.update(n); });
  export_bar.done("exported: " + human_bytes(static_cast<double>(ex.tar_bytes)));

  CommitResult res;
  res.diff_id = ex.diff_id;
  res.gzip_digest = ex.gzip_digest;
  res.chain_id = chain_id(parent_chain, ex.diff_id);
  RangeLock chain_lock = lock_chain(l.lock_file(), res.chain_id);
  std::optional<LayerRecord> existing = db.get(res.chain_id);
  // A layer already stored, unpacked or lazy (then as the blob it was loaded with), is used as it is.
  if (existing && (db.unpacked(*existing) || lazy_layer(l, existing->cache_id))) {
    res.layer_reused = true;
  } else {
    // Unpack our own tar into a staged layer: the same path as `load`, so diff_id,
    // tar-split and the on-disk whiteout form are exactly what a loaded layer has.
    db.clear_stale(res.chain_id);
    st.chain = res.chain_id;
    LayerRecord rec;
    rec.chain_id = res.chain_id;
    rec.diff_id = ex.diff_id;
    rec.parent = parent_chain;
    rec.cache_id = random_hex_id();
    std::string link = random_link_id();
    std::string odir = db.overlay_staging(rec.chain_id), tdir = db.layerdb_staging(rec.chain_id);
    if (mkdir(tdir.c_str(), 0700) != 0) throw_errno("mkdir " + tdir);
    UniqueFd tfd = open_dir(tdir);
    write_file_at(tfd.get(), "cache-id", rec.cache_id, 0600);
    if (mkdir(odir.c_str(), 0700) != 0 || mkdir((odir + "/diff").c_str(), 0755) != 0) throw_errno("mkdir " + odir);
    UniqueFd ofd = open_dir(odir);
    write_file_at(ofd.get(), "link", link, 0644);
    std::string plower = l.overlay2() + "/" + parent->cache_id + "/lower";
    write_file_at(ofd.get(), "lower",
                  "l/" + db.link_id(parent->cache_id) + (path_exists(plower) ? ":" + read_file(plower) : ""), 0644);
    UniqueFd diff = open_dir(odir + "/diff");
    BlobRef blob{std::make_shared<UniqueFd>(std::move(tar)), 0, ex.tar_bytes, "committed layer"};
    LayerBar unpack_bar(progress, "layer " + ex.diff_id.substr(0, 19), ex.tar_bytes, "unpacking");
    UnpackResult r = unpack_layer(blob, diff.get(), detect_whiteout_style(ofd.get()), [](const std::string&) {},
                                  [&](uint64_t n) { unpack_bar.update(n); });
    unpack_bar.done("unpacked");
    if (r.diff_id != ex.diff_id) throw Error("committed layer re-reads as " + r.diff_id + ", wrote " + ex.diff_id);
    rec.size = r.stats.content_bytes;
    write_file_at(tfd.get(), "diff", rec.diff_id, 0600);
    write_file_at(tfd.get(), "parent", rec.parent, 0600);
    write_file_at(tfd.get(), "size", std::to_string(rec.size), 0600);
    write_tar_split_gz(tfd.get(), "tar-split.json.gz", r.tar_split_json);
    RangeLock index = lock_index(l.lock_file());
    db.commit(rec, link);
    st.committed = true;
  }

  json cfg = json::parse(base_cfg_bytes);
  std::string created = rfc3339_now();
  cfg["created"] = created;
  cfg["container"] = c.id;
  json& ic = cfg["config"];
  if (!ic.is_object()) ic = json::object();
  const json& cc = c.cfg["Config"];
  for (const char* k : {"Env", "Cmd", "Entrypoint", "WorkingDir", "User"})
    if (cc.contains(k)) ic[k] = cc[k];
  apply_config_changes(ic, changes);
  cfg["rootfs"]["diff_ids"].push_back(ex.diff_id);
  if (!cfg.contains("history") || !cfg["history"].is_array()) cfg["history"] = json::array();
  json h = {{"created", created}, {"created_by", "strata commit " + c.name}};
  if (!comment.empty()) h["comment"] = comment;
  cfg["history"].push_back(h);
  std::string bytes = cfg.dump();
  res.image_id = sha256_digest(bytes);
  RangeLock index = lock_index(l.lock_file());
  idb.put(res.image_id, bytes);
  write_file_atomic(l.imagedb_metadata() + "/" + digest_hex(res.image_id) + "/parent", c.image_id, 0600);
  if (ref) {
    Repositories repos = Repositories::load(l);
    repos.set(*ref, res.image_id);
    repos.save(l);
  }
  return res;
}

}  // namespace strata
