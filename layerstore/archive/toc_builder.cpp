#include "layerstore/archive/toc_builder.hpp"

#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <deque>

#include "common/overlay_xattrs.hpp"
#include "layerstore/archive/safe_path.hpp"
#include "layerstore/archive/whiteout.hpp"
#include "layerstore/error.hpp"

namespace strata {

namespace {
constexpr size_t kMaxPath = 4096;

std::vector<std::string> components(const std::string& path) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < path.size()) {
    size_t j = path.find('/', i);
    if (j == std::string::npos) j = path.size();
    out.push_back(path.substr(i, j - i));
    i = j + 1;
  }
  return out;
}

// What the extractor run without root cannot set: setxattr fails with EPERM (trusted.* and
// security.* need capabilities; user.* is refused on anything but files and directories),
// and it goes on without the xattr.
bool unsettable_without_root(const std::string& name, uint32_t mode) {
  if (geteuid() == 0) return false;
  if (name.rfind("trusted.", 0) == 0 || name.rfind("security.", 0) == 0) return true;
  return name.rfind("user.", 0) == 0 && !S_ISREG(mode) && !S_ISDIR(mode);
}
}  // namespace

TocBuilder::TocBuilder(WarnFn warn) : warn_(std::move(warn)) {
  lazy::TocInode root;
  root.mode = S_IFDIR | 0755;  // the layer dir Docker makes: 0755, root-owned
  inodes_.push_back(root);
  nodes_.push_back(Node{0, {}});
}

bool TocBuilder::is_dir(uint32_t node) const { return S_ISDIR(inodes_[nodes_[node].inode].mode); }

uint32_t TocBuilder::new_inode(uint32_t mode, const TarEntryView& e) {
  lazy::TocInode i;
  i.mode = mode;
  i.uid = uint32_t(e.uid);
  i.gid = uint32_t(e.gid);
  i.mtime = e.mtime;
  for (const auto& [k, v] : e.xattrs) {
    if (is_private_xattr(k)) {
      warn_("dropping xattr " + k + " on \"" + e.name + "\"");
      continue;
    }
    if (unsettable_without_root(k, mode)) {
      warn_("cannot set xattr " + k + " on \"" + e.name + "\"");
      continue;
    }
    i.xattrs.emplace_back(k, v);
  }
  inodes_.push_back(std::move(i));
  return uint32_t(inodes_.size() - 1);
}

int64_t TocBuilder::find(const std::string& path) const {
  uint32_t at = 0;
  for (const auto& c : components(path)) {
    if (!is_dir(at)) return -1;
    auto it = nodes_[at].kids.find(c);
    if (it == nodes_[at].kids.end()) return -1;
    at = it->second;
  }
  return at;
}

uint32_t TocBuilder::parent_dir(const std::string& parent, const std::string& entry) {
  uint32_t at = 0;
  for (const auto& c : components(parent)) {
    auto it = nodes_[at].kids.find(c);
    if (it == nodes_[at].kids.end()) {
      lazy::TocInode d;
      d.mode = S_IFDIR | 0755;  // as Docker makes a parent the tar omits
      inodes_.push_back(d);
      nodes_.push_back(Node{uint32_t(inodes_.size() - 1), {}});
      uint32_t made = uint32_t(nodes_.size() - 1);
      nodes_[at].kids.emplace(c, made);
      at = made;
      continue;
    }
    at = it->second;
    uint32_t mode = inodes_[nodes_[at].inode].mode;
    // The extractor would follow a symlink that stays inside the layer; a lazy layer is
    // served by name and does not: such a layer is refused rather than shown differently.
    if (S_ISLNK(mode)) throw Error("entry \"" + entry + "\" has a symlinked parent (not supported in lazy layers)");
    if (!S_ISDIR(mode)) throw Error("entry \"" + entry + "\": a parent is not a directory");
  }
  return at;
}

void TocBuilder::remove_child(uint32_t dir, const std::string& base) { nodes_[dir].kids.erase(base); }

void TocBuilder::set_child(uint32_t dir, const std::string& base, uint32_t inode) {
  nodes_.push_back(Node{inode, {}});
  nodes_[dir].kids[base] = uint32_t(nodes_.size() - 1);
}

void TocBuilder::add(const TarEntryView& e, uint64_t data_offset, uint64_t rdev) {
  if (e.name.size() > kMaxPath) throw Error("entry name longer than " + std::to_string(kMaxPath) + " bytes");
  std::string path = clean_entry_path(e.name);
  if (path.empty()) return;  // "./": the layer root keeps its 0755 (as in extraction)
  bool dir = e.type == '5';
  if (!seen_.insert(path).second && !(dir && dirs_.count(path)))
    throw Error("duplicate entry \"" + path + "\" in layer");
  if (dir) dirs_.insert(path);

  auto [parent, base] = split_parent(path);
  WhiteoutName wh = classify_whiteout(base);
  if (wh.kind == WhiteoutKind::AufsMeta) return;
  if (wh.kind == WhiteoutKind::Opaque || wh.kind == WhiteoutKind::Whiteout) {
    // A marker under a non-directory means nothing (umoci writes "a/link/.wh.x" after
    // turning a/link into a symlink): skipped, as the extractor skips it.
    int64_t probe = find(parent);
    if (probe < 0) {
      auto comps = components(parent);
      uint32_t at = 0;
      bool blocked = false;
      for (const auto& c : comps) {
        auto it = nodes_[at].kids.find(c);
        if (it == nodes_[at].kids.end()) break;
        at = it->second;
        if (!is_dir(at)) {
          blocked = true;
          break;
        }
      }
      if (blocked) {
        warn_("skipping whiteout \"" + path + "\": its parent is not a directory in this layer");
        return;
      }
    } else if (!is_dir(uint32_t(probe))) {
      warn_("skipping whiteout \"" + path + "\": its parent is not a directory in this layer");
      return;
    }
    uint32_t pd = parent_dir(parent, path);
    if (wh.kind == WhiteoutKind::Opaque) {
      inodes_[nodes_[pd].inode].opaque = true;
    } else {
      lazy::TocInode w;
      w.mode = S_IFCHR;  // 0/0, mode 0: the whiteout overlayfs reads in a lower layer
      inodes_.push_back(w);
      set_child(pd, wh.target, uint32_t(inodes_.size() - 1));
    }
    return;
  }

  uint32_t pd = parent_dir(parent, path);
  if (e.type == '1') {
    std::string target = clean_entry_path(e.linkname);
    if (target.empty()) throw Error("hardlink \"" + path + "\" points at the layer root");
    int64_t t = find(target);
    if (t < 0) {
      // The extractor resolves the target's parents beneath the layer, following symlinks
      // that stay inside it; a lazy layer does not follow them at all.
      uint32_t at = 0;
      for (const auto& c : components(split_parent(target).first)) {
        auto it = nodes_[at].kids.find(c);
        if (it == nodes_[at].kids.end()) break;
        at = it->second;
        if (S_ISLNK(inodes_[nodes_[at].inode].mode))
          throw Error("hardlink \"" + path + "\" -> \"" + target + "\" goes through a symlink (not supported in lazy layers)");
      }
      throw Error("hardlink \"" + path + "\" -> \"" + target + "\": No such file or directory");
    }
    if (is_dir(uint32_t(t))) throw Error("hardlink \"" + path + "\" -> \"" + target + "\": Operation not permitted");
    uint32_t inode = nodes_[uint32_t(t)].inode;
    remove_child(pd, base);
    set_child(pd, base, inode);
    return;
  }
  uint32_t perm = uint32_t(e.mode) & 07777;
  auto existing = nodes_[pd].kids.find(base);
  if (dir && existing != nodes_[pd].kids.end() && is_dir(existing->second)) {
    // A directory entry for a directory already there keeps its contents and takes the new
    // owner, mode and xattrs; its first mtime stays (the extractor sets them first-wins).
    lazy::TocInode& d = inodes_[nodes_[existing->second].inode];
    d.mode = S_IFDIR | perm;
    d.uid = uint32_t(e.uid);
    d.gid = uint32_t(e.gid);
    for (const auto& [k, v] : e.xattrs) {
      if (is_private_xattr(k)) continue;
      if (unsettable_without_root(k, S_IFDIR)) {
        warn_("cannot set xattr " + k + " on \"" + e.name + "\"");
        continue;
      }
      bool replaced = false;
      for (auto& kv : d.xattrs)
        if (kv.first == k) kv.second = v, replaced = true;
      if (!replaced) d.xattrs.emplace_back(k, v);
    }
    return;
  }
  remove_child(pd, base);
  uint32_t inode;
  switch (e.type) {
    case '0':
      inode = new_inode(S_IFREG | perm, e);
      inodes_[inode].size = uint64_t(e.size);
      inodes_[inode].offset = data_offset;
      break;
    case '5':
      inode = new_inode(S_IFDIR | perm, e);
      break;
    case '2':
      inode = new_inode(S_IFLNK | 0777, e);
      inodes_[inode].link = e.linkname;
      inodes_[inode].size = e.linkname.size();
      break;
    case '3':
    case '4':
      if (geteuid() != 0) {
        // As the extractor run without root: it cannot mknod a device, so it skips it (after
        // clearing the name) and the unpacked layer has no such entry; nor does this one.
        warn_("skipping device node \"" + path + "\": mknod not permitted");
        return;
      }
      inode = new_inode((e.type == '3' ? S_IFCHR : S_IFBLK) | perm, e);
      inodes_[inode].rdev = rdev;
      break;
    case '6':
      inode = new_inode(S_IFIFO | perm, e);
      break;
    default:
      warn_("skipping \"" + path + "\": unsupported entry type");
      return;
  }
  set_child(pd, base, inode);
}

void TocBuilder::finish(lazy::BlobIndex& ix) {
  // Only what is still reachable counts: replaced and whited-out entries are gone.
  std::vector<int64_t> renum(inodes_.size(), -1);
  std::vector<uint32_t> links(inodes_.size(), 0);
  ix.names.clear();
  ix.inodes.clear();
  std::deque<std::pair<uint32_t, uint32_t>> todo{{0, 0}};  // node, its name's index
  auto inode_of = [&](uint32_t old) {
    if (renum[old] < 0) {
      renum[old] = int64_t(ix.inodes.size());
      ix.inodes.push_back(inodes_[old]);
    }
    links[old]++;
    return uint32_t(renum[old]);
  };
  ix.names.push_back(lazy::TocName{0, inode_of(0), ""});
  while (!todo.empty()) {
    auto [node, name_index] = todo.front();
    todo.pop_front();
    for (const auto& [base, kid] : nodes_[node].kids) {
      uint32_t idx = uint32_t(ix.names.size());
      ix.names.push_back(lazy::TocName{name_index, inode_of(nodes_[kid].inode), base});
      if (is_dir(kid)) todo.emplace_back(kid, idx);
    }
  }
  for (size_t old = 0; old < inodes_.size(); old++) {
    if (renum[old] < 0) continue;
    lazy::TocInode& i = ix.inodes[size_t(renum[old])];
    i.nlink = links[old];
  }
  // A directory's link count: its name, its "." and each subdirectory's "..".
  for (auto& i : ix.inodes)
    if (S_ISDIR(i.mode)) i.nlink = 2;
  for (size_t k = 1; k < ix.names.size(); k++)
    if (S_ISDIR(ix.inodes[ix.names[k].inode].mode)) ix.inodes[ix.names[ix.names[k].parent].inode].nlink++;
  ix.finish_names();
}

}  // namespace strata
