// The overlay engine: merges a LayerStack into one tree and carries out every filesystem
// operation on it. It knows nothing of FUSE: the adapter in fs/fuse/ passes Node pointers
// and turns Results into replies, so the engine can be tested without a mount.
#pragma once

#include <sys/stat.h>
#include <sys/statvfs.h>

#include <functional>
#include <atomic>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "fs/core/id_mapping.hpp"
#include "fs/core/layer_hardlinks.hpp"
#include "fs/core/layer_stack.hpp"
#include "fs/core/node.hpp"
#include "fs/core/result.hpp"
#include "fs/core/unique_fd.hpp"
#include "fs/core/whiteout.hpp"
#include "fs/options.hpp"

namespace strata::fs {

// Who asks: ids as the kernel reports them for the request (shown ids).
struct Caller {
  uid_t uid = 0;
  gid_t gid = 0;
  mode_t umask = 0;  // applied by the overlay unless the parent has a default ACL
  // Supplementary groups cost a read of /proc/PID/status, so they are asked only when needed.
  std::function<bool(gid_t)> in_supplementary_group;

  // The daemon sees ids, not capabilities: uid 0 stands for CAP_FSETID and friends.
  bool privileged() const { return uid == 0; }
  bool in_group(gid_t shown) const {
    return shown == gid || (in_supplementary_group && in_supplementary_group(shown));
  }
};

struct Entry {
  Node* node = nullptr;  // holds one more lookup reference
  struct stat st {};
};

// Attribute changes of one setattr call; unset members are left alone.
struct AttrChange {
  std::optional<mode_t> mode;
  std::optional<uid_t> uid;
  std::optional<gid_t> gid;
  std::optional<off_t> size;
  std::optional<struct timespec> atime;  // tv_nsec may be UTIME_NOW
  std::optional<struct timespec> mtime;
};

struct DirEntry {
  std::string name;
  uint64_t ino;
  unsigned char type;  // DT_*
  int layer;           // where the visible entry lives
};

// An open regular file. Files opened from a lower layer reopen the upper copy if the node is
// copied up later, so every reader sees writes made through any name.
struct OpenFile {
  UniqueFd fd;
  Node* node = nullptr;
  int flags = 0;
  std::atomic<int> current{-1};          // the fd I/O uses now
  std::atomic<uint32_t> copyups_seen{0};
  bool from_lower = false;               // reopen_mutex
  std::vector<UniqueFd> retired;         // replaced fds stay open until release: readers may hold them
  std::mutex reopen_mutex;
};

class Overlay {
 public:
  // Opens the layers and prepares the workdir (cleans staging left by a crash).
  static Result<std::unique_ptr<Overlay>> create(const Options& opts, std::string& error);
  ~Overlay();

  Node* root() { return root_; }
  bool read_only() const { return read_only_; }
  const Options& options() const { return opts_; }
  // False when the kernel must not cache the attributes: a hardlinked file changes (link
  // count, copy-up) through names the kernel sees as other inodes.
  bool attrs_cacheable(const Node* node, const struct stat& st) const {
    (void)node;
    return read_only_ || !S_ISREG(st.st_mode) || st.st_nlink <= 1;
  }

  // Lookup and lifetime.
  Result<Entry> lookup(Node* parent, std::string_view name);
  // Lookup of a name list_dir just returned: the listing already says which layer holds it,
  // so only that layer and the ones below are probed (readdirplus).
  Result<Entry> lookup_listed(Node* dir, const DirEntry& entry);
  void forget(Node* node, uint64_t count);

  // Attributes.
  Result<struct stat> getattr(Node* node);
  // After a write, truncation or O_TRUNC open of the upper file `fd` by `caller`.
  void drop_setid_bits_for(int fd, const Caller& caller) const;
  Result<struct stat> setattr(Node* node, const AttrChange& change, const Caller& caller);
  Result<std::string> readlink(Node* node);
  Result<struct statvfs> statfs();

  // Namespace.
  Result<Entry> mknod(Node* parent, std::string_view name, mode_t mode, dev_t rdev, const Caller& caller);
  Result<Entry> mkdir(Node* parent, std::string_view name, mode_t mode, const Caller& caller);
  Result<Entry> symlink(Node* parent, std::string_view name, const std::string& target, const Caller& caller);
  Result<Entry> link(Node* node, Node* new_parent, std::string_view new_name);
  Status unlink(Node* parent, std::string_view name);
  Status rmdir(Node* parent, std::string_view name);
  Status rename(Node* parent, std::string_view name, Node* new_parent, std::string_view new_name,
                unsigned flags);

  // Files. An O_TRUNC open by an unprivileged `caller` drops set-id bits, as truncation does.
  Result<std::unique_ptr<OpenFile>> open(Node* node, int flags, const Caller& caller = {});
  Result<std::pair<Entry, std::unique_ptr<OpenFile>>> create(Node* parent, std::string_view name,
                                                             mode_t mode, int flags, const Caller& caller);
  // The fd to use for I/O on `file`: reopens the upper copy after a copy-up.
  int io_fd(OpenFile& file);
  Status fsync(OpenFile& file, bool datasync);

  // Directories: the merged listing, deduplicated, whiteouts and markers removed.
  Result<std::vector<DirEntry>> list_dir(Node* dir);

  // Extended attributes.
  Result<std::string> getxattr(Node* node, const std::string& name);
  Result<std::string> listxattr(Node* node);
  Status setxattr(Node* node, const std::string& name, std::string_view value, int flags);
  Status removexattr(Node* node, const std::string& name);

  // Path of the node relative to every layer root ("." for the root). ENOENT for unlinked.
  Result<std::string> path_of(const Node* node) const;
  const LayerStack& layers() const { return layers_; }

 private:
  Overlay(Options opts, LayerStack layers);

  // What a lookup found in the layers.
  struct Resolved {
    int top = -1;
    struct stat st {};
    std::vector<int> dir_layers;
    bool opaque = false;
    struct timespec newest_mtime {};  // of all merged layers of a directory
  };
  // A merged directory shows the newest mtime of its layers, so the kernel's readdir cache
  // notices a file added directly to any of them.
  void show_newest_mtime(struct stat& st, const Resolved& found) const {
    if (S_ISDIR(st.st_mode) && found.dir_layers.size() > 1) st.st_mtim = found.newest_mtime;
  }
  Result<Resolved> resolve(Node* parent, const std::string& parent_path, std::string_view name);
  // `dir`, when given, is the parent's node: its record of whiteout-free lower dirs saves
  // the .wh.NAME probe where the name is missing.
  Result<Resolved> resolve_in(const std::vector<int>& parent_layers, const std::string& parent_path,
                              std::string_view name, Node* dir = nullptr);
  // Whether `name`'s absence from `layer`'s directory at `dir_path` may hide a .wh.NAME file.
  bool may_hold_whiteout_file(Node* dir, int layer, const std::string& dir_path);
  Result<std::vector<DirEntry>> merged_entries(const std::vector<int>& dir_layers, const std::string& path,
                                               uint64_t self_ino, uint64_t parent_ino);
  // Builds a full, opaque copy of the merged directory in the workdir; returns its name there.
  Result<std::string> materialize_dir(const std::vector<int>& dir_layers, const std::string& path);
  void mark_subtree_upper(Node* dir);  // tree lock held
  Entry attach(Node* parent, std::string_view name, const Resolved& found);
  Node* insert_child(Node* parent, std::string_view name, Node* child);  // tree lock held
  void detach_child(Node* parent, std::string_view name);                 // tree lock held
  void release_if_unused(Node* node);                                     // tree lock held

  struct stat present(struct stat st, const std::string& path, int layer, const Node* node) const;
  uint64_t ino_for(int layer, const struct stat& st) const;
  void show_newest_layer_mtime(Node* dir, const std::string& path, struct stat& st) const;
  std::string abs_path(int layer, const std::string& rel) const;
  Result<std::string> xattr_source(Node* node, int& layer);

  // Copy-up.
  Status copy_up(Node* node, bool with_data = true);
  Status copy_up_locked(Node* node, const std::string& path, bool with_data);
  Status ensure_upper_dir(Node* dir);
  Status copy_tree(const std::vector<int>& dir_layers, const std::string& src_path,
                   const std::string& dst_work_path);
  // Makes a copy-up's data durable as -o copyup_sync= asks, before it is renamed into place.
  // Which whiteout and opaque forms the upper filesystem takes (probed once, in work/).
  const WhiteoutStyle& whiteout_style() const;
  Status sync_copied_data(int fd) const;
  Status copy_entry(int layer, const std::string& src, int dst_dirfd, const std::string& dst,
                    const struct stat& st, bool with_data);
  Status copy_xattrs(const std::string& src_abs, const std::string& dst_abs);
  std::string stage_name();
  void record_origin(const struct stat& upper_st, uint64_t ino);

  // Namespace helpers.
  bool name_in_lowers(const Node* parent, const std::string& path, int below_layer) const;
  // Creates `name` in the parent's upper dir through `make(dirfd, relative_name)`, replacing
  // a whiteout atomically (the new entry is built in the workdir) and making a directory
  // created over a whiteout opaque.
  Result<Entry> create_node(Node* parent, std::string_view name, bool is_dir, const Caller* caller,
                            const std::function<Status(int, const std::string&)>& make);
  mode_t effective_mode(Node* parent, mode_t mode, const Caller& caller);
  Status set_new_owner(int dirfd, const std::string& rel, const Caller& caller,
                       const std::string& parent_path, bool is_dir);
  Status remove_upper_entry(const std::string& path, bool is_dir, bool leave_whiteout);
  // Removes a resolved name from the merged view: from the upper (whiteout where a lower
  // still has it) or by a whiteout alone, then forgets the node's place in the tree.
  Status remove_name(Node* parent, const std::string& parent_path, std::string_view name, int top,
                     bool is_dir);
  Result<bool> merged_dir_empty(Node* dir);
  // After a hardlinked lower file is copied up to `path`, links every other visible name of it
  // to the same upper inode.
  void link_other_names(int layer, const struct stat& st, const std::string& path, uint64_t ino);
  // Resolves a path from the root through the layers, without nodes.
  Result<Resolved> resolve_path(const std::string& path);
  // Makes sure directory `dir_path` (and its parents) exist in the upper, copying them up.
  Status ensure_upper_path(const std::string& dir_path);
  Node* find_node(const std::string& path);  // tree lock held; nullptr if not looked up
  void mark_copied_up(const std::string& path);

  Options opts_;
  LayerStack layers_;
  IdMapping uids_;
  IdMapping gids_;
  mutable std::once_flag style_probed_;
  mutable WhiteoutStyle style_;  // whiteout_style() fills it
  bool read_only_ = false;
  bool privileged_ = false;  // may chown to any owner
  UniqueFd work_fd_;         // <workdir>/work: staging for copy-up
  std::string work_path_;

  mutable std::shared_mutex tree_;  // node structure: parent, name, children, dir_layers
  Node* root_ = nullptr;

  mutable std::mutex origins_mutex_;
  std::unordered_map<uint64_t, uint64_t> origins_;  // upper ino → st_ino shown before copy-up
  std::atomic<uint64_t> stage_counter_{0};
  std::vector<std::unique_ptr<LayerHardlinks>> hardlinks_;  // per layer
};

}  // namespace strata::fs
