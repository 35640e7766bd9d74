#pragma once
// A pulled layer whose content the store already has under another chain (the same diff_id
// on top of a different parent): instead of downloading the blob, its tar is rebuilt byte
// for byte from that layer's tar-split.json.gz + diff dir (or, for a lazy layer, decompressed
// from its blob) and fed to the same verify-and-unpack pass a download goes through, which
// checks the diff_id.
#include <map>
#include <string>
#include <vector>

#include "layerstore/archive/blob_ref.hpp"
#include "layerstore/store/store_layout.hpp"

namespace strata {

struct LocalLayerSource {
  std::string chain_id;   // the existing layer's chain
  std::string tar_split;  // layerdb/<chain>/tar-split.json.gz
  std::string diff_dir;   // overlay2/<cache-id>/diff
  std::string lazy_dir;   // a lazy layer (store/lazy_layer.hpp): overlay2/<cache-id>; else empty
  std::string diff_id;
};

// Committed layers of the store by diff_id; built once per image load (caller holds the
// store lock, so none of them can be removed meanwhile).
class LocalLayerIndex {
 public:
  explicit LocalLayerIndex(const StoreLayout& l);
  // Layers holding the content of `diff_id`, other than `except_chain`.
  std::vector<LocalLayerSource> find(const std::string& diff_id, const std::string& except_chain) const;

 private:
  std::multimap<std::string, LocalLayerSource> by_diff_id_;
};

// The layer's tar rebuilt from tar-split + diff dir (assemble_tar_split), or decompressed
// from a lazy layer's blob, as a stream; throws when a file is missing or differs from what
// was recorded.
BlobStream local_layer_stream(const LocalLayerSource& src);

}  // namespace strata
