// Overlay construction, the Inode table (keys, aliases, lifetime) and reaching backing files
// through held directory fds.
#include "fs/core/overlay.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "fs/core/tree_remove.hpp"

namespace strata::fs {

Overlay::Overlay(EngineConfig config, LayerStack layers)
    : config_(std::move(config)), layers_(std::move(layers)), dir_fds_(config_.dir_fd_cache) {
  std::optional<uint32_t> squash_uid, squash_gid;
  if (config_.squash_to_uid) squash_uid = *config_.squash_to_uid;
  if (config_.squash_to_gid) squash_gid = *config_.squash_to_gid;
  uids_ = IdMapping(config_.uid_mappings, squash_uid);
  gids_ = IdMapping(config_.gid_mappings, squash_gid);
  read_only_ = !layers_.has_upper() || config_.read_only;
  privileged_ = ::geteuid() == 0;
  daemon_uid_ = ::geteuid();
  daemon_gid_ = ::getegid();
}

Overlay::~Overlay() {
  for (auto& [id, node] : all_) delete node;
}

namespace {

// flock(LOCK_EX) on `fd` without blocking, retried for up to two seconds. 0 or an errno
// (EWOULDBLOCK: still held by another process).
Status lock_workdir(int fd) {
  for (int tries = 0;; ++tries) {
    if (::flock(fd, LOCK_EX | LOCK_NB) == 0) return 0;
    if (errno == EINTR) continue;
    if (errno != EWOULDBLOCK || tries == 40) return errno;
    ::usleep(50 * 1000);
  }
}

}  // namespace

Result<std::unique_ptr<Overlay>> Overlay::create(const EngineConfig& config, std::string& error) {
  auto layers = LayerStack::open(config.lowerdirs, config.upperdir, error);
  if (!layers) return Errno{layers.error()};
  std::unique_ptr<Overlay> ov(new Overlay(config, std::move(*layers)));

  if (ov->layers_.has_upper()) {
    std::string work = config.workdir + "/work";
    if (::mkdir(work.c_str(), 0700) != 0 && errno != EEXIST) {
      int err = errno;
      error = "workdir " + config.workdir + ": cannot create work/: " + std::strerror(err);
      return Errno{err};
    }
    // Readable (not O_PATH) so that it can hold the workdir's lock for the mount's lifetime.
    ov->work_fd_ = UniqueFd(::open(work.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!ov->work_fd_) {
      int err = errno;
      error = "workdir " + work + ": " + std::strerror(err);
      return Errno{err};
    }
    // One daemon per upper: a second one would clean work/ below the first one's copy-ups in
    // flight and both would answer for the same files. An exiting daemon (just unmounted) may
    // still hold the lock for a moment: wait a little before calling it busy.
    if (Status st = lock_workdir(ov->work_fd_.get()); st != 0) {
      error = "workdir " + config.workdir + ": " +
              (st == EWOULDBLOCK ? std::string("in use by another strata-fs mount of this upper dir")
                                 : std::string("cannot lock: ") + std::strerror(st));
      return Errno{st == EWOULDBLOCK ? EBUSY : st};
    }
    // Anything in work/ is a copy-up or rename that a killed daemon never finished: the
    // upper still holds the old state, so the staged copy is garbage.
    if (Status st = remove_dir_contents(ov->work_fd_.get(), "."); st != 0) {
      error = "workdir " + work + ": cannot clean: " + std::strerror(st);
      return Errno{st};
    }
    if (!ov->read_only_) {
      if (Status st = ov->hidden_links_.open(config.workdir); st != 0) {
        error = "workdir " + config.workdir + ": cannot prepare strata-index/: " + std::strerror(st);
        return Errno{st};
      }
    }
  }

  for (size_t i = 0; i < ov->layers_.size(); ++i) ov->hardlinks_.push_back(std::make_unique<LayerHardlinks>());
  struct stat st {};
  if (::fstat(ov->layers_[0].root.get(), &st) != 0) {
    int err = errno;
    error = ov->layers_[0].path + ": " + std::strerror(err);
    return Errno{err};
  }
  Inode* root = ov->new_inode(S_IFDIR, ov->layers_.present_ino(st.st_dev, st.st_ino));
  root->nlookup = 1;
  for (size_t i = 0; i < ov->layers_.size(); ++i) root->dir_layers.push_back(int(i));
  root->top = 0;
  root->whiteout_scan = std::make_unique<std::atomic<uint8_t>[]>(ov->layers_.size());
  ov->root_ = root;
  return ov;
}

const WhiteoutStyle& Overlay::whiteout_style() const {
  // Probed on first use, not at mount: a read-mostly mount never pays for it.
  std::call_once(style_probed_, [this] {
    style_ = probe_whiteout_style(layers_.upper_fd(), work_fd_.get());
    style_known_.store(true, std::memory_order_release);
  });
  return style_;
}

// ---- Reaching backing files. ----

LayerDirRef Overlay::layer_dir(Inode* dir, int layer) {
  const LayerSource& src = source(layer);
  if (dir == root_) return src.root();
  if (LayerDirRef cached = dir_fds_.get(dir->id, layer)) return cached;
  // Climb to the nearest ancestor with a cached handle, then open one name at a time downwards.
  std::vector<Inode*> chain;
  LayerDirRef base;
  for (Inode* n = dir; n;) {
    if (n == root_) {
      base = src.root();
      break;
    }
    if (n != dir) {
      if ((base = dir_fds_.get(n->id, layer))) break;
    }
    if (n->aliases.empty()) {
      // A removed directory still open: only its own backing file is left.
      if (n == dir && n->orphan && n->top.load() == layer) {
        UniqueFd fd(::fcntl(n->orphan.get(), F_DUPFD_CLOEXEC, 0));
        if (!fd) return nullptr;
        return std::make_shared<const FdLayerDir>(std::move(fd));
      }
      errno = ENOENT;
      return nullptr;
    }
    chain.push_back(n);
    n = n->aliases.front().parent;
  }
  for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
    Inode* n = *it;
    LayerDirRef next = src.open_dir(*base, n->aliases.front().name);
    if (!next) return nullptr;
    base = dir_fds_.put(n->id, layer, std::move(next));
  }
  return base;
}

Result<Overlay::Place> Overlay::place_of(Inode* node, int layer) {
  if (node == root_) return Place{source(layer).root(), "", layer, false};
  if (const Alias* a = node->first_alias()) {
    LayerDirRef dir = layer_dir(a->parent, layer);
    if (!dir) return last_errno();
    return Place{std::move(dir), a->name, layer, false};
  }
  if (node->orphan && node->top.load() == layer) {
    UniqueFd fd(::fcntl(node->orphan.get(), F_DUPFD_CLOEXEC, 0));
    if (!fd) return last_errno();
    return Place{std::make_shared<const FdLayerDir>(std::move(fd)), "", layer, true};
  }
  if (node->orphan_dir && node->top.load() == layer) return Place{node->orphan_dir, node->orphan_name, layer, false};
  return Errno{ENOENT};
}

Result<struct stat> Overlay::stat_at(const Place& place) const {
  struct stat st {};
  if (place.orphan) {
    if (::fstatat(place.fd(), "", &st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0) return last_errno();
    return st;
  }
  if (Status s = source(place.layer).stat(*place.dir, place.name, st); s != 0) return Errno{s};
  return st;
}

ssize_t Overlay::getxattr_at(const Place& place, const char* xname, void* value, size_t size) const {
  if (place.orphan) return target_of(place).get(xname, value, size);
  ssize_t n = source(place.layer).getxattr(*place.dir, place.name, xname, value, size);
  if (n < 0) errno = int(-n);
  return n < 0 ? -1 : n;
}

ssize_t Overlay::listxattr_at(const Place& place, char* list, size_t size) const {
  if (place.orphan) return target_of(place).list(list, size);
  ssize_t n = source(place.layer).listxattr(*place.dir, place.name, list, size);
  if (n < 0) errno = int(-n);
  return n < 0 ? -1 : n;
}

Result<std::string> Overlay::readlink_at(const Place& place) const {
  if (!place.orphan) return source(place.layer).readlink(*place.dir, place.name);
  char buf[PATH_MAX];
  ssize_t n = ::readlinkat(place.fd(), "", buf, sizeof buf);
  if (n < 0) return last_errno();
  return std::string(buf, size_t(n));
}

Result<UniqueFd> Overlay::open_backing(Inode* node, int flags) {
  auto place = place_of(node, node->top.load());
  if (!place) return Errno{place.error()};
  UniqueFd fd;
  if (place->orphan) {
    // Reopen the file itself through its /proc link (no name is left to open).
    fd = UniqueFd(::open(fd_path(place->fd()).c_str(), flags | O_CLOEXEC));
  } else if (place->layer == 0 && layers_.has_upper()) {
    fd = UniqueFd(::openat(place->fd(), place->name.c_str(), flags | O_NOFOLLOW | O_CLOEXEC));
  } else {
    return source(place->layer).open(*place->dir, place->name, flags & ~(O_ACCMODE | O_TRUNC | O_CREAT));
  }
  if (!fd) return last_errno();
  return fd;
}

// ---- The Inode table. ----

Inode* Overlay::new_inode(mode_t type, uint64_t ino) {
  auto* node = new Inode(next_id_++, type & S_IFMT, ino);
  all_.emplace(node->id, node);
  return node;
}

void Overlay::add_alias(Inode* node, Inode* parent, std::string_view name) {
  for (const Alias& a : node->aliases)
    if (a.parent == parent && a.name == name) return;
  if (node->is_dir()) {
    // A directory has one place: moving it there drops the old one.
    for (const Alias& a : node->aliases) {
      auto it = a.parent->children.find(a.name);
      if (it != a.parent->children.end() && it->second == node) a.parent->children.erase(it);
    }
    node->aliases.clear();
    dir_fds_.forget(node->id, layers_.size());
  }
  node->aliases.push_back(Alias{parent, std::string(name)});
  parent->children[std::string(name)] = node;
  node->orphan.reset();
  node->orphan_dir.reset();
}

void Overlay::remove_alias(Inode* node, Inode* parent, std::string_view name) {
  auto it = parent->children.find(std::string(name));
  if (it != parent->children.end() && it->second == node) parent->children.erase(it);
  auto& al = node->aliases;
  al.erase(std::remove_if(al.begin(), al.end(), [&](const Alias& a) { return a.parent == parent && a.name == name; }),
           al.end());
}

void Overlay::set_key(Inode* node, const InodeKey& key) {
  drop_key(node);
  node->key = key;
  auto [it, inserted] = table_.emplace(key, node);
  if (!inserted) {
    // The key now names another file than the Inode that had it (its file went away
    // beside the mount, or was replaced): that Inode no longer owns it.
    it->second->keyed = false;
    it->second = node;
  }
  node->keyed = true;
}

void Overlay::drop_key(Inode* node) {
  if (!node->keyed) return;
  auto it = table_.find(node->key);
  if (it != table_.end() && it->second == node) table_.erase(it);
  node->keyed = false;
}

void Overlay::release_if_unused(Inode* node) {
  std::vector<Inode*> todo{node};
  while (!todo.empty()) {
    Inode* n = todo.back();
    todo.pop_back();
    if (!n || n == root_ || n->nlookup > 0 || n->pins > 0 || !n->children.empty()) continue;
    if (all_.find(n->id) == all_.end()) continue;  // already freed through another path
    for (const Alias& a : n->aliases) {
      auto it = a.parent->children.find(a.name);
      if (it != a.parent->children.end() && it->second == n) a.parent->children.erase(it);
      todo.push_back(a.parent);
    }
    drop_key(n);
    if (n->is_dir()) dir_fds_.forget(n->id, layers_.size());
    all_.erase(n->id);
    delete n;
  }
}

void Overlay::release_all(std::vector<Inode*>& temp) {
  for (Inode* n : temp) {
    if (all_.find(n->id) == all_.end()) continue;
    if (n->pins > 0) n->pins--;
  }
  for (Inode* n : temp) release_if_unused(n);
  temp.clear();
}

void Overlay::forget(Inode* node, uint64_t count) {
  std::unique_lock lock(tree_);
  uint64_t now = node->nlookup.load();
  node->nlookup.store(now > count ? now - count : 0);
  release_if_unused(node);
}

UniqueFd Overlay::hold_backing(const Place& place) {
  // A layer source without fds (a blob) cannot pin a file: after_name_removed keeps its place.
  if (place.fd() < 0) return UniqueFd();
  return UniqueFd(::openat(place.fd(), place.name.c_str(), O_PATH | O_NOFOLLOW | O_CLOEXEC));
}

void Overlay::after_name_removed(Inode* victim, Inode* parent, std::string_view name, UniqueFd held, bool upper) {
  remove_alias(victim, parent, name);
  struct stat st {};
  bool known = held && upper && ::fstat(held.get(), &st) == 0;
  // An upper file with no link left: a new file reusing its inode number is another file.
  if (known && st.st_nlink == 0) forget_origin(st.st_ino);
  if (!victim->aliases.empty()) return;
  if (!(known && st.st_nlink > 0)) drop_key(victim);
  if (victim->is_dir()) dir_fds_.forget(victim->id, layers_.size());
  if (!held && !upper) {
    // A lazy layer's file: no fd can hold it, but its place in the layer stays as it is, so
    // open files keep answering fstat, and a write-back of their times (the kernel's
    // writeback cache sends one at close after a rename over the file) copies it up.
    if (LayerDirRef d = layer_dir(parent, victim->top.load()); d && d->fd() < 0) {
      victim->orphan_dir = std::move(d);
      victim->orphan_name = std::string(name);
    }
  }
  victim->orphan = std::move(held);
}

std::string Overlay::check_invariants() {
  std::shared_lock lock(tree_);
  for (auto& [id, n] : all_) {
    for (auto& [name, child] : n->children) {
      if (all_.find(child->id) == all_.end()) return "child " + name + " of a live inode is freed";
      bool found = false;
      for (const Alias& a : child->aliases) found |= a.parent == n && a.name == name;
      if (!found) return "child " + name + " has no alias back to its parent";
    }
    for (const Alias& a : n->aliases) {
      auto it = a.parent->children.find(a.name);
      if (it == a.parent->children.end() || it->second != n) return "alias " + a.name + " not in its parent";
    }
    if (n->is_dir() && n->aliases.size() > 1) return "directory with several names";
    if (n->keyed) {
      auto it = table_.find(n->key);
      if (it == table_.end() || it->second != n) return "keyed inode missing from the table";
    }
  }
  return "";
}

}  // namespace strata::fs
