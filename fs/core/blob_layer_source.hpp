// A read-only layer served straight from its compressed blob: names, attributes, symlinks and
// xattrs come from the blob's table of contents (common/lazy/blob_index.hpp), file data from
// random reads of the blob (common/lazy/blob_reader.hpp). The tar's whiteouts show as the
// char 0/0 devices and opaque directories as the trusted.overlay.opaque xattr, the forms the
// engine reads in any lower layer, so the engine does not know the difference.
//
// Reading: data() gives a file's bytes at any offset, read from the blob through the reader's
// bounded cache of decompressed chunks (sequential reads continue a live decoder), so memory
// does not grow with the file. The engine reads and copies up such files through it; the fd
// open() returns is a sealed, empty memfd of the file's size (all holes, no memory), there for
// fstat only. Lowers name such a layer through a descriptor file (fs/core/lazy_layer_file.hpp).
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>

#include "common/lazy/blob_index.hpp"
#include "common/lazy/blob_reader.hpp"
#include "fs/core/layer_source.hpp"
#include "fs/core/lazy_layer_file.hpp"

namespace strata::fs {

class BlobLayerSource final : public LayerSource {
 public:
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
  std::shared_ptr<const LayerFileData> data(const LayerDir& dir, std::string_view name) const override;

  const lazy::BlobIndex& index() const { return *index_; }

 private:
  BlobLayerSource(std::shared_ptr<const lazy::BlobIndex> index, UniqueFd blob, uint64_t offset, dev_t dev);
  // The name index of `name` below `dir` (of `dir` for an empty name), or an errno.
  Result<uint32_t> resolve(const LayerDir& dir, std::string_view name) const;
  // The regular file `name` below `dir` names, or an errno as open(2) would give.
  Result<uint32_t> regular_file(const LayerDir& dir, std::string_view name) const;

  std::shared_ptr<const lazy::BlobIndex> index_;
  UniqueFd blob_;
  dev_t dev_;
  LayerDirRef root_;
  mutable lazy::BlobReader reader_;
};

}  // namespace strata::fs
