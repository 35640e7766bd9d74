#include "layerstore/container/changes.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <set>

#include "layerstore/archive/unique_fd.hpp"
#include "layerstore/archive/whiteout.hpp"
#include "layerstore/error.hpp"

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

class LowerView {
 public:
  explicit LowerView(const std::vector<std::string>& dirs) {
    for (const auto& d : dirs) {
      UniqueFd fd(open(d.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
      if (!fd) throw_errno("open layer " + d);
      layers_.push_back(std::move(fd));
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
        if (whited_out(layer.get(), prefix)) return false;
        struct stat st;
        if (fstatat(layer.get(), prefix.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) break;  // try the next layer
        if (i + 1 == comps.size()) return true;
        if (!S_ISDIR(st.st_mode)) return false;
        if (is_opaque_dir_at(layer.get(), prefix)) {
          // Layers below do not show through here: rel is found in this layer or nowhere.
          return exists_at(layer.get(), rel) && !whited_out(layer.get(), rel);
        }
      }
    }
    return false;
  }

  // Names visible in the lower view of directory `rel`.
  std::vector<std::string> children(const std::string& rel) const {
    std::set<std::string> names;
    for (const auto& layer : layers_) {
      UniqueFd d(openat(layer.get(), rel.empty() ? "." : rel.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (!d) continue;
      for (const auto& n : dir_names(d.get()))
        if (n.rfind(kWhiteoutPrefix, 0) != 0) names.insert(n);
    }
    std::vector<std::string> out;
    for (const auto& n : names)
      if (exists(join(rel, n))) out.push_back(n);
    return out;
  }

 private:
  std::vector<UniqueFd> layers_;
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
