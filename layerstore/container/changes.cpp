#include "layerstore/container/changes.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <memory>
#include <optional>
#include <set>

#include "common/lazy/blob_index.hpp"
#include "layerstore/archive/unique_fd.hpp"
#include "layerstore/archive/whiteout.hpp"
#include "layerstore/error.hpp"
#include "layerstore/store/lazy_layer.hpp"

namespace strata {

namespace {

std::vector<std::string> dir_names(int dirfd) {
  std::vector<std::string> out;
  int fd = dup(dirfd);
  if (fd < 0) return out;
  DIR* d = fdopendir(fd);
  if (!d) {
    close(fd);
    return out;
  }
  rewinddir(d);
  while (auto* e = readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") out.push_back(n);
  }
  closedir(d);
  std::sort(out.begin(), out.end());
  return out;
}

std::string join(const std::string& a, const std::string& b) { return a.empty() ? b : a + "/" + b; }

bool xattr_yes(const std::string& path, const char* name) {
  char v[4];
  ssize_t n = lgetxattr(path.c_str(), name, v, sizeof v);
  return n == 1 && (v[0] == 'y' || v[0] == 'Y');
}

bool exists_at(int dirfd, const std::string& rel) {
  struct stat st;
  return fstatat(dirfd, rel.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
}

// Whiteout for `rel` in one layer: char 0/0 at rel, or a ".wh.<name>" file beside it.
bool whited_out(int layer, const std::string& rel) {
  auto slash = rel.rfind('/');
  std::string dir = slash == std::string::npos ? "" : rel.substr(0, slash);
  std::string base = slash == std::string::npos ? rel : rel.substr(slash + 1);
  if (is_whiteout_device(layer, rel)) return true;
  return exists_at(layer, join(dir, std::string(kWhiteoutPrefix) + base));
}

// What one lower layer holds at a path, in the terms the merged view needs.
struct LayerEntry {
  bool whiteout = false;  // hidden here (a whiteout at or beside the path)
  bool found = false;
  bool dir = false;
  bool opaque = false;    // a directory whose lower layers do not show through
};

class LowerLayer {
 public:
  virtual ~LowerLayer() = default;
  virtual LayerEntry at(const std::string& rel) const = 0;
  // Names in directory `rel` of this layer alone (whiteouts included); empty if not a dir.
  virtual std::vector<std::string> names(const std::string& rel) const = 0;
};

// An unpacked layer: its diff dir.
class DirLayer : public LowerLayer {
 public:
  explicit DirLayer(const std::string& dir) : fd_(open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) {
    if (!fd_) throw_errno("open layer " + dir);
  }
  LayerEntry at(const std::string& rel) const override {
    LayerEntry e;
    e.whiteout = whited_out(fd_.get(), rel);
    struct stat st;
    e.found = fstatat(fd_.get(), rel.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0;
    e.dir = e.found && S_ISDIR(st.st_mode);
    e.opaque = e.dir && is_opaque_dir_at(fd_.get(), rel);
    return e;
  }
  std::vector<std::string> names(const std::string& rel) const override {
    std::vector<std::string> out;
    UniqueFd d(openat(fd_.get(), rel.empty() ? "." : rel.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!d) return out;
    for (const auto& n : dir_names(d.get()))
      if (n.rfind(kWhiteoutPrefix, 0) != 0) out.push_back(n);
    return out;
  }

 private:
  UniqueFd fd_;
};

// A lazy layer: the table of contents in its index, where whiteouts are already char 0/0
// devices and opaque directories are flagged (as overlayfs reads a lower layer).
class IndexLayer : public LowerLayer {
 public:
  explicit IndexLayer(const std::string& descriptor) {
    std::string index = lazy_layer_paths_in(descriptor.substr(0, descriptor.rfind('/'))).index, err;
    auto ix = lazy::load_index_file(index, err);
    if (!ix) throw Error("layer index " + index + ": " + err);
    ix_ = std::move(*ix);
  }
  LayerEntry at(const std::string& rel) const override {
    LayerEntry e;
    auto n = lookup(rel);
    if (!n) return e;
    const lazy::TocInode& ino = ix_.inodes[ix_.names[*n].inode];
    e.whiteout = S_ISCHR(ino.mode) && ino.rdev == 0;
    e.found = true;
    e.dir = S_ISDIR(ino.mode);
    e.opaque = e.dir && ino.opaque;
    return e;
  }
  std::vector<std::string> names(const std::string& rel) const override {
    std::vector<std::string> out;
    auto n = lookup(rel);
    if (!n || !S_ISDIR(ix_.inodes[ix_.names[*n].inode].mode)) return out;
    for (uint32_t i = 0; i < ix_.child_count[*n]; i++) out.push_back(ix_.names[ix_.first_child[*n] + i].name);
    return out;
  }

 private:
  std::optional<uint32_t> lookup(const std::string& rel) const {
    uint32_t at = 0;
    for (size_t p = 0; p < rel.size();) {
      size_t s = rel.find('/', p);
      if (s == std::string::npos) s = rel.size();
      auto next = ix_.child(at, std::string_view(rel).substr(p, s - p));
      if (!next) return std::nullopt;
      at = *next;
      p = s + 1;
    }
    return at;
  }
  lazy::BlobIndex ix_;
};

class LowerView {
 public:
  explicit LowerView(const std::vector<std::string>& lowers) {
    for (const auto& x : lowers) {
      struct stat st;
      if (stat(x.c_str(), &st) == 0 && S_ISREG(st.st_mode)) layers_.push_back(std::make_unique<IndexLayer>(x));
      else layers_.push_back(std::make_unique<DirLayer>(x));
    }
  }

  // Whether `rel` is visible in the merged view of the lower layers.
  bool exists(const std::string& rel) const {
    std::vector<std::string> comps;
    for (size_t p = 0; p <= rel.size();) {
      size_t s = rel.find('/', p);
      if (s == std::string::npos) s = rel.size();
      comps.push_back(rel.substr(p, s - p));
      p = s + 1;
    }
    for (const auto& layer : layers_) {
      std::string prefix;
      for (size_t i = 0; i < comps.size(); i++) {
        prefix = join(prefix, comps[i]);
        LayerEntry e = layer->at(prefix);
        if (e.whiteout) return false;
        if (!e.found) break;  // try the next layer
        if (i + 1 == comps.size()) return true;
        if (!e.dir) return false;
        if (e.opaque) {
          // Layers below do not show through here: rel is found in this layer or nowhere.
          LayerEntry r = layer->at(rel);
          return r.found && !r.whiteout;
        }
      }
    }
    return false;
  }

  // Names visible in the lower view of directory `rel`.
  std::vector<std::string> children(const std::string& rel) const {
    std::set<std::string> names;
    for (const auto& layer : layers_)
      for (const auto& n : layer->names(rel)) names.insert(n);
    std::vector<std::string> out;
    for (const auto& n : names)
      if (exists(join(rel, n))) out.push_back(n);
    return out;
  }

 private:
  std::vector<std::unique_ptr<LowerLayer>> layers_;
};

void walk(int upper, const std::string& rel, const LowerView& lower, std::vector<Change>& out) {
  UniqueFd d(openat(upper, rel.empty() ? "." : rel.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!d) throw_errno("open upper dir /" + rel);
  auto names = dir_names(d.get());
  std::set<std::string> present;
  for (const auto& n : names) {
    WhiteoutName w = classify_whiteout(n);
    std::string p = join(rel, n);
    if (w.kind == WhiteoutKind::Opaque || w.kind == WhiteoutKind::AufsMeta) continue;
    if (w.kind == WhiteoutKind::Whiteout) {
      out.push_back({'D', "/" + join(rel, w.target)});
      present.insert(w.target);
      continue;
    }
    present.insert(n);
    if (is_whiteout_device(d.get(), n)) {
      out.push_back({'D', "/" + p});
      continue;
    }
    out.push_back({lower.exists(p) ? 'C' : 'A', "/" + p});
    struct stat st;
    if (fstatat(d.get(), n.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)) {
      if (is_opaque_dir_at(d.get(), n))
        for (const auto& hidden : lower.children(p)) {
          UniqueFd sub(openat(d.get(), n.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
          if (!sub || !exists_at(sub.get(), hidden)) out.push_back({'D', "/" + join(p, hidden)});
        }
      walk(upper, p, lower, out);
    }
  }
}

}  // namespace

bool is_whiteout_device(int dirfd, const std::string& name) {
  struct stat st;
  return fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0);
}

bool is_opaque_dir_at(int dirfd, const std::string& name) {
  std::string path = "/proc/self/fd/" + std::to_string(dirfd) + "/" + name;
  for (const char* x : {"trusted.overlay.opaque", "user.overlay.opaque", "user.fuseoverlayfs.opaque"})
    if (xattr_yes(path, x)) return true;
  return exists_at(dirfd, join(name, std::string(kOpaqueMarker)));
}

std::vector<Change> layer_changes(const std::string& upper, const std::vector<std::string>& lowers) {
  UniqueFd u(open(upper.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!u) throw_errno("open " + upper);
  LowerView lower(lowers);
  std::vector<Change> out;
  walk(u.get(), "", lower, out);
  std::sort(out.begin(), out.end(), [](const Change& a, const Change& b) { return a.path < b.path; });
  return out;
}

}  // namespace strata
