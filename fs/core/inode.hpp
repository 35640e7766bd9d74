// One FUSE inode per backing file. Hardlinked names are one Inode, reached through several
// aliases (parent, name); a directory has exactly one alias. The kernel's nodeid is the
// Inode's address, st_ino is `ino`, fixed for the Inode's life and kept through copy-up.
//
// Everything here except the atomics and `copy_mutex` is guarded by Overlay's tree lock (see
// the lock order in overlay.hpp).
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "fs/core/unique_fd.hpp"

namespace strata::fs {

struct Inode;
class LayerDir;  // fs/core/layer_source.hpp

struct Alias {
  Inode* parent;
  std::string name;
};

// What identifies a backing file: its (dev, ino) in the layer that shows it. An Inode is
// re-keyed to its upper file on copy-up, so names linked to that upper file find it again.
struct InodeKey {
  dev_t dev = 0;
  ino_t ino = 0;
  bool operator==(const InodeKey&) const = default;
};

struct InodeKeyHash {
  size_t operator()(const InodeKey& k) const { return std::hash<uint64_t>()(uint64_t(k.ino) * 31 + uint64_t(k.dev)); }
};

struct Inode {
  const uint64_t id;  // never reused: keys the directory fd cache
  const mode_t type;  // S_IFMT bits
  const uint64_t ino; // st_ino shown

  explicit Inode(uint64_t id_, mode_t type_, uint64_t ino_) : id(id_), type(type_), ino(ino_) {}

  // Layer holding the visible backing file: 0 is the upper when the mount has one. Only
  // moves from a lower index to 0 (copy-up); readers may load it without the tree lock.
  std::atomic<int> top{0};
  std::atomic<uint32_t> copyups{0};  // bumped on copy-up: open lower fds reopen the upper file

  // The kernel's lookup count. Raised under the shared tree lock by a lookup that finds the
  // name bound already; lowered and tested under the exclusive one.
  std::atomic<uint64_t> nlookup{0};
  uint32_t pins = 0;     // open handles and engine operations in flight
  InodeKey key;
  bool keyed = false;    // `key` maps to this Inode in the table

  std::vector<Alias> aliases;                          // names in the merged tree
  std::unordered_map<std::string, Inode*> children;    // looked-up children (directories)
  std::vector<int> dir_layers;  // directories: layers (top-most first) merged at this place
  bool opaque = false;
  // Lower layers whose directory here was scanned for .wh.NAME files (1) and found free of
  // them (2): a name missing there needs no whiteout probe. Lowers do not change under a mount.
  std::unique_ptr<std::atomic<uint8_t>[]> whiteout_scan;  // one per layer, dirs only
  // Directories: whether the visible directory has a default ACL (0 not known yet, 1 no,
  // 2 yes), which decides whether a new entry's mode loses the caller's umask. Only xattr
  // changes through the mount change it (they reset it to 0).
  std::atomic<uint8_t> default_acl{0};
  // A file this mount made (created, or copied up from one without it) and no xattr was set on
  // since: it has no security.capability, which the kernel asks for before the first write
  // and every chown.
  std::atomic<bool> created_without_caps{false};

  // Once no name is left while the kernel or a handle still refers to the Inode, the backing
  // file is held here (O_PATH; for a lower file copied up anonymously, O_RDWR) and answers
  // getattr, setattr, open and xattrs.
  UniqueFd orphan;
  // The same for a file of a layer without fds (a lazy layer's blob), which no fd can hold:
  // its directory there and its name, which never change (lower layers are read-only).
  std::shared_ptr<const LayerDir> orphan_dir;
  std::string orphan_name;

  std::mutex copy_mutex;  // one data copy-up at a time (taken before the tree lock)

  bool is_dir() const { return (type & S_IFMT) == S_IFDIR; }
  bool is_reg() const { return (type & S_IFMT) == S_IFREG; }
  bool merged() const { return dir_layers.size() > 1; }
  const Alias* first_alias() const { return aliases.empty() ? nullptr : &aliases.front(); }
};

}  // namespace strata::fs
