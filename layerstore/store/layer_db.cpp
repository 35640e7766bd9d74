#include "layerstore/store/layer_db.hpp"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>

#include "layerstore/archive/digest.hpp"
#include "layerstore/archive/fs_util.hpp"
#include "layerstore/error.hpp"

namespace strata {

static std::string hex_of(const std::string& d) { return is_valid_digest(d) ? digest_hex(d) : d; }

std::optional<LayerRecord> LayerDb::get(const std::string& chain_id) const {
  std::string dir = l_.layerdb() + "/" + hex_of(chain_id);
  if (!path_exists(dir)) return std::nullopt;
  LayerRecord r;
  r.chain_id = "sha256:" + hex_of(chain_id);
  r.diff_id = read_file(dir + "/diff");
  if (path_exists(dir + "/parent")) r.parent = read_file(dir + "/parent");
  r.cache_id = read_file(dir + "/cache-id");
  try {
    r.size = std::stoull(read_file(dir + "/size"));
  } catch (const std::logic_error&) {
    throw Error("layerdb entry " + hex_of(chain_id) + ": bad size file");
  }
  return r;
}

std::vector<LayerRecord> LayerDb::list() const {
  std::vector<LayerRecord> out;
  DIR* d = opendir(l_.layerdb().c_str());
  if (!d) return out;
  std::vector<std::string> names;
  while (auto* e = readdir(d))
    if (e->d_name[0] != '.') names.push_back(e->d_name);
  closedir(d);
  for (const auto& n : names)
    if (auto r = get("sha256:" + n)) out.push_back(*r);
  return out;
}

std::string LayerDb::link_id(const std::string& cache_id) const {
  return read_file(l_.overlay2() + "/" + cache_id + "/link");
}

bool LayerDb::unpacked(const LayerRecord& rec) const {
  struct stat st;
  return stat(diff_dir(rec.cache_id).c_str(), &st) == 0 && S_ISDIR(st.st_mode);
}

std::string LayerDb::tar_split_path(const std::string& chain_id) const {
  return l_.layerdb() + "/" + hex_of(chain_id) + "/tar-split.json.gz";
}

std::string LayerDb::overlay_staging(const std::string& chain_id) const {
  return l_.overlay_staging() + "/" + hex_of(chain_id);
}

std::string LayerDb::layerdb_staging(const std::string& chain_id) const {
  return l_.layerdb_tmp() + "/" + hex_of(chain_id);
}

void LayerDb::clear_stale(const std::string& chain_id) const {
  std::string tmp = layerdb_staging(chain_id);
  if (path_exists(tmp + "/cache-id") && !path_exists(l_.layerdb() + "/" + hex_of(chain_id))) {
    // A commit died between renaming overlay2/<cache-id> in and indexing it.
    std::string cache_id = read_file(tmp + "/cache-id");
    if (is_valid_digest("sha256:" + cache_id)) {
      std::string dir = l_.overlay2() + "/" + cache_id;
      if (path_exists(dir + "/link")) unlink((l_.links() + "/" + read_file(dir + "/link")).c_str());
      remove_tree(dir);
    }
  }
  remove_tree(tmp);
  remove_tree(overlay_staging(chain_id));
}

void LayerDb::commit(const LayerRecord& rec, const std::string& link) const {
  std::string staged = overlay_staging(rec.chain_id);
  std::string dir = l_.overlay2() + "/" + rec.cache_id;
  // The staged entry's parent file is the truth (callers need not fill rec.parent).
  if (std::string pfile = layerdb_staging(rec.chain_id) + "/parent"; path_exists(pfile)) {
    std::string parent_chain = read_file(pfile);
    auto parent = get(parent_chain);
    if (!parent) throw Error("layer " + rec.chain_id + ": parent " + parent_chain + " is not in the layerdb");
    std::string mark = l_.overlay2() + "/" + parent->cache_id + "/committed";
    if (!path_exists(mark)) write_file_atomic(mark, "", 0600);
  }
  fsync_dir(staged);
  if (rename(staged.c_str(), dir.c_str()) != 0) throw_errno("rename " + staged + " -> " + dir);
  std::string lpath = l_.links() + "/" + link;
  unlink(lpath.c_str());
  if (symlink(("../" + rec.cache_id + "/diff").c_str(), lpath.c_str()) != 0) throw_errno("symlink " + lpath);
  fsync_dir(l_.overlay2());
  std::string tmp = layerdb_staging(rec.chain_id);
  std::string final_dir = l_.layerdb() + "/" + hex_of(rec.chain_id);
  fsync_dir(tmp);
  if (rename(tmp.c_str(), final_dir.c_str()) != 0) throw_errno("rename " + tmp + " -> " + final_dir);
  fsync_dir(l_.layerdb());
}

void LayerDb::remove(const LayerRecord& rec) const {
  // Unindex first (rename away), so a crash leaves an orphan overlay2 dir for prune,
  // never an index entry pointing at a half-deleted dir.
  std::string dir = l_.layerdb() + "/" + hex_of(rec.chain_id);
  std::string trash = l_.layerdb_tmp() + "/rm-" + hex_of(rec.chain_id);
  remove_tree(trash);
  if (rename(dir.c_str(), trash.c_str()) != 0) throw_errno("remove layer " + rec.chain_id);
  std::string odir = l_.overlay2() + "/" + rec.cache_id;
  if (path_exists(odir + "/link")) unlink((l_.links() + "/" + read_file(odir + "/link")).c_str());
  remove_tree(odir);
  remove_tree(trash);
}

}  // namespace strata
