#include "fs/core/blob_layer_source.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <vector>

#include "common/lazy/trusted_file.hpp"
#include "common/overlay_xattrs.hpp"
#include "fs/core/whiteout.hpp"

namespace strata::fs {

namespace {

class BlobDir final : public LayerDir {
 public:
  explicit BlobDir(uint32_t name) : name_(name) {}
  uint32_t name() const { return name_; }

 private:
  uint32_t name_;
};

uint32_t dir_name(const LayerDir& dir) { return static_cast<const BlobDir&>(dir).name(); }

unsigned char dtype(uint32_t mode) {
  switch (mode & S_IFMT) {
    case S_IFDIR: return DT_DIR;
    case S_IFREG: return DT_REG;
    case S_IFLNK: return DT_LNK;
    case S_IFCHR: return DT_CHR;
    case S_IFBLK: return DT_BLK;
    case S_IFIFO: return DT_FIFO;
    default: return DT_UNKNOWN;
  }
}

// The xattrs a name shows: the image's own, plus the opaque marker the engine looks for.
std::vector<std::pair<std::string_view, std::string_view>> xattrs_of(const lazy::TocInode& ino) {
  std::vector<std::pair<std::string_view, std::string_view>> out;
  if (ino.opaque) out.emplace_back(kTrustedOpaque, "y");
  for (const auto& [k, v] : ino.xattrs) out.emplace_back(k, v);
  return out;
}

// A lazy file's bytes: its range of the layer's uncompressed tar.
class BlobFileData final : public LayerFileData {
 public:
  BlobFileData(lazy::BlobReader& reader, uint64_t offset, uint64_t size)
      : reader_(reader), offset_(offset), size_(size) {}
  ssize_t read_at(void* buf, size_t len, off_t off) const override {
    if (off < 0) return -EINVAL;
    if (uint64_t(off) >= size_) return 0;
    len = size_t(std::min<uint64_t>(len, size_ - uint64_t(off)));
    return reader_.read_at(buf, len, offset_ + uint64_t(off));
  }
  off_t size() const override { return off_t(size_); }

 private:
  lazy::BlobReader& reader_;
  uint64_t offset_, size_;
};

// A sparse lazy file: its regions' bytes from the tar, zeros in the holes (no blob read).
class SparseFileData final : public LayerFileData {
 public:
  SparseFileData(lazy::BlobReader& reader, const lazy::TocInode& inode, std::span<const lazy::SparseSegment> segments)
      : reader_(reader), inode_(inode), segments_(segments) {
    // Where the unpacked file has data on a disk of 4 KiB blocks: each region widened to
    // whole blocks, touching ones merged. SEEK_DATA/SEEK_HOLE answer from these.
    constexpr uint64_t kBlock = 4096;
    for (const auto& g : segments) {
      uint64_t start = g.file_offset / kBlock * kBlock;
      uint64_t end = std::min(inode.size, (g.file_offset + g.length + kBlock - 1) / kBlock * kBlock);
      if (!extents_.empty() && start <= extents_.back().second) extents_.back().second = std::max(extents_.back().second, end);
      else extents_.emplace_back(start, end);
    }
  }
  off_t seek_data(off_t off, bool hole) const override {
    if (off < 0 || uint64_t(off) >= inode_.size) return -ENXIO;
    uint64_t pos = uint64_t(off);
    // The first extent ending after pos.
    auto it = std::upper_bound(extents_.begin(), extents_.end(), pos,
                               [](uint64_t p, const std::pair<uint64_t, uint64_t>& e) { return p < e.second; });
    if (it == extents_.end()) return hole ? off : -ENXIO;
    if (hole) return off_t(pos < it->first ? pos : it->second);
    return off_t(std::max(pos, it->first));
  }
  ssize_t read_at(void* buf, size_t len, off_t off) const override {
    if (off < 0) return -EINVAL;
    uint64_t pos = uint64_t(off), size = inode_.size;
    if (pos >= size) return 0;
    len = size_t(std::min<uint64_t>(len, size - pos));
    char* out = static_cast<char*>(buf);
    const auto& segs = segments_;
    // The first region ending after pos; regions are in order and do not overlap.
    auto it = std::upper_bound(segs.begin(), segs.end(), pos, [](uint64_t p, const lazy::SparseSegment& g) {
      return p < g.file_offset + g.length;
    });
    for (size_t done = 0; done < len;) {
      uint64_t at = pos + done;
      size_t k;
      if (it == segs.end() || at < it->file_offset) {
        k = size_t(std::min<uint64_t>(len - done, (it == segs.end() ? size : it->file_offset) - at));
        std::memset(out + done, 0, k);
      } else {
        k = size_t(std::min<uint64_t>(len - done, it->file_offset + it->length - at));
        ssize_t n = reader_.read_at(out + done, k, it->tar_offset + (at - it->file_offset));
        if (n < 0) return n;
        if (size_t(n) != k) return -EIO;  // the index promised these bytes
        ++it;
      }
      done += k;
    }
    return ssize_t(len);
  }
  off_t size() const override { return off_t(inode_.size); }

 private:
  lazy::BlobReader& reader_;
  const lazy::TocInode& inode_;
  std::span<const lazy::SparseSegment> segments_;
  std::vector<std::pair<uint64_t, uint64_t>> extents_;  // [start, end) with data, in order
};

// What a sparse file takes on a disk of 4 KiB blocks, in 512-byte units (st_blocks): the
// blocks its regions touch.
blkcnt_t sparse_blocks(std::span<const lazy::SparseSegment> segments) {
  constexpr uint64_t kBlock = 4096;
  uint64_t blocks = 0, counted_to = 0;  // blocks below counted_to are counted
  for (const auto& g : segments) {
    uint64_t first = std::max(g.file_offset / kBlock, counted_to), end = (g.file_offset + g.length + kBlock - 1) / kBlock;
    if (end > first) blocks += end - first;
    counted_to = std::max(counted_to, end);
  }
  return blkcnt_t(blocks * (kBlock / 512));
}

}  // namespace

std::unique_ptr<BlobLayerSource> BlobLayerSource::open(const std::string& descriptor_path, dev_t dev,
                                                       std::string& error) {
  auto d = read_lazy_layer_file(descriptor_path, error);
  if (!d) return nullptr;
  // The index says which owners and modes (set-uid bits too) the blob's bytes show with: as
  // the descriptor (lazy_layer_file.cpp), it is taken only from a file nobody but this user or
  // root can write. Both files are opened O_NONBLOCK: a FIFO at either name is refused, not
  // waited on.
  UniqueFd index_fd(::open(d->index.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  struct stat ist {};
  if (!index_fd || ::fstat(index_fd.get(), &ist) != 0) {
    error = d->index + ": " + std::strerror(errno);
    return nullptr;
  }
  if (std::string who = lazy::other_writers(ist, geteuid()); !who.empty()) {
    error = d->index + ": " + who + ": a lazy layer's index is taken only from this user or root";
    return nullptr;
  }
  auto ix = lazy::load_index_fd(index_fd.get(), d->index, error);
  if (!ix) return nullptr;
  UniqueFd blob(::open(d->blob.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK));
  struct stat st {};
  if (!blob || ::fstat(blob.get(), &st) != 0) {
    error = d->blob + ": " + std::strerror(errno);
    return nullptr;
  }
  if (!S_ISREG(st.st_mode)) {
    error = d->blob + ": not a regular file";
    return nullptr;
  }
  if (d->verified && lazy::BlobFileIdentity::of(st) != *d->verified) {
    error = d->blob + ": changed or replaced since its blob was verified (" + ix->digest + "): mount it again";
    return nullptr;
  }
  if (uint64_t(st.st_size) < d->offset || uint64_t(st.st_size) - d->offset < ix->compressed_size) {
    error = d->blob + ": shorter than the blob its index describes (" + ix->digest + ")";
    return nullptr;
  }
  auto shared = std::make_shared<const lazy::BlobIndex>(std::move(*ix));
  return std::unique_ptr<BlobLayerSource>(new BlobLayerSource(shared, std::move(blob), d->offset, dev));
}

BlobLayerSource::BlobLayerSource(std::shared_ptr<const lazy::BlobIndex> index, UniqueFd blob, uint64_t offset,
                                 dev_t dev)
    : index_(index), blob_(std::move(blob)), dev_(dev), root_(std::make_shared<const BlobDir>(0)),
      reader_(index, blob_.get(), offset) {}

Result<uint32_t> BlobLayerSource::resolve(const LayerDir& dir, std::string_view name) const {
  uint32_t d = dir_name(dir);
  if (name.empty()) return d;
  auto c = index_->child(d, name);
  if (!c) return Errno{ENOENT};
  return *c;
}

LayerDirRef BlobLayerSource::open_dir(const LayerDir& dir, std::string_view name) const {
  auto n = resolve(dir, name);
  if (!n) {
    errno = n.error();
    return nullptr;
  }
  const auto& ino = index_->inodes[index_->names[*n].inode];
  if (!S_ISDIR(ino.mode)) {
    errno = S_ISLNK(ino.mode) ? ELOOP : ENOTDIR;
    return nullptr;
  }
  return std::make_shared<const BlobDir>(*n);
}

Status BlobLayerSource::stat(const LayerDir& dir, std::string_view name, struct stat& st) const {
  auto n = resolve(dir, name);
  if (!n) return n.error();
  uint32_t inode = index_->names[*n].inode;
  const auto& ino = index_->inodes[inode];
  st = {};
  st.st_dev = dev_;
  st.st_ino = ino_t(inode) + 1;
  st.st_mode = ino.mode;
  st.st_nlink = ino.nlink;
  st.st_uid = ino.uid;
  st.st_gid = ino.gid;
  st.st_rdev = dev_t(ino.rdev);
  st.st_size = off_t(S_ISREG(ino.mode) || S_ISLNK(ino.mode) ? ino.size : S_ISDIR(ino.mode) ? 4096 : 0);
  st.st_blksize = 4096;
  st.st_blocks = ino.sparse ? sparse_blocks(index_->segments_of(ino)) : blkcnt_t((uint64_t(st.st_size) + 511) / 512);
  st.st_atim.tv_sec = st.st_mtim.tv_sec = st.st_ctim.tv_sec = time_t(ino.mtime);
  return 0;
}

Status BlobLayerSource::list(const LayerDir& dir,
                             const std::function<bool(std::string_view, ino_t, unsigned char)>& each) const {
  uint32_t d = dir_name(dir);
  const auto& self = index_->names[d];
  if (!each(".", ino_t(self.inode) + 1, DT_DIR)) return 0;
  if (!each("..", ino_t(index_->names[self.parent].inode) + 1, DT_DIR)) return 0;
  uint32_t first = index_->first_child[d], count = index_->child_count[d];
  for (uint32_t k = first; k < first + count; k++) {
    const auto& n = index_->names[k];
    if (!each(n.name, ino_t(n.inode) + 1, dtype(index_->inodes[n.inode].mode))) return 0;
  }
  return 0;
}

Result<std::string> BlobLayerSource::readlink(const LayerDir& dir, std::string_view name) const {
  auto n = resolve(dir, name);
  if (!n) return Errno{n.error()};
  const auto& ino = index_->inodes[index_->names[*n].inode];
  if (!S_ISLNK(ino.mode)) return Errno{EINVAL};
  return ino.link;
}

ssize_t BlobLayerSource::getxattr(const LayerDir& dir, std::string_view name, const char* xname, void* value,
                                  size_t size) const {
  auto n = resolve(dir, name);
  if (!n) return -n.error();
  for (const auto& [k, v] : xattrs_of(index_->inodes[index_->names[*n].inode])) {
    if (k != xname) continue;
    if (size == 0) return ssize_t(v.size());
    if (size < v.size()) return -ERANGE;
    std::memcpy(value, v.data(), v.size());
    return ssize_t(v.size());
  }
  return -ENODATA;
}

ssize_t BlobLayerSource::listxattr(const LayerDir& dir, std::string_view name, char* list, size_t size) const {
  auto n = resolve(dir, name);
  if (!n) return -n.error();
  std::string all;
  for (const auto& kv : xattrs_of(index_->inodes[index_->names[*n].inode])) {
    all.append(kv.first);
    all.push_back('\0');
  }
  if (size == 0) return ssize_t(all.size());
  if (size < all.size()) return -ERANGE;
  std::memcpy(list, all.data(), all.size());
  return ssize_t(all.size());
}

Result<uint32_t> BlobLayerSource::regular_file(const LayerDir& dir, std::string_view name) const {
  auto n = resolve(dir, name);
  if (!n) return Errno{n.error()};
  uint32_t inode = index_->names[*n].inode;
  const auto& ino = index_->inodes[inode];
  if (S_ISLNK(ino.mode)) return Errno{ELOOP};
  if (S_ISDIR(ino.mode)) return Errno{EISDIR};
  if (!S_ISREG(ino.mode)) return Errno{ENXIO};
  return inode;
}

Result<UniqueFd> BlobLayerSource::open(const LayerDir& dir, std::string_view name, int flags) const {
  (void)flags;
  auto inode = regular_file(dir, name);
  if (!inode) return Errno{inode.error()};
  // The stand-in the engine keeps for fstat: the file's size, no pages, and sealed, so nothing
  // can ever write into it.
  UniqueFd mem(::memfd_create("strata-lazy", MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!mem) return last_errno();
  if (::ftruncate(mem.get(), off_t(index_->inodes[*inode].size)) != 0) return last_errno();
  if (::fcntl(mem.get(), F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) != 0)
    return last_errno();
  return mem;
}

std::shared_ptr<const LayerFileData> BlobLayerSource::data(const LayerDir& dir, std::string_view name) const {
  auto inode = regular_file(dir, name);
  if (!inode) return nullptr;
  const auto& ino = index_->inodes[*inode];
  if (ino.sparse) return std::make_shared<const SparseFileData>(reader_, ino, index_->segments_of(ino));
  return std::make_shared<const BlobFileData>(reader_, ino.offset, ino.size);
}

}  // namespace strata::fs
