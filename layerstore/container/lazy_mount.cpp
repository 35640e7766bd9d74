#include "layerstore/container/lazy_mount.hpp"

#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <climits>
#include <cstdlib>
#include <exception>
#include <mutex>
#include <thread>

#include "common/lazy/blob_file_identity.hpp"
#include "common/lazy/blob_index.hpp"
#include "common/lazy/trusted_file.hpp"
#include "layerstore/archive/digest.hpp"
#include "layerstore/archive/fs_util.hpp"
#include "layerstore/archive/layer_index_build.hpp"
#include "layerstore/archive/layer_unpack.hpp"
#include "layerstore/container/fuse_mount.hpp"
#include "layerstore/error.hpp"
#include "layerstore/sources/input_files.hpp"

namespace strata {

namespace {

// The file strata-fs can open to read a blob: the archive or blob file itself. An input
// that had to be spooled (stdin, a compressed archive) lives in an unlinked temp file that
// no other process can name.
std::string blob_file_path(const BlobRef& blob) {
  char buf[PATH_MAX];
  std::string link = "/proc/self/fd/" + std::to_string(blob.file->get());
  ssize_t n = readlink(link.c_str(), buf, sizeof buf - 1);
  if (n < 0) throw_errno("readlink " + link);
  std::string path(buf, size_t(n));
  if (path.empty() || path[0] != '/' || path.ends_with(" (deleted)"))
    throw Error("a lazy mount reads blobs in place: give an uncompressed archive file or a directory");
  return path;
}

// A layer's name in the key of its verified/ record: its digest; a docker-archive names none,
// so its diff_id, size and compression.
std::string cache_name(const LayerToLoad& layer, const std::string& diff_id) {
  if (!layer.digest.empty()) return "sha256-" + digest_hex(layer.digest);
  uint8_t head[4] = {};
  ssize_t got = pread(layer.blob.file->get(), head, std::min<uint64_t>(4, layer.blob.length), off_t(layer.blob.offset));
  char kind = got >= 2 && head[0] == 0x1f && head[1] == 0x8b ? 'g' : got == 4 && head[0] == 0x28 ? 'z' : 'p';
  return "diff-" + digest_hex(diff_id) + "-" + std::to_string(layer.blob.length) + "-" + kind;
}

// Where the index of the blob with this digest is cached. Every index is named by its blob's
// digest, a docker-archive's too: its manifest names no digest, so the verified/ record of its
// file names the one its pass computed. (Named by diff_id, size and compression, two archives
// holding the same tar compressed apart into blobs of one size shared one index: the second
// one's replaced the first's, and the first, still recorded as verified, was read through the
// other blob's checkpoints: EIO or other bytes.)
std::string index_path(const std::string& index_dir, const std::string& digest) {
  return index_dir + "/sha256-" + digest_hex(digest);
}

// The blob digest a verified/ record names, or "" (none, or a record of another form).
std::string recorded_digest(const std::string& marker) {
  if (!path_exists(marker)) return "";
  std::string text = read_file(marker);
  if (!text.starts_with("sha256:") || !text.ends_with("\n")) return "";
  return text.substr(0, text.size() - 1);
}

// Whether the cached index at `path` describes this blob (of digest `digest`). Only its header
// and names are read: strata-fs builds the index when it mounts the layer.
bool cached_index(const std::string& path, const LayerToLoad& layer, const std::string& diff_id,
                  const std::string& digest, const NoteFn& note) {
  if (!path_exists(path)) return false;
  std::string err;
  auto ix = lazy::read_index_summary(path, err);
  if (!ix) {
    note("ignoring cached index " + path + ": " + err);
    return false;
  }
  // Else another blob under that name: verify this one from scratch.
  return ix->compressed_size == layer.blob.length && ix->diff_id == diff_id && ix->digest == digest;
}

std::string layer_what(size_t i, const LayerToLoad& layer) {
  return "layer " + std::to_string(i + 1) + " (" + layer.blob.name + ")";
}

// The identity of the file holding the blob (blob_file_identity.hpp). A lazy mount reads the
// blob in place for as long as it is mounted, long after its digest was checked: a user who
// can write the file could change what the mount serves (set-uid programs included) at any
// time. So it must be a file only the caller or root can write.
lazy::BlobFileIdentity private_blob_file(const BlobRef& blob, const std::string& what) {
  struct stat st {};
  if (fstat(blob.file->get(), &st) != 0) throw_errno("stat " + blob.name);
  std::string who = lazy::other_writers(st, geteuid());
  if (!who.empty())
    throw Error(what + ": " + who + ": a lazy mount reads it in place, where another user could change it once verified" +
                " (copy it, or strata load --lazy)");
  return lazy::BlobFileIdentity::of(st);
}

// The cache decides what a lazy mount serves without reading the blob again (an index says
// which files, owners and modes a layer has; verified/ lets a known file skip the hash), and
// strata writes into it as the caller, root too. So it must be the caller's alone: the cache
// and its index/, verified/ and mounts/ real directories of the caller's that nobody else
// can write, below directories that only the caller or root can change (a sticky /tmp is
// fine). A cache another user can write is refused, not used: they could plant an index that
// makes a set-uid root shell of a blob's bytes, or a symlink that strata writes through.
// Returns the cache's real path, used from then on.
std::string private_cache_dir(const std::string& given) {
  uid_t me = geteuid();
  auto check = [&](const std::string& path, bool own, bool follow = false) {
    struct stat st {};
    if ((follow ? stat(path.c_str(), &st) : lstat(path.c_str(), &st)) != 0) throw_errno(path);
    std::string who = !S_ISDIR(st.st_mode)     ? "not a directory"
                      : own && st.st_uid != me ? "owned by uid " + std::to_string(st.st_uid)
                                               : lazy::other_writers(st, me, !own);
    if (!who.empty())
      throw Error("cache dir " + path + ": " + who + ": a lazy mount's cache must be yours alone (--root, $XDG_CACHE_HOME)");
  };
  // "/" and the directories above `path` that exist; `follow`: the path as given, symlinks in
  // it followed (each directory a name is looked up in, the real path's below).
  auto check_above = [&](const std::string& path, bool follow = false) {
    check("/", false);
    for (size_t slash = 0; (slash = path.find('/', slash + 1)) != std::string::npos && path_exists(path.substr(0, slash));)
      check(path.substr(0, slash), false, follow);
  };
  // Nothing is made before the part of the path that exists is known safe: no directory is
  // created in, or through a symlink in, a directory another user can change.
  check_above(given, true);
  std::string existing = given, rest;
  while (!path_exists(existing)) {
    size_t slash = existing.rfind('/');
    if (slash == std::string::npos) throw Error("cache dir " + given + ": not an absolute path");
    if (existing.substr(slash + 1) == "..") throw Error("cache dir " + given + ": \"..\" below a directory to be made");
    rest = existing.substr(slash) + rest;
    existing.resize(slash == 0 ? 1 : slash);
  }
  char real[PATH_MAX];
  if (!realpath(existing.c_str(), real)) throw_errno(existing);
  std::string cache = (std::string(real) == "/" ? "" : std::string(real)) + rest;
  check_above(cache);
  if (rest.empty()) check(cache, true);
  for (const char* sub : {"/index", "/verified", "/mounts"}) mkdirs(cache + sub, 0700);
  if (!realpath(cache.c_str(), real)) throw_errno(cache);
  cache = real;
  check_above(cache);
  for (const char* sub : {"", "/index", "/verified", "/mounts"}) check(cache + sub, true);
  return cache;
}

// The cache's record that this blob, in this file as it is now (blob_file_identity.hpp), was
// verified: present, the cached index serves it without reading it; absent, the blob is
// verified first, as another file naming the same digest has to be.
std::string verified_marker(const std::string& cache, const std::string& index_name, const BlobRef& blob,
                            const lazy::BlobFileIdentity& id) {
  std::string key = index_name + "\n" + std::to_string(blob.offset) + "\n" + std::to_string(blob.length) + "\n" + id.str();
  return cache + "/verified/" + digest_hex(sha256_digest(key));
}

// A cached index's blob in a file not verified yet: its digest checked, no index rebuilt
// (the index follows from the blob's bytes, which the digest fixes).
void verify_digest(const LayerToLoad& layer, const std::string& what) {
  Sha256 h;
  blob_file_stream(layer.blob)([&](const uint8_t* p, size_t n) { h.update(p, n); });
  std::string got = h.finish();
  if (got != layer.digest) throw Error(what + ": digest mismatch (want " + layer.digest + ", got " + got + ")");
}

// One pass over the blob: its index, checked against the digest and diff_id the image
// names, written to the cache only when both match. Returns the blob's digest.
std::string index_layer(const LayerToLoad& layer, const std::string& diff_id, const std::string& what,
                        const std::string& index_dir, uint64_t max_expansion, const NoteFn& note) {
  lazy::BlobIndex ix;
  try {
    IndexBuildOptions options;
    options.limits.max_expansion = max_expansion;
    options.around_page_cache = true;  // the archive's blobs are read once, in place
    ix = build_blob_index(layer.blob, note, {}, options);
  } catch (const Error& e) {
    throw Error(what + ": " + e.what());
  }
  if (!layer.digest.empty() && ix.digest != layer.digest)
    throw Error(what + ": digest mismatch (want " + layer.digest + ", got " + ix.digest + ")");
  if (ix.diff_id != diff_id) throw Error(what + ": diff_id mismatch (want " + diff_id + ", got " + ix.diff_id + ")");
  // Two layers of one image may be one blob in two places (a docker-archive's members): two
  // threads then write the same index, each renaming its own temporary file over it.
  write_file_atomic(index_path(index_dir, ix.digest), ix.serialize(), 0600);
  return ix.digest;
}

// strata-fs runs in "/" and takes the descriptors' paths as given: a relative --root (or
// $STRATA_ROOT...) is made absolute.
std::string absolute_path(const std::string& p) {
  if (p.empty() || p[0] == '/') return p;
  char cwd[PATH_MAX];
  if (!getcwd(cwd, sizeof cwd)) throw_errno("getcwd");
  return std::string(cwd) + "/" + p;
}

std::string lazy_cache_dir_as_given(const std::string& explicit_root) {
  if (!explicit_root.empty()) return explicit_root + "/lazy";
  if (const char* r = std::getenv("STRATA_ROOT"); r && *r) return std::string(r) + "/lazy";
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return std::string(x) + "/strata/lazy";
  const char* home = std::getenv("HOME");
  if (!home || !*home) throw Error("no cache dir for lazy indexes: set $XDG_CACHE_HOME or $HOME, or --root");
  return std::string(home) + "/.cache/strata/lazy";
}

}  // namespace

std::string lazy_cache_dir(const std::string& explicit_root) {
  return absolute_path(lazy_cache_dir_as_given(explicit_root));
}

std::string mount_lazy(const LazyMountOptions& opts, const NoteFn& note) {
  auto files = open_input_files(opts.input, "/tmp", 0);
  auto images = read_any_archive(*files, opts.input, opts.platform);
  if (images.empty()) throw Error("no image in it");
  if (images.size() > 1)
    throw Error("it holds " + std::to_string(images.size()) + " images; a lazy mount takes an archive of one");
  const ImageToLoad& img = images.front();
  if (img.layers.empty()) throw Error("image has no layers");
  if (img.layers.size() != img.diff_ids.size()) throw Error("manifest and config disagree on the number of layers");

  const std::string cache = private_cache_dir(opts.cache);
  std::string index_dir = cache + "/index";
  std::vector<std::string> descriptors;  // bottom first
  std::string state = cache + "/mounts";
  std::string tmpl = state + "/" + digest_hex(img.image_id).substr(0, 12) + "-XXXXXX";
  if (!mkdtemp(tmpl.data())) throw_errno("mkdtemp " + tmpl);
  std::string desc_dir = tmpl;
  struct Cleanup {
    std::string dir;
    ~Cleanup() { remove_tree_forced(dir); }
  } cleanup{desc_dir};

  // Layers whose index is not cached yet are verified and indexed two at a time (each pass
  // is one thread of decompression and hashing).
  std::vector<std::string> paths(img.layers.size()), markers(img.layers.size());
  std::vector<lazy::BlobFileIdentity> ids(img.layers.size());
  std::vector<size_t> todo;     // to index: a full pass
  std::vector<bool> digest_only(img.layers.size());  // of those, the index is cached: the digest alone
  for (size_t i = 0; i < img.layers.size(); i++) {
    const LayerToLoad& layer = img.layers[i];
    if (layer.size >= 0 && uint64_t(layer.size) != layer.blob.length)
      throw Error(layer_what(i, layer) + ": size mismatch (the manifest says " + std::to_string(layer.size) +
                  " bytes, the blob has " + std::to_string(layer.blob.length) + ")");
    std::string name = cache_name(layer, img.diff_ids[i]);
    ids[i] = private_blob_file(layer.blob, layer_what(i, layer));
    markers[i] = verified_marker(cache, name, layer.blob, ids[i]);
    // The same blob twice in one image is verified once (and its index written once), when
    // the config names the same diff_id for both: another diff_id for it is a mismatch to find.
    bool queued = false;
    for (size_t k : todo) queued = queued || (markers[k] == markers[i] && img.diff_ids[k] == img.diff_ids[i]);
    if (queued) continue;
    // The blob's digest: the manifest's, else (a docker-archive) the one its record names.
    std::string recorded = recorded_digest(markers[i]);
    std::string digest = layer.digest.empty() ? recorded : layer.digest;
    bool cached = !digest.empty() &&
                  cached_index(index_path(index_dir, digest), layer, img.diff_ids[i], digest, note);
    if (cached && recorded == digest) {
      paths[i] = index_path(index_dir, digest);
      continue;
    }
    // A docker-archive names no digest: its blob is verified by diff_id, which takes the pass.
    digest_only[i] = cached && !layer.digest.empty();
    todo.push_back(i);
  }
  std::vector<std::exception_ptr> errors(img.layers.size());
  std::atomic<size_t> next{0};
  std::mutex note_mu;
  NoteFn locked_note = [&](const std::string& s) {
    std::lock_guard lock(note_mu);
    note(s);
  };
  auto worker = [&] {
    for (size_t k; (k = next++) < todo.size();) {
      size_t i = todo[k];
      try {
        std::string digest = img.layers[i].digest;
        if (digest_only[i])
          verify_digest(img.layers[i], layer_what(i, img.layers[i]));
        else
          digest = index_layer(img.layers[i], img.diff_ids[i], layer_what(i, img.layers[i]), index_dir,
                               opts.max_expansion, locked_note);
        paths[i] = index_path(index_dir, digest);
        // Unsynced: the index it vouches for is on disk already, and a marker lost costs a rehash.
        write_file_at(AT_FDCWD, markers[i], digest + "\n", 0600);
      } catch (...) {
        errors[i] = std::current_exception();
      }
    }
  };
  {
    std::vector<std::thread> threads;
    for (size_t t = 1; t < std::min<size_t>(2, todo.size()); t++) threads.emplace_back(worker);
    worker();
    for (auto& t : threads) t.join();
  }
  for (const auto& e : errors)
    if (e) std::rethrow_exception(e);
  // A blob a layer before names too: its index.
  for (size_t i = 0; i < img.layers.size(); i++)
    for (size_t k = 0; paths[i].empty() && k < i; k++)
      if (markers[k] == markers[i]) paths[i] = paths[k];

  for (size_t i = 0; i < img.layers.size(); i++) {
    const LayerToLoad& layer = img.layers[i];
    const std::string& path = paths[i];
    std::string desc = "strata-lazy-layer 1\nindex=" + path + "\nblob=" + blob_file_path(layer.blob) +
                       "\noffset=" + std::to_string(layer.blob.offset) + "\nverified=" + ids[i].str() + "\n";
    if (desc.find('\n', desc.find("blob=")) != desc.find("\noffset=")) throw Error("blob path with a newline");
    std::string name = desc_dir + "/layer-" + std::to_string(i);
    write_file_at(AT_FDCWD, name, desc, 0600);  // read once by strata-fs as it starts, then removed: no fsync
    descriptors.push_back(name);
  }

  std::string target = opts.target.empty() ? cache + "/mnt/" + digest_hex(img.image_id) : opts.target;
  mkdirs(target, 0755);
  char real[PATH_MAX];
  if (!realpath(target.c_str(), real)) throw_errno(target);
  target = real;
  if (mount_state(target) != MountState::NotMounted) throw Error(target + " is already a mount point");
  OverlayMountSpec s;
  s.lowers.assign(descriptors.rbegin(), descriptors.rend());
  s.target = target;
  mount_overlay_in("/", s);
  return target;
}

}  // namespace strata
