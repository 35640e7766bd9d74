// The index of one layer blob, kept beside the blob instead of unpacking it: where to resume
// decompression (checkpoints) and what the tar holds (a table of contents). Built by the
// layer store in the pass that verifies the blob (layerstore/archive/layer_index_build.hpp),
// read by strata-fs's blob-backed layers (fs/core/blob_layer_source.hpp). No layer-store or
// FUSE dependency: both halves link it. The file format is described in README.md.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace strata::lazy {

inline constexpr char kIndexMagic[8] = {'S', 'T', 'R', 'A', 'T', 'A', 'I', 'X'};
// Version 2 added sparse files (TocInode::sparse); version 1 indexes, which hold none, are
// still read, so stores and caches made before keep working.
inline constexpr uint32_t kIndexVersion = 2;

enum class BlobCompression : uint32_t { Plain = 0, Gzip = 1, Zstd = 2 };

// A place decompression can start from. `in` and `out` are offsets in the compressed blob and
// in the uncompressed tar. A stream start (gzip member, zstd frame, the plain stream) needs
// nothing else; a deflate block boundary inside a gzip member also needs the `bits` (0-7)
// of the byte before `in` that belong to the block and the up to 32 KiB of output before
// `out` (the zran technique).
struct Checkpoint {
  enum class Kind : uint8_t { StreamStart = 0, DeflateBlock = 1 };
  Kind kind = Kind::StreamStart;
  uint8_t bits = 0;
  uint64_t in = 0;
  uint64_t out = 0;
  std::string window;
};

// A data region of a sparse file: `length` bytes at `file_offset` of the file are the bytes at
// `tar_offset` of the uncompressed tar. What no region covers reads as zeros.
struct SparseSegment {
  uint64_t file_offset = 0, length = 0, tar_offset = 0;
};

// One file, as the layer's tar leaves it once extracted (every name of a hardlinked file
// shares one). `mode` holds the type bits; a whiteout is a char device 0/0, as overlayfs
// reads it in a lower layer; `opaque` marks a directory whose lower contents are hidden.
struct TocInode {
  uint32_t mode = 0;
  uint32_t uid = 0, gid = 0;
  int64_t mtime = 0;
  uint64_t size = 0;      // regular files: data bytes; symlinks: target length
  uint64_t offset = 0;    // regular files: where the data starts in the uncompressed tar
  uint64_t rdev = 0;
  uint32_t nlink = 1;
  bool opaque = false;
  // A sparse regular file (GNU tar --sparse): its bytes are its regions, BlobIndex::segments
  // [first_segment, first_segment + segment_count) (by file offset, not overlapping, possibly
  // none), and zeros elsewhere, not `size` bytes at `offset`. (Kept out of the inode, which a
  // layer has millions of, so that files that are not sparse pay nothing for them.)
  bool sparse = false;
  uint32_t first_segment = 0, segment_count = 0;
  std::string link;       // symlink target
  std::vector<std::pair<std::string, std::string>> xattrs;
};

// A name: entry 0 is the root (parent 0, empty name). A directory's children are contiguous
// and sorted by name (the writer sorts them), so lookups are a binary search.
struct TocName {
  uint32_t parent = 0;
  uint32_t inode = 0;
  std::string name;
};

struct BlobIndex {
  BlobCompression compression = BlobCompression::Plain;
  uint64_t compressed_size = 0;
  uint64_t uncompressed_size = 0;
  std::string digest;   // "sha256:..." of the blob as stored
  std::string diff_id;  // of the uncompressed tar
  std::vector<Checkpoint> points;  // by `out`, the first at out 0
  std::vector<TocInode> inodes;
  std::vector<TocName> names;
  std::vector<SparseSegment> segments;  // the regions of sparse files (TocInode::first_segment)

  // Filled by finish_names() (and by parse): for directory name i, its children are
  // names[first_child[i] .. first_child[i] + child_count[i]).
  std::vector<uint32_t> first_child, child_count;

  // Sorts each directory's children, renumbers parents, builds the child ranges. Names
  // must come parent before child. Called by the builder before serialize.
  void finish_names();
  // The child `name` of directory name `dir`; nullopt if none.
  std::optional<uint32_t> child(uint32_t dir, std::string_view name) const;
  // The regions of sparse file `i` (empty for any other).
  std::span<const SparseSegment> segments_of(const TocInode& i) const {
    return std::span<const SparseSegment>(segments).subspan(i.first_segment, i.segment_count);
  }
  // The checkpoint to start from for uncompressed offset `out` (the last one at or before).
  const Checkpoint& point_before(uint64_t out) const;

  std::string serialize() const;
  // Parses a serialized index; nullopt with `error` set when it is not a valid index of
  // this version (truncated, wrong magic, inconsistent references).
  static std::optional<BlobIndex> parse(std::string_view bytes, std::string& error);
};

// Which blob an index file describes, read from its header and the first bytes of its body
// only: enough to tell whether a cached index is the one wanted, without building it (strata-fs
// builds it when it mounts the layer, and refuses it if the rest is corrupt).
struct IndexSummary {
  uint64_t compressed_size = 0;
  std::string digest, diff_id;
};
std::optional<IndexSummary> read_index_summary(const std::string& path, std::string& error);

// Reads and parses an index file; nullopt with `error` set.
std::optional<BlobIndex> load_index_file(const std::string& path, std::string& error);
// The same from an open regular file (`path` for messages).
std::optional<BlobIndex> load_index_fd(int fd, const std::string& path, std::string& error);

}  // namespace strata::lazy
