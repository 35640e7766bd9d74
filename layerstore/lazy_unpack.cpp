#include "layerstore/lazy_unpack.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "layerstore/archive/digest.hpp"
#include "layerstore/archive/fs_util.hpp"
#include "layerstore/archive/tar_split.hpp"
#include "layerstore/archive/whiteout.hpp"
#include "layerstore/error.hpp"
#include "layerstore/store/image_db.hpp"
#include "layerstore/store/layer_db.hpp"
#include "layerstore/store/lazy_layer.hpp"
#include "layerstore/store/store_lock.hpp"

namespace strata {

namespace {

// What a crash between renaming diff/ in and removing the lazy files left behind.
void remove_lazy_files(const std::string& dir) {
  LazyLayerPaths p = lazy_layer_paths_in(dir);
  bool any = false;
  for (const auto& f : {p.descriptor, p.blob, p.index, p.digest})
    if (unlink(f.c_str()) == 0) any = true;
  if (any) fsync_dir(dir);
}

void unpack_one(const StoreLayout& l, const LayerRecord& rec, const LazyLayerPaths& lp, const std::string& label,
                Progress& progress, uint64_t max_expansion, UnpackImageSummary& sum) {
  LayerDb db(l);
  LazyBlobInfo info = read_lazy_blob_info(lp);
  auto file = std::make_shared<UniqueFd>(::open(lp.blob.c_str(), O_RDONLY | O_CLOEXEC));
  if (!*file) throw_errno("open " + lp.blob);
  struct stat st;
  if (fstat(file->get(), &st) != 0) throw_errno("stat " + lp.blob);
  BlobRef blob{file, 0, uint64_t(st.st_size), lp.blob};

  // Extracted under overlay2/.staging (same filesystem), renamed to overlay2/<id>/diff.
  std::string stage = l.overlay_staging() + "/unpack-" + rec.cache_id;
  remove_tree(stage);
  if (mkdir(stage.c_str(), 0700) != 0) throw_errno("mkdir " + stage);
  struct Cleanup {
    std::string dir;
    ~Cleanup() {
      try {
        remove_tree(dir);
      } catch (...) {
      }
    }
  } cleanup{stage};
  std::string staged_diff = stage + "/diff";
  if (mkdir(staged_diff.c_str(), 0755) != 0) throw_errno("mkdir " + staged_diff);
  WhiteoutStyle style = detect_whiteout_style(open_dir(stage).get());

  int bar = progress.begin_layer(label, blob.length, "unpacking");
  UnpackResult r;
  try {
    UniqueFd diff = open_dir(staged_diff);
    UnpackLimits limits;
    limits.max_expansion = max_expansion;
    r = unpack_layer(
        blob, diff.get(), style, [&](const std::string& w) { progress.message("warning: " + label + ": " + w); },
        [&](uint64_t done) { progress.update(bar, done); }, limits);
    if (r.digest != info.digest) throw Error("lazy-blob hashes to " + r.digest + ", want " + info.digest);
    if (r.diff_id != rec.diff_id) throw Error("diff_id mismatch (want " + rec.diff_id + ", got " + r.diff_id + ")");
    // The diff's data on disk before the name that publishes it (a crash shows the layer
    // lazy or complete).
    if (syncfs(diff.get()) != 0) throw_errno("syncfs " + staged_diff);
  } catch (const Error& e) {
    progress.end_layer(bar, "failed");
    throw Error(label + ": " + e.what());
  }

  std::string entry = l.layerdb() + "/" + digest_hex(rec.chain_id);
  {
    UniqueFd tfd = open_dir(entry);
    write_tar_split_gz(tfd.get(), "tar-split.json.gz.tmp", r.tar_split_json);
    UniqueFd f(openat(tfd.get(), "tar-split.json.gz.tmp", O_RDONLY | O_CLOEXEC));
    if (!f || fsync(f.get()) != 0) throw_errno("fsync " + entry + "/tar-split.json.gz.tmp");
    if (renameat(tfd.get(), "tar-split.json.gz.tmp", tfd.get(), "tar-split.json.gz") != 0)
      throw_errno("rename " + entry + "/tar-split.json.gz");
    if (r.stats.content_bytes != rec.size) write_file_atomic(entry + "/size", std::to_string(r.stats.content_bytes), 0600);
    fsync_dir(entry);
  }
  {
    RangeLock index = lock_index(l.lock_file());
    std::string final_diff = lp.dir + "/diff";
    if (rename(staged_diff.c_str(), final_diff.c_str()) != 0) throw_errno("rename " + staged_diff + " -> " + final_diff);
    fsync_dir(lp.dir);
    remove_lazy_files(lp.dir);
  }
  sum.layers_unpacked++;
  sum.bytes_unpacked += r.uncompressed_bytes;
  progress.end_layer(bar, "done: " + human_bytes(r.compressed_bytes) + " -> " + human_bytes(r.uncompressed_bytes) + ", " +
                              rec.diff_id.substr(0, 19));
}

}  // namespace

UnpackImageSummary unpack_lazy_image(const StoreLayout& l, const std::string& image, Progress& progress,
                                     uint64_t max_expansion) {
  if (!store_exists(l)) throw Error("no store at " + l.root);
  // Exclusive: a mount or container being set up resolves each layer to its descriptor or its
  // diff/ under the shared lock, and must not see a layer change between the two. Mounts
  // already running keep their blobs open.
  RangeLock store = write_lock_store(l, true);
  ImageDb idb(l);
  LayerDb db(l);
  std::string id = idb.resolve(image, Repositories::load(l));
  std::vector<std::string> chains = chain_ids(config_diff_ids(idb.config(id)));
  UnpackImageSummary sum;
  for (size_t i = 0; i < chains.size(); i++) {
    std::string label = "layer " + std::to_string(i + 1) + "/" + std::to_string(chains.size());
    RangeLock chain = lock_chain(l.lock_file(), chains[i]);
    auto rec = db.get(chains[i]);
    if (!rec) throw Error(label + ": " + chains[i] + " is not in the layerdb");
    if (db.unpacked(*rec)) {
      remove_lazy_files(l.overlay2() + "/" + rec->cache_id);
      sum.layers_already++;
      continue;
    }
    auto lp = lazy_layer(l, rec->cache_id);
    if (!lp) throw Error(label + ": overlay2/" + rec->cache_id + " has neither diff/ nor a lazy blob");
    unpack_one(l, *rec, *lp, label, progress, max_expansion, sum);
  }
  return sum;
}

}  // namespace strata
