#pragma once
// Where everything lives under a store root, exactly as Docker's overlay2 graph driver and
// image store lay it out, plus strata's lock file and overlay2 staging dir.
#include <string>

namespace strata {

struct StoreLayout {
  std::string root;

  std::string overlay2() const { return root + "/overlay2"; }
  std::string links() const { return overlay2() + "/l"; }
  // Layers are unpacked here and renamed into overlay2/<cache-id> when complete.
  std::string overlay_staging() const { return overlay2() + "/.staging"; }
  std::string image_root() const { return root + "/image/overlay2"; }
  std::string layerdb() const { return image_root() + "/layerdb/sha256"; }
  std::string layerdb_tmp() const { return image_root() + "/layerdb/tmp"; }
  std::string layerdb_mounts() const { return image_root() + "/layerdb/mounts"; }
  std::string imagedb_content() const { return image_root() + "/imagedb/content/sha256"; }
  std::string imagedb_metadata() const { return image_root() + "/imagedb/metadata/sha256"; }
  std::string repositories() const { return image_root() + "/repositories.json"; }
  std::string diffid_by_digest() const { return image_root() + "/distribution/diffid-by-digest/sha256"; }
  std::string v2metadata_by_diffid() const { return image_root() + "/distribution/v2metadata-by-diffid/sha256"; }
  std::string lock_file() const { return root + "/strata.lock"; }

  // Creates the directory skeleton and the lock file if missing.
  void ensure_skeleton() const;
};

// True when `l.root` holds a store: strata's lock file, or the image/overlay2 and overlay2
// dirs a dockerd wrote (a Docker data-root has no strata.lock until strata first writes to it).
bool store_exists(const StoreLayout& l);

// --root, else $STRATA_ROOT, else /var/lib/strata (root) or $XDG_DATA_HOME/strata.
std::string default_store_root();

}  // namespace strata
