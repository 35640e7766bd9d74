#pragma once
// Layers: overlay2/<cache-id>/{diff,link,lower,committed} + overlay2/l/<LINKID> and their
// index entry layerdb/sha256/<chain-id>/{diff,parent,cache-id,size,tar-split.json.gz}.
// A layer is unpacked into a staging pair (overlay2/.staging/<chain>, layerdb/tmp/<chain>)
// and published by renames: overlay2 dir first, then the layerdb entry that indexes it.
// `committed` is Docker's mark on a layer that another layer was created on (its graph
// driver writes it into the parent's dir in Create, and then mounts that layer read-only):
// it says nothing about completeness — a top layer, such as one `docker commit` made, has
// none. A layer is complete when its layerdb entry exists (published last) and its dir too.
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "layerstore/store/store_layout.hpp"

namespace strata {

struct LayerRecord {
  std::string chain_id;
  std::string diff_id;
  std::string parent;   // chain-id, empty for a base layer
  std::string cache_id;
  uint64_t size = 0;
};

class LayerDb {
 public:
  explicit LayerDb(StoreLayout layout) : l_(std::move(layout)) {}

  std::optional<LayerRecord> get(const std::string& chain_id) const;
  std::vector<LayerRecord> list() const;
  std::string link_id(const std::string& cache_id) const;   // contents of overlay2/<id>/link
  // The indexed layer's overlay2/<cache-id>/diff is there (the layerdb entry alone could
  // outlive a dir deleted by hand); what loads and commits check before reusing a layer.
  bool unpacked(const LayerRecord& rec) const;
  std::string diff_dir(const std::string& cache_id) const { return l_.overlay2() + "/" + cache_id + "/diff"; }
  std::string tar_split_path(const std::string& chain_id) const;

  // Staging for one chain (caller holds lock_chain). clear_stale removes what a crashed
  // earlier attempt left: staging dirs and an overlay2 dir renamed in but never indexed.
  std::string overlay_staging(const std::string& chain_id) const;
  std::string layerdb_staging(const std::string& chain_id) const;
  void clear_stale(const std::string& chain_id) const;

  // Publishes a staged layer (caller holds the index lock) and, as Docker's Create does,
  // marks its parent's dir `committed`.
  void commit(const LayerRecord& rec, const std::string& link) const;
  // Unindexes and deletes a layer (caller holds the store lock exclusively).
  void remove(const LayerRecord& rec) const;

 private:
  StoreLayout l_;
};

}  // namespace strata
