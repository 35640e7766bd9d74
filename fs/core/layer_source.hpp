// How the engine reads a layer: by directory handles and single names, never by path.
//
// Every layer is read through this interface. Today each one is a directory on a local
// filesystem (DirLayerSource); the upper is one too, and the engine writes it through the fds
// of its handles. A layer served straight from a compressed blob (eStargz, zstd:chunked) is
// another implementation of the same calls: its handles have no fd, and its files' bytes come
// from data() (read at any offset) rather than from the fd open() returns.
#pragma once

#include <sys/stat.h>
#include <sys/types.h>

#include <cerrno>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "fs/core/result.hpp"
#include "fs/core/unique_fd.hpp"

namespace strata::fs {

// A directory of a layer, held open. Shared: the engine caches handles and an operation keeps
// the one it uses alive while another thread evicts it.
class LayerDir {
 public:
  virtual ~LayerDir() = default;
  // The O_PATH directory fd of a layer on a local filesystem; -1 for other sources.
  virtual int fd() const { return -1; }
};
using LayerDirRef = std::shared_ptr<const LayerDir>;

// The bytes of a lower file that is not a file on a local filesystem (one served from a
// compressed blob): reads and copy-up take them from here, at any offset, instead of from the
// fd open() gave, which then only answers fstat.
class LayerFileData {
 public:
  virtual ~LayerFileData() = default;
  // Up to `len` bytes at `off` (short only at the end of the file): the count or -errno.
  virtual ssize_t read_at(void* buf, size_t len, off_t off) const = 0;
  virtual off_t size() const = 0;
  // lseek(SEEK_DATA or SEEK_HOLE) from `off`: the offset, or -ENXIO at or past the end (or,
  // for SEEK_DATA, past the last data). By default the file is all data, as on a filesystem
  // without holes; a sparse file says where its holes are.
  virtual off_t seek_data(off_t off, bool hole) const {
    if (off < 0 || off >= size()) return -ENXIO;
    return hole ? size() : off;
  }
};

class LayerSource {
 public:
  virtual ~LayerSource() = default;

  virtual LayerDirRef root() const = 0;
  // The directory `name` below `dir`, never through a symlink; nullptr with errno set.
  virtual LayerDirRef open_dir(const LayerDir& dir, std::string_view name) const = 0;
  // lstat of `name` below `dir`, or of `dir` itself for an empty name. 0 or an errno.
  virtual Status stat(const LayerDir& dir, std::string_view name, struct stat& st) const = 0;
  // Every entry of `dir` ("." and ".." included) with its d_ino and d_type (DT_UNKNOWN
  // allowed). `each` returns false to stop. 0 or an errno.
  virtual Status list(const LayerDir& dir,
                      const std::function<bool(std::string_view name, ino_t ino, unsigned char type)>& each) const = 0;
  virtual Result<std::string> readlink(const LayerDir& dir, std::string_view name) const = 0;
  // Extended attributes of `name` below `dir` (of `dir` for an empty name), as lgetxattr and
  // llistxattr answer (size queries with size 0, ERANGE, ENODATA), as -errno on failure.
  virtual ssize_t getxattr(const LayerDir& dir, std::string_view name, const char* xname, void* value,
                           size_t size) const = 0;
  virtual ssize_t listxattr(const LayerDir& dir, std::string_view name, char* list, size_t size) const = 0;
  // Opens the file `name` below `dir` for reading (O_RDONLY plus `flags`); the fd serves
  // pread, splice and copy_file_range.
  virtual Result<UniqueFd> open(const LayerDir& dir, std::string_view name, int flags) const = 0;
  // The data of the regular file `name` below `dir` when it must be read through the source,
  // not through the fd open() gives; nullptr for files on a local filesystem.
  virtual std::shared_ptr<const LayerFileData> data(const LayerDir& dir, std::string_view name) const {
    (void)dir, (void)name;
    return nullptr;
  }
};

// A layer that is a directory tree on a local filesystem.
class DirLayerSource final : public LayerSource {
 public:
  // Takes an O_PATH | O_DIRECTORY fd of the layer's root.
  explicit DirLayerSource(UniqueFd root);

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

 private:
  LayerDirRef root_;
};

// The handle DirLayerSource gives out: an owned O_PATH directory fd.
class FdLayerDir final : public LayerDir {
 public:
  explicit FdLayerDir(UniqueFd fd) : fd_(std::move(fd)) {}
  int fd() const override { return fd_.get(); }

 private:
  UniqueFd fd_;
};

}  // namespace strata::fs
