#include "layerstore/archive/toc_builder.hpp"

#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <cerrno>
#include <deque>

#include "common/overlay_xattrs.hpp"
#include "layerstore/archive/safe_path.hpp"
#include "layerstore/archive/whiteout.hpp"
#include "layerstore/error.hpp"

namespace strata {

namespace {
constexpr size_t kMaxPath = 4096;
constexpr int kMaxSymlinks = 40;  // the kernel's MAXSYMLINKS: more in one walk is ELOOP

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

TocBuilder::Walk TocBuilder::walk(const std::string& path, bool follow_last) const {
  // The kernel's path walk: components left to right, a symlink's target spliced in where
  // it stands (relative to the directory holding it), ".." to the directory the walk came
  // from; RESOLVE_BENEATH refuses an absolute target and a ".." above the root (EXDEV).
  std::vector<uint32_t> stack{0};
  std::deque<std::string> todo;
  auto push_front = [&](const std::string& p) {
    auto parts = components(p);
    for (auto it = parts.rbegin(); it != parts.rend(); ++it)
      if (!it->empty() && *it != ".") todo.push_front(std::move(*it));
  };
  push_front(path);
  int links = 0;
  while (!todo.empty()) {
    std::string c = std::move(todo.front());
    todo.pop_front();
    if (c == "..") {
      if (stack.size() == 1) return {EXDEV, 0};
      stack.pop_back();
      continue;
    }
    auto it = nodes_[stack.back()].kids.find(c);
    if (it == nodes_[stack.back()].kids.end()) return {ENOENT, 0};
    const lazy::TocInode& ino = inodes_[nodes_[it->second].inode];
    if (S_ISLNK(ino.mode) && (!todo.empty() || follow_last)) {
      if (++links > kMaxSymlinks) return {ELOOP, 0};
      if (ino.link.empty()) return {ENOENT, 0};
      if (ino.link[0] == '/') return {EXDEV, 0};
      push_front(ino.link);
      continue;
    }
    if (!S_ISDIR(ino.mode)) return {ENOTDIR, 0};  // mid-path, or the end (O_DIRECTORY)
    stack.push_back(it->second);
  }
  return {0, stack.back()};
}

// LayerExtractor::parent_fd and make_parents, on the tree.
uint32_t TocBuilder::parent_dir(const std::string& parent, const std::string& entry) {
  if (cached_node_ >= 0 && cached_parent_ == parent) return uint32_t(cached_node_);
  cached_node_ = -1;
  Walk w = walk(parent, true);
  if (w.err == ENOENT) {
    make_parents(parent, entry);
    w = walk(parent, true);
  }
  if (w.err == EXDEV || w.err == ELOOP) throw Error("entry \"" + entry + "\" escapes the layer through a symlinked parent");
  if (w.err == ENOTDIR) throw Error("entry \"" + entry + "\": a parent is not a directory");
  if (w.err) throw SysError("entry \"" + entry + "\": open parent", w.err);
  cached_parent_ = parent;
  cached_node_ = w.node;
  return w.node;
}

void TocBuilder::make_parents(const std::string& parent, const std::string& entry) {
  for (size_t pos = 0; pos <= parent.size();) {
    size_t slash = parent.find('/', pos);
    if (slash == std::string::npos) slash = parent.size();
    auto [pp, base] = split_parent(parent.substr(0, slash));
    Walk w = walk(pp, true);
    if (w.err == EXDEV || w.err == ELOOP) throw Error("entry \"" + entry + "\" escapes the layer through a symlinked parent");
    if (w.err) throw SysError("entry \"" + entry + "\": open parent", w.err);
    if (!nodes_[w.node].kids.count(base)) {  // mkdirat; whatever is there already (EEXIST) stays
      lazy::TocInode d;
      d.mode = S_IFDIR | 0755;  // as Docker makes a parent the tar omits
      inodes_.push_back(d);
      nodes_.push_back(Node{uint32_t(inodes_.size() - 1), {}});
      nodes_[w.node].kids.emplace(base, uint32_t(nodes_.size() - 1));
    }
    pos = slash + 1;
  }
}

void TocBuilder::remove_child(uint32_t dir, const std::string& base) { nodes_[dir].kids.erase(base); }

void TocBuilder::set_child(uint32_t dir, const std::string& base, uint32_t inode) {
  nodes_.push_back(Node{inode, {}});
  nodes_[dir].kids[base] = uint32_t(nodes_.size() - 1);
}

void TocBuilder::add(const TarEntryView& e, uint64_t data_offset, uint64_t rdev) {
  last_file_ = -1;
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
    // turning a/link into a symlink): skipped, as the extractor skips it. Its probe follows
    // symlinks but the last, and treats an escape the same way.
    Walk probe = walk(parent, false);
    if (probe.err == ENOTDIR || probe.err == ELOOP || probe.err == EXDEV) {
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
    // As the extractor: the target's directory resolved beneath the root (through symlinks
    // inside the layer), the name replaced, then linkat, which does not follow the target.
    std::string target = clean_entry_path(e.linkname);
    if (target.empty()) throw Error("hardlink \"" + path + "\" points at the layer root");
    auto [tparent, tbase] = split_parent(target);
    std::string what = "hardlink \"" + path + "\" -> \"" + target + "\"";
    Walk t = walk(tparent, true);
    if (t.err == EXDEV || t.err == ELOOP) throw Error("hardlink \"" + path + "\" points outside the layer");
    if (t.err) throw SysError(what, t.err);
    remove_child(pd, base);
    auto it = nodes_[t.node].kids.find(tbase);
    if (it == nodes_[t.node].kids.end()) throw SysError(what, ENOENT);
    if (is_dir(it->second)) throw SysError(what, EPERM);
    set_child(pd, base, nodes_[it->second].inode);
    return;
  }
  uint32_t perm = uint32_t(e.mode) & 07777;
  auto existing = nodes_[pd].kids.find(base);
  if (dir && existing != nodes_[pd].kids.end() && is_dir(existing->second)) {
    // A directory entry for a directory already there keeps its contents and takes the new
    // owner, mode and xattrs; its first mtime stays (the extractor sets them first-wins).
    dir_times_.emplace_back(path, e.mtime);
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
      last_file_ = inode;
      break;
    case '5':
      inode = new_inode(S_IFDIR | perm, e);
      dir_times_.emplace_back(path, e.mtime);
      break;
    case '2':
      // symlinkat refuses an empty target, so the extractor fails the layer.
      if (e.linkname.empty()) throw SysError("symlink \"" + path + "\"", ENOENT);
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

void TocBuilder::sparse_map(const std::vector<SparseRegion>& regions, uint64_t map_bytes) {
  if (last_file_ < 0) return;  // an entry the layer does not keep (a whiteout marker, the root)
  lazy::TocInode& f = inodes_[size_t(last_file_)];
  f.sparse = true;
  f.first_segment = uint32_t(segments_.size());
  uint64_t at = f.offset + map_bytes;
  for (const auto& r : regions) {
    if (r.length > 0) segments_.push_back({uint64_t(r.offset), uint64_t(r.length), at});
    at += uint64_t(r.length);
  }
  if (segments_.size() > UINT32_MAX) throw Error("too many sparse regions in one layer");
  f.segment_count = uint32_t(segments_.size() - f.first_segment);
}

void TocBuilder::finish(lazy::BlobIndex& ix) {
  // LayerExtractor::finish_directories: each directory entry's mtime, the last entry first,
  // on whatever its path names now (O_NOFOLLOW: not through a final symlink).
  for (auto it = dir_times_.rbegin(); it != dir_times_.rend(); ++it) {
    Walk w = walk(it->first, false);
    if (!w.err) inodes_[nodes_[w.node].inode].mtime = it->second;
  }
  // Only what is still reachable counts: replaced and whited-out entries are gone.
  std::vector<int64_t> renum(inodes_.size(), -1);
  std::vector<uint32_t> links(inodes_.size(), 0);
  ix.names.clear();
  ix.inodes.clear();
  ix.segments = std::move(segments_);  // inodes keep their places in it
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
