// rename(2) on the merged view. Everything moves with one renameat2 between held upper
// directory fds. A directory that a lower layer contributes to is first made complete in the
// upper where it stands: its lower-only entries are copied up in place (ordinary copy-ups, so
// upper inodes, open files and hardlinks stay as they are and the cost follows the lower-only
// part), then it moves and is made opaque if lower names lie where it lands. The upper it
// leaves needs no redirect xattrs, so kernel overlayfs with any options, `strata diff` and a
// tar of the upper all read the same tree (kernel overlayfs itself would need redirect_dir;
// fuse-overlayfs answers EXDEV).
#include <fcntl.h>
#include <linux/fs.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs/core/overlay.hpp"
#include "fs/core/tree_remove.hpp"

namespace strata::fs {

namespace {

bool has_lower_part(const Inode* dir) {
  for (int layer : dir->dir_layers)
    if (layer != 0) return true;
  return false;
}

}  // namespace

void Overlay::mark_subtree_upper(Inode* dir) {
  std::vector<Inode*> stack{dir};
  while (!stack.empty()) {
    Inode* n = stack.back();
    stack.pop_back();
    if (n->is_dir()) {
      n->dir_layers = {0};
      n->opaque = false;
    }
    for (auto& [name, child] : n->children)
      if (child->is_dir()) stack.push_back(child);
  }
}

Status Overlay::rename(Inode* parent, std::string_view name, Inode* new_parent, std::string_view new_name,
                       unsigned flags) {
  if (read_only_) return EROFS;
  if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) return EINVAL;
  if (is_marker_name(new_name) || new_name == "." || new_name == "..") return EINVAL;
  std::unique_lock lock(tree_);
  std::vector<Inode*> temp;
  Status s = rename_locked(parent, name, new_parent, new_name, flags, temp);
  release_all(temp);
  return s;
}

Status Overlay::rename_locked(Inode* parent, std::string_view name, Inode* new_parent, std::string_view new_name,
                              unsigned flags, std::vector<Inode*>& temp) {
  auto src = resolve(parent, name);
  if (!src) return src.error();
  if (parent == new_parent && name == new_name) return 0;
  Absence dst_absence;  // what the upper holds at the destination when no file is there
  auto dst = resolve_for_change(new_parent, new_name, dst_absence);
  bool dst_exists = dst.ok();
  if (!dst_exists && dst.error() != ENOENT) return dst.error();
  bool src_is_dir = S_ISDIR(src->st.st_mode);
  bool dst_is_dir = dst_exists && S_ISDIR(dst->st.st_mode);
  if ((flags & RENAME_NOREPLACE) && dst_exists) return EEXIST;
  if ((flags & RENAME_EXCHANGE) && !dst_exists) return ENOENT;

  auto hold = [&](Inode* n) {
    n->pins++;
    temp.push_back(n);
    return n;
  };
  Inode* src_node = hold(attach(parent, name, *src));
  Inode* dst_node = dst_exists ? hold(attach(new_parent, new_name, *dst)) : nullptr;
  if (src_node == dst_node) return 0;  // two names of one file: rename(2) does nothing
  if (dst_exists && !(flags & RENAME_EXCHANGE)) {
    if (src_is_dir && !dst_is_dir) return ENOTDIR;
    if (!src_is_dir && dst_is_dir) return EISDIR;
    if (dst_is_dir) {
      auto empty = merged_dir_empty_locked(dst_node);
      if (!empty) return empty.error();
      if (!*empty) return ENOTEMPTY;
    }
  }
  if (Status s = ensure_upper_dir_locked(parent); s != 0) return s;
  if (Status s = ensure_upper_dir_locked(new_parent); s != 0) return s;

  // Make what moves complete in the upper.
  auto prepare = [&](Inode* n) -> Status {
    if (!n->is_dir()) return copy_up_locked(n, true);
    if (has_lower_part(n)) return complete_upper_tree_locked(n);
    return 0;
  };
  bool src_completed = src_is_dir && has_lower_part(src_node);
  if (Status s = prepare(src_node); s != 0) return s;
  bool dst_completed = false;
  if (flags & RENAME_EXCHANGE) {
    dst_completed = dst_is_dir && has_lower_part(dst_node);
    if (Status s = prepare(dst_node); s != 0) return s;
  } else if (dst_exists && dst->top > 0 && !dst_is_dir && dst->st.st_nlink > 1) {
    // Its other names must show one link less, as with overlayfs index=on: copy-up links
    // them all to one upper inode, which then loses this name.
    if (Status s = copy_up_locked(dst_node, true); s != 0) return s;
  }
  if (dst_exists) {
    dst = resolve(new_parent, new_name);
    if (!dst) return dst.error();
  }

  LayerDirRef pfd = layer_dir(parent, 0);
  LayerDirRef npfd = layer_dir(new_parent, 0);
  if (!pfd || !npfd) return errno;
  std::string from(name), to(new_name);

  if (flags & RENAME_EXCHANGE) {
    if (::renameat2(pfd->fd(), from.c_str(), npfd->fd(), to.c_str(), RENAME_EXCHANGE) != 0) return errno;
    bump_version();
    // A directory now standing where a lower layer has that name must not merge with it.
    if (src_is_dir && name_in_lowers(new_parent, new_name))
      if (Status s = mark_opaque(npfd->fd(), to, whiteout_style()); s != 0) return s;
    if (dst_is_dir && name_in_lowers(parent, name))
      if (Status s = mark_opaque(pfd->fd(), from, whiteout_style()); s != 0) return s;
    remove_alias(src_node, parent, name);
    remove_alias(dst_node, new_parent, new_name);
    add_alias(src_node, new_parent, new_name);
    add_alias(dst_node, parent, name);
    if (src_completed) mark_subtree_upper(src_node);
    if (dst_completed) mark_subtree_upper(dst_node);
    return 0;
  }

  bool src_leaves_whiteout = name_in_lowers(parent, name);
  bool dst_over_lower = name_in_lowers(new_parent, new_name);

  // Clear the destination in the upper: an empty merged dir may still hold whiteouts, and a
  // directory cannot replace a whiteout device. The file it named is held first: open
  // files of it keep working.
  UniqueFd held;
  bool dst_upper = dst_exists && dst->top == 0;
  if (dst_node) {
    if (LayerDirRef where = layer_dir(new_parent, dst->top)) held = hold_backing(Place{where, to});
  }
  // What the upper holds at the destination, as the lookup saw it: the file found there, a
  // whiteout device, or nothing (a name found in a lower has nothing above it). Looked at
  // again only when the upper directory was made after that lookup.
  bool upper_dir_there = dst_upper && dst_is_dir;
  bool upper_whiteout_there = !dst_exists && dst_absence.whiteout_device;
  if (!dst_exists && !dst_absence.upper_probed) {
    struct stat ust {};
    bool in_upper = ::fstatat(npfd->fd(), to.c_str(), &ust, AT_SYMLINK_NOFOLLOW) == 0;
    upper_dir_there = in_upper && S_ISDIR(ust.st_mode);
    upper_whiteout_there = in_upper && is_whiteout_device(ust);
  }
  if (upper_dir_there && dst_is_dir)
    if (Status s = remove_dir_contents(npfd->fd(), to); s != 0) return s;
  if (upper_whiteout_there && src_is_dir && ::unlinkat(npfd->fd(), to.c_str(), 0) != 0) return errno;

  unsigned rflags = src_leaves_whiteout ? RENAME_WHITEOUT : 0;
  if (::renameat2(pfd->fd(), from.c_str(), npfd->fd(), to.c_str(), rflags) != 0) {
    if (rflags == 0 || (errno != EINVAL && errno != EPERM && errno != EOPNOTSUPP)) return errno;
    if (::renameat(pfd->fd(), from.c_str(), npfd->fd(), to.c_str()) != 0) return errno;
    if (Status s = whiteout_at(pfd->fd(), from); s != 0) return s;
  }
  bump_version();
  if (src_is_dir && dst_over_lower)
    if (Status s = mark_opaque(npfd->fd(), to, whiteout_style()); s != 0) return s;
  if (may_hold_whiteout_file(new_parent, 0)) ::unlinkat(npfd->fd(), (std::string(kWhiteoutPrefix) + to).c_str(), 0);

  if (dst_node) {
    after_name_removed(dst_node, new_parent, new_name, std::move(held), dst_upper);
  }
  remove_alias(src_node, parent, name);
  add_alias(src_node, new_parent, new_name);
  if (src_completed) mark_subtree_upper(src_node);
  return 0;
}

}  // namespace strata::fs
