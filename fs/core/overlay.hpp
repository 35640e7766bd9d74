// The overlay engine: merges a LayerStack into one tree and carries out every filesystem
// operation on it. It knows nothing of FUSE: the adapter in fs/fuse/ passes Inode pointers
// and turns Results into replies, so the engine can be tested without a mount.
//
// Model (see README "How the engine works"):
// - One Inode per backing file, keyed by the (dev, ino) of the file that shows it; names are
//   aliases (parent, name). Hardlinks are one Inode, so the kernel's caches stay coherent.
// - Files are reached by walking held directory fds (DirFdCache), one name per *at call, never
//   a path string: no symlink in a layer is ever followed, whatever a container plants there,
//   and depth costs nothing.
// - An Inode whose last name goes while it is still referenced keeps its backing file open
//   (`Inode::orphan`): open files keep answering getattr, setattr, read and write.
//
// Lock order (take only in this order; never hold one while replying to the kernel):
//   0. OpenFile::reopen_mutex — a handle switching from a lower file to its upper copy.
//   1. Inode::copy_mutex  — one data copy-up of a file at a time; at most one held.
//   2. tree_              — shared: lookups, getattr, reads of the tree and of backing files;
//                           exclusive: every change of the tree (create, remove, rename,
//                           copy-up publish, attach of looked-up names). The syscalls that
//                           change a layer run under the same exclusive hold as the map update.
//   3. leaves, never held across anything but their own bookkeeping: DirFdCache::mutex_,
//      origins_mutex_, LayerHardlinks::mutex_ (held over its one walk of a lower layer).
// Copying a file's data runs under (1) only; directory copy-ups and the copy-up of a merged
// directory's lower-only entries before it is renamed run under the exclusive tree lock.
#pragma once

#include <sys/stat.h>
#include <sys/statvfs.h>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "fs/core/dir_fd_cache.hpp"
#include "fs/core/engine_config.hpp"
#include "fs/core/hidden_links.hpp"
#include "fs/core/id_mapping.hpp"
#include "fs/core/inode.hpp"
#include "fs/core/layer_hardlinks.hpp"
#include "fs/core/layer_stack.hpp"
#include "fs/core/negative_memo.hpp"
#include "fs/core/result.hpp"
#include "fs/core/unique_fd.hpp"
#include "fs/core/whiteout.hpp"
#include "fs/core/xattr_target.hpp"

namespace strata::fs {

struct OverrideStat;  // fs/core/override_stat.hpp

// Who asks: ids as the kernel reports them for the request (shown ids).
struct Caller {
  uid_t uid = 0;
  gid_t gid = 0;
  mode_t umask = 0;  // applied by the overlay unless the parent has a default ACL
  // Supplementary groups cost a read of /proc/PID/status, so they are asked only when needed.
  std::function<bool(gid_t)> in_supplementary_group;

  // Whether the writer has CAP_FSETID, where the kernel says so (fs/fuse/kill_suidgid.hpp).
  std::optional<bool> has_fsetid;

  // A write, truncation or O_TRUNC open keeps the file's set-id bits. Where the kernel does
  // not say, the daemon sees ids, not capabilities: uid 0 stands for CAP_FSETID.
  bool may_keep_setid_bits() const { return has_fsetid.value_or(uid == 0); }
  bool in_group(gid_t shown) const {
    return shown == gid || (in_supplementary_group && in_supplementary_group(shown));
  }
};

struct Entry {
  Inode* node = nullptr;  // holds one more lookup reference
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

// An open regular file. Files opened from a lower layer reopen the upper copy if the Inode is
// copied up later, so every reader sees writes made through any name.
struct OpenFile {
  UniqueFd fd;
  Inode* node = nullptr;
  int flags = 0;
  std::atomic<int> current{-1};          // the fd I/O uses now
  std::atomic<uint32_t> copyups_seen{0};
  std::atomic<bool> from_lower{false};   // written under reopen_mutex; io_fd's fast path reads it without
  std::vector<UniqueFd> retired;         // replaced fds stay open until release: readers may hold them
  std::mutex reopen_mutex;
  std::shared_ptr<const LayerFileData> lower_data;  // set when the lower's data is not in `fd` (a blob)
  std::optional<struct stat> created_st;  // the backing file's stat, when this open created it
  uint8_t kernel_io = 0;                 // the FUSE adapter's bookkeeping (fs/fuse/passthrough.hpp)
};

class Overlay {
 public:
  // Opens the layers and prepares the workdir (cleans staging left by a crash).
  static Result<std::unique_ptr<Overlay>> create(const EngineConfig& config, std::string& error);
  ~Overlay();

  Inode* root() { return root_; }
  bool read_only() const { return read_only_; }
  const EngineConfig& config() const { return config_; }

  // Lookup and lifetime.
  Result<Entry> lookup(Inode* parent, std::string_view name);
  // Lookup of a name list_dir returned (readdirplus): while the tree is as it was then
  // (`listed_version`), only the entry's layer and those below it are probed.
  Result<Entry> lookup_listed(Inode* dir, const DirEntry& entry, uint64_t listed_version);
  void forget(Inode* node, uint64_t count);

  // Attributes. `file`, when the request names an open handle, answers from it.
  Result<struct stat> getattr(Inode* node, OpenFile* file = nullptr);
  // After a write, truncation or O_TRUNC open of the upper file `fd` by `caller`.
  void drop_setid_bits_for(int fd, const Caller& caller) const;
  Result<struct stat> setattr(Inode* node, const AttrChange& change, const Caller& caller);
  Result<std::string> readlink(Inode* node);
  Result<struct statvfs> statfs();

  // Namespace.
  Result<Entry> mknod(Inode* parent, std::string_view name, mode_t mode, dev_t rdev, const Caller& caller);
  Result<Entry> mkdir(Inode* parent, std::string_view name, mode_t mode, const Caller& caller);
  Result<Entry> symlink(Inode* parent, std::string_view name, const std::string& target, const Caller& caller);
  Result<Entry> link(Inode* node, Inode* new_parent, std::string_view new_name);
  Status unlink(Inode* parent, std::string_view name);
  Status rmdir(Inode* parent, std::string_view name);
  Status rename(Inode* parent, std::string_view name, Inode* new_parent, std::string_view new_name,
                unsigned flags);

  // Files. An O_TRUNC open by an unprivileged `caller` drops set-id bits, as truncation does.
  Result<std::unique_ptr<OpenFile>> open(Inode* node, int flags, const Caller& caller = {});
  Result<std::pair<Entry, std::unique_ptr<OpenFile>>> create(Inode* parent, std::string_view name,
                                                             mode_t mode, int flags, const Caller& caller);
  // The fd to use for I/O on `file`: reopens the upper copy after a copy-up.
  int io_fd(OpenFile& file);
  // The data to read `file` from while its I/O still goes to a lower layer served from a blob
  // (its fd then holds no data); nullptr when io_fd is the file.
  const LayerFileData* streamed(OpenFile& file);
  Status fsync(OpenFile& file, bool datasync);

  // Directories: the merged listing, deduplicated, whiteouts and markers removed. `version`
  // receives the tree's version it reflects.
  Result<std::vector<DirEntry>> list_dir(Inode* dir, uint64_t* version = nullptr);

  // Extended attributes.
  Result<std::string> getxattr(Inode* node, const std::string& name);
  Result<std::string> listxattr(Inode* node);
  Status setxattr(Inode* node, const std::string& name, std::string_view value, int flags);
  Status removexattr(Inode* node, const std::string& name);

  const LayerStack& layers() const { return layers_; }

  // For tests: checks the tree's invariants (children ↔ aliases, keys ↔ table); "" if they hold.
  std::string check_invariants();
  size_t cached_dir_fds() const { return dir_fds_.size(); }

 private:
  Overlay(EngineConfig config, LayerStack layers);

  // What a lookup found in the layers.
  struct Resolved {
    int top = -1;
    struct stat st {};
    std::vector<int> dir_layers;
    bool opaque = false;
    struct timespec newest_mtime {};  // of all merged layers of a directory
  };

  // ---- Reaching backing files (tree lock held, shared or exclusive). ----
  // Directory `dir` of `layer`, opened one name at a time from the nearest cached ancestor;
  // nullptr with errno set if it has none there.
  LayerDirRef layer_dir(Inode* dir, int layer);
  const LayerSource& source(int layer) const { return *layers_[size_t(layer)].source; }
  // Where a node's backing file is in `layer`: its first alias's directory and name; the
  // layer's root (empty name); or the orphan, a file held by its own fd.
  struct Place {
    LayerDirRef dir;
    std::string name;
    int layer = 0;
    bool orphan = false;
    int fd() const { return dir ? dir->fd() : -1; }
  };
  Result<Place> place_of(Inode* node, int layer);
  // Reading a place, through its layer's source (the orphan through its fd).
  Result<struct stat> stat_at(const Place& place) const;
  ssize_t getxattr_at(const Place& place, const char* xname, void* value, size_t size) const;
  ssize_t listxattr_at(const Place& place, char* list, size_t size) const;
  Result<std::string> readlink_at(const Place& place) const;
  // Writing a place of the upper (or the orphan): its chmod path and xattr target.
  static std::string path_of(const Place& place) { return fd_path(place.fd(), place.name); }
  static XattrTarget target_of(const Place& place) { return {path_of(place), place.name.empty()}; }
  // Opens the node's visible backing file with `flags` (plus O_NOFOLLOW | O_CLOEXEC); only
  // the upper and orphans are opened for writing.
  Result<UniqueFd> open_backing(Inode* node, int flags);

  // ---- Lookup (lookup.cpp). ----
  // `absence`, when given and the name is not found, receives what the upper held there.
  Result<Resolved> resolve_in(Inode* parent, const std::vector<int>& layers, std::string_view name,
                              Absence* absence = nullptr);
  Result<Resolved> resolve(Inode* parent, std::string_view name) { return resolve_in(parent, parent->dir_layers, name); }
  // resolve() for a change of the tree (exclusive lock) at a name the kernel has usually just
  // looked up and not found: then that lookup's probes answer (NegativeMemo).
  Result<Resolved> resolve_for_change(Inode* parent, std::string_view name, Absence& absence);
  bool may_hold_whiteout_file(Inode* dir, int layer);
  // Whether every .wh.NAME file in the upper was there when its directory was scanned: the
  // mount writes whiteouts as devices (or is read-only).
  bool upper_gains_no_whiteout_files() const;
  // Binds `name` in `parent` to the Inode of `found` (an existing one with the same key, or a
  // new one). Exclusive tree lock.
  Inode* attach(Inode* parent, std::string_view name, const Resolved& found);
  Result<Entry> lookup_in(Inode* parent, std::string_view name, const std::vector<int>* only_layers);
  // Walks a path of the merged view from the root (exclusive lock); created Inodes go to `temp`.
  Result<std::pair<Inode*, Resolved>> walk_locked(const std::string& path, std::vector<Inode*>& temp);

  // ---- The Inode table (overlay.cpp). Exclusive tree lock. ----
  Inode* new_inode(mode_t type, uint64_t ino);
  void add_alias(Inode* node, Inode* parent, std::string_view name);
  void remove_alias(Inode* node, Inode* parent, std::string_view name);
  void set_key(Inode* node, const InodeKey& key);
  void drop_key(Inode* node);
  void release_if_unused(Inode* node);
  void release_all(std::vector<Inode*>& temp);
  // Before the last name of `victim` may go: hold its backing file (`place` in its top layer).
  UniqueFd hold_backing(const Place& place);
  // After the name `name` in `parent` of `victim` went: drops the alias, and if no name is
  // left, the held file becomes its orphan.
  void after_name_removed(Inode* victim, Inode* parent, std::string_view name, UniqueFd held, bool upper);
  void bump_version() { version_.fetch_add(1, std::memory_order_release); }

  // ---- Attributes (attr.cpp). ----
  // The override record (xattr_permissions) read through `xattr`, or nullopt (none, or off).
  std::optional<OverrideStat> recorded_override(const std::function<ssize_t(const char*, void*, size_t)>& xattr) const;
  // What stat shows: ids mapped, the override record applied (read through `xattr`), st_ino.
  struct stat present(struct stat st, const std::function<ssize_t(const char*, void*, size_t)>& xattr,
                      const Inode* node) const;
  uint64_t ino_for(int layer, const struct stat& st) const;
  void show_newest_layer_mtime(Inode* dir, struct stat& st);
  Result<struct stat> getattr_locked(Inode* node);
  // What stat shows for `name` in `parent`, from the stat a lookup just made (no second one).
  struct stat shown_stat(Inode* node, Inode* parent, std::string_view name, const Resolved& found);
  void record_origin(ino_t upper_ino, uint64_t shown);
  void forget_origin(ino_t upper_ino);
  Status write_override(const XattrTarget& target, uid_t uid, gid_t gid, mode_t mode);

  // ---- Copy-up (copy_up.cpp). ----
  const WhiteoutStyle& whiteout_style() const;
  Status sync_copied_data(int fd) const;
  std::string stage_name();
  // Builds a copy of the file at `src` (a Place in `layer`) as work/`tmp`: data (if asked),
  // owner, mode, xattrs, times.
  // `no_caps` (if given) is set when the copy is known to have no security.capability.
  Status stage_copy(const Place& src, const struct stat& st, const std::string& tmp, bool with_data,
                    bool* no_caps = nullptr);
  // Reads the source's xattrs through `src_fd` when it is an open fd of the file.
  Status copy_xattrs(const Place& src, const XattrTarget& dst, int src_fd = -1, bool* no_caps = nullptr);
  // Copy-up entry points. copy_up: no lock held; copies data under copy_mutex only.
  Status copy_up(Inode* node, bool with_data = true);
  // Exclusive tree lock held: the data copy, if any, happens under it.
  Status copy_up_locked(Inode* node, bool with_data = true);
  Status ensure_upper_dir_locked(Inode* dir);
  // Moves a staged copy into place for `node` and updates the tree. Exclusive lock.
  Status publish_copy(Inode* node, const std::string& tmp, const struct stat& src_st, int src_layer);
  // After a hardlinked lower file is copied up, links every other visible name of it to the
  // same upper inode (the kernel's index=on keeps them one file). Exclusive lock.
  void link_other_names_locked(Inode* node, int layer, const struct stat& lower_st);
  // Copies up every lower-only entry below directory `dir` in place (exclusive lock).
  Status complete_upper_tree_locked(Inode* dir);

  // ---- Namespace helpers (namespace_ops.cpp, rename.cpp). ----
  bool name_in_lowers(Inode* parent, std::string_view name);
  bool has_default_acl(Inode* dir);
  // make_whiteout for the upper, noting when it had to write a .wh.NAME file.
  Status whiteout_at(int dir_fd, std::string_view name);
  // `made_fd`: the fd `make` opens the new file with, if any (its stat is taken from it);
  // `made_st` receives the backing file's stat.
  Result<Entry> create_node(Inode* parent, std::string_view name, bool is_dir, const Caller* caller, mode_t mode,
                            const std::function<Status(int, const std::string&)>& make,
                            const UniqueFd* made_fd = nullptr, struct stat* made_st = nullptr);
  mode_t effective_mode(Inode* parent, mode_t mode, const Caller& caller);
  Status set_new_owner(int dirfd, const std::string& name, const Caller& caller, int parent_fd, bool is_dir,
                       mode_t mode);
  Status remove_upper_entry(int dirfd, const std::string& name, bool is_dir, bool leave_whiteout);
  Status remove_name_locked(Inode* parent, std::string_view name, const Resolved& found);
  Result<bool> merged_dir_empty_locked(Inode* dir);
  Result<std::vector<DirEntry>> merged_entries(Inode* dir, const std::vector<int>& dir_layers, uint64_t self_ino,
                                               uint64_t parent_ino);
  void mark_subtree_upper(Inode* dir);
  Status rename_locked(Inode* parent, std::string_view name, Inode* new_parent, std::string_view new_name,
                       unsigned flags, std::vector<Inode*>& temp);

  EngineConfig config_;
  LayerStack layers_;
  IdMapping uids_;
  IdMapping gids_;
  mutable std::once_flag style_probed_;
  mutable WhiteoutStyle style_;  // whiteout_style() fills it
  mutable std::atomic<bool> style_known_{false};  // ... and then sets this
  bool read_only_ = false;
  bool privileged_ = false;  // may chown to any owner
  uid_t daemon_uid_ = 0;     // the owner the backing filesystem gives what the daemon creates
  gid_t daemon_gid_ = 0;
  std::atomic<bool> wrote_whiteout_files_{false};  // a .wh.NAME file was made in the upper
  std::atomic<bool> no_reflink_{false};  // the upper's filesystem refused a reflink (copy_file_data)
  UniqueFd work_fd_;         // <workdir>/work: staging for copy-up
  HiddenLinks hidden_links_;

  mutable std::shared_mutex tree_;
  std::atomic<uint64_t> version_{0};  // bumped by every change of the tree
  Inode* root_ = nullptr;
  std::unordered_map<InodeKey, Inode*, InodeKeyHash> table_;
  std::unordered_map<uint64_t, Inode*> all_;  // every live Inode by id
  uint64_t next_id_ = 1;
  DirFdCache dir_fds_;
  NegativeMemo negatives_;

  mutable std::mutex origins_mutex_;
  std::unordered_map<ino_t, uint64_t> origins_;  // upper ino → st_ino shown before copy-up
  std::atomic<uint64_t> stage_counter_{0};
  std::vector<std::unique_ptr<LayerHardlinks>> hardlinks_;  // per layer
};

}  // namespace strata::fs
