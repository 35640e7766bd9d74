// Overlay construction, node bookkeeping (the inode table) and paths.
#include "fs/core/overlay.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "fs/core/tree_remove.hpp"

namespace strata::fs {

Overlay::Overlay(Options opts, LayerStack layers) : opts_(std::move(opts)), layers_(std::move(layers)) {
  std::optional<uint32_t> squash_uid, squash_gid;
  if (opts_.squash_to_uid) squash_uid = *opts_.squash_to_uid;
  if (opts_.squash_to_gid) squash_gid = *opts_.squash_to_gid;
  uids_ = IdMapping(opts_.uid_mappings, squash_uid);
  gids_ = IdMapping(opts_.gid_mappings, squash_gid);
  read_only_ = !layers_.has_upper() || opts_.read_only;
  privileged_ = ::geteuid() == 0;
}

Overlay::~Overlay() {
  // Nodes form a tree plus orphans the kernel never forgot; free what the tree still holds.
  std::vector<Node*> stack{root_};
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    if (!n) continue;
    for (auto& [name, child] : n->children) stack.push_back(child);
    delete n;
  }
}

Result<std::unique_ptr<Overlay>> Overlay::create(const Options& opts, std::string& error) {
  auto layers = LayerStack::open(opts.lowerdirs, opts.upperdir, error);
  if (!layers) return Errno{layers.error()};
  std::unique_ptr<Overlay> ov(new Overlay(opts, std::move(*layers)));

  if (ov->layers_.has_upper()) {
    std::string work = opts.workdir + "/work";
    if (::mkdir(work.c_str(), 0700) != 0 && errno != EEXIST) {
      int err = errno;
      error = "workdir " + opts.workdir + ": cannot create work/: " + std::strerror(err);
      return Errno{err};
    }
    ov->work_fd_ = UniqueFd(::open(work.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (!ov->work_fd_) {
      int err = errno;
      error = "workdir " + work + ": " + std::strerror(err);
      return Errno{err};
    }
    ov->work_path_ = work;
    // Anything in work/ is a copy-up or rename that a killed daemon never finished: the
    // upper still holds the old state, so the staged copy is garbage.
    if (Status st = remove_dir_contents(ov->work_fd_.get(), "."); st != 0) {
      error = "workdir " + work + ": cannot clean: " + std::strerror(st);
      return Errno{st};
    }
  }

  for (size_t i = 0; i < ov->layers_.size(); ++i) ov->hardlinks_.push_back(std::make_unique<LayerHardlinks>());
  Node* root = new Node;
  root->type = S_IFDIR;
  root->nlookup = 1;
  for (size_t i = 0; i < ov->layers_.size(); ++i) root->dir_layers.push_back(int(i));
  root->top = 0;
  struct stat st {};
  if (::fstatat(ov->layers_[0].root.get(), "", &st, AT_EMPTY_PATH) != 0) {
    int err = errno;
    error = ov->layers_[0].path + ": " + std::strerror(err);
    delete root;
    return Errno{err};
  }
  root->ino = ov->layers_.present_ino(st.st_dev, st.st_ino);
  ov->root_ = root;
  return ov;
}

const WhiteoutStyle& Overlay::whiteout_style() const {
  // Probed on first use, not at mount: a read-mostly mount never pays for it.
  std::call_once(style_probed_, [this] { style_ = probe_whiteout_style(layers_.upper_fd(), work_fd_.get()); });
  return style_;
}

Result<std::string> Overlay::path_of(const Node* node) const {
  std::shared_lock lock(tree_);
  if (node == root_) return std::string(".");
  std::vector<const std::string*> parts;
  size_t len = 0;
  for (const Node* n = node; n != root_; n = n->parent) {
    if (n->parent == nullptr) return Errno{ENOENT};  // unlinked
    parts.push_back(&n->name);
    len += n->name.size() + 1;
  }
  std::string path;
  path.reserve(len);
  for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
    if (!path.empty()) path.push_back('/');
    path.append(**it);
  }
  return path;
}

std::string Overlay::abs_path(int layer, const std::string& rel) const {
  const std::string& root = layers_[size_t(layer)].path;
  if (rel == ".") return root;
  std::string out;
  out.reserve(root.size() + 1 + rel.size());
  out.append(root).append("/").append(rel);
  return out;
}

Node* Overlay::insert_child(Node* parent, std::string_view name, Node* child) {
  child->parent = parent;
  child->name.assign(name);
  parent->children.emplace(child->name, child);
  return child;
}

void Overlay::detach_child(Node* parent, std::string_view name) {
  auto it = parent->children.find(std::string(name));
  if (it == parent->children.end()) return;
  Node* child = it->second;
  parent->children.erase(it);
  child->parent = nullptr;
  release_if_unused(child);
  release_if_unused(parent);
}

void Overlay::release_if_unused(Node* node) {
  while (node && node != root_ && node->nlookup == 0 && node->children.empty()) {
    Node* parent = node->parent;
    if (parent) parent->children.erase(node->name);
    delete node;
    node = parent;
  }
}

void Overlay::forget(Node* node, uint64_t count) {
  std::unique_lock lock(tree_);
  node->nlookup = node->nlookup > count ? node->nlookup - count : 0;
  release_if_unused(node);
}

}  // namespace strata::fs
