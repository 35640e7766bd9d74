// Opening files: writers copy up first; readers of a lower file switch to the upper copy
// as soon as the Inode is copied up (through any of its names).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fs/core/overlay.hpp"

namespace strata::fs {

namespace {

bool wants_write(int flags) { return (flags & O_ACCMODE) != O_RDONLY || (flags & O_TRUNC); }

}  // namespace

Result<std::unique_ptr<OpenFile>> Overlay::open(Inode* node, int flags, const Caller& caller) {
  if (wants_write(flags)) {
    if (read_only_) return Errno{EROFS};
    if (Status s = copy_up(node, !(flags & O_TRUNC)); s != 0) return Errno{s};
  }
  int open_flags = flags & ~(O_CREAT | O_EXCL | O_NOCTTY);
  if (config_.writeback) {
    // With a writeback cache the kernel reads pages of write-only files and handles O_APPEND.
    if ((open_flags & O_ACCMODE) == O_WRONLY) open_flags = (open_flags & ~O_ACCMODE) | O_RDWR;
    open_flags &= ~O_APPEND;
  }
  auto file = std::make_unique<OpenFile>();
  file->node = node;
  file->flags = open_flags;
  int layer;
  {
    std::shared_lock lock(tree_);
    file->copyups_seen = node->copyups.load();
    layer = node->top.load();
    auto fd = open_backing(node, open_flags);
    if (!fd) return Errno{fd.error()};
    file->fd = std::move(*fd);
    if (layer != 0 || !layers_.has_upper()) {
      if (auto place = place_of(node, layer); place && !place->orphan)
        file->lower_data = source(place->layer).data(*place->dir, place->name);
    }
  }
  if (flags & O_TRUNC) drop_setid_bits_for(file->fd.get(), caller);
  file->from_lower = layer != 0 || !layers_.has_upper();
  file->current = file->fd.get();
  return file;
}

int Overlay::io_fd(OpenFile& file) {
  if (!file.from_lower || file.node->copyups.load() == file.copyups_seen.load()) return file.current.load();
  std::lock_guard lock(file.reopen_mutex);
  uint32_t seen = file.node->copyups.load();
  if (!file.from_lower || seen == file.copyups_seen.load()) return file.current.load();
  {
    std::shared_lock tree(tree_);
    if (file.node->top.load() == 0) {
      if (auto fd = open_backing(file.node, file.flags & ~O_TRUNC)) {
        file.current = fd->get();
        file.retired.push_back(std::move(file.fd));
        file.fd = std::move(*fd);
        file.from_lower = false;
      }
    }
  }
  file.copyups_seen = seen;
  return file.current.load();
}

const LayerFileData* Overlay::streamed(OpenFile& file) {
  if (!file.lower_data) return nullptr;
  io_fd(file);  // a copy-up since the open moves the file to the upper copy
  return file.from_lower.load() ? file.lower_data.get() : nullptr;
}

Status Overlay::fsync(OpenFile& file, bool datasync) {
  if (!config_.fsync) return 0;
  int fd = io_fd(file);
  int r = datasync ? ::fdatasync(fd) : ::fsync(fd);
  return r == 0 ? 0 : errno;
}

}  // namespace strata::fs
