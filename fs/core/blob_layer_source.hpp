// A read-only layer served straight from its compressed blob: names, attributes, symlinks and
// xattrs come from the blob's table of contents (common/lazy/blob_index.hpp), file data from
// random reads of the blob (common/lazy/blob_reader.hpp). The tar's whiteouts show as the
// char 0/0 devices and opaque directories as the trusted.overlay.opaque xattr, the forms the
// engine reads in any lower layer, so the engine does not know the difference.
//
// Reading: open() returns a sealed memfd holding the whole file, so the engine's fd-based
// read path (pread, splice, copy_file_range, the kernel's page cache across opens) works as
// for a directory layer. All-zero runs are left as holes (no memory); recently opened files
// stay materialized in a bounded cache, so reopening one reads nothing from the blob. Lowers
// name it through a descriptor file (fs/core/lazy_layer_file.hpp).
#pragma once

#include <sys/types.h>

#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "common/lazy/blob_index.hpp"
#include "common/lazy/blob_reader.hpp"
#include "fs/core/layer_source.hpp"
#include "fs/core/lazy_layer_file.hpp"

namespace strata::fs {

class BlobLayerSource final : public LayerSource {
 public:
  static constexpr size_t kMaterializedCacheBytes = 256 << 20;

  // Opens the descriptor's index and blob; nullptr with `error` set (the index unreadable or
  // of another version, the blob shorter than the index says).
  static std::unique_ptr<BlobLayerSource> open(const std::string& descriptor_path, dev_t dev, std::string& error);

  LayerDirRef root() const override { return root_; }
  LayerDirRef open_dir(const LayerDir& dir, std::string_view name) const override;
  Status stat(const LayerDir& dir, std::string_view name, struct stat& st) const override;
  Status list(const LayerDir& dir,
              const std::function<bool(std::string_view, ino_t, unsigned char)>& each) const override;
  Result<std::string> readlink(const LayerDir& dir, std::string_view name) const override;
  ssize_t getxattr(const LayerDir& dir, std::string_view name, const char* xname, void* value,
                   size_t size) const override;
  ssize_t listxattr(const LayerDir& dir, std::string_view name, char* list, size_t size) const override;
  Result<UniqueFd> open(const LayerDir& dir, std::string_view name, int flags) const override;

  const lazy::BlobIndex& index() const { return *index_; }

 private:
  BlobLayerSource(std::shared_ptr<const lazy::BlobIndex> index, UniqueFd blob, uint64_t offset, dev_t dev);
  // The name index of `name` below `dir` (of `dir` for an empty name), or an errno.
  Result<uint32_t> resolve(const LayerDir& dir, std::string_view name) const;
  Result<UniqueFd> materialize(uint32_t inode) const;

  std::shared_ptr<const lazy::BlobIndex> index_;
  UniqueFd blob_;
  dev_t dev_;
  LayerDirRef root_;
  mutable lazy::BlobReader reader_;
  // Materialized files (inode -> sealed memfd), least recently used last.
  mutable std::mutex cache_mu_;
  mutable std::list<std::pair<uint32_t, UniqueFd>> cache_;
  mutable std::unordered_map<uint32_t, decltype(cache_)::iterator> cached_;
  mutable size_t cached_bytes_ = 0;
};

}  // namespace strata::fs
