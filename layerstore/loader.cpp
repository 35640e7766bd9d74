#include "layerstore/loader.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

#include "layerstore/archive/digest.hpp"
#include "layerstore/archive/fs_util.hpp"
#include "layerstore/archive/layer_unpack.hpp"
#include "layerstore/archive/tar_split.hpp"
#include "layerstore/error.hpp"
#include "layerstore/lazy_layer_stage.hpp"
#include "layerstore/local_layer_source.hpp"
#include "layerstore/store/image_db.hpp"
#include "layerstore/store/layer_db.hpp"
#include "layerstore/store/lazy_layer.hpp"
#include "layerstore/store/store_lock.hpp"

namespace strata {
namespace {

struct StagedLayer {
  LayerRecord rec;
  std::string link;
  std::string lower;  // this layer's "lower" file content
  bool is_new = false;
  bool lazy = false;  // kept as blob + index (no diff/)
  std::vector<LocalLayerSource> local;  // same content under another chain: rebuilt, not fetched
};

// Staging dirs of one image load; removed unless the image was committed.
class StagingGuard {
 public:
  explicit StagingGuard(const LayerDb& db) : db_(db) {}
  ~StagingGuard() {
    if (committed_) return;
    for (const auto& c : chains_) {
      try {
        db_.clear_stale(c);
      } catch (...) {
      }
    }
  }
  void add(const std::string& chain) { chains_.push_back(chain); }
  void committed() { committed_ = true; }

 private:
  const LayerDb& db_;
  std::vector<std::string> chains_;
  bool committed_ = false;
};

std::string layer_label(size_t i, size_t n) { return "layer " + std::to_string(i + 1) + "/" + std::to_string(n); }

std::string layer_what(const ImageToLoad& img, size_t i) {
  return "layer " + std::to_string(i + 1) + " (" + img.layers[i].blob.name + ")";
}

uint64_t layer_length(const LayerToLoad& layer) {
  return layer.fetch && layer.size >= 0 ? static_cast<uint64_t>(layer.size) : layer.blob.length;
}

void check_size(const ImageToLoad& img, size_t i) {
  const LayerToLoad& layer = img.layers[i];
  if (layer.fetch) return;  // a download is checked by its digest
  if (layer.size >= 0 && static_cast<uint64_t>(layer.size) != layer.blob.length)
    throw Error(layer_what(img, i) + ": size mismatch (manifest says " + std::to_string(layer.size) +
                " bytes, blob has " + std::to_string(layer.blob.length) + ")");
}

// A layer already in the store is not unpacked again, but its blob must still be what the
// manifest and config say: it is hashed (not extracted), so any mismatch fails the load.
void check_reused_blob(const ImageToLoad& img, size_t i, Progress& progress) {
  const LayerToLoad& layer = img.layers[i];
  std::string what = layer_what(img, i);
  int bar = progress.begin_layer(layer_label(i, img.layers.size()) + " (verify)", layer.blob.length, "verifying");
  BlobHashes h;
  try {
    h = hash_layer_blob(layer.blob, [&](uint64_t done) { progress.update(bar, done); });
  } catch (const Error& e) {
    throw Error(what + ": " + e.what());
  }
  if (!layer.digest.empty() && h.digest != layer.digest)
    throw Error(what + ": digest mismatch (want " + layer.digest + ", got " + h.digest + ")");
  if (h.diff_id != img.diff_ids[i])
    throw Error(what + ": diff_id mismatch (want " + img.diff_ids[i] + ", got " + h.diff_id + ")");
  progress.end_layer(bar, "verified");
}

// Creates the staging pair of a layer: ids are chosen once (a retry reuses them), so the
// child's "lower" can be written before the parent is unpacked.
void prepare_staging(const LayerDb& db, StagedLayer& out, const StagedLayer* parent) {
  if (out.rec.cache_id.empty()) {
    out.rec.cache_id = random_hex_id();
    out.link = random_link_id();
  }
  if (parent) out.lower = "l/" + parent->link + (parent->lower.empty() ? "" : ":" + parent->lower);
  std::string odir = db.overlay_staging(out.rec.chain_id);
  std::string tdir = db.layerdb_staging(out.rec.chain_id);
  if (mkdir(tdir.c_str(), 0700) != 0) throw_errno("mkdir " + tdir);
  UniqueFd tfd = open_dir(tdir);
  // cache-id first: it lets a later run find an overlay2 dir a crashed commit left behind.
  write_file_at(tfd.get(), "cache-id", out.rec.cache_id, 0600);
  if (mkdir(odir.c_str(), 0700) != 0) throw_errno("mkdir " + odir);
  if (!out.lazy && mkdir((odir + "/diff").c_str(), 0755) != 0) throw_errno("mkdir " + odir + "/diff");
  UniqueFd ofd = open_dir(odir);
  write_file_at(ofd.get(), "link", out.link, 0644);
  if (!out.lower.empty()) write_file_at(ofd.get(), "lower", out.lower, 0644);
}

struct SharedState {
  std::mutex mu;
  LoadSummary& sum;
  std::atomic<bool> stop{false};
  uint64_t max_expansion = kDefaultMaxExpansion;
  const StoreLayout* layout = nullptr;
};

// A lazy layer: the blob copied (or downloaded) into the staging dir and indexed in the pass
// that verifies it; no diff/ and no tar-split (save and push send the blob itself). `local`:
// a lazy layer of the store holding the same blob (same digest) under another chain, copied
// instead of downloaded (and verified all the same).
// layerdb's diff, parent (none for a base layer) and size of a staged layer.
void write_layer_record(int layerdb_dir, const LayerRecord& rec, const std::string& parent_chain) {
  write_file_at(layerdb_dir, "diff", rec.diff_id, 0600);
  if (!parent_chain.empty()) write_file_at(layerdb_dir, "parent", parent_chain, 0600);
  write_file_at(layerdb_dir, "size", std::to_string(rec.size), 0600);
}

// Counts a staged layer as rebuilt locally or downloaded/read. Called with st.mu held.
void count_layer_source(SharedState& st, bool local, uint64_t compressed_bytes) {
  if (local) {
    st.sum.layers_local++;
  } else {
    st.sum.layers_new++;
    st.sum.bytes_read += compressed_bytes;
  }
}

void stage_lazy(const LayerDb& db, const ImageToLoad& img, size_t i, StagedLayer& out, const std::string& parent_chain,
                Progress& progress, SharedState& st, const LocalLayerSource* local) {
  const LayerToLoad& wanted = img.layers[i];
  LayerToLoad from_local;
  if (local) {
    LazyLayerPaths p = lazy_layer_paths_in(local->lazy_dir);
    auto file = std::make_shared<UniqueFd>(::open(p.blob.c_str(), O_RDONLY | O_CLOEXEC));
    if (!*file) throw_errno("open " + p.blob);
    struct stat sb;
    if (fstat(file->get(), &sb) != 0) throw_errno("stat " + p.blob);
    from_local = wanted;
    from_local.fetch = nullptr;
    from_local.blob = BlobRef{file, 0, uint64_t(sb.st_size), p.blob};
  }
  const LayerToLoad& layer = local ? from_local : wanted;
  std::string what = layer_what(img, i);
  int bar = progress.begin_layer(layer_label(i, img.layers.size()) + " (lazy" +
                                     (local ? ", from local " + local->chain_id.substr(0, 19) : std::string()) + ")",
                                 layer_length(layer), layer.fetch ? "downloading" : local ? "copying" : "indexing");
  LazyStageResult r;
  try {
    auto warn = [&](const std::string& w) { progress.message("warning: " + what + ": " + w); };
    auto prog = [&](uint64_t done) { progress.update(bar, done); };
    UnpackLimits limits;
    limits.max_expansion = st.max_expansion;
    limits.compressed_size = layer.size;
    auto poll = [&] {
      if (st.stop) throw Error("stopped: another layer failed");
    };
    r = stage_lazy_layer(db.overlay_staging(out.rec.chain_id), layer, warn, prog, limits, poll);
  } catch (const Error& e) {
    progress.end_layer(bar, "failed");
    throw Error(what + ": " + e.what());
  }
  auto fail = [&](const std::string& why) {
    progress.end_layer(bar, "failed");
    throw Error(what + ": " + why);
  };
  if (!layer.digest.empty() && r.digest != layer.digest) fail("digest mismatch (want " + layer.digest + ", got " + r.digest + ")");
  if (layer.size >= 0 && r.compressed_bytes != static_cast<uint64_t>(layer.size))
    fail("size mismatch (manifest says " + std::to_string(layer.size) + " bytes, got " + std::to_string(r.compressed_bytes) + ")");
  if (r.diff_id != out.rec.diff_id) fail("diff_id mismatch (want " + out.rec.diff_id + ", got " + r.diff_id + ")");
  out.rec.size = r.content_bytes;
  UniqueFd tfd = open_dir(db.layerdb_staging(out.rec.chain_id));
  write_layer_record(tfd.get(), out.rec, parent_chain);
  out.is_new = true;
  {
    std::lock_guard lk(st.mu);
    count_layer_source(st, local != nullptr, r.compressed_bytes);
    st.sum.layers_lazy++;
  }
  progress.end_layer(bar, "done: " + human_bytes(r.compressed_bytes) + " " + r.compression + " kept lazy (" +
                              human_bytes(r.uncompressed_bytes) + " tar), " + r.diff_id.substr(0, 19));
}

// `local`: rebuild the tar from that existing layer instead of fetching the blob. The
// rebuilt tar is uncompressed, so only its diff_id (from the verified config) is checked.
void unpack_staged(const LayerDb& db, const ImageToLoad& img, size_t i, StagedLayer& out, const std::string& parent_chain,
                   const WhiteoutStyle& style, Progress& progress, SharedState& st, const LocalLayerSource* local) {
  const LayerToLoad& layer = img.layers[i];
  std::string label = layer_label(i, img.layers.size());
  std::string what = layer_what(img, i);
  UniqueFd diff = open_dir(db.overlay_staging(out.rec.chain_id) + "/diff");
  int bar = local ? progress.begin_layer(label + " (from local " + local->chain_id.substr(0, 19) + ")", 0, "rebuilding")
                  : progress.begin_layer(label, layer_length(layer), layer.fetch ? "downloading" : "unpacking");
  UnpackResult r;
  try {
    auto warn = [&](const std::string& w) { progress.message("warning: " + what + ": " + w); };
    auto prog = [&](uint64_t done) { progress.update(bar, done); };
    if (layer.fetch || local) {
      BlobStream source = local ? local_layer_stream(*local) : layer.fetch;
      // Another layer's failure stops this download at its next chunk.
      BlobStream stream = [&](const BlobWriter& write) {
        source([&](const uint8_t* p, size_t n) {
          if (st.stop) throw Error("stopped: another layer failed");
          write(p, n);
        });
      };
      UnpackLimits limits;
      limits.max_expansion = local ? 0 : st.max_expansion;  // a local rebuild is a plain tar
      limits.compressed_size = layer.size;
      r = unpack_layer_stream(stream, diff.get(), style, warn, prog, limits);
    } else {
      UnpackLimits limits;
      limits.max_expansion = st.max_expansion;
      r = unpack_layer(layer.blob, diff.get(), style, warn, prog, limits);
    }
  } catch (const Error& e) {
    progress.end_layer(bar, "failed");
    throw Error(what + ": " + e.what());
  }
  auto fail = [&](const std::string& why) {
    progress.end_layer(bar, "failed");
    throw Error(what + ": " + why);
  };
  if (!local && !layer.digest.empty() && r.digest != layer.digest) fail("digest mismatch (want " + layer.digest + ", got " + r.digest + ")");
  if (!local && layer.fetch && layer.size >= 0 && r.compressed_bytes != static_cast<uint64_t>(layer.size))
    fail("size mismatch (manifest says " + std::to_string(layer.size) + " bytes, got " + std::to_string(r.compressed_bytes) + ")");
  if (r.diff_id != out.rec.diff_id) fail("diff_id mismatch (want " + out.rec.diff_id + ", got " + r.diff_id + ")");
  out.rec.size = r.stats.content_bytes;
  UniqueFd tfd = open_dir(db.layerdb_staging(out.rec.chain_id));
  write_layer_record(tfd.get(), out.rec, parent_chain);
  write_tar_split_gz(tfd.get(), "tar-split.json.gz", r.tar_split_json);
  out.is_new = true;
  {
    std::lock_guard lk(st.mu);
    count_layer_source(st, local != nullptr, r.compressed_bytes);
    st.sum.bytes_unpacked += r.uncompressed_bytes;
    st.sum.skipped_devices += r.stats.skipped_devices;
  }
  if (local)
    progress.end_layer(bar, "done: rebuilt " + human_bytes(r.uncompressed_bytes) + " locally, " + r.diff_id.substr(0, 19));
  else
    progress.end_layer(bar, "done: " + human_bytes(r.compressed_bytes) + " " + compression_name(r.compression) + " -> " +
                                human_bytes(r.uncompressed_bytes) + ", " + r.diff_id.substr(0, 19));
}

// Stages one layer (unpacked, or kept lazy): a remote one is first rebuilt from a local layer with the same
// content, if any; what fails is discarded, and a download is tried once more.
void stage_layer(const LayerDb& db, const ImageToLoad& img, size_t i, std::vector<StagedLayer>& staged,
                 const WhiteoutStyle& style, Progress& progress, SharedState& st) {
  std::string parent_chain = i ? staged[i - 1].rec.chain_id : "";
  auto restage = [&] {
    db.clear_stale(staged[i].rec.chain_id);
    prepare_staging(db, staged[i], i ? &staged[i - 1] : nullptr);
  };
  // Kept lazy (blob + index) or unpacked: the same fallbacks either way.
  auto stage_from = [&](const LocalLayerSource* local) {
    if (staged[i].lazy)
      stage_lazy(db, img, i, staged[i], parent_chain, progress, st, local);
    else
      unpack_staged(db, img, i, staged[i], parent_chain, style, progress, st, local);
  };
  for (const auto& local : std::vector<LocalLayerSource>(staged[i].local)) {
    try {
      stage_from(&local);
      return;
    } catch (const Error& e) {
      if (st.stop) throw;
      progress.message(std::string(e.what()) + "; discarded, downloading instead");
      restage();
    }
  }
  int attempts = img.layers[i].fetch ? 2 : 1;
  for (int a = 1;; a++) {
    try {
      stage_from(nullptr);
      return;
    } catch (const Error& e) {
      if (a >= attempts || st.stop) throw;
      progress.message(std::string(e.what()) + "; discarded, retrying once");
      restage();
    }
  }
}

void load_one(const StoreLayout& l, const ImageToLoad& img, Progress& progress, LoadSummary& sum, int jobs,
              uint64_t max_expansion, bool lazy) {
  LayerDb db(l);
  ImageDb idb(l);
  std::vector<std::string> chains = chain_ids(img.diff_ids);
  std::vector<RangeLock> chain_locks;
  std::vector<StagedLayer> staged(img.layers.size());
  StagingGuard guard(db);
  std::optional<WhiteoutStyle> style;
  std::vector<size_t> todo;
  std::optional<LocalLayerIndex> local_index;  // built at the first layer to fetch
  for (size_t i = 0; i < img.layers.size(); i++) {
    // Chain-ids of a shared base are a shared prefix, so every load takes these locks in
    // the same order: no deadlock, and the second load finds the layer committed.
    chain_locks.push_back(lock_chain(l.lock_file(), chains[i]));
    check_size(img, i);
    StagedLayer& s = staged[i];
    s.rec.chain_id = chains[i];
    s.rec.diff_id = img.diff_ids[i];
    // A layer present unpacked or lazy is reused as it is (`strata unpack` turns a lazy one
    // into an unpacked one).
    if (auto existing = db.get(chains[i]); existing && (db.unpacked(*existing) || lazy_layer(l, existing->cache_id))) {
      if (!img.layers[i].fetch) check_reused_blob(img, i, progress);
      s.rec = *existing;
      s.link = db.link_id(existing->cache_id);
      std::string lower_path = l.overlay2() + "/" + existing->cache_id + "/lower";
      s.lower = path_exists(lower_path) ? read_file(lower_path) : "";
      sum.layers_reused++;
      progress.message(layer_label(i, img.layers.size()) + ": already present" +
                       (db.unpacked(*existing) ? "" : " (lazy)") + " (" + chains[i].substr(0, 19) + ")");
      continue;
    }
    db.clear_stale(chains[i]);
    guard.add(chains[i]);
    s.lazy = lazy;
    prepare_staging(db, s, i ? &staged[i - 1] : nullptr);
    if (img.layers[i].fetch) {
      if (!local_index) local_index.emplace(l);
      s.local = local_index->find(s.rec.diff_id, s.rec.chain_id);
      // Kept lazy, a layer is the blob the manifest names: only a lazy layer holding that
      // very blob can stand in for the download.
      if (lazy)
        std::erase_if(s.local, [&](const LocalLayerSource& src) {
          try {
            return src.lazy_dir.empty() ||
                   read_lazy_blob_info(lazy_layer_paths_in(src.lazy_dir)).digest != img.layers[i].digest;
          } catch (const Error&) {
            return true;  // verify reports it; the blob is downloaded instead
          }
        });
    }
    if (!style && !lazy) style = detect_whiteout_style(open_dir(db.overlay_staging(chains[i])).get());
    todo.push_back(i);
  }
  if (!style) style = WhiteoutStyle{};  // unused by lazy layers
  SharedState st{{}, sum};
  st.max_expansion = max_expansion;
  st.layout = &l;
  if (jobs <= 1 || todo.size() <= 1) {
    for (size_t i : todo) stage_layer(db, img, i, staged, *style, progress, st);
  } else {
    std::atomic<size_t> next{0};
    std::exception_ptr first_error;
    auto worker = [&] {
      for (;;) {
        size_t k = next++;
        if (k >= todo.size() || st.stop) return;
        try {
          stage_layer(db, img, todo[k], staged, *style, progress, st);
        } catch (...) {
          std::lock_guard lk(st.mu);
          if (!first_error) first_error = std::current_exception();
          st.stop = true;
        }
      }
    };
    std::vector<std::thread> pool;
    for (int t = 0; t < std::min<int>(jobs, static_cast<int>(todo.size())); t++) pool.emplace_back(worker);
    for (auto& t : pool) t.join();
    if (first_error) std::rethrow_exception(first_error);
  }
  RangeLock index = lock_index(l.lock_file());
  for (const auto& s : staged)
    if (s.is_new) db.commit(s.rec, s.link);
  guard.committed();
  idb.put(img.image_id, img.config);
  for (size_t i = 0; i < img.layers.size(); i++)
    if (!img.layers[i].digest.empty() && img.layers[i].digest != img.diff_ids[i])
      idb.record_distribution(img.layers[i].digest, img.diff_ids[i], img.source_repo);
  Repositories repos = Repositories::load(l);
  for (const auto& t : img.tags) repos.set(t, img.image_id);
  repos.save(l);
  sum.images++;
  sum.image_ids.push_back(img.image_id);
  if (img.tags.empty()) sum.loaded.push_back("Loaded image ID: " + img.image_id);
  for (const auto& t : img.tags) sum.loaded.push_back("Loaded image: " + t.str());
}

}  // namespace

LoadSummary load_images(const StoreLayout& l, const LoadOptions& opts, Progress& progress) {
  auto start = std::chrono::steady_clock::now();
  l.ensure_skeleton();
  LoadSummary sum;
  std::vector<ImageToLoad> images;
  std::unique_ptr<InputFiles> files;
  if (!opts.registry_dir.empty()) {
    images.push_back(read_registry_dir(opts.registry_dir, *opts.registry_ref, opts.platform));
  } else {
    files = open_input_files(opts.input, l.layerdb_tmp(), opts.max_stdin_bytes);
    images = read_any_archive(*files, opts.input, opts.platform);
  }
  if (opts.one_image && images.size() != 1)
    throw Error("it holds " + std::to_string(images.size()) + " images; give an archive of one");
  if (opts.tag) {
    if (images.size() != 1) throw Error("--tag needs an input with exactly one image (found " + std::to_string(images.size()) + ")");
    images[0].tags.push_back(*opts.tag);
  }
  RangeLock store = lock_store(l.lock_file(), false);
  for (const auto& img : images) {
    try {
      // Lazy layers are indexed two at a time, as mount --lazy does (each pass decompresses on
      // one thread and reads the tar on another).
      load_one(l, img, progress, sum, opts.lazy ? 2 : 1, opts.max_expansion, opts.lazy);
    } catch (const Error& e) {
      if (sum.images == 0) throw Error(std::string(e.what()) + "; nothing was imported");
      throw Error(std::string(e.what()) + "; " + std::to_string(sum.images) + " earlier image(s) were imported");
    }
  }
  sum.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return sum;
}

void store_image(const StoreLayout& l, const ImageToLoad& img, Progress& progress, LoadSummary& sum, int jobs,
                 uint64_t max_expansion, bool lazy) {
  l.ensure_skeleton();
  RangeLock store = lock_store(l.lock_file(), false);
  try {
    load_one(l, img, progress, sum, jobs, max_expansion, lazy);
  } catch (const Error& e) {
    throw Error(std::string(e.what()) + "; nothing was imported");
  }
}

}  // namespace strata
