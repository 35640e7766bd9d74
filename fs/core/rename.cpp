// rename(2) on the merged view. Entries already in the upper move with one renameat2; a
// directory that a lower layer contributes to is first copied up whole into an opaque
// directory (kernel overlayfs would need redirect_dir; fuse-overlayfs answers EXDEV), so the
// upper it leaves reads the same under kernel overlayfs with any options.
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs/core/overlay.hpp"
#include "fs/core/tree_remove.hpp"

namespace strata::fs {

Status Overlay::copy_tree(const std::vector<int>& dir_layers, const std::string& src_path,
                          const std::string& dst_work_path) {
  auto entries = merged_entries(dir_layers, src_path, 0, 0);
  if (!entries) return entries.error();
  for (const auto& e : *entries) {
    if (e.name == "." || e.name == "..") continue;
    std::string src = join_path(src_path, e.name);
    std::string dst = dst_work_path + "/" + e.name;
    auto found = resolve_in(dir_layers, src_path, e.name);
    if (!found) return found.error();
    if (Status s = copy_entry(found->top, src, work_fd_.get(), dst, found->st, true); s != 0) return s;
    // The copies keep the inode numbers the files showed before the rename.
    struct stat cst {};
    if (::fstatat(work_fd_.get(), dst.c_str(), &cst, AT_SYMLINK_NOFOLLOW) == 0)
      record_origin(cst, ino_for(found->top, found->st));
    if (S_ISDIR(found->st.st_mode)) {
      if (Status s = copy_tree(found->dir_layers, src, dst); s != 0) return s;
      // copy_entry set the times before the children were written.
      struct timespec times[2] = {found->st.st_atim, found->st.st_mtim};
      ::utimensat(work_fd_.get(), dst.c_str(), times, AT_SYMLINK_NOFOLLOW);
    }
  }
  return 0;
}

Result<std::string> Overlay::materialize_dir(const std::vector<int>& dir_layers, const std::string& path) {
  std::string tmp = stage_name();
  int top = dir_layers.front();
  struct stat st {};
  if (::fstatat(layers_[size_t(top)].root.get(), path.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return last_errno();
  Status s = copy_entry(top, path, work_fd_.get(), tmp, st, true);
  struct stat cst {};
  if (s == 0 && ::fstatat(work_fd_.get(), tmp.c_str(), &cst, AT_SYMLINK_NOFOLLOW) == 0)
    record_origin(cst, ino_for(top, st));
  if (s == 0) s = copy_tree(dir_layers, path, tmp);
  if (s == 0) s = mark_opaque(work_fd_.get(), tmp, work_path_ + "/" + tmp, whiteout_style());
  if (s == 0) {
    struct timespec times[2] = {st.st_atim, st.st_mtim};
    ::utimensat(work_fd_.get(), tmp.c_str(), times, AT_SYMLINK_NOFOLLOW);
  }
  if (s != 0) {
    remove_tree(work_fd_.get(), tmp);
    return Errno{s};
  }
  return tmp;
}

void Overlay::mark_subtree_upper(Node* dir) {
  std::vector<Node*> stack{dir};
  while (!stack.empty()) {
    Node* n = stack.back();
    stack.pop_back();
    if (n->top.load() != 0) {
      n->top.store(0);
      n->copyups.fetch_add(1);
    }
    if (n->is_dir()) n->dir_layers = {0};
    for (auto& [name, child] : n->children) stack.push_back(child);
  }
}

Status Overlay::rename(Node* parent, std::string_view name, Node* new_parent, std::string_view new_name,
                       unsigned flags) {
  if (read_only_) return EROFS;
  if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) return EINVAL;
  if (is_marker_name(new_name)) return EINVAL;
  auto src_dir = path_of(parent);
  auto dst_dir = path_of(new_parent);
  if (!src_dir) return src_dir.error();
  if (!dst_dir) return dst_dir.error();
  std::string src_path = join_path(*src_dir, name);
  std::string dst_path = join_path(*dst_dir, new_name);
  if (src_path == dst_path) return 0;

  auto src = resolve(parent, *src_dir, name);
  if (!src) return src.error();
  auto dst = resolve(new_parent, *dst_dir, new_name);
  bool dst_exists = dst.ok();
  bool src_is_dir = S_ISDIR(src->st.st_mode);
  if ((flags & RENAME_NOREPLACE) && dst_exists) return EEXIST;
  if ((flags & RENAME_EXCHANGE) && !dst_exists) return ENOENT;

  // Hold both nodes for the duration (a lookup reference), released at the end.
  Entry src_entry = attach(parent, name, *src);
  Entry dst_entry;
  if (dst_exists) dst_entry = attach(new_parent, new_name, *dst);
  auto release = [&] {
    forget(src_entry.node, 1);
    if (dst_entry.node) forget(dst_entry.node, 1);
  };

  Status s = 0;
  if (dst_exists && !(flags & RENAME_EXCHANGE)) {
    bool dst_is_dir = S_ISDIR(dst->st.st_mode);
    if (src_is_dir && !dst_is_dir) s = ENOTDIR;
    else if (!src_is_dir && dst_is_dir) s = EISDIR;
    else if (dst_is_dir) {
      auto empty = merged_dir_empty(dst_entry.node);
      if (!empty) s = empty.error();
      else if (!*empty) s = ENOTEMPTY;
    }
  }
  if (s == 0) s = ensure_upper_dir(parent);
  if (s == 0) s = ensure_upper_dir(new_parent);
  if (s != 0) {
    release();
    return s;
  }

  int upper = layers_.upper_fd();
  bool src_pure_upper = src->top == 0 && (!src_is_dir || src->dir_layers == std::vector<int>{0});

  if (flags & RENAME_EXCHANGE) {
    bool dst_is_dir = S_ISDIR(dst->st.st_mode);
    bool dst_pure_upper = dst->top == 0 && (!dst_is_dir || dst->dir_layers == std::vector<int>{0});
    if ((src_is_dir && !src_pure_upper) || (dst_is_dir && !dst_pure_upper)) {
      release();
      return EXDEV;  // exchanging merged directories would need redirects
    }
    if (!src_is_dir) s = copy_up(src_entry.node);
    if (s == 0 && !dst_is_dir) s = copy_up(dst_entry.node);
    if (s == 0 && ::renameat2(upper, src_path.c_str(), upper, dst_path.c_str(), RENAME_EXCHANGE) != 0) s = errno;
    // A directory now standing where a lower layer has that name must not merge with it.
    if (s == 0 && src_is_dir && name_in_lowers(new_parent, dst_path, 0))
      s = mark_opaque(upper, dst_path, abs_path(0, dst_path), whiteout_style());
    if (s == 0 && dst_is_dir && name_in_lowers(parent, src_path, 0))
      s = mark_opaque(upper, src_path, abs_path(0, src_path), whiteout_style());
    if (s == 0) {
      std::unique_lock lock(tree_);
      parent->children.erase(std::string(name));
      new_parent->children.erase(std::string(new_name));
      insert_child(new_parent, new_name, src_entry.node);
      insert_child(parent, name, dst_entry.node);
      for (Node* n : {src_entry.node, dst_entry.node})
        if (n->is_dir()) n->dir_layers = {0};
    }
    release();
    return s;
  }

  // The source, ready to move: a path in the upper, or a materialized copy in the workdir.
  std::string materialized;
  if (src_is_dir && !src_pure_upper) {
    auto tmp = materialize_dir(src->dir_layers, src_path);
    if (!tmp) s = tmp.error();
    else materialized = *tmp;
  } else if (!src_is_dir) {
    s = copy_up(src_entry.node);
  }
  bool src_leaves_whiteout = name_in_lowers(parent, src_path, 0);
  bool dst_over_lower = name_in_lowers(new_parent, dst_path, 0);

  // Clear the destination in the upper: an empty merged dir may still hold whiteouts, and a
  // directory cannot replace a whiteout device.
  struct stat ust {};
  bool dst_in_upper = s == 0 && ::fstatat(upper, dst_path.c_str(), &ust, AT_SYMLINK_NOFOLLOW) == 0;
  if (dst_in_upper && S_ISDIR(ust.st_mode)) s = remove_dir_contents(upper, dst_path);
  if (s == 0 && dst_in_upper && src_is_dir && is_whiteout_device(ust) &&
      ::unlinkat(upper, dst_path.c_str(), 0) != 0)
    s = errno;

  if (s == 0) {
    if (!materialized.empty()) {
      if (::renameat(work_fd_.get(), materialized.c_str(), upper, dst_path.c_str()) != 0) s = errno;
      if (s == 0 && src->top == 0) s = remove_upper_entry(src_path, true, src_leaves_whiteout);
      else if (s == 0 && src_leaves_whiteout) s = make_whiteout(upper, *src_dir, name, whiteout_style());
    } else {
      unsigned rflags = src_leaves_whiteout ? RENAME_WHITEOUT : 0;
      if (::renameat2(upper, src_path.c_str(), upper, dst_path.c_str(), rflags) != 0) {
        if (rflags == 0 || (errno != EINVAL && errno != EPERM && errno != EOPNOTSUPP)) s = errno;
        else if (::renameat(upper, src_path.c_str(), upper, dst_path.c_str()) != 0) s = errno;
        else s = make_whiteout(upper, *src_dir, name, whiteout_style());
      }
      if (s == 0 && src_is_dir && dst_over_lower)
        s = mark_opaque(upper, dst_path, abs_path(0, dst_path), whiteout_style());
    }
    std::string wh_file = join_path(*dst_dir, std::string(kWhiteoutPrefix) + std::string(new_name));
    if (s == 0) ::unlinkat(upper, wh_file.c_str(), 0);
  }
  if (!materialized.empty() && s != 0) remove_tree(work_fd_.get(), materialized);

  if (s == 0) {
    std::unique_lock lock(tree_);
    if (dst_entry.node) {
      new_parent->children.erase(std::string(new_name));
      dst_entry.node->parent = nullptr;
    }
    parent->children.erase(std::string(name));
    insert_child(new_parent, new_name, src_entry.node);
    if (src_is_dir) mark_subtree_upper(src_entry.node);
  }
  release();
  return s;
}

}  // namespace strata::fs
