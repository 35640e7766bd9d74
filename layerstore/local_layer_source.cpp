#include "layerstore/local_layer_source.hpp"

#include "layerstore/archive/fs_util.hpp"
#include "layerstore/archive/tar_split.hpp"
#include "layerstore/store/layer_db.hpp"

namespace strata {

LocalLayerIndex::LocalLayerIndex(const StoreLayout& l) {
  LayerDb db(l);
  for (const auto& rec : db.list()) {
    std::string ts = db.tar_split_path(rec.chain_id);
    if (!db.unpacked(rec) || !path_exists(ts)) continue;
    by_diff_id_.emplace(rec.diff_id, LocalLayerSource{rec.chain_id, ts, db.diff_dir(rec.cache_id)});
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
    UniqueFd diff = open_dir(src.diff_dir);
    assemble_tar_split(src.tar_split, diff.get(), write);
  };
}

}  // namespace strata
