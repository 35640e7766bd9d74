#include "layerstore/local_layer_source.hpp"

#include "layerstore/archive/fs_util.hpp"
#include "layerstore/archive/tar_split.hpp"
#include "layerstore/store/layer_db.hpp"
#include "layerstore/store/lazy_blob_stream.hpp"
#include "layerstore/store/lazy_layer.hpp"

namespace strata {

LocalLayerIndex::LocalLayerIndex(const StoreLayout& l) {
  LayerDb db(l);
  for (const auto& rec : db.list()) {
    if (auto lazy = lazy_layer(l, rec.cache_id)) {
      by_diff_id_.emplace(rec.diff_id, LocalLayerSource{rec.chain_id, "", "", lazy->dir, rec.diff_id});
      continue;
    }
    std::string ts = db.tar_split_path(rec.chain_id);
    if (!db.unpacked(rec) || !path_exists(ts)) continue;
    by_diff_id_.emplace(rec.diff_id, LocalLayerSource{rec.chain_id, ts, db.diff_dir(rec.cache_id), "", rec.diff_id});
  }
}

std::vector<LocalLayerSource> LocalLayerIndex::find(const std::string& diff_id, const std::string& except_chain) const {
  std::vector<LocalLayerSource> out;
  auto [b, e] = by_diff_id_.equal_range(diff_id);
  for (auto it = b; it != e; ++it)
    if (it->second.chain_id != except_chain) out.push_back(it->second);
  return out;
}

BlobStream local_layer_stream(const LocalLayerSource& src) {
  return [src](const BlobWriter& write) {
    if (!src.lazy_dir.empty()) {
      stream_lazy_tar(lazy_layer_paths_in(src.lazy_dir), src.diff_id, write);
      return;
    }
    UniqueFd diff = open_dir(src.diff_dir);
    assemble_tar_split(src.tar_split, diff.get(), write);
  };
}

}  // namespace strata
